"""Scaling: one, two and three processor workers (RocksDB, static membership) on the same backlog.

A backlog of --events events (half book deltas, half trades, over --markets markets, spread over all partitions)
is produced once to private topics. Then, for each worker count n, n fresh workers of a new app id (a new
consumer group reading from the start) are started together and the script prints
  - rebalance time: from the start of the processes until the n workers are ready and own disjoint sets of
    partitions covering all of them (process start-up, group join, assignment, table recovery),
  - aggregate events/s: events folded in by all workers together per wall second, measured from the settled
    group to the end of the backlog,
  - per worker: events folded in, CPU seconds used (user + system, all threads) and events per CPU-second, the
    figure that says what one worker does with a core of its own.
On a 2-core machine the aggregate cannot grow much past two workers (and the broker, the load generator and
whatever else runs share those cores): the per-worker CPU-second figure is what carries over to a cluster.
The load average is printed beside the figures.

    export MARKETPIPE_KAFKA_BOOTSTRAP=127.0.0.1:19092 MARKETPIPE_REGISTRY_URL=http://127.0.0.1:18081/apis/ccompat/v7
    python benchmarks/bench_scaling.py [--events 300000] [--markets 24] [--workers 1,2,3] [--standbys 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from marketpipe.infra.processor_process import ProcessorProcess
from marketpipe.infra.rolling import wait_settled
from marketpipe.settings import KafkaClientSettings
from marketpipe.topics_admin import ensure_topics
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES, market_key


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings = KafkaClientSettings()
        self.registry = ContractRegistry(self.settings.registry_url)
        self.registry.register_all()
        self.tag = uuid.uuid4().hex[:8]
        self.prefix = f"benchscale{self.tag}."
        self.venue = f"scale{self.tag}"
        self.markets = [f"M{i}-USD" for i in range(args.markets)]
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
        self.app_ids: list[str] = []

    async def backlog(self) -> int:
        book, trade = self.registry.framer(BOOK.schema), self.registry.framer(TRADES.schema)
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=5, max_batch_size=512 * 1024,
                                    **self.settings.aiokafka_security())  # type: ignore[arg-type]
        await producer.start()
        seq = dict.fromkeys(self.markets, 1)
        t_base = time.time_ns() // 1000 - 3_600_000_000
        n = 0
        try:
            for m in self.markets:
                await producer.send(self.prefix + BOOK.name, key=market_key(self.venue, m), value=book.encode({
                    "event_id": f"{self.venue}:{m}:s", "venue": self.venue, "market": m, "venue_symbol": m,
                    "exchange_ts": t_base, "receive_ts": t_base, "kind": "SNAPSHOT", "sequence": 1,
                    "prev_sequence": None, "checksum": None, "reason": None,
                    "bids": [{"price": f"{900 + k}.0", "size": "1"} for k in range(20)],
                    "asks": [{"price": f"{1100 + k}.0", "size": "1"} for k in range(20)]}))
                n += 1
            for i in range(self.args.events):
                m = self.markets[i % len(self.markets)]
                key = market_key(self.venue, m)
                if i % 2:
                    seq[m] += 1
                    s = seq[m]
                    value = book.encode({
                        "event_id": f"{self.venue}:{m}:b:{s}", "venue": self.venue, "market": m, "venue_symbol": m,
                        "exchange_ts": t_base + i, "receive_ts": t_base + i, "kind": "DELTA", "sequence": s,
                        "prev_sequence": s - 1, "checksum": None, "reason": None,
                        "bids": [{"price": f"{1000 - i % 50}.{i % 10}", "size": f"{i % 7}.25"}],
                        "asks": [{"price": f"{1001 + i % 50}.{i % 10}", "size": f"{i % 6}.5"}]})
                    await producer.send(self.prefix + BOOK.name, key=key, value=value)
                else:
                    await producer.send(self.prefix + TRADES.name, key=key, value=trade.encode({
                        "event_id": f"{self.venue}:{m}:t:{i}", "venue": self.venue, "market": m,
                        "venue_symbol": m, "exchange_ts": t_base + i * 1000, "receive_ts": t_base + i * 1000,
                        "trade_id": str(i), "price": f"{1000 + i % 17}.{i % 100:02d}",
                        "size": f"0.{i % 999 + 1:03d}", "side": "BUY" if i % 4 else "SELL", "liquidation": None}))
                n += 1
            await producer.flush()
        finally:
            await producer.stop()
        return n

    async def events(self, http: aiohttp.ClientSession, w: ProcessorProcess) -> int:
        try:
            async with http.get(f"{w.url}/processor/stats?latency=false") as r:
                body = await r.json()
            return sum(body["events"].values())
        except (TimeoutError, aiohttp.ClientError, KeyError):
            return 0

    async def run_with(self, n: int, total: int) -> None:
        a = self.args
        app_id = f"bench-scale-{self.tag}-{n}"
        self.app_ids.append(app_id)
        workers = [ProcessorProcess({
            "MARKETPIPE_PROCESSOR_APP_ID": app_id, "MARKETPIPE_PROCESSOR_TOPIC_PREFIX": self.prefix,
            "MARKETPIPE_PROCESSOR_STORE_URL": "rocksdb://",
            "MARKETPIPE_PROCESSOR_DATA_DIR": str(self.tmp / f"{n}-data{i}"),
            "MARKETPIPE_PROCESSOR_OFFSET_RESET": "earliest",
            "MARKETPIPE_PROCESSOR_STANDBY_REPLICAS": str(a.standbys),
            "MARKETPIPE_PROCESSOR_GROUP_INSTANCE_ID": f"{app_id}-{i}", "MARKETPIPE_LOG_LEVEL": "WARNING"},
            self.tmp / f"{n}-worker{i}.log") for i in range(n)]
        t0 = time.monotonic()
        for w in workers:
            w.start()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                await wait_settled([w.url for w in workers], self.prefix + BOOK.name, BOOK.partitions, timeout_s=600)
                t_settled = time.monotonic()
                counts0 = [await self.events(http, w) for w in workers]
                cpu0 = [cpu_seconds(w.proc.pid) for w in workers if w.proc]
                deadline = time.monotonic() + 900
                counts = counts0
                t_done, last_change = time.monotonic(), time.monotonic()
                # done: every event counted, or the count stopped moving for 3 s (an event folded in before a
                # rebalance and read again by the next owner is skipped, not counted twice)
                while sum(counts) < total and not (sum(counts) > 0.99 * total and time.monotonic() - last_change > 3):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{n} workers folded {sum(counts)} of {total} events in 900 s")
                    await asyncio.sleep(0.2)
                    now = [await self.events(http, w) for w in workers]
                    if sum(now) != sum(counts):
                        t_done = last_change = time.monotonic()
                    counts = now
                    for w in workers:
                        w.alive()
                cpu1 = [cpu_seconds(w.proc.pid) for w in workers if w.proc]
        finally:
            for w in workers:
                w.stop()
        wall = t_done - t_settled
        done = sum(counts) - sum(counts0)
        print(f"{n} worker(s): rebalance (start -> settled, every partition owned) {t_settled - t0:.1f} s, "
              f"{sum(counts0):,} events already folded by then; aggregate {done / wall:,.0f} events/s over "
              f"{done:,} events in {wall:.1f} s; {sum(counts):,} of {total:,} counted in all "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
        for i, (c0, c1, p0, p1) in enumerate(zip(counts0, counts, cpu0, cpu1, strict=True)):
            cpu = p1 - p0
            print(f"  worker {i}: {c1 - c0:,} events, {cpu:.1f} CPU-s ({cpu / wall:.0%} of a core), "
                  f"{(c1 - c0) / max(cpu, 1e-9):,.0f} events per CPU-second", flush=True)

    def delete_topics(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        mine = [t for t in admin.list_topics(timeout=15).topics if t.startswith((self.prefix, *self.app_ids))]
        if mine:
            for fut in admin.delete_topics(mine, operation_timeout=30).values():
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001 - best effort clean-up
                    print(f"  could not delete a topic: {exc}")

    async def run(self) -> None:
        ensure_topics(self.settings.kafka_bootstrap, tuple(replace(s, name=self.prefix + s.name)
                                                           for s in (BOOK, TRADES, ACCOUNT, BOOK_TOP, OHLCV)))
        try:
            t0 = time.monotonic()
            total = await self.backlog()
            print(f"scaling: backlog of {total:,} events (half book deltas, half trades) over {len(self.markets)} "
                  f"markets and {BOOK.partitions} partitions produced in {time.monotonic() - t0:.1f} s; "
                  f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; logs in {self.tmp}", flush=True)
            for n in (int(x) for x in self.args.workers.split(",")):
                await self.run_with(n, total)
        finally:
            self.delete_topics()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--markets", type=int, default=24)
    p.add_argument("--workers", default="1,2,3")
    p.add_argument("--standbys", type=int, default=0, help="0: measure the stream work alone")
    asyncio.run(Bench(p.parse_args()).run())


if __name__ == "__main__":
    main()
