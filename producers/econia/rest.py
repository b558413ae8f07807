"""DssRest: the PostgREST reads the Econia feed needs (markets, event rows after a key, one order)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

Key = tuple[int, int]  # (txn_version, event_idx)
TABLES = {
    "fill_event": "fill_events",
    "place_limit_order_event": "place_limit_order_events",
    "change_order_size_event": "change_order_size_events",
    "cancel_order_event": "cancel_order_events",
    "market_registration_event": "market_registration_events",
    "place_market_order_event": "place_market_order_events",
    "place_swap_order_event": "place_swap_order_events",
    "recognized_market_event": "recognized_market_events",
}
MARKET_WIDE = {"market_registration_event", "recognized_market_event"}  # read whatever the market filter
# Keyless aggregator rows (``aggregator.user_history*``): nothing to reconcile them by.
STATE_CHANNELS = {"updated_limit_order", "new_limit_order", "new_market_order", "new_swap_order"}


class DssRest:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, *, page: int = 100) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.page = page
        self.requests = 0

    async def _get(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        self.requests += 1
        async with self.session.get(f"{self.base_url}/{path}", params=params) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET /{path} -> HTTP {resp.status}: {body[:200]!r}")
        rows = json.loads(body)  # not orjson: u128 order ids exceed its 64-bit integers
        if not isinstance(rows, list):
            raise ValueError(f"GET /{path}: expected a JSON array, got {type(rows).__name__}")
        return rows

    async def markets(self) -> list[dict[str, Any]]:
        return await self._get("markets", {})

    async def head(self, channel: str) -> Key | None:
        rows = await self._get(TABLES[channel], {"order": "txn_version.desc,event_idx.desc", "limit": "1"})
        return (rows[0]["txn_version"], rows[0]["event_idx"]) if rows else None

    async def rows_from(self, channel: str, txn_version: int, market_ids: set[int] | None = None) -> list[dict[str, Any]]:
        """Every row with ``txn_version >= txn_version``, ordered by (txn_version, event_idx), paged."""
        params = {"txn_version": f"gte.{txn_version}", "order": "txn_version.asc,event_idx.asc",
                  "limit": str(self.page)}
        if market_ids and channel not in MARKET_WIDE:
            params["market_id"] = "in.(" + ",".join(str(m) for m in sorted(market_ids)) + ")"
        out: list[dict[str, Any]] = []
        while True:
            page = await self._get(TABLES[channel], {**params, "offset": str(len(out))})
            out.extend(page)
            if len(page) < self.page:
                return out

    async def open_orders(self, market_ids: set[int] | None = None) -> list[dict[str, Any]]:
        """Every open limit order with a remaining size (``/limit_orders``), paged."""
        params = {"order_status": "eq.open", "remaining_size": "gt.0", "order": "market_id.asc,order_id.asc",
                  "limit": str(self.page)}
        if market_ids:
            params["market_id"] = "in.(" + ",".join(str(m) for m in sorted(market_ids)) + ")"
        out: list[dict[str, Any]] = []
        while True:
            page = await self._get("limit_orders", {**params, "offset": str(len(out))})
            out.extend(page)
            if len(page) < self.page:
                return out

    async def limit_order(self, market_id: int, order_id: int) -> dict[str, Any] | None:
        rows = await self._get("limit_orders", {"market_id": f"eq.{market_id}", "order_id": f"eq.{order_id}"})
        return rows[0] if rows else None
