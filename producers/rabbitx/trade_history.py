"""RabbitX REST trade history: the trades of one market strictly between two venue trade numbers.

``GET /markets/trades?market_id=BTC-USD&p_limit=1000&p_page=N&p_order=DESC`` (rabbitx-docs
``public-endpoints/trades.md``: ``p_limit`` at most 1000, ``p_page`` from 0, ``DESC`` by default; the
reference client calls ``/markets/trades``, the doc page writes ``/trades``). The reply is wrapped as
``{"success":bool,"error":str,"result":[trade...]}``; rows carry the WebSocket trade fields (the doc's
field list spells ``taker_side`` as ``taker_size``, both are accepted by the normalizer).

The walk goes newest first: trades published meanwhile only push older rows onto later pages, so a row
may be seen twice (kept once, by number) but is never skipped. It stops when a page reaches the hole's
first number, when a page comes back short (the venue's retained history ends there), or after
``max_pages`` pages (each unauthenticated call costs 10 of the 1200 tokens a minute of ``rate-limits.md``, so
the default walks at most 50 pages = 50,000 trades per hole). Numbers come back exact (``loads_exact``: prices/sizes never become floats).
"""

from __future__ import annotations

import asyncio
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
    error: str | None = None  # the walk ended early on this error (the rest is unknown, not exhausted)
    page_limited: bool = False  # the walk stopped at max_pages before reaching the hole's start


async def trades_between(http: aiohttp.ClientSession, rest_url: str, market_id: str, after: int, before: int, *,
                         page_limit: int = PAGE_LIMIT_MAX, max_pages: int = 50,
                         path: str = "/markets/trades", retries: int = 3) -> HistoryWindow:
    """Rows with ``after < number < before`` from the venue's REST trade history. Raises when the first
    page fails; a later failure ends the walk with what was fetched (``error`` says why)."""
    limit = max(1, min(page_limit, PAGE_LIMIT_MAX))
    out = HistoryWindow()
    url = f"{rest_url.rstrip('/')}{path}"
    for page in range(max_pages):
        params = {"market_id": market_id, "p_limit": str(limit), "p_page": str(page), "p_order": "DESC"}
        try:
            rows = await _page(http, url, params, retries=retries)
        except Exception as exc:
            if page == 0:
                raise
            out.error = f"{type(exc).__name__}: {exc}"  # keep what the earlier pages brought
            break
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
    else:
        out.page_limited = True  # max_pages walked: older rows may still be there, unread
    return out


async def _page(http: aiohttp.ClientSession, url: str, params: dict[str, str], *, retries: int) -> list[Any]:
    """One page's rows. HTTP 429 (the venue's token bucket, ``rate-limits.md``) waits ``Retry-After``
    (at most 10 s) and tries again, ``retries`` times."""
    for attempt in range(retries + 1):
        async with http.get(url, params=params) as resp:
            if resp.status == 429 and attempt < retries:
                retry_after = resp.headers.get("Retry-After", "1")
                delay = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 1.0
                await asyncio.sleep(min(max(delay, 0.1), 10.0))
                continue
            resp.raise_for_status()
            body = loads_exact(await resp.read())
        if not body.get("success", False):
            raise RuntimeError(f"GET {url} {params} refused: {body.get('error')!r}")
        return list(body.get("result") or [])
    raise RuntimeError("unreachable")
