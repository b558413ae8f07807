"""The web view: a page on the processors' web port (/ui/) with live pushes from the worker owning the market.

GET /ui/  /ui/{asset}                   the page: static files shipped in the package (processors/webui_static),
                                        no data in them; served without the token so a browser can open it
GET /ui/api/overview[?local=true]       markets, accounts and health of every worker (this one asks the others,
                                        found in faust's partition assignment, with ?local=true)
GET /ui/stream/{venue}/{market}?interval=1m&depth=50&candles=300
                                        server-sent events from the worker owning the market: `book` (top and
                                        depth), `candles` (full history first, then the changed tail), `trades`
                                        (new tape entries), `moved` (partition reassigned: reconnect)

Every data path (overview, stream, and the query API the page calls for accounts) answers only with the bearer
token when `processor_query_token` is set, and only on the port's bind address, like every query: the page reads
the token from the address' fragment (`/ui/#token=...`, which a browser never sends to a server) or a login field,
keeps it in the tab's sessionStorage and sends it as `Authorization: Bearer` on every request, the event stream
included (read with fetch(), not EventSource, which cannot send headers). `MARKETPIPE_PROCESSOR_WEB_UI=false`
turns the page and its endpoints off (404 like any unknown path).

A stream is routed like a query: a worker that does not own the market's partition relays the owner's stream
(faust's route_req reads a whole body, so the relay is an aiohttp stream copy to the owner faust's router names).
The owner checks its market state every PUSH_INTERVAL_S and sends what changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import orjson
from aiohttp import web as aioweb
from faust.types.web import Request, Response
from faust.web import View
from prometheus_client import Metric

from processors import metrics

if TYPE_CHECKING:
    from processors.app import ProcessorApp

log = logging.getLogger(__name__)

PUSH_INTERVAL_S = 0.25  # how often a stream looks for changes of its market
KEEPALIVE_S = 15.0  # a comment line on a quiet stream (proxies close idle connections)
MOVED_AFTER_S = 3.0  # a stream whose market's partition is not owned here this long ends with `moved`
PEER_TIMEOUT_S = 3.0
RELAYED = "X-Marketpipe-Relayed-By"  # on a relayed stream request: the owner serves it or says retry, never relays
# the page loads and talks to nothing but this port; no inline script; no framing
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


def static_assets() -> dict[str, tuple[bytes, str]]:
    """Every file of processors/webui_static by name, with its content type (read once at start-up)."""
    root = resources.files("processors") / "webui_static"
    assets: dict[str, tuple[bytes, str]] = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in CONTENT_TYPES:
            assets[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return assets


def metric_values(metric: Any, label: str) -> dict[str, float]:
    """A labelled counter or gauge as {label value: sum over other labels}, through the public collect()."""
    out: dict[str, float] = {}
    families: list[Metric] = list(metric.collect())
    for family in families:
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            name = sample.labels.get(label, "")
            out[name] = out.get(name, 0.0) + sample.value
    return out


def gauge_value(gauge: Any) -> float:
    return sum(s.value for fam in gauge.collect() for s in fam.samples)


def local_overview(proc: ProcessorApp) -> dict[str, Any]:
    """What this worker owns: its markets and accounts with their state, and its health figures."""
    markets: dict[bytes, dict[str, Any]] = {}
    for key in list(proc.books.table.keys()):
        if not proc.owned(key):
            continue
        book = proc.books.peek(key)
        if book is None:
            continue
        markets[key] = {"venue": book.venue, "market": book.market, "in_sync": book.in_sync, "crossed": book.crossed,
                        "book_receive_ts": book.receive_ts, "best_bid": book.top_fields()["best_bid"],
                        "best_ask": book.top_fields()["best_ask"]}
    for key in list(proc.candles.table.keys()):
        if not proc.owned(key):
            continue
        # the cached state, else the table's value without its history chunks (a market idle since start-up)
        mc = proc.candles.cache.get(key)
        if mc is not None:
            venue, market, watermark, wall = mc.venue, mc.market, mc.watermark, mc.watermark_wall
        else:
            raw = proc.candles.table.get(key)
            if raw is None:
                continue
            state = orjson.loads(raw)
            venue, market, watermark, wall = state["venue"], state["market"], state["watermark"], state["watermark_wall"]
        entry = markets.setdefault(key, {"venue": venue, "market": market})
        entry["last_trade_ts"] = watermark
        entry["last_trade_wall_ts"] = wall
    accounts = []
    for key in list(proc.accounts.table.keys()):
        if not proc.owned(key):
            continue
        acct = proc.accounts.peek(key)
        if acct is not None:
            accounts.append({"venue": acct.venue, "account": acct.account, "updated_ts": acct.updated_ts,
                             "open_orders": len(acct.open_orders), "gaps": acct.gaps})
    proc.refresh_gauges()  # books out of sync / crossed and consumer lag, as /metrics reports them
    lag = metric_values(metrics.LAG, "topic")
    return {
        "worker": proc.settings.canonical_url,
        "ready": proc.ready(),
        "partitions": sorted({tp.partition for tp in proc.app.assignor.assigned_actives()}),
        "markets": sorted(markets.values(), key=lambda m: (m["venue"], m["market"])),
        "accounts": sorted(accounts, key=lambda a: (a["venue"], a["account"])),
        "health": {
            "consumer_lag": {topic: int(v) for topic, v in lag.items()},
            "books_out_of_sync": int(gauge_value(metrics.BOOKS_OUT_OF_SYNC)),
            "books_crossed": int(gauge_value(metrics.BOOKS_CROSSED)),
            "gap_markers": {k: int(v) for k, v in metric_values(metrics.GAP_MARKERS, "stream").items()},
            "book_updates": {k: int(v) for k, v in metric_values(metrics.BOOK_OUTCOMES, "outcome").items()},
            "malformed": {k: int(v) for k, v in metric_values(metrics.MALFORMED, "stream").items()},
            "registry_waiting": {k: int(v) for k, v in metric_values(metrics.REGISTRY_WAITING, "stream").items()},
        },
        "now_us": int(time.time() * 1e6),
    }


def peer_urls(proc: ProcessorApp) -> list[str]:
    """The other workers' web URLs, from faust's partition assignment (every worker's canonical URL)."""
    own = proc.settings.canonical_url.rstrip("/")
    try:
        hosts = list(proc.app.router.tables_metadata().keys())
    except Exception:  # noqa: BLE001 - no assignment yet: only this worker is known
        return []
    return sorted({str(h).rstrip("/") for h in hosts} - {own})


class MarketPush:
    """The changes of one market since the last look, as server-sent event payloads."""

    def __init__(self, proc: ProcessorApp, key: bytes, interval: str, depth: int, candles: int) -> None:
        self.proc, self.key, self.interval, self.depth, self.limit = proc, key, interval, depth, candles
        self.book_seen: tuple[Any, ...] | None = None
        self.tail_seen: list[dict[str, Any]] | None = None
        self.tape_seen = 0

    def changes(self) -> Iterator[tuple[str, dict[str, Any]]]:
        proc, key = self.proc, self.key
        book = proc.books.peek(key)
        if book is not None:
            sig = (book.sequence, book.updates, book.in_sync, book.crossed, book.receive_ts, book.exchange_ts)
            if sig != self.book_seen:
                self.book_seen = sig
                yield "book", {"venue": book.venue, "market": book.market, "in_sync": book.in_sync,
                               "crossed": book.crossed, "sequence": book.sequence, "exchange_ts": book.exchange_ts,
                               "receive_ts": book.receive_ts, **book.top_fields(), **book.depth(self.depth)}
        mc = proc.candles.cache.get(key) or proc.candles.peek(key)
        if mc is not None:
            rows: list[dict[str, Any]] = [{"gap": False, **c, "final": True}
                                          for c in mc.series[self.interval].history[-self.limit:]]
            rows += mc.open_candles(self.interval)
            tail = rows[-3:]
            if self.tail_seen is None:
                self.tail_seen = tail
                yield "candles", {"interval": self.interval, "full": True, "candles": rows[-self.limit:]}
            elif tail != self.tail_seen:
                self.tail_seen = tail
                yield "candles", {"interval": self.interval, "full": False, "candles": tail}
        tape = proc.candles.tape.get(key)
        if tape and tape[-1][0] > self.tape_seen:
            new = [t for n, t in tape if n > self.tape_seen]
            self.tape_seen = tape[-1][0]
            yield "trades", {"trades": new}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def register_webui(proc: ProcessorApp, int_param: Callable[..., int | None]) -> None:
    """The page, the overview and the stream on the processors' web port (views.py's surface and token)."""
    app, s = proc.app, proc.settings
    assets = static_assets()
    closing = asyncio.Event()

    def page(path: str, *, open_: bool = False) -> Callable[[Any], type[View]]:
        return proc.surface.page(app, path, open_=open_)

    async def stop_streams(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        closing.set()

    app.on_before_shutdown.connect(stop_streams)  # type: ignore[arg-type]  # see app.py: mode's signal typing

    def asset(view: View, name: str) -> Response:
        found = assets.get(name)
        if found is None:
            return view.json({"error": f"no such path /ui/{name}"}, status=404)
        body, content_type = found
        return view.bytes(body, content_type=content_type.split(";")[0],
                          headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                                   "Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"})

    @page("/ui/", open_=True)
    async def index(view: View, request: Request) -> Response:
        return asset(view, "index.html")

    @page("/ui/{name}", open_=True)
    async def static(view: View, request: Request, name: str) -> Response:
        return asset(view, name)

    @page("/ui/api/overview")
    async def overview(view: View, request: Request) -> Response:
        local = local_overview(proc)
        if request.query.get("local") == "true":
            return view.json(local)
        workers, unreachable = [local], []
        peers = peer_urls(proc)
        if peers:
            headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
            timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async def ask(url: str) -> dict[str, Any] | None:
                    try:
                        async with http.get(f"{url}/ui/api/overview", params={"local": "true"},
                                            headers=headers) as r:
                            if r.status == 200:
                                body: dict[str, Any] = await r.json()
                                return body
                    except (TimeoutError, aiohttp.ClientError):
                        pass
                    return None
                for url, body in zip(peers, await asyncio.gather(*(ask(u) for u in peers)), strict=True):
                    if body is None:
                        unreachable.append(url)
                    else:
                        workers.append(body)
        return view.json({"intervals": s.processor_candle_intervals, "workers": workers, "unreachable": unreachable})

    @page("/ui/stream/{venue}/{market}")
    async def stream(view: View, request: Request, venue: str, market: str) -> Any:
        key = f"{venue}:{market}".encode()
        interval = request.query.get("interval", s.processor_candle_intervals[0])
        if interval not in s.processor_candle_intervals:
            return view.json({"error": f"interval {interval!r} not configured; one of "
                                       f"{s.processor_candle_intervals}"}, status=400)
        try:
            depth = int_param(request, "depth", 50, 1, s.processor_max_query_depth)
            candles = int_param(request, "candles", 300, 1, s.processor_candle_history)
        except ValueError as exc:
            return view.json({"error": str(exc)}, status=400)
        assert depth is not None and candles is not None
        owner = owner_of(key)
        if owner is None:
            return view.json({"error": f"cannot route the stream of {key.decode()} to its owner yet; retry"},
                             status=503, headers={"Retry-After": "1"})
        if owner != s.canonical_url.rstrip("/"):
            if RELAYED in request.headers:  # the relaying worker thinks this one owns it: no second hop
                return view.json({"error": f"{key.decode()} is moving between workers; retry"}, status=503,
                                 headers={"Retry-After": "1"})
            return await relay(cast(aioweb.Request, request), owner)  # faust's Request is aiohttp's here
        return await serve(cast(aioweb.Request, request), MarketPush(proc, key, interval, depth, candles))

    def owner_of(key: bytes) -> str | None:
        """The web URL of the worker owning key's partition (like views.routed: this one if faust cannot
        tell yet but the partition is assigned here)."""
        try:
            url = str(app.router.key_store(proc.books.table.name, key)).rstrip("/")
        except Exception:  # noqa: BLE001 - no assignment / metadata yet
            url = ""
        if url:
            return url
        return s.canonical_url.rstrip("/") if proc.owned(key) else None

    async def serve(request: aioweb.Request, push: MarketPush) -> aioweb.StreamResponse:
        resp = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                              "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        await resp.write(sse("hello", {"worker": s.canonical_url, "interval": push.interval}))
        last_write = time.monotonic()
        away_since: float | None = None
        try:
            while not closing.is_set() and not app.should_stop:
                for event, data in push.changes():
                    await resp.write(sse(event, data))
                    last_write = time.monotonic()
                now = time.monotonic()
                if proc.owned(push.key):
                    away_since = None
                elif away_since is None:
                    away_since = now
                elif now - away_since > MOVED_AFTER_S:
                    await resp.write(sse("moved", {"worker": s.canonical_url}))
                    break
                if now - last_write > KEEPALIVE_S:
                    await resp.write(b": keepalive\n\n")
                    last_write = now
                try:
                    await asyncio.wait_for(closing.wait(), PUSH_INTERVAL_S)
                except TimeoutError:
                    pass
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the browser went away
        return resp

    async def relay(request: aioweb.Request, owner: str) -> aioweb.StreamResponse:
        """Copy the owner's stream of the same path and query to the caller, the token passed on."""
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        headers[RELAYED] = s.canonical_url
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=PEER_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            try:
                async with http.get(f"{owner}{request.path_qs}", headers=headers) as upstream:
                    if upstream.status != 200:
                        return aioweb.Response(body=await upstream.read(), status=upstream.status,
                                               content_type=upstream.content_type)
                    resp = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                          "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
                    await resp.prepare(request)
                    try:
                        async for chunk in upstream.content.iter_any():
                            await resp.write(chunk)
                            if closing.is_set():
                                break
                    except (ConnectionResetError, aiohttp.ClientError):
                        pass
                    return resp
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("cannot relay the stream %s from %s: %r", request.path_qs, owner, exc)
                return aioweb.json_response({"error": f"the owner {owner} does not answer; retry"}, status=503,
                                            headers={"Retry-After": "1"})
