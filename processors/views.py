"""Query endpoints on the faust web server, each routed to the worker that owns the key's partition.

GET /books/{venue}/{market}?depth=N          full book (or N levels per side), in_sync/crossed flags
GET /books/{venue}/{market}/top              top of book: best bid/ask, sizes, spread, mid
GET /candles/{venue}/{market}/{interval}?start=&end=&limit=&include_open=   published candles (latest revision)
GET /accounts/{venue}/{account}/balances | /orders?status=open|closed|all | /positions | /fills?limit=
GET /metrics                                  Prometheus text (events processed, lag, books out of sync...)
GET /processor/ready  /processor/stats?latency=false  readiness; events folded and latency percentiles here

Answers are JSON; prices and sizes are the exact decimal text from the venue. 404 for an unknown
market/account, 400 for bad parameters. Reads may be served by the owner only (standbys are not queried):
a response reflects every event the owner has processed, which is at most one batch behind its stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faust.exceptions import SameNode
from faust.types.web import Request, Response
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from processors import metrics

if TYPE_CHECKING:
    from processors.app import ProcessorApp


class BadParam(ValueError):
    pass


def _int_param(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise BadParam(f"{name}={value} out of range [{lo}, {hi}]")
    return value


def register_views(proc: ProcessorApp) -> None:
    app = proc.app
    s = proc.settings

    async def routed(view: View, request: Request, table_name: str, key: bytes,
                     handler: Callable[[], Awaitable[Response] | Response]) -> Response:
        try:
            return await app.router.route_req(table_name, key, view.web, request)
        except SameNode:
            pass
        try:
            result = handler()
            return await result if not isinstance(result, Response) and hasattr(result, "__await__") else result
        except BadParam as exc:
            return view.json({"error": str(exc)}, status=400)

    def not_found(view: View, what: str, key: bytes) -> Response:
        return view.json({"error": f"unknown {what} {key.decode()}"}, status=404)

    # -- books -------------------------------------------------------------------------------------------
    @app.page("/books/{venue}/{market}")
    async def book(view: View, request: Request, venue: str, market: str) -> Response:
        key = f"{venue}:{market}".encode()

        def answer() -> Response:
            depth = _int_param(request, "depth", None, 1, s.processor_max_query_depth)
            b = proc.books.peek(key)
            if b is None:
                return not_found(view, "market", key)
            return view.json({"venue": b.venue, "market": b.market, "venue_symbol": b.venue_symbol,
                              "in_sync": b.in_sync, "crossed": b.crossed, "sequence": b.sequence,
                              "exchange_ts": b.exchange_ts, "receive_ts": b.receive_ts, **b.depth(depth)})

        return await routed(view, request, proc.books.table.name, key, answer)

    @app.page("/books/{venue}/{market}/top")
    async def book_top(view: View, request: Request, venue: str, market: str) -> Response:
        key = f"{venue}:{market}".encode()

        def answer() -> Response:
            b = proc.books.peek(key)
            if b is None:
                return not_found(view, "market", key)
            return view.json({"venue": b.venue, "market": b.market, "in_sync": b.in_sync, "crossed": b.crossed,
                              "sequence": b.sequence, "exchange_ts": b.exchange_ts, **b.top_fields()})

        return await routed(view, request, proc.books.table.name, key, answer)

    # -- candles -------------------------------------------------------------------------------------------
    @app.page("/candles/{venue}/{market}/{interval}")
    async def candles(view: View, request: Request, venue: str, market: str, interval: str) -> Response:
        key = f"{venue}:{market}".encode()

        def answer() -> Response:
            if interval not in s.processor_candle_intervals:
                raise BadParam(f"interval {interval!r} not configured; one of {s.processor_candle_intervals}")
            start = _int_param(request, "start", 0, 0, 2**63 - 1)
            end = _int_param(request, "end", 2**63 - 1, 0, 2**63 - 1)
            limit = _int_param(request, "limit", s.processor_candle_history, 1, s.processor_candle_history)
            include_open = request.query.get("include_open", "false").lower()
            if include_open not in ("true", "false", "1", "0"):
                raise BadParam(f"include_open={include_open!r}: expected true|false")
            assert start is not None and end is not None and limit is not None
            if start > end:
                raise BadParam(f"start={start} > end={end}")
            mc = proc.candles.peek(key)
            if mc is None:
                return not_found(view, "market", key)
            rows: list[dict[str, Any]] = [{"gap": False, **c, "final": True} for c in mc.series[interval].history]
            if include_open in ("true", "1"):
                rows += mc.open_candles(interval)
            rows = [r for r in rows if start <= r["start_ts"] < end]
            return view.json({"venue": venue, "market": market, "interval": interval, "candles": rows[-limit:]})

        return await routed(view, request, proc.candles.table.name, key, answer)

    # -- accounts -----------------------------------------------------------------------------------------
    @app.page("/accounts/{venue}/{account}/{section}")
    async def account(view: View, request: Request, venue: str, account: str, section: str) -> Response:
        key = f"{venue}:{account}".encode()

        def answer() -> Response:
            if section not in ("balances", "orders", "positions", "fills"):
                return view.json({"error": f"unknown section {section!r}"}, status=404)
            a = proc.accounts.peek(key)
            if a is None:
                return not_found(view, "account", key)
            # gaps: per event kind, how many gap markers arrived and the latest window (events may be missing)
            body: dict[str, Any] = {"venue": a.venue, "account": a.account, "updated_ts": a.updated_ts,
                                    "gaps": a.gaps}
            if section == "balances":
                body["balances"] = a.balances
            elif section == "positions":
                body["positions"] = a.positions
            elif section == "fills":
                limit = _int_param(request, "limit", s.processor_fills_window, 1, s.processor_fills_window)
                body["fills"] = a.fills[-(limit or 1):]
            else:
                status = request.query.get("status", "open")
                if status not in ("open", "closed", "all"):
                    raise BadParam(f"status={status!r}: expected open|closed|all")
                body["orders"] = ((list(a.open_orders.values()) if status != "closed" else [])
                                  + (a.closed_orders if status != "open" else []))
            return view.json(body)

        return await routed(view, request, proc.accounts.table.name, key, answer)

    # -- operations ---------------------------------------------------------------------------------------
    @app.page("/metrics")
    async def prometheus(view: View, request: Request) -> Response:
        proc.refresh_gauges()
        return view.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/processor/ready")
    async def ready(view: View, request: Request) -> Response:
        ok = proc.ready()
        return view.json({"ready": ok, "actives": sorted(f"{tp.topic}:{tp.partition}"
                                                         for tp in app.assignor.assigned_actives())},
                         status=200 if ok else 503)

    @app.page("/processor/stats")
    async def stats(view: View, request: Request) -> Response:
        if request.query.get("reset_latency") == "true":  # benchmarks: start a fresh latency window
            proc.latency.samples.clear()
        events = metrics.events_by_stream()
        body: dict[str, Any] = {"events": {st.stream: int(events.get(st.stream, 0)) for st in proc.stages},
                                "ticks_seen": proc.candles.ticks_seen}
        if request.query.get("latency") != "false":  # sorting the window costs ~5 ms: frequent pollers skip it
            body["latency"] = proc.latency.percentiles()
        return view.json(body)
