"""Query endpoints on the faust web server, each routed to the worker that owns the key's partition.

GET /books/{venue}/{market}?depth=N          full book (or N levels per side), in_sync/crossed flags
GET /books/{venue}/{market}/top              top of book: best bid/ask, sizes, spread, mid
GET /candles/{venue}/{market}/{interval}?start=&end=&limit=&include_open=   published candles (latest revision)
GET /accounts/{venue}/{account}/balances | /orders?status=open|closed|all | /positions | /fills?limit=
GET /processor/stats?latency=false            events folded and latency percentiles
POST /processor/stats?reset_latency=true      benchmarks: start a fresh latency window (the only state change)
GET /metrics  /processor/ready  /processor/live   Prometheus text, readiness, liveness: never need the token
GET /ui/ ...                                  the web view (webui.py): a static page, its data behind the token

Answers are JSON; prices and sizes are the exact decimal text from the venue. 404 for an unknown
market/account/path, 400 for bad parameters, 405 for a wrong method, 401 without the bearer token (when
`processor_query_token` is set). Reads may be served by the owner only (standbys are not queried): a
response reflects every event the owner has processed, which is at most one batch behind its stream.

The port serves these paths and nothing else: faust's own pages (/router/ with every worker's address and
assignment, /table/ with raw table values, the statistics index...) are switched off with faust's
`web_*_enabled` settings (FAUST_PAGES_OFF), and `QuerySurface.middleware` (an aiohttp middleware installed
through faust's `web_application_options`) answers 404 to any path not registered here, whatever a faust
version adds. A query forwarded to the key's owner (faust's `router.route_req`, behind `table_route`) carries
the caller's headers, Authorization included, so the owner checks the same token.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web as aioweb
from faust.exceptions import SameNode
from faust.types import AppT
from faust.types.web import Request, Response
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from processors import metrics
from processors.webui import register_webui

if TYPE_CHECKING:
    from processors.app import ProcessorApp

log = logging.getLogger(__name__)

#: faust settings that switch off every built-in page (public settings of faust-streaming 0.15): /router/,
#: /table/, the statistics index and /assignment/, /graph, /performance/. What remains of faust's own
#: (the production index at /) is answered 404 by QuerySurface.middleware. Forwarding a query to the key's
#: owner does not use these pages: router.route_req reads the owner from the partition assignor.
FAUST_PAGES_OFF: dict[str, bool] = {
    "web_router_enabled": False,
    "web_tables_enabled": False,
    "web_stats_enabled": False,
    "web_graph_enabled": False,
    "web_metrics_enabled": False,
}

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


class QuerySurface:
    """What the web port serves: the paths registered through `page`, and with a token, only to its holder.

    Paths registered with open_=True (metrics, readiness, liveness) answer without the token: kubelet probes
    and Prometheus scrapes cannot carry a Secret's value (a probe's httpHeaders would put it in the pod spec).
    Keep the port off untrusted networks anyway (the chart's NetworkPolicy).
    """

    def __init__(self, token: str | None) -> None:
        self.token = token.encode() if token else None
        self.paths: set[str] = set()
        self.open_paths: set[str] = set()

    def page(self, app: AppT, path: str, *, open_: bool = False) -> Callable[[Any], type[View]]:
        """app.page(path), remembered as a path this port serves (open_: without the token)."""
        self.paths.add(path)
        if open_:
            self.open_paths.add(path)
        return app.page(path)

    @staticmethod
    def error(status: int, message: str, **headers: str) -> aioweb.Response:
        return aioweb.json_response({"error": message}, status=status, headers=headers or None)

    def authorized(self, request: aioweb.Request) -> bool:
        if self.token is None:
            return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token)

    async def allowed_methods(self, request: aioweb.Request) -> set[str]:
        """Methods our resources accept at this path (empty: no path of ours matches)."""
        allowed: set[str] = set()
        for resource in request.app.router.resources():
            if resource.canonical in self.paths:
                _, methods = await resource.resolve(request)
                allowed |= methods
        return allowed

    @aioweb.middleware
    async def middleware(self, request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None or resource.canonical not in self.paths:
            allowed = await self.allowed_methods(request) if resource is None else set()
            if allowed:
                return self.error(405, f"{request.method} not allowed on {request.path}; allowed: "
                                  f"{', '.join(sorted(allowed))}", Allow=", ".join(sorted(allowed)))
            return self.error(404, f"no such path {request.path}")
        if resource.canonical not in self.open_paths and not self.authorized(request):
            return self.error(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
        try:
            return await handler(request)
        except aioweb.HTTPException:
            raise
        except Exception:  # a bug in a view: logged with its traceback, answered as JSON (not aiohttp's text)
            log.exception("query %s %s failed", request.method, request.path_qs)
            return self.error(500, f"internal error answering {request.path}")


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

    def page(path: str, *, open_: bool = False) -> Callable[[Any], type[View]]:
        return proc.surface.page(app, path, open_=open_)

    async def routed(view: View, request: Request, table_name: str, key: bytes,
                     handler: Callable[[], Awaitable[Response] | Response]) -> Response:
        try:
            return await app.router.route_req(table_name, key, view.web, request)
        except SameNode:
            pass
        except Exception as exc:  # noqa: BLE001 - the owner cannot be looked up (yet)
            # faust finds the owner through its producer's metadata for the table's changelog topic, which
            # the producer may not have fetched yet (right after start-up, before it wrote that changelog):
            # the partition is computed like the producers do; if this worker owns it, it answers itself
            if not proc.owned(key):
                log.warning("cannot route a query for %r in %s: %r", key, table_name, exc)
                return view.json({"error": f"cannot route the query to the owner of {key.decode()} yet; retry"},
                                 status=503, headers={"Retry-After": "1"})
        try:
            result = handler()
            if inspect.isawaitable(result):
                return await result
            return result
        except BadParam as exc:
            return view.json({"error": str(exc)}, status=400)

    def not_found(view: View, what: str, key: bytes) -> Response:
        # 404 only from a worker that serves the key's partition with its state restored: during a rebalance
        # or a changelog restore (or while the router's view of the owner is stale) an existing market would
        # be called unknown; say "retry" instead
        if not proc.ready() or not proc.owned(key):
            return view.json({"error": f"{what} {key.decode()}: this worker is not serving its partition right "
                                       "now (rebalance or state restore); retry"},
                             status=503, headers={"Retry-After": "1"})
        return view.json({"error": f"unknown {what} {key.decode()}"}, status=404)

    # -- books -------------------------------------------------------------------------------------------
    @page("/books/{venue}/{market}")
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

    @page("/books/{venue}/{market}/top")
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
    @page("/candles/{venue}/{market}/{interval}")
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
    @page("/accounts/{venue}/{account}/{section}")
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
    @page("/metrics", open_=True)
    async def prometheus(view: View, request: Request) -> Response:
        proc.refresh_gauges()
        return view.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @page("/processor/ready", open_=True)
    async def ready(view: View, request: Request) -> Response:
        ok = proc.ready()
        return view.json({"ready": ok, "actives": sorted(f"{tp.topic}:{tp.partition}"
                                                         for tp in app.assignor.assigned_actives())},
                         status=200 if ok else 503)

    @page("/processor/live", open_=True)
    async def live(view: View, request: Request) -> Response:
        """Liveness: the event loop answers (also while the tables recover, before /processor/ready)."""
        return view.json({"live": True})

    def stats_body(request: Request) -> dict[str, Any]:
        events = metrics.events_by_stream()
        body: dict[str, Any] = {"events": {st.stream: int(events.get(st.stream, 0)) for st in proc.stages},
                                "ticks_seen": proc.candles.ticks_seen}
        if request.query.get("latency") != "false":  # sorting the window costs ~5 ms: frequent pollers skip it
            body["latency"] = proc.latency.percentiles()
        return body

    @page("/processor/stats")
    class Stats(View):
        """GET reads; POST ?reset_latency=true (benchmarks) starts a fresh latency window."""

        async def get(self, request: Request) -> Response:
            if "reset_latency" in request.query:
                return self.json({"error": "reset_latency changes state: use POST /processor/stats?reset_latency=true"},
                                 status=400)
            return self.json(stats_body(request))

        async def post(self, request: Request) -> Response:
            if request.query.get("reset_latency") != "true":
                return self.json({"error": "POST /processor/stats takes reset_latency=true"}, status=400)
            dropped = len(proc.latency.samples)
            proc.latency.clear()
            return self.json({**stats_body(request), "latency_samples_dropped": dropped})

    if s.processor_web_ui:
        register_webui(proc, _int_param)
