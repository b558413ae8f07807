"""AccountStage: balances, open orders, fills and positions per (venue, account) from marketpipe.account.v1."""

from __future__ import annotations

import logging
from typing import Any

from faust.types import EventT, TableT

from processors import metrics
from processors.account import AccountState
from processors.metrics import LatencyWindow
from processors.stage import Stage
from processors.wire import ContractWire

log = logging.getLogger(__name__)


class AccountStage(Stage[AccountState]):
    stream = "account"

    def __init__(self, table: TableT, wire: ContractWire, latency: LatencyWindow, *, fills_window: int,
                 ticks_topic: str | None = None) -> None:
        super().__init__(table, wire, latency)
        self.fills_window = fills_window
        self.ticks_topic = ticks_topic

    def on_other(self, event: EventT, dirty: dict[bytes, tuple[AccountState, EventT]]) -> bool:
        """Timer ticks only wake the agent up (schema_gate.py releases parked partitions on every batch)."""
        return event.message.topic == self.ticks_topic

    def from_state(self, state: dict[str, Any]) -> AccountState:
        return AccountState.from_state(state, fills_window=self.fills_window)

    def to_state(self, obj: AccountState) -> dict[str, Any]:
        return obj.to_state()

    def fold(self, key: bytes, acct: AccountState | None, record: dict[str, Any], event: EventT) -> AccountState:
        self.check_key(key, record["venue"], record["account"])
        if acct is None:
            acct = self.cache[key] = AccountState(record["venue"], record["account"], fills_window=self.fills_window)
        outcome = acct.apply(record)
        metrics.ACCOUNT_OUTCOMES.labels(outcome).inc()
        if outcome in ("gap", "duplicate_gap"):
            metrics.GAP_MARKERS.labels(self.stream).inc()
        if outcome == "gap":
            gap = record["gap"]
            log.warning("gap marker %s of %s: %s events may be missing in [%s, %s] (%s, %s missing)",
                        record["event_id"], key.decode(), record["kind"], gap["from_ts"], gap["to_ts"],
                        gap["reason"], gap.get("missing_count"))
        return acct
