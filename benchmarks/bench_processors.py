"""Processor benchmark against the real Kafka + registry: one worker subprocess (`python -m processors`).

Prints
  1. book deltas/s one worker sustains (a backlog of deltas over --markets markets, realistic 2+2 levels),
  2. trades/s one worker sustains (candles for every default interval 1s,1m,5m,1h),
     both as wall rate once the backlog is produced and per CPU-second of the worker process, each beside
     the ceiling of the same work without the processor, measured in the same run on the same backlog:
     a bare aiokafka consumer reading the topic from the start, and the same plus decoding every value with
     the processors' own decoder (processors.wire.ContractWire). The ratio processor / ceiling is the figure
     that holds on any machine,
  3. event -> queryable latency p50/p99 at a paced --rate events/s (mixed deltas and trades) after a warm-up:
     measured by the worker (receive_ts stamped at send -> state written) and by HTTP probes (send -> visible
     on /top), with the worker's batch and commit-time flush durations meanwhile.

    export MARKETPIPE_KAFKA_BOOTSTRAP=127.0.0.1:19092 MARKETPIPE_REGISTRY_URL=http://127.0.0.1:18081/apis/ccompat/v7
    python benchmarks/bench_processors.py [--deltas 300000] [--trades 200000] [--rate 5000] [--warmup 3] [--seconds 10]
        [--store memory://|rocksdb://] [--guarantee at_least_once|exactly_once] [--fastavro]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from marketpipe.infra.ports import free_port
from marketpipe.settings import KafkaClientSettings
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, TRADES, market_key

REPO = Path(__file__).resolve().parents[1]


def now_us() -> int:
    return time.time_ns() // 1000


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings = KafkaClientSettings()
        self.registry = ContractRegistry(self.settings.registry_url)
        self.registry.register_all()
        self.book = self.registry.framer("book")
        self.trade = self.registry.framer("trade")
        self.tag = uuid.uuid4().hex[:8]
        self.venue = f"bench{self.tag}"
        self.markets = [f"M{i}-USD" for i in range(args.markets)]
        self.seq = dict.fromkeys(self.markets, 1)
        self.prefix = f"bench{self.tag}."  # own topics: other engineers' traffic on the shared broker stays out
        self.book_topic, self.trades_topic = self.prefix + BOOK.name, self.prefix + TRADES.name
        self.app_id = f"bench-proc-{self.tag}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-proc-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.producer: AIOKafkaProducer | None = None

    # -- worker ------------------------------------------------------------------------------------
    def start_worker(self) -> None:
        env = {**os.environ, "MARKETPIPE_PROCESSOR_APP_ID": self.app_id,
               "MARKETPIPE_PROCESSOR_TOPIC_PREFIX": self.prefix,
               "MARKETPIPE_PROCESSOR_WEB_PORT": str(self.port), "MARKETPIPE_PROCESSOR_STORE_URL": self.args.store,
               "MARKETPIPE_PROCESSOR_DATA_DIR": str(self.tmp / "data"), "MARKETPIPE_PROCESSOR_OFFSET_RESET": "latest",
               "MARKETPIPE_PROCESSOR_PROCESSING_GUARANTEE": self.args.guarantee,
               "MARKETPIPE_PROCESSOR_STANDBY_REPLICAS": "0", "MARKETPIPE_LOG_LEVEL": "WARNING",
               "MARKETPIPE_PROCESSOR_COMPILED_READERS": str(self.args.compiled_readers).lower()}
        self.log = open(self.tmp / "worker.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "processors"], env=env, cwd=REPO, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def stop_worker(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def stats(self, http: aiohttp.ClientSession, reset: bool = False, latency: bool = True) -> dict:
        query = "?reset_latency=true" if reset else "" if latency else "?latency=false"
        # a latency reset changes state: POST only (GET with reset_latency answers 400)
        async with http.request("POST" if reset else "GET", f"{self.url}/processor/stats{query}") as r:
            return await r.json()

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        for _ in range(300):
            assert self.proc and self.proc.poll() is None, f"worker died, see {self.tmp / 'worker.log'}"
            try:
                async with http.get(f"{self.url}/processor/ready") as r:
                    if r.status == 200 and (await self.stats(http))["ticks_seen"] > 0:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError("worker not ready")

    # -- events --------------------------------------------------------------------------------------
    def delta(self, i: int, market: str, receive_ts: int | None = None) -> bytes:
        seq = self.seq[market] = self.seq[market] + 1
        t = receive_ts or now_us()
        return self.book.encode({
            "event_id": f"{self.venue}:{market}:b:{seq}", "venue": self.venue, "market": market,
            "venue_symbol": market, "exchange_ts": t, "receive_ts": t, "kind": "DELTA", "sequence": seq,
            "prev_sequence": seq - 1, "checksum": None, "reason": None,
            "bids": [{"price": f"{1000 - i % 50}.{i % 10}", "size": f"{i % 7}.25"},
                     {"price": f"{999 - i % 40}.5", "size": f"{(i + 3) % 5}"}],
            "asks": [{"price": f"{1001 + i % 50}.{i % 10}", "size": f"{i % 6}.5"},
                     {"price": f"{1002 + i % 30}.5", "size": f"{(i + 1) % 4}"}]})

    def snapshot(self, market: str) -> bytes:
        t = now_us()
        return self.book.encode({
            "event_id": f"{self.venue}:{market}:s", "venue": self.venue, "market": market, "venue_symbol": market,
            "exchange_ts": t, "receive_ts": t, "kind": "SNAPSHOT", "sequence": 1,
            "prev_sequence": None, "checksum": None, "reason": None,
            "bids": [{"price": f"{900 + i}.0", "size": "1"} for i in range(50)],
            "asks": [{"price": f"{1100 + i}.0", "size": "1"} for i in range(50)]})

    def trade_event(self, i: int, market: str, ts: int, receive_ts: int | None = None) -> bytes:
        return self.trade.encode({
            "event_id": f"{self.venue}:{market}:t:{i}", "venue": self.venue, "market": market, "venue_symbol": market,
            "exchange_ts": ts, "receive_ts": receive_ts or now_us(), "trade_id": str(i),
            "price": f"{1000 + i % 17}.{i % 100:02d}", "size": f"0.{i % 999 + 1:03d}",
            "side": "BUY" if i % 2 else "SELL", "liquidation": None})

    async def blast(self, topic: str, items: list[tuple[bytes, bytes]]) -> float:
        assert self.producer
        t0 = time.monotonic()
        futs = [await self.producer.send(topic, key=k, value=v) for k, v in items]
        await self.producer.flush()
        await asyncio.gather(*futs)
        return time.monotonic() - t0

    def worker_cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) the worker process has used so far (Linux /proc)."""
        assert self.proc
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def throughput(self, http: aiohttp.ClientSession, stream: str, topic: str,
                         items: list[tuple[bytes, bytes]]) -> float:
        """Events/s the worker folds in while working through a backlog it cannot keep up with.

        The load generator shares this machine's cores while it produces the backlog, so the rate is taken
        from the moment the backlog is fully produced (and at least 10 % folded) to its end: then only the
        worker and the broker run. Also printed: events per CPU-second of the worker process (all its
        threads), the figure for a worker with a core of its own."""
        start = (await self.stats(http, latency=False))["events"][stream]
        target = start + len(items)
        send = asyncio.create_task(self.blast(topic, items))
        samples: list[tuple[float, int, float, bool]] = []  # (time, events, worker CPU s, backlog produced)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = (await self.stats(http, latency=False))["events"][stream]
            samples.append((time.monotonic(), n, self.worker_cpu_s(), send.done()))
            if n >= target:
                break
            await asyncio.sleep(0.1)
        sent_in = await send
        window = [s for s in samples if s[3] and s[1] - start >= 0.1 * len(items)]
        if len(window) < 2:  # the backlog was folded in while it was produced: too small to measure
            print(f"  {stream}: backlog of {len(items)} too small for a measurement window; use a larger one")
            return 0.0
        first, last = window[0], window[-1]
        rate = (last[1] - first[1]) / (last[0] - first[0])
        per_cpu = (last[1] - first[1]) / max(1e-9, last[2] - first[2])
        print(f"  {stream}: {len(items)} events produced in {sent_in:.1f}s; then folded in at {rate:,.0f} events/s "
              f"over {last[1] - first[1]:,} events ({per_cpu:,.0f} per worker CPU-second, "
              f"worker at {(last[2] - first[2]) / (last[0] - first[0]):.0%} of a core)")
        bare_wall, bare_cpu = await self.ceiling(topic, len(items), decode=False)
        wall, cpu = await self.ceiling(topic, len(items), decode=True)
        print(f"  ceiling, same backlog without the processor: bare aiokafka consumer {bare_wall:,.0f} events/s "
              f"({bare_cpu:,.0f} per CPU-second); consumer + decode {wall:,.0f} events/s ({cpu:,.0f} per CPU-second)")
        print(f"  processor / ceiling (consume + decode): {rate / wall:.2f} wall, {per_cpu / cpu:.2f} per CPU-second")
        return rate

    async def ceiling(self, topic: str, n: int, *, decode: bool) -> tuple[float, float]:
        """The same backlog read from the start of ``topic`` by a bare aiokafka consumer in this process (no
        group, no commits), optionally decoding every value with the processors' decoder: (events/s wall,
        events per CPU-second of this process). The last ``n`` records of the topic are counted."""
        from processors.wire import ContractWire

        wire = ContractWire(self.registry, register=False, compiled=self.args.compiled_readers)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_bytes=50 * 1024 * 1024,
                                    max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        try:
            partitions = (BOOK if topic == self.book_topic else TRADES).partitions
            parts = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(parts)
            ends = await consumer.end_offsets(parts)
            starts = await consumer.beginning_offsets(parts)
            total = sum(ends[tp] - starts[tp] for tp in parts)
            skip = max(0, total - n)  # earlier records (snapshots) are not part of the measured backlog
            for tp in parts:  # explicit positions: a lazy seek_to_beginning could lose to the default reset
                consumer.seek(tp, starts[tp])
            seen, counted = 0, 0
            t0, c0 = time.monotonic(), time.process_time()
            deadline = time.monotonic() + 300
            while seen < total:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ceiling read {seen} of {total} records of {topic} in 300 s")
                batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
                for records in batch.values():
                    seen += len(records)
                    if decode:
                        for record in records:
                            wire.decode(record.value)
                    counted += len(records)
            wall, cpu = time.monotonic() - t0, time.process_time() - c0
            counted = min(counted, total - skip) if skip else counted
            return counted / max(wall, 1e-9), counted / max(cpu, 1e-9)
        finally:
            await consumer.stop()

    async def pace(self, http: aiohttp.ClientSession, seconds: float,
                   probe_lat: list[float] | None) -> tuple[int, float]:
        """Offer --rate events/s (half deltas, half trades) for `seconds`; with probe_lat, also an HTTP probe
        every 0.2 s. Returns (events sent, elapsed seconds)."""
        rate = self.args.rate
        probe_market = self.markets[0]
        probes: list[asyncio.Task[None]] = []
        per_tick = max(1, int(rate * 0.01))
        assert self.producer
        i = 0
        t0 = time.monotonic()
        next_probe = t0 + 0.2
        while time.monotonic() - t0 < seconds:
            for _ in range(per_tick):
                i += 1
                market = self.markets[1 + i % (len(self.markets) - 1)]
                key = market_key(self.venue, market)
                if i % 2:
                    await self.producer.send(self.book_topic, key=key, value=self.delta(i, market))
                else:
                    await self.producer.send(self.trades_topic, key=key, value=self.trade_event(i, market, now_us()))
            if probe_lat is not None and time.monotonic() >= next_probe:  # send -> visible over HTTP
                next_probe += 0.2
                value = self.delta(i, probe_market)
                seq = self.seq[probe_market]
                sent = time.monotonic()
                await self.producer.send(self.book_topic, key=market_key(self.venue, probe_market), value=value)
                probes.append(asyncio.create_task(self.probe(http, probe_market, seq, sent, probe_lat)))
            await asyncio.sleep(max(0.0, t0 + (i / rate) - time.monotonic()))
        elapsed = time.monotonic() - t0
        await asyncio.gather(*probes)
        return i, elapsed

    async def latency(self, http: aiohttp.ClientSession) -> None:
        """Event -> queryable at a steady --rate: --warmup seconds first (the worker settles after the backlog
        phases: their last candles close, their state is committed), then --seconds measured."""
        await self.pace(http, self.args.warmup, None)
        await self.stats(http, reset=True)
        work_before = await self.work_histograms(http)
        probe_lat: list[float] = []
        sent, elapsed = await self.pace(http, self.args.seconds, probe_lat)
        await asyncio.sleep(1.0)
        st = (await self.stats(http))["latency"]
        print(f"  offered {sent / elapsed:,.0f} events/s for {elapsed:.1f}s after {self.args.warmup:.0f}s of warm-up "
              "(half deltas, half trades)")
        print(f"  worker-side receive_ts -> queryable: p50 {st['p50_ms']:.1f} ms, p99 {st['p99_ms']:.1f} ms, "
              f"max {st['max_ms']:.1f} ms over {st['count']} events")
        for group, label in (("all", "all events"), ("slowest_1pct", "the slowest 1 %")):
            parts = st.get("breakdown", {}).get(group)
            if parts:
                print(f"    where it went, mean over {label}: until the consumer thread fetched it (linger, broker, "
                      f"fetch) {parts['before_fetch']:.1f} ms, consumer thread -> drain loop {parts['handoff']:.1f} ms, "
                      f"queued for its batch {parts['queued']:.1f} ms, the batch {parts['batch']:.1f} ms")
        if probe_lat:
            probe_lat.sort()
            p99 = probe_lat[min(len(probe_lat) - 1, int(0.99 * len(probe_lat)))]
            print(f"  HTTP probes send -> visible on /top: p50 {statistics.median(probe_lat):.1f} ms, "
                  f"p99 {p99:.1f} ms over {len(probe_lat)} probes (includes 2 ms polling)")
        print("  worker time per batch, per commit-time flush and per garbage collection during the measured run:")
        self.print_work(work_before, await self.work_histograms(http))

    async def kafka_hop(self) -> None:
        """The peer of the latency figure, in the same run: the Kafka hop alone at the same rate, with the same
        producer (5 ms linger, acks=all) and a bare aiokafka consumer (no group, no processing) on a topic of
        its own, timed from send to receipt (the worker is still running, idle)."""
        from confluent_kafka.admin import AdminClient, NewTopic

        topic = self.prefix + "hop"
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        admin.create_topics([NewTopic(topic, BOOK.partitions, 1)])[topic].result()
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=20)
        await consumer.start()
        lat: list[float] = []
        try:
            parts = [TopicPartition(topic, p) for p in range(BOOK.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            for tp in parts:
                await consumer.position(tp)
            stop = asyncio.Event()

            async def receive() -> None:
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=50)
                    now = time.monotonic()
                    for records in batch.values():
                        lat.extend((now - float(r.value.decode())) * 1e3 for r in records if r.value)

            reader = asyncio.create_task(receive())
            assert self.producer
            rate, i, t0 = self.args.rate, 0, time.monotonic()
            per_tick = max(1, int(rate * 0.01))
            while time.monotonic() - t0 < self.args.seconds:
                for _ in range(per_tick):
                    i += 1
                    await self.producer.send(topic, key=market_key(self.venue, self.markets[i % len(self.markets)]),
                                             value=repr(time.monotonic()).encode())
                await asyncio.sleep(max(0.0, t0 + (i / rate) - time.monotonic()))
            await asyncio.sleep(1.0)
            stop.set()
            await reader
        finally:
            await consumer.stop()
        lat.sort()
        if lat:
            print(f"  peer, the Kafka hop alone at {rate} events/s (same producer, bare consumer): p50 "
                  f"{statistics.median(lat):.1f} ms, p99 {lat[min(len(lat) - 1, int(0.99 * len(lat)))]:.1f} ms, "
                  f"max {lat[-1]:.1f} ms over {len(lat)} events")

    async def work_histograms(self, http: aiohttp.ClientSession) -> dict[tuple[str, str], dict[str, float]]:
        """The worker's batch and commit-time flush duration histograms, by (kind, stream)."""
        from prometheus_client.parser import text_string_to_metric_families

        async with http.get(f"{self.url}/metrics") as r:
            text = await r.text()
        out: dict[tuple[str, str], dict[str, float]] = {}
        for family in text_string_to_metric_families(text):
            if family.name not in ("marketpipe_processor_batch_seconds", "marketpipe_processor_flush_seconds",
                                   "marketpipe_processor_gc_seconds"):
                continue
            for sample in family.samples:
                label = sample.labels.get("stream") or f"generation {sample.labels.get('generation', '?')}"
                st = out.setdefault((family.name.split("_")[-2], label), {})
                if sample.name.endswith("_bucket"):
                    st[sample.labels["le"]] = sample.value
                elif sample.name.endswith(("_count", "_sum")):
                    st[sample.name.rsplit("_", 1)[1]] = sample.value
        return out

    @staticmethod
    def print_work(before: dict[tuple[str, str], dict[str, float]],
                   after: dict[tuple[str, str], dict[str, float]]) -> None:
        for (kind, stream), st in sorted(after.items()):
            old = before.get((kind, stream), {})
            d = {k: v - old.get(k, 0.0) for k, v in st.items()}
            count = d.get("count", 0)
            if count:
                print(f"  {kind} {stream}: {count:.0f}, mean {1e3 * d['sum'] / count:.2f} ms, over 5/10/20 ms: "
                      f"{count - d['0.005']:.0f}/{count - d['0.01']:.0f}/{count - d['0.02']:.0f}")

    async def probe(self, http: aiohttp.ClientSession, market: str, seq: int, sent: float, out: list[float]) -> None:
        url = f"{self.url}/books/{self.venue}/{market}/top"
        while time.monotonic() - sent < 5:
            async with http.get(url) as r:
                if r.status == 200 and ((await r.json()).get("sequence") or 0) >= seq:
                    out.append((time.monotonic() - sent) * 1e3)
                    return
            await asyncio.sleep(0.002)
        out.append(5000.0)  # not visible within 5 s: counted as 5 s

    async def run(self) -> None:
        a = self.args
        readers = "compiled readers" if a.compiled_readers else "fastavro readers"
        print(f"processor bench: {a.markets} markets, store {a.store}, {a.guarantee}, {readers}, worker log {self.tmp}")
        # encode everything up front so the producer does not compete with the worker for CPU later
        deltas = [(market_key(self.venue, m), self.delta(i, m)) for i in range(a.deltas)
                  for m in (self.markets[i % len(self.markets)],)]
        base_ts = now_us() - 3_600_000_000
        trades = [(market_key(self.venue, m), self.trade_event(i, m, base_ts + i * 1000)) for i in range(a.trades)
                  for m in (self.markets[i % len(self.markets)],)]
        self.start_worker()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=5, max_batch_size=512 * 1024)
        await self.producer.start()
        try:
            async with aiohttp.ClientSession() as http:
                await self.wait_ready(http)
                # snapshots first (sequence 1, below every delta), then the delta backlog
                await self.blast(self.book_topic, [(market_key(self.venue, m), self.snapshot(m)) for m in self.markets])
                print("1. book deltas")
                await self.throughput(http, "book", self.book_topic, deltas)
                print("2. trades")
                await self.throughput(http, "trades", self.trades_topic, trades)
                print(f"3. latency at {a.rate} events/s")
                await self.latency(http)
                await self.kafka_hop()
                async with http.get(f"{self.url}/books/{self.venue}/{self.markets[1]}/top") as r:
                    top = await r.json()
                print(f"  sanity: {self.markets[1]} in_sync={top['in_sync']} crossed={top['crossed']}")
        finally:
            await self.producer.stop()
            self.stop_worker()
            self.delete_topics()

    def delete_topics(self) -> None:
        """Remove this run's topics (prefixed inputs/outputs, the app's changelogs and ticks)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        mine = [t for t in admin.list_topics(timeout=15).topics if t.startswith((self.prefix, self.app_id))]
        if mine:
            for fut in admin.delete_topics(mine, operation_timeout=30).values():
                try:
                    fut.result()
                except Exception as exc:  # best effort
                    print(f"  could not delete a topic: {exc}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deltas", type=int, default=300_000)
    p.add_argument("--trades", type=int, default=200_000)
    p.add_argument("--markets", type=int, default=20)
    p.add_argument("--rate", type=int, default=5_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--store", default="memory://")
    p.add_argument("--guarantee", default="at_least_once", choices=["at_least_once", "exactly_once"])
    p.add_argument("--fastavro", dest="compiled_readers", action="store_false",
                   help="decode with fastavro instead of the compiled readers (worker and ceiling alike)")
    asyncio.run(Bench(p.parse_args()).run())


if __name__ == "__main__":
    main()
