"""RabbitX REST trade history: the trades of one market strictly between two venue trade numbers.

``GET /markets/trades?market_id=BTC-USD&p_limit=1000&p_page=N&p_order=DESC`` (rabbitx-docs
``public-endpoints/trades.md``: ``p_limit`` at most 1000, ``p_page`` from 0, ``DESC`` by default; the
reference client calls ``/markets/trades``, the doc page writes ``/trades``). The reply is wrapped as
``{"success":bool,"error":str,"result":[trade...]}``; rows carry the WebSocket trade fields (the doc's
field list spells ``taker_side`` as ``taker_size``, both are accepted by the normalizer).

The walk goes newest first: trades published meanwhile only push older rows onto later pages, so a row
may be seen twice (kept once, by number) but is never skipped. It stops when a page reaches the hole's
first number, when a page comes back short (the venue's retained history ends there), or after
``max_pages`` pages. Numbers come back exact (``loads_exact``: prices/sizes never become floats).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from producers.core.numbers import loads_exact

PAGE_LIMIT_MAX = 1000


def trade_number(trade_id: Any) -> tuple[str, int] | None:
    """``"BTC-USD-13230788"`` -> ``("BTC-USD", 13230788)``; None when the id is not ``<market>-<n>``."""
    prefix, _, digits = str(trade_id).rpartition("-")
    if not prefix or not digits.isdigit():
        return None
    return prefix, int(digits)


@dataclass
class HistoryWindow:
    """What the REST history returned for the hole ``(after, before)``: rows by trade number, and the
    oldest number the history still holds (None when it returned nothing)."""

    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    oldest: int | None = None
    pages: int = 0
    complete: bool = False  # the walk reached ``after + 1``: nothing between is beyond the history


async def trades_between(http: aiohttp.ClientSession, rest_url: str, market_id: str, after: int, before: int, *,
                         page_limit: int = PAGE_LIMIT_MAX, max_pages: int = 100,
                         path: str = "/markets/trades") -> HistoryWindow:
    """Rows with ``after < number < before`` from the venue's REST trade history (raises on HTTP errors
    and on a reply with ``success: false``)."""
    limit = max(1, min(page_limit, PAGE_LIMIT_MAX))
    out = HistoryWindow()
    url = f"{rest_url.rstrip('/')}{path}"
    for page in range(max_pages):
        params = {"market_id": market_id, "p_limit": str(limit), "p_page": str(page), "p_order": "DESC"}
        async with http.get(url, params=params) as resp:
            resp.raise_for_status()
            body = loads_exact(await resp.read())
        if not body.get("success", False):
            raise RuntimeError(f"GET {path} {market_id} page {page} refused: {body.get('error')!r}")
        rows = body.get("result") or []
        out.pages += 1
        for row in rows:
            parsed = trade_number(row.get("id"))
            if parsed is None:
                continue
            n = parsed[1]
            out.oldest = n if out.oldest is None else min(out.oldest, n)
            if after < n < before:
                out.rows[n] = row
        if out.oldest is not None and out.oldest <= after + 1:
            out.complete = True
            break
        if len(rows) < limit:  # the retained history ends here
            break
    return out
