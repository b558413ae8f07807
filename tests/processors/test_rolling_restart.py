"""Rolling restart of three workers (static membership, RocksDB, no standby: the chart's default) under steady
load: queries keep being answered, and afterwards every book, candle series and account equals the truth rebuilt from the topics.

The roll is what a StatefulSet rolling update does, one pod at a time: the pod leaves the Service's endpoints,
gets SIGTERM (the last one SIGKILL, a crash), comes back under the same name (group instance id) with the same
volume (RocksDB), and rejoins the endpoints once `/processor/ready` answers. A client queries every key the
whole time through the workers in service (`marketpipe.infra.rolling.QueryProbe`).

Bounds (stated, checked, printed):
- every book, candle series and account ends equal to the truth rebuilt from the topics (any difference
  fails; see the comment at the end for the bug this test found and what is not exercised);
- a key goes unanswered at most while its owner restarts: with static membership its partitions wait for it
  (no rebalance) unless the restart outlasts the session timeout (30 s, the chart's default), when the other
  workers take them over. So no gap is longer than the slowest restart (signal -> every key answered again)
  plus one probe round, and none longer than GAP_BOUND_S, an absolute figure for this busy 2-core machine;
- the errors are the queries for keys whose owner was away, nothing else.
The longer measurement at 5k events/s, with takeover times with and without standbys, is
`benchmarks/bench_rolling.py`.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from marketpipe.infra.rolling import (
    QueryProbe,
    RestartTiming,
    SteadyLoad,
    Truth,
    WorkerPool,
    wait_equal_to_truth,
    wait_settled,
)
from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES
from tests.processors.harness import Worker, create_prefixed_topics, delete_topics, worker_env

RATE = 5000  # events/s offered during the whole roll (the steady load)
STEADY_S = 2.0  # seconds of steady load before the roll and between restarts
GAP_BOUND_S = 150.0  # absolute: the slowest restart seen on this 2-core machine at load 30 took 104 s
PROBE_ROUND_S = 3.0  # one probe round: the last answer before a stop can be up to a 2 s timeout + 0.1 s old
INTERVALS = ("1s", "10s", "1m")
ROLL = ((0, "SIGTERM"), (1, "SIGTERM"), (2, "kill -9"))


@pytest.mark.timeout(600)
async def test_rolling_restart_under_load_keeps_answering_and_ends_equal_to_the_truth(
        cluster: Cluster, registry: ContractRegistry, unique: str, tmp_path: Path) -> None:
    assert cluster.registry_url
    prefix, app_id = f"test{unique}.", f"test-proc-roll-{unique}"
    create_prefixed_topics(cluster.bootstrap, prefix, (TRADES, BOOK, ACCOUNT, OHLCV, BOOK_TOP))
    venue = f"roll{unique}"
    markets, accounts = [f"M{i}-USD" for i in range(12)], [f"acct{i}" for i in range(6)]
    workers = [Worker(worker_env(cluster.bootstrap, cluster.registry_url, app_id, tmp_path / f"data{i}",
                                 store_url="rocksdb://", topic_prefix=prefix, group_instance_id=f"{app_id}-{i}",
                                 standby_replicas="0", session_timeout_s="30",
                                 candle_intervals=",".join(INTERVALS)),
                      tmp_path / f"worker{i}.log") for i in range(3)]
    pool = WorkerPool(workers)
    load = SteadyLoad(cluster.bootstrap, registry, prefix, venue, markets, accounts, RATE)
    probe = QueryProbe(venue, markets, accounts, "1s", pool.endpoints)
    t_start = time.monotonic()

    def progress(what: str) -> None:
        print(f"[roll +{time.monotonic() - t_start:5.1f} s] {what}", flush=True)

    try:
        await pool.start_all()
        progress("three workers ready")
        await wait_settled(pool.urls, prefix + BOOK.name, BOOK.partitions)
        progress("group settled")
        await load.start()
        await probe.start()
        await asyncio.sleep(STEADY_S)
        timings: list[RestartTiming] = []
        steady_errors: list[int] = []
        for i, how in ROLL:
            timings.append(await pool.restart(i, how, probe))
            progress(timings[-1].line())
            await wait_settled(pool.urls, prefix + BOOK.name, BOOK.partitions)
            steady_from = time.monotonic()
            await asyncio.sleep(STEADY_S)
            steady_errors.append(probe.errors_between(steady_from, time.monotonic()))
        sent = await load.stop()
        report = await probe.stop()

        progress(f"load stopped after {sent} events; {report.line()}")
        truth = await Truth.from_topics(cluster.bootstrap, registry, prefix, venue, INTERVALS)
        progress(f"truth rebuilt from the topics: {truth.events}")
        caught_up, diffs = await wait_equal_to_truth(workers[0].url, venue, truth, INTERVALS, timeout_s=60)
    finally:
        pool.stop_all()
        delete_topics(cluster.bootstrap, (prefix, app_id))

    print(f"\nrolling restart, {RATE} events/s offered ({sent} sent, sender at most {load.behind_s:.2f} s behind), "
          f"load average {os.getloadavg()[0]:.1f}:")
    for t in timings:
        print(f"  {t.line()}")
    print(f"  queries: {report.line()}; bound {GAP_BOUND_S:.0f} s; errors between restarts: {steady_errors}")
    print(f"  truth: {truth.events}; the workers' state equal to it {caught_up:.1f} s after it was read")
    assert truth.books and len(truth.candles) == len(markets) and len(truth.balances) == len(accounts)
    # a key waits only for its owner's restart: no gap longer than the slowest restart plus one probe round
    # (queries failing between restarts come from rebalances a slow restart causes, inside that figure)
    assert report.longest_gap_s <= max(t.answered_s for t in timings) + PROBE_ROUND_S, report.line()
    assert report.longest_gap_s < GAP_BOUND_S, report.line()
    assert report.queries > 10 * len(probe.paths), "the probe hardly ran"
    # a worker that does not serve a key's partition right now (rebalance, restore) says "retry" (503), never
    # that a market or account it answered before does not exist (404)
    assert report.not_found_after_answer == 0, report.line()
    # Found by this test and fixed: after a restart the candle timer closed (then finalized) the candles of a
    # partition whose backlog it had not folded a trade of yet, dropping in-order trades as "too late for the
    # final 1s candle" (CandleStage.caught_up now waits for the read position). Not fixed, and not exercised
    # here (standbys are off, the chart's default): with standby replicas, when a restart outlasted the session
    # timeout, faust's assignor gave a worker a partition as active and standby, and the standby restore wrote
    # older changelog records over the active state. Any difference from the truth fails.
    assert diffs == [], f"{len(diffs)} differences from the truth, first: {diffs[:5]}"
