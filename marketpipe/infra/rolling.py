"""Rolling restarts of processor workers under steady load, checked from the outside (tests and benchmarks).

Three pieces, none of which imports processor code (they meet the workers on the wire: Kafka and HTTP):

- `SteadyLoad` publishes, at a fixed rate, what producers publish for a set of markets and accounts: book
  DELTAs chained by sequence after one SNAPSHOT per market, trades stamped with the send time, account
  BALANCE and FILL events, all Confluent-framed Avro through the registry.
- `QueryProbe` asks the workers for every market's book and candles and every account's balances and fills
  in a loop while a roll goes on, like a client behind a Kubernetes Service: only workers in service are
  asked (a worker leaves the endpoints when it is told to stop and comes back once `/processor/ready`
  answers 200). It counts errors and measures, per queried key, the longest time without an answer.
- `Truth` rebuilds books, candles and accounts from the topics themselves (read from the start, in partition
  order), by the documented rules, and `compare_with_truth` asks the workers for the same state.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from marketpipe.infra.processor_process import ProcessorProcess
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, TRADES, TopicSpec, account_key, market_key

S = 1_000_000
INTERVAL_US = {"1s": S, "10s": 10 * S, "1m": 60 * S, "5m": 300 * S, "1h": 3600 * S}


def now_us() -> int:
    return time.time_ns() // 1000


# -- load ------------------------------------------------------------------------------------------------

class SteadyLoad:
    """Publishes `rate` events/s over `markets` and `accounts` until stopped: per market a SNAPSHOT first, then
    a mix of 45 % book DELTAs (chained sequences, absolute sizes, "0" deletes a level), 45 % trades and 10 %
    account events (BALANCE and FILL, alternating). acks=all, idempotent: every event is in Kafka once."""

    def __init__(self, bootstrap: str, registry: ContractRegistry, prefix: str, venue: str, markets: Sequence[str],
                 accounts: Sequence[str], rate: float, security: dict[str, object] | None = None) -> None:
        self.bootstrap, self.prefix, self.venue = bootstrap, prefix, venue
        self.markets, self.accounts, self.rate = list(markets), list(accounts), rate
        self.security = security or {}
        self.book, self.trade = registry.framer(BOOK.schema), registry.framer(TRADES.schema)
        self.account = registry.framer(ACCOUNT.schema)
        self.seq = dict.fromkeys(self.markets, 0)
        self.sent = 0
        self.producer: AIOKafkaProducer | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.behind_s = 0.0  # the longest the sender fell behind its schedule (the machine was too busy)

    async def start(self) -> SteadyLoad:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                         linger_ms=5, max_batch_size=256 * 1024, **self.security)  # type: ignore[arg-type]
        await self.producer.start()
        for m in self.markets:
            self.seq[m] = 1
            await self._send(BOOK, market_key(self.venue, m), self.book.encode(self._book_event(m, "SNAPSHOT", 0)))
        await self.producer.flush()
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> int:
        """Stops publishing, waits until everything sent is acknowledged; returns the events sent."""
        self._stop.set()
        if self._task is not None:
            await self._task
        if self.producer is not None:
            await self.producer.flush()
            await self.producer.stop()
        return self.sent

    async def _send(self, spec: TopicSpec, key: bytes, value: bytes) -> None:
        assert self.producer is not None
        await self.producer.send(self.prefix + spec.name, key=key, value=value)
        self.sent += 1

    def _book_event(self, m: str, kind: str, i: int) -> dict[str, Any]:
        t = now_us()
        seq = self.seq[m]
        if kind == "SNAPSHOT":
            bids = [{"price": f"{100 - k}.5", "size": "1"} for k in range(5)]
            asks = [{"price": f"{101 + k}.5", "size": "1"} for k in range(5)]
        else:  # levels wander over 8 prices per side; size 0 deletes
            bids = [{"price": f"{100 - i % 8}.5", "size": str(i % 5)}]
            asks = [{"price": f"{101 + (i // 3) % 8}.5", "size": f"{(i * 7) % 4}.25"}]
        return {"event_id": f"{self.venue}:{m}:b:{seq}", "venue": self.venue, "market": m, "venue_symbol": m,
                "exchange_ts": t, "receive_ts": t, "kind": kind, "sequence": seq,
                "prev_sequence": None if kind == "SNAPSHOT" else seq - 1, "checksum": None, "reason": None,
                "bids": bids, "asks": asks}

    async def _one(self, i: int) -> None:
        slot = i % 20
        if slot < 9:
            m = self.markets[i % len(self.markets)]
            self.seq[m] += 1
            await self._send(BOOK, market_key(self.venue, m), self.book.encode(self._book_event(m, "DELTA", i)))
        elif slot < 18:
            m = self.markets[(i // 7) % len(self.markets)]
            t = now_us()
            await self._send(TRADES, market_key(self.venue, m), self.trade.encode({
                "event_id": f"{self.venue}:{m}:t:{i}", "venue": self.venue, "market": m, "venue_symbol": m,
                "exchange_ts": t, "receive_ts": t, "trade_id": str(i), "price": f"{100 + i % 13}.{i % 100:02d}",
                "size": f"0.{i % 997 + 1:03d}", "side": "BUY" if i % 3 else "SELL", "liquidation": None}))
        else:
            a = self.accounts[(i // 20) % len(self.accounts)]
            t = now_us()
            record: dict[str, Any] = {
                "event_id": f"{self.venue}:{a}:a:{i}", "venue": self.venue, "market": "*" if slot == 18 else "M0-USD",
                "venue_symbol": "*", "exchange_ts": t, "receive_ts": t, "account": a,
                "kind": "BALANCE" if slot == 18 else "FILL", "balance": None, "order": None, "fill": None,
                "position": None}
            if slot == 18:
                record["balance"] = {"asset": ("USD", "BTC", "ETH")[i % 3], "total": f"{i % 1000}.{i % 100:02d}",
                                     "available": None, "locked": None}
            else:
                record["fill"] = {"fill_id": f"f{i}", "order_id": f"o{i // 100}", "side": "BUY" if i % 2 else "SELL",
                                  "price": f"{100 + i % 11}.5", "size": f"0.{i % 9 + 1}", "fee": None,
                                  "fee_asset": None, "is_maker": None}
            await self._send(ACCOUNT, account_key(self.venue, a), self.account.encode(record))

    async def _run(self) -> None:
        t0, i = time.monotonic(), 0
        per_tick = max(1, int(self.rate * 0.01))
        while not self._stop.is_set():
            for _ in range(per_tick):
                await self._one(i)
                i += 1
            delay = t0 + i / self.rate - time.monotonic()
            self.behind_s = max(self.behind_s, -delay)
            await asyncio.sleep(max(0.0, delay))


# -- queries during the roll ---------------------------------------------------------------------------------

@dataclass
class KeyRecord:
    last_ok: float
    longest_gap: float = 0.0
    errors: int = 0
    answers: int = 0
    not_found_after_answer: int = 0  # 404s after the key was answered once: an existing key called unknown


@dataclass
class ProbeReport:
    queries: int
    errors: int
    longest_gap_s: float  # the longest time one queried key went without an answer
    longest_gap_key: str
    error_kinds: dict[str, int]
    worst_keys: list[tuple[str, float]] = field(default_factory=list)
    not_found_after_answer: int = 0

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.error_kinds.items())) or "none"
        return (f"{self.queries} queries, {self.errors} errors ({kinds}; existing keys called unknown: "
                f"{self.not_found_after_answer}); longest gap without an answer {self.longest_gap_s:.2f} s "
                f"({self.longest_gap_key})")


class QueryProbe:
    """Queries every key in a loop against the workers in service (round robin), like a Service would route."""

    def __init__(self, venue: str, markets: Sequence[str], accounts: Sequence[str], interval: str,
                 endpoints: Callable[[], list[str]], pause_s: float = 0.1, timeout_s: float = 2.0) -> None:
        self.paths = ([f"/books/{venue}/{m}?depth=3" for m in markets]
                      + [f"/candles/{venue}/{m}/{interval}?include_open=true&limit=3" for m in markets]
                      + [f"/accounts/{venue}/{a}/balances" for a in accounts])
        self.endpoints, self.pause_s, self.timeout_s = endpoints, pause_s, timeout_s
        self.records: dict[str, KeyRecord] = {}
        self.error_kinds: dict[str, int] = defaultdict(int)
        self.error_times: list[float] = []  # time.monotonic() of every failed query
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._turn = 0

    async def start(self) -> QueryProbe:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        t = time.monotonic()
        self.records = {p: KeyRecord(last_ok=t) for p in self.paths}
        self._tasks = [asyncio.create_task(self._loop(p)) for p in self.paths]
        return self

    async def _loop(self, path: str) -> None:
        rec = self.records[path]
        while not self._stop.is_set():
            urls = self.endpoints()
            kind = None
            if not urls:
                kind = "no worker in service"
            else:
                self._turn += 1
                url = urls[self._turn % len(urls)]
                try:
                    async with self.http.get(url + path) as r:
                        await r.read()
                        if r.status != 200:
                            kind = f"HTTP {r.status}"
                except (TimeoutError, aiohttp.ClientError) as exc:
                    kind = type(exc).__name__
            now = time.monotonic()
            if kind is None:
                rec.longest_gap = max(rec.longest_gap, now - rec.last_ok)
                rec.last_ok = now
                rec.answers += 1
            else:
                rec.errors += 1
                if kind == "HTTP 404" and rec.answers:
                    rec.not_found_after_answer += 1
                self.error_kinds[kind] += 1
                self.error_times.append(now)
            await asyncio.sleep(self.pause_s)

    async def answered_since(self, t: float, timeout_s: float = 120.0) -> float:
        """Waits until every key was answered after monotonic time `t`; returns that time."""
        deadline = time.monotonic() + timeout_s
        while any(r.last_ok <= t for r in self.records.values()):
            if time.monotonic() > deadline:
                late = [p for p, r in self.records.items() if r.last_ok <= t]
                raise TimeoutError(f"{len(late)} keys unanswered for {timeout_s} s, e.g. {late[:3]}")
            await asyncio.sleep(0.05)
        return max(r.last_ok for r in self.records.values())

    def errors_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.error_times if start <= t < end)

    async def stop(self) -> ProbeReport:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self.http.close()
        now = time.monotonic()
        gaps = {p: max(r.longest_gap, now - r.last_ok) for p, r in self.records.items()}
        worst = sorted(gaps.items(), key=lambda kv: -kv[1])
        return ProbeReport(queries=sum(r.answers + r.errors for r in self.records.values()),
                           errors=sum(r.errors for r in self.records.values()),
                           longest_gap_s=worst[0][1], longest_gap_key=worst[0][0],
                           error_kinds=dict(self.error_kinds), worst_keys=worst[:5],
                           not_found_after_answer=sum(r.not_found_after_answer for r in self.records.values()))


# -- truth from the topics --------------------------------------------------------------------------------------

async def read_topic(bootstrap: str, topic: str, partitions: int, registry: ContractRegistry,
                     security: dict[str, object] | None = None, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Every record of `topic` from the start to its current end, decoded, in order within each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed", **(security or {}))  # type: ignore[arg-type]
    await consumer.start()
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends, starts = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read to its end in {timeout_s} s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp] and r.value is not None:
                        out[tp.partition].append(registry.decode(r.value))
                if records and records[-1].offset >= ends[tp] - 1:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return [e for p in sorted(out) for e in out[p]]


def _dec_sorted(side: dict[str, str], reverse: bool) -> list[dict[str, str]]:
    return [{"price": p, "size": side[p]} for p in sorted(side, key=Decimal, reverse=reverse)]


def candles_of(trades: list[tuple[int, str, str, str]], intervals: Sequence[str]) -> dict[tuple[str, int], dict]:
    """OHLCV per (interval, bucket start) from trades in arrival order (exchange_ts, price, size, side), by the
    documented policy: open/close the earliest/latest by exchange_ts (ties in arrival order), exact sums, VWAP
    to 34 significant digits."""
    out: dict[tuple[str, int], dict] = {}
    for name in intervals:
        length = INTERVAL_US[name]
        buckets: dict[int, list[tuple[int, str, str, str]]] = defaultdict(list)
        for tr in trades:
            buckets[tr[0] - tr[0] % length].append(tr)
        for start, ts in buckets.items():
            by_time = sorted(ts, key=lambda t: t[0])  # stable: ties keep arrival order
            v = sum((Decimal(t[2]) for t in ts), Decimal(0))
            qv = sum((Decimal(t[1]) * Decimal(t[2]) for t in ts), Decimal(0))
            vwap = Context(prec=34).divide(qv, v).normalize(Context(prec=34))
            out[(name, start)] = {
                "open": by_time[0][1], "close": by_time[-1][1], "high": max((t[1] for t in ts), key=Decimal),
                "low": min((t[1] for t in ts), key=Decimal), "volume": format(v, "f"),
                "quote_volume": format(qv, "f"), "vwap": format(vwap, "f"), "trade_count": len(ts),
                "buy_volume": format(sum((Decimal(t[2]) for t in ts if t[3] == "BUY"), Decimal(0)), "f"),
                "sell_volume": format(sum((Decimal(t[2]) for t in ts if t[3] == "SELL"), Decimal(0)), "f")}
    return out


@dataclass
class Truth:
    """What the workers must show, rebuilt from the topics."""

    books: dict[str, dict[str, Any]]  # market -> {"sequence", "bids", "asks"}
    candles: dict[str, dict[tuple[str, int], dict]]  # market -> (interval, start) -> fields
    balances: dict[str, dict[str, dict[str, Any]]]  # account -> asset -> balance
    fills: dict[str, list[str]]  # account -> fill ids in order

    @classmethod
    async def from_topics(cls, bootstrap: str, registry: ContractRegistry, prefix: str, venue: str,
                          intervals: Sequence[str], security: dict[str, object] | None = None) -> Truth:
        book_events = await read_topic(bootstrap, prefix + BOOK.name, BOOK.partitions, registry, security)
        trade_events = await read_topic(bootstrap, prefix + TRADES.name, TRADES.partitions, registry, security)
        account_events = await read_topic(bootstrap, prefix + ACCOUNT.name, ACCOUNT.partitions, registry, security)
        books: dict[str, dict[str, Any]] = {}
        sides: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        for e in book_events:
            if e["venue"] != venue:
                continue
            m = e["market"]
            if e["kind"] == "SNAPSHOT":
                sides[m] = ({x["price"]: x["size"] for x in e["bids"]}, {x["price"]: x["size"] for x in e["asks"]})
            elif e["kind"] == "DELTA":
                assert e["prev_sequence"] == books[m]["sequence"], f"{m}: the load itself broke the chain"
                for side, levels in zip(sides[m], (e["bids"], e["asks"]), strict=True):
                    for x in levels:
                        if Decimal(x["size"]) == 0:
                            side.pop(x["price"], None)
                        else:
                            side[x["price"]] = x["size"]
            books[m] = {"sequence": e["sequence"], "bids": _dec_sorted(sides[m][0], True),
                        "asks": _dec_sorted(sides[m][1], False)}
        per_market: dict[str, list[tuple[int, str, str, str]]] = defaultdict(list)
        for e in trade_events:
            if e["venue"] == venue and not e.get("gap"):
                per_market[e["market"]].append((e["exchange_ts"], e["price"], e["size"], e["side"]))
        balances: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        fills: dict[str, list[str]] = defaultdict(list)
        for e in account_events:
            if e["venue"] != venue:
                continue
            if e["kind"] == "BALANCE":
                balances[e["account"]][e["balance"]["asset"]] = {**e["balance"], "exchange_ts": e["exchange_ts"]}
            elif e["kind"] == "FILL" and e["fill"]["fill_id"] not in fills[e["account"]]:
                fills[e["account"]].append(e["fill"]["fill_id"])
        return cls(books=books, candles={m: candles_of(ts, intervals) for m, ts in per_market.items()},
                   balances=dict(balances), fills=dict(fills))

    @property
    def events(self) -> str:
        return (f"{len(self.books)} books, {sum(len(c) for c in self.candles.values())} candles, "
                f"{len(self.balances)} accounts")


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, await r.json(content_type=None)


async def wait_caught_up(url: str, venue: str, truth: Truth, timeout_s: float = 120.0) -> float:
    """Until every market's book on the worker at `url` shows the truth's last sequence; returns the seconds."""
    t0 = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        pending = dict(truth.books)
        while pending:
            for m, want in list(pending.items()):
                try:
                    status, body = await _get(http, f"{url}/books/{venue}/{m}?depth=1")
                except (TimeoutError, aiohttp.ClientError):
                    continue
                if status == 200 and body["sequence"] == want["sequence"]:
                    del pending[m]
            if pending:
                if time.monotonic() - t0 > timeout_s:
                    raise TimeoutError(f"{len(pending)} books not at their last sequence after {timeout_s} s")
                await asyncio.sleep(0.2)
    return time.monotonic() - t0


CANDLE_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "trade_count", "buy_volume",
                 "sell_volume")


async def compare_with_truth(url: str, venue: str, truth: Truth, intervals: Sequence[str]) -> list[str]:
    """Every book, candle series and account on the worker at `url` (queries are routed to the owners) against
    the truth; returns the differences (empty: equal)."""
    diffs: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for m, want in truth.books.items():
            status, body = await _get(http, f"{url}/books/{venue}/{m}")
            got = {k: body.get(k) for k in ("sequence", "bids", "asks")} if status == 200 else status
            if got != want:
                diffs.append(f"book {m}: {got} != {want}")
            elif not body["in_sync"]:
                diffs.append(f"book {m}: not in sync")
        for m, expected in truth.candles.items():
            for name in intervals:
                status, body = await _get(http, f"{url}/candles/{venue}/{m}/{name}?include_open=true")
                if status != 200:
                    diffs.append(f"candles {m} {name}: HTTP {status}")
                    continue
                series: dict[tuple[str, int], dict[str, Any]] = {
                    (name, c["start_ts"]): {f: c[f] for f in CANDLE_FIELDS} for c in body["candles"]}
                want_i = {k: v for k, v in expected.items() if k[0] == name}
                for k in sorted(set(series) | set(want_i)):
                    if series.get(k) != want_i.get(k):
                        diffs.append(f"candle {m} {k}: {series.get(k)} != {want_i.get(k)}")
        for a, bal in truth.balances.items():
            status, body = await _get(http, f"{url}/accounts/{venue}/{a}/balances")
            if status != 200 or body["balances"] != bal:
                diffs.append(f"balances {a}: {body if status == 200 else status} != {bal}")
        for a, ids in truth.fills.items():
            status, body = await _get(http, f"{url}/accounts/{venue}/{a}/fills?limit=500")
            got_ids = [f["fill_id"] for f in body["fills"]] if status == 200 else status
            if got_ids != ids[-500:]:
                diffs.append(f"fills {a}: {got_ids} != {ids[-500:]}")
    return diffs


# -- the workers and the roll ---------------------------------------------------------------------------------

@dataclass
class RestartTiming:
    worker: int
    how: str  # "SIGTERM" or "kill -9"
    exited_s: float  # signal -> process gone
    ready_s: float  # signal -> the restarted worker's /processor/ready answers 200
    answered_s: float  # signal -> every key it owns answers again through the other workers (stream moved on)

    def line(self) -> str:
        return (f"worker {self.worker} {self.how:8s}: exited {self.exited_s:5.2f} s, ready again "
                f"{self.ready_s:5.2f} s, its keys answered {self.answered_s:5.2f} s after the signal")


async def worker_assignment(url: str, timeout_s: float = 5.0) -> tuple[bool, set[str]]:
    """(ready, active partitions "topic:partition") of one worker; (False, set()) when it does not answer."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http, \
                http.get(f"{url}/processor/ready") as r:
            body = await r.json(content_type=None)
            return r.status == 200, set(body.get("actives", []))
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return False, set()


async def wait_settled(urls: Sequence[str], topic: str, partitions: int, timeout_s: float = 120.0) -> float:
    """Until every worker is ready and the workers own disjoint sets of `topic`'s partitions covering all of them
    (each worker at least one): the group has settled. Returns the seconds waited."""
    t0 = time.monotonic()
    while True:
        states = await asyncio.gather(*(worker_assignment(u) for u in urls))
        owned = [{a for a in actives if a.rsplit(":", 1)[0] == topic} for _, actives in states]
        union = set().union(*owned)
        if (all(ok for ok, _ in states) and all(owned) and sum(len(o) for o in owned) == len(union) == partitions):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"group not settled after {timeout_s} s: {states}")
        await asyncio.sleep(0.25)


class WorkerPool:
    """Processor workers of one app id (static membership: each its own group instance id, data dir and web
    port, kept across restarts, as a StatefulSet pod keeps its name and volume). `endpoints()` lists the workers
    in service, as a Service's endpoints would: a worker leaves them when it is told to stop and comes back
    when `/processor/ready` answers 200."""

    def __init__(self, workers: Sequence[ProcessorProcess]) -> None:
        self.workers = list(workers)
        self.in_service: set[int] = set()

    def endpoints(self) -> list[str]:
        return [w.url for i, w in enumerate(self.workers) if i in self.in_service]

    @property
    def urls(self) -> list[str]:
        return [w.url for w in self.workers]

    async def start_all(self, timeout_s: float = 180.0) -> None:
        for w in self.workers:
            w.start()
        for i, w in enumerate(self.workers):
            await w.wait_ready(timeout_s)
            self.in_service.add(i)

    async def restart(self, i: int, how: str, probe: QueryProbe | None = None,
                      timeout_s: float = 180.0) -> RestartTiming:
        """Stops worker i (SIGTERM, waiting for a clean exit, or SIGKILL), starts it again at once, waits until
        it is ready and, with a probe, until every key was answered again."""
        w = self.workers[i]
        self.in_service.discard(i)
        t0 = time.monotonic()
        if how == "SIGTERM":
            await asyncio.to_thread(w.stop)
        elif how == "kill -9":
            w.kill()
        else:
            raise ValueError(how)
        exited = time.monotonic() - t0
        w.start()
        await w.wait_ready(timeout_s)
        ready = time.monotonic() - t0
        self.in_service.add(i)
        answered = (await probe.answered_since(t0 + ready, timeout_s) - t0) if probe else ready
        return RestartTiming(worker=i, how=how, exited_s=exited, ready_s=ready, answered_s=answered)

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()


async def wait_equal_to_truth(url: str, venue: str, truth: Truth, intervals: Sequence[str],
                              timeout_s: float = 120.0) -> tuple[float, list[str]]:
    """Compares until the worker's state equals the truth (the streams are finite: the workers fold in their
    tail) or the timeout passes; returns (seconds waited, the last differences: empty when equal)."""
    t0 = time.monotonic()
    while True:
        diffs = await compare_with_truth(url, venue, truth, intervals)
        if not diffs or time.monotonic() - t0 > timeout_s:
            return time.monotonic() - t0, diffs
        await asyncio.sleep(0.5)
