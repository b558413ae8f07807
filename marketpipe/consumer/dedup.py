"""Drop duplicates by `event_id` (the contract's dedup rule) within a bounded window of recent ids."""

from __future__ import annotations

from collections import OrderedDict


class Deduplicator:
    """Remembers the last `window` event ids; `seen(id)` is True for a repeat within that window.

    Delivery is at-least-once: a duplicate is a re-delivery of a recent event (a producer retry or a
    processor restart re-publishing what it published before its last commit), so a bounded window suffices.
    """

    __slots__ = ("window", "_ids", "duplicates")

    def __init__(self, window: int = 200_000) -> None:
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.window = window
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0

    def seen(self, event_id: str) -> bool:
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            self.duplicates += 1
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.window:
            self._ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)
