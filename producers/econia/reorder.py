"""ReorderBuffer: Econia events held briefly and released in ``(txn_version, event_idx)`` order, whole
transactions at a time.

The DSS sends one notification per event row, fire-and-forget; nothing guarantees that a transaction's
notifications arrive before a later transaction's. Events therefore wait here and are released in key
order, bounded two ways (both settings of ``EconiaSettings``):

- **time** (``econia_reorder_seconds``): an event is released at most ``window`` seconds after it
  arrived. When the oldest waiting arrival reaches that age, every waiting event of a transaction up to
  and including the highest transaction that has aged out is released (lower keys first), so a
  transaction delivered up to ``window`` seconds after a later one still goes out first;
- **count** (``econia_reorder_events``): when more events wait than that, the lowest transactions are
  released until the count is back under it (a burst cannot grow memory without bound).

``release_through(key)`` releases everything up to a key known to be complete (the REST head read before a
reconcile: every transaction up to it is committed, so nothing lower can still be on its way).

The buffer only orders; what is "late" (a key at or below what was already released) is the caller's
concern: ``released`` is the highest key handed out.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

Key = tuple[int, int]  # (txn_version, event_idx)
Held = tuple[Key, Any]


class ReorderBuffer:
    def __init__(self, window_seconds: float, max_events: int) -> None:
        if window_seconds < 0 or max_events < 1:
            raise ValueError("reorder window: seconds >= 0 and events >= 1")
        self.window = window_seconds
        self.max_events = max_events
        self._heap: list[Key] = []
        self._items: dict[Key, Any] = {}
        self._arrivals: deque[tuple[float, Key]] = deque()  # arrival order (monotonic times)
        self._aged_txn = -1  # highest txn_version among events that waited a full window
        self.released: Key | None = None
        self.reordered = 0  # events that arrived after a higher key (and were put back in order here)
        self._max_arrived: Key | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Key) -> bool:
        return key in self._items

    def add(self, key: Key, item: Any, now: float) -> bool:
        """Hold an event; False when the same key already waits (a duplicate)."""
        if key in self._items:
            return False
        if self._max_arrived is not None and key < self._max_arrived:
            self.reordered += 1
        else:
            self._max_arrived = key
        self._items[key] = item
        heapq.heappush(self._heap, key)
        self._arrivals.append((now, key))
        return True

    def _pop_through(self, txn: int) -> list[Held]:
        out: list[Held] = []
        while self._heap and self._heap[0][0] <= txn:
            key = heapq.heappop(self._heap)
            out.append((key, self._items.pop(key)))
        if out:
            self.released = out[-1][0] if self.released is None else max(self.released, out[-1][0])
        return out

    def due(self, now: float) -> list[Held]:
        """Events whose time or the count bound has come, in key order (whole transactions)."""
        cutoff = now - self.window
        while self._arrivals and self._arrivals[0][0] <= cutoff:
            _, key = self._arrivals.popleft()
            if key in self._items:
                self._aged_txn = max(self._aged_txn, key[0])
        out = self._pop_through(self._aged_txn)
        while len(self._items) > self.max_events:
            out.extend(self._pop_through(self._heap[0][0]))
        self._trim_arrivals()
        return out

    def release_through(self, key: Key) -> list[Held]:
        """Everything up to ``key``'s whole transaction (it is known complete), in key order."""
        out = self._pop_through(key[0])
        self._trim_arrivals()
        return out

    def drain(self) -> list[Held]:
        out = self._pop_through(max(self._heap)[0]) if self._heap else []
        self._trim_arrivals()
        return out

    def _trim_arrivals(self) -> None:
        while self._arrivals and self._arrivals[0][1] not in self._items:
            self._arrivals.popleft()

    def oldest_age(self, now: float) -> float:
        return now - self._arrivals[0][0] if self._arrivals else 0.0
