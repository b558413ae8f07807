"""Recovery after kill -9: how long until a restarted processor worker answers queries again, with and
without static group membership (MARKETPIPE_PROCESSOR_GROUP_INSTANCE_ID, which the Helm chart sets to the pod
name).

One worker subprocess (`python -m processors`, RocksDB store, the production session timeout and heartbeat
unless given) holds a book for each of --markets markets. Each round: SIGKILL the worker, start it again at
once (as kubelet restarts a container in the same pod), and time from the kill until
  web up:   the restarted process answers /processor/live (Python and faust start-up),
  ready:    /processor/ready answers 200 (assigned, tables recovered),
  answered: every market's /books query answers 200 with the newest state, which includes a snapshot sent
            right at the kill (so the restarted worker serves its recovered tables and the stream moves again).
Printed per round and as min/median/max per mode.

    export MARKETPIPE_KAFKA_BOOTSTRAP=127.0.0.1:19092 MARKETPIPE_REGISTRY_URL=http://127.0.0.1:18081/apis/ccompat/v7
    python benchmarks/bench_recovery.py [--rounds 3] [--markets 24] [--modes dynamic,static]
        [--session-timeout 30] [--heartbeat 3] [--store rocksdb://]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from marketpipe.infra.processor_process import ProcessorProcess as Worker
from marketpipe.settings import KafkaClientSettings
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, market_key


def now_us() -> int:
    return time.time_ns() // 1000


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings = KafkaClientSettings()
        self.registry = ContractRegistry(self.settings.registry_url)
        self.registry.register_all()
        self.book = self.registry.framer(BOOK.schema)
        self.tag = uuid.uuid4().hex[:8]
        self.prefix = f"benchrec{self.tag}."
        self.venue = f"rec{self.tag}"
        self.markets = [f"M{i}-USD" for i in range(args.markets)]
        self.seq = 0
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
        self.app_ids: list[str] = []
        self.producer: AIOKafkaProducer | None = None

    async def snapshots(self) -> int:
        """One SNAPSHOT per market with the next sequence; returns it."""
        assert self.producer is not None
        self.seq += 1
        for m in self.markets:
            t = now_us()
            await self.producer.send(self.prefix + BOOK.name, key=market_key(self.venue, m), value=self.book.encode({
                "event_id": f"{self.venue}:{m}:{self.seq}", "venue": self.venue, "market": m, "venue_symbol": m,
                "exchange_ts": t, "receive_ts": t, "kind": "SNAPSHOT", "sequence": self.seq, "prev_sequence": None,
                "checksum": None, "reason": None, "bids": [{"price": "100.5", "size": "1"}],
                "asks": [{"price": "101", "size": f"{self.seq}"}]}))
        await self.producer.flush()
        return self.seq

    async def all_answer(self, http: aiohttp.ClientSession, w: Worker, seq: int, deadline: float) -> None:
        """Until every market's book answers 200 with `seq`."""
        pending = list(self.markets)
        while pending:
            w.alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} markets not at sequence {seq}; see {w.log_path}")
            still = []
            for m in pending:
                try:
                    async with http.get(f"{w.url}/books/{self.venue}/{m}",
                                        timeout=aiohttp.ClientTimeout(total=5)) as r:
                        ok = r.status == 200 and (await r.json())["sequence"] == seq
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                if not ok:
                    still.append(m)
            pending = still
            if pending:
                await asyncio.sleep(0.05)

    async def ready(self, http: aiohttp.ClientSession, w: Worker, deadline: float,
                    path: str = "/processor/ready") -> None:
        while True:
            w.alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not answering {path}; see {w.log_path}")
            try:
                async with http.get(f"{w.url}{path}", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.05)

    async def mode(self, http: aiohttp.ClientSession, name: str) -> list[tuple[float, float, float]]:
        app_id = f"bench-rec-{self.tag}-{name}"
        self.app_ids.append(app_id)
        a = self.args
        env = {"MARKETPIPE_PROCESSOR_APP_ID": app_id, "MARKETPIPE_PROCESSOR_TOPIC_PREFIX": self.prefix,
               "MARKETPIPE_PROCESSOR_STORE_URL": a.store, "MARKETPIPE_PROCESSOR_DATA_DIR": str(self.tmp / name),
               "MARKETPIPE_PROCESSOR_OFFSET_RESET": "earliest", "MARKETPIPE_PROCESSOR_STANDBY_REPLICAS": "0",
               "MARKETPIPE_PROCESSOR_SESSION_TIMEOUT_S": str(a.session_timeout),
               "MARKETPIPE_PROCESSOR_HEARTBEAT_INTERVAL_S": str(a.heartbeat), "MARKETPIPE_LOG_LEVEL": "WARNING"}
        if name == "static":
            env["MARKETPIPE_PROCESSOR_GROUP_INSTANCE_ID"] = f"{app_id}-0"
        w = Worker(env, self.tmp / f"{name}.log")
        w.start()
        rounds: list[tuple[float, float, float]] = []
        try:
            await self.ready(http, w, time.monotonic() + 180)
            seq = await self.snapshots()
            await self.all_answer(http, w, seq, time.monotonic() + 120)
            for i in range(a.rounds):
                await asyncio.sleep(a.settle)  # past a commit interval: the state is in the changelog
                killed = time.monotonic()
                w.kill()
                w.start()
                fresh_seq = await self.snapshots()  # sent while the worker starts again
                await self.ready(http, w, killed + 300, "/processor/live")
                t_up = time.monotonic() - killed
                await self.ready(http, w, killed + 300)
                t_ready = time.monotonic() - killed
                await self.all_answer(http, w, fresh_seq, killed + 300)
                t_fresh = time.monotonic() - killed
                rounds.append((t_up, t_ready, t_fresh))
                print(f"  {name:7s} round {i + 1}: web up {t_up:5.2f} s, ready {t_ready:6.2f} s, every query answered with the newest "
                      f"state {t_fresh:6.2f} s after kill -9", flush=True)
        finally:
            w.stop()
        return rounds

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
        from dataclasses import replace

        from marketpipe.topics_admin import ensure_topics
        from schemas.topics import ACCOUNT, BOOK_TOP, OHLCV, TRADES

        a = self.args
        ensure_topics(self.settings.kafka_bootstrap,
                      tuple(replace(s, name=self.prefix + s.name) for s in (BOOK, TRADES, ACCOUNT, BOOK_TOP, OHLCV)))
        print(f"kill -9 recovery: {a.markets} markets, {a.rounds} rounds per mode, store {a.store}, session "
              f"timeout {a.session_timeout} s, heartbeat {a.heartbeat} s, load {os.getloadavg()[0]:.2f}; "
              f"logs in {self.tmp}", flush=True)
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, linger_ms=2, acks="all",
                                         **self.settings.aiokafka_security())
        await self.producer.start()
        results: dict[str, list[tuple[float, float, float]]] = {}
        try:
            async with aiohttp.ClientSession() as http:
                for name in a.modes.split(","):
                    results[name] = await self.mode(http, name)
        finally:
            await self.producer.stop()
            self.delete_topics()
        print("summary (seconds from kill -9; min / median / max):")
        for name, rounds in results.items():
            for label, col in (("web up", 0), ("ready", 1), ("every query answered, newest state", 2)):
                xs = [r[col] for r in rounds]
                print(f"  {name:7s} {label:35s} {min(xs):6.2f} / {statistics.median(xs):6.2f} / {max(xs):6.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--markets", type=int, default=24)
    p.add_argument("--modes", default="dynamic,static", help="comma list of dynamic and/or static")
    p.add_argument("--session-timeout", type=float, default=30.0, help="the settings' default (30 s)")
    p.add_argument("--heartbeat", type=float, default=3.0, help="the settings' default (3 s)")
    p.add_argument("--store", default="rocksdb://")
    p.add_argument("--settle", type=float, default=3.0, help="seconds between a round's answers and the next kill")
    asyncio.run(Bench(p.parse_args()).run())


if __name__ == "__main__":
    main()
