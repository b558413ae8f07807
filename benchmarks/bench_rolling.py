"""Three processor workers (static membership, RocksDB) at a steady --rate events/s: a rolling restart, and the
takeover time of a worker that goes away for good, with and without standby replicas.

  roll:      restart the workers one at a time (SIGTERM, SIGTERM, kill -9) as a StatefulSet rolling update does
             (the pod leaves the Service's endpoints, stops, comes back under the same name with its volume);
             queries for every book, candle series and account run throughout against the workers in service.
             Prints per restart the exit, ready and every-key-answered times, the query errors and the longest
             time one key went unanswered, then checks that every book, candle series and account equals the
             truth rebuilt from the topics.
  takeover:  per --standbys value, three fresh workers under the same load; after --warmup seconds one worker is
             stopped (SIGTERM) and not started again (scale-down, a lost node). Its partitions wait for its
             session to expire (--session-timeout), then move to the two others. Printed: seconds from the stop
             until the two workers own every partition and are ready (rebalance + state restore), and until
             every key answers again; the takeover proper is the part after the session timeout.

Prints the load average beside every figure: this machine is shared.

    export MARKETPIPE_KAFKA_BOOTSTRAP=127.0.0.1:19092 MARKETPIPE_REGISTRY_URL=http://127.0.0.1:18081/apis/ccompat/v7
    python benchmarks/bench_rolling.py [--phases roll,takeover] [--rate 5000] [--markets 24] [--accounts 8]
        [--warmup 20] [--standbys 0,1] [--session-timeout 30] [--roll-standbys 1]
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

from marketpipe.infra.processor_process import ProcessorProcess
from marketpipe.infra.rolling import QueryProbe, SteadyLoad, Truth, WorkerPool, wait_equal_to_truth, wait_settled
from marketpipe.settings import KafkaClientSettings
from marketpipe.topics_admin import ensure_topics
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES

INTERVALS = ("1s", "1m")


def load_avg() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings = KafkaClientSettings()
        self.registry = ContractRegistry(self.settings.registry_url)
        self.registry.register_all()
        self.tag = uuid.uuid4().hex[:8]
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-rolling-"))
        self.markets = [f"M{i}-USD" for i in range(args.markets)]
        self.accounts = [f"acct{i}" for i in range(args.accounts)]
        self.prefixes: list[str] = []
        self.app_ids: list[str] = []

    def pool(self, name: str, standbys: int) -> tuple[WorkerPool, str, str]:
        prefix, app_id = f"benchroll{self.tag}{name}.", f"bench-roll-{self.tag}-{name}"
        self.prefixes.append(prefix)
        self.app_ids.append(app_id)
        ensure_topics(self.settings.kafka_bootstrap,
                      tuple(replace(s, name=prefix + s.name) for s in (BOOK, TRADES, ACCOUNT, BOOK_TOP, OHLCV)))
        a = self.args
        (self.tmp / name).mkdir(parents=True, exist_ok=True)
        workers = []
        for i in range(3):
            env = {"MARKETPIPE_PROCESSOR_APP_ID": app_id, "MARKETPIPE_PROCESSOR_TOPIC_PREFIX": prefix,
                   "MARKETPIPE_PROCESSOR_STORE_URL": "rocksdb://",
                   "MARKETPIPE_PROCESSOR_DATA_DIR": str(self.tmp / name / f"data{i}"),
                   "MARKETPIPE_PROCESSOR_OFFSET_RESET": "earliest",
                   "MARKETPIPE_PROCESSOR_STANDBY_REPLICAS": str(standbys),
                   "MARKETPIPE_PROCESSOR_GROUP_INSTANCE_ID": f"{app_id}-{i}",
                   "MARKETPIPE_PROCESSOR_SESSION_TIMEOUT_S": str(a.session_timeout),
                   "MARKETPIPE_PROCESSOR_CANDLE_INTERVALS": ",".join(INTERVALS),
                   "MARKETPIPE_LOG_LEVEL": "INFO"}
            workers.append(ProcessorProcess(env, self.tmp / f"{name}-worker{i}.log"))
        return WorkerPool(workers), prefix, app_id

    async def roll(self) -> None:
        a = self.args
        pool, prefix, _ = self.pool("roll", a.roll_standbys)
        venue = f"roll{self.tag}"
        print(f"roll: 3 workers, {a.roll_standbys} standby, {a.rate} events/s over {len(self.markets)} markets and "
              f"{len(self.accounts)} accounts, session timeout {a.session_timeout} s; logs in {self.tmp}", flush=True)
        load = SteadyLoad(self.settings.kafka_bootstrap, self.registry, prefix, venue, self.markets, self.accounts,
                          a.rate, self.settings.aiokafka_security())
        probe = QueryProbe(venue, self.markets, self.accounts, "1s", pool.endpoints)
        try:
            await pool.start_all()
            await wait_settled(pool.urls, prefix + BOOK.name, BOOK.partitions)
            await load.start()
            await probe.start()
            await asyncio.sleep(a.warmup)
            print(f"  steady after {a.warmup:.0f} s of load ({load_avg()})", flush=True)
            for i, how in ((0, "SIGTERM"), (1, "SIGTERM"), (2, "kill -9")):
                t = await pool.restart(i, how, probe)
                print(f"  {t.line()} ({load_avg()})", flush=True)
                await wait_settled(pool.urls, prefix + BOOK.name, BOOK.partitions)
                await asyncio.sleep(a.pause)
            sent = await load.stop()
            report = await probe.stop()
            print(f"  load: {sent} events sent, the sender at most {load.behind_s:.2f} s behind its schedule")
            print(f"  queries: {report.line()} ({load_avg()})")
            for path, gap in report.worst_keys:
                print(f"    {gap:6.2f} s  {path}")
            truth = await Truth.from_topics(self.settings.kafka_bootstrap, self.registry, prefix, venue, INTERVALS,
                                            self.settings.aiokafka_security())
            waited, diffs = await wait_equal_to_truth(pool.workers[0].url, venue, truth, INTERVALS, timeout_s=120)
            verdict = "EQUAL" if not diffs else (f"{len(diffs)} DIFFERENCES: {[d.split(':')[0] for d in diffs]}; "
                                                 f"first: {diffs[:3]}")
            print(f"  final state vs the truth rebuilt from the topics ({truth.events}): {verdict} "
                  f"(compared for {waited:.1f} s)", flush=True)
        finally:
            pool.stop_all()

    async def takeover(self, standbys: int) -> None:
        a = self.args
        pool, prefix, _ = self.pool(f"take{standbys}", standbys)
        venue = f"take{standbys}{self.tag}"
        load = SteadyLoad(self.settings.kafka_bootstrap, self.registry, prefix, venue, self.markets, self.accounts,
                          a.rate, self.settings.aiokafka_security())
        probe = QueryProbe(venue, self.markets, self.accounts, "1s", pool.endpoints)
        try:
            await pool.start_all()
            await wait_settled(pool.urls, prefix + BOOK.name, BOOK.partitions)
            await load.start()
            await probe.start()
            await asyncio.sleep(a.warmup)
            pool.in_service.discard(2)
            t0 = time.monotonic()
            await asyncio.to_thread(pool.workers[2].stop)
            exited = time.monotonic() - t0
            await wait_settled(pool.urls[:2], prefix + BOOK.name, BOOK.partitions, timeout_s=600)
            settled = time.monotonic() - t0
            answered = await probe.answered_since(t0 + settled, timeout_s=300) - t0
            await load.stop()
            report = await probe.stop()
            print(f"takeover, {standbys} standby: worker stopped (SIGTERM, exited after {exited:.1f} s), not started "
                  f"again; the two others own every partition and are ready {settled:.1f} s after the stop, every "
                  f"key answered {answered:.1f} s after it: takeover after the {a.session_timeout:.0f} s session "
                  f"timeout {answered - a.session_timeout:.1f} s ({load_avg()}); {report.line()}", flush=True)
        finally:
            pool.stop_all()

    def delete_topics(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        mine = [t for t in admin.list_topics(timeout=15).topics if t.startswith((*self.prefixes, *self.app_ids))]
        if mine:
            for fut in admin.delete_topics(mine, operation_timeout=30).values():
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001 - best effort clean-up
                    print(f"  could not delete a topic: {exc}")

    async def run(self) -> None:
        try:
            phases = self.args.phases.split(",")
            if "roll" in phases:
                await self.roll()
            if "takeover" in phases:
                for n in (int(x) for x in self.args.standbys.split(",")):
                    await self.takeover(n)
        finally:
            self.delete_topics()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phases", default="roll,takeover")
    p.add_argument("--rate", type=float, default=5000)
    p.add_argument("--markets", type=int, default=24)
    p.add_argument("--accounts", type=int, default=8)
    p.add_argument("--warmup", type=float, default=20.0, help="seconds of load before the first stop")
    p.add_argument("--pause", type=float, default=5.0, help="seconds of load between restarts")
    p.add_argument("--standbys", default="0,1", help="standby replica counts the takeover phase compares")
    p.add_argument("--roll-standbys", type=int, default=1)
    p.add_argument("--session-timeout", type=float, default=30.0, help="the settings' and chart's default")
    asyncio.run(Bench(p.parse_args()).run())


if __name__ == "__main__":
    main()
