"""A flood of unknown schema ids against one worker (real Kafka + registry): prints how long the worker takes to
look up and skip N records with distinct ids the registry does not know (each one a 404 lookup), all on one
partition, the latency of book queries answered meanwhile, and how long a valid snapshot sent right after the
flood takes to become queryable on another partition (not held back) and on the flooded one (behind the
flood, in order).

Before the lookups were asynchronous (issue 12): 2,000 ids took 10.8 s to skip and a book query meanwhile
took 6.8 s.

    export MARKETPIPE_KAFKA_BOOTSTRAP=127.0.0.1:19092 MARKETPIPE_REGISTRY_URL=http://127.0.0.1:18081/apis/ccompat/v7
    python benchmarks/bench_registry_flood.py [--ids 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiokafka.partitioner import murmur2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marketpipe.settings import KafkaClientSettings  # noqa: E402
from schemas.registry import ContractRegistry  # noqa: E402
from schemas.topics import ACCOUNT, BOOK, BOOK_TOP, OHLCV, TRADES, market_key  # noqa: E402
from tests.processors.harness import (  # noqa: E402  (the tests' worker harness: a real worker subprocess)
    EventWriter,
    Worker,
    create_prefixed_topics,
    delete_topics,
    metric_sum,
    now_us,
    worker_env,
)


def markets_on(venue: str, wanted: Callable[[int], bool], n: int, stem: str = "F") -> list[str]:
    """n market names whose key lands on a partition `wanted` accepts (the producers' murmur2 partitioner)."""
    out: list[str] = []
    i = 0
    while len(out) < n:
        market = f"{stem}{i}-USD"
        if wanted((murmur2(market_key(venue, market)) & 0x7FFFFFFF) % BOOK.partitions):
            out.append(market)
        i += 1
    return out


async def main(args: argparse.Namespace) -> None:
    settings = KafkaClientSettings()
    registry = ContractRegistry(settings.registry_url)
    registry.register_all()
    tag = uuid.uuid4().hex[:8]
    prefix, app_id, venue = f"benchflood{tag}.", f"bench-flood-{tag}", f"flood{tag}"
    create_prefixed_topics(settings.kafka_bootstrap, prefix, (TRADES, BOOK, ACCOUNT, OHLCV, BOOK_TOP))
    tmp = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    env = worker_env(settings.kafka_bootstrap, settings.registry_url, app_id, tmp / "data", topic_prefix=prefix)
    env["MARKETPIPE_LOG_LEVEL"] = args.log_level
    worker = Worker(env, tmp / "worker.log").start()
    try:
        await worker.wait_ready(timeout=120)
        book = registry.framer("book")

        def snapshot(market: str, seq: int) -> bytes:
            return book.encode({"event_id": f"{market}:{seq}", "venue": venue, "market": market,
                                "venue_symbol": market, "exchange_ts": now_us(), "receive_ts": now_us(),
                                "kind": "SNAPSHOT", "sequence": seq, "bids": [{"price": "10", "size": "1"}],
                                "asks": [{"price": "11", "size": "1"}]})

        async with EventWriter(settings.kafka_bootstrap, registry, topic_prefix=prefix) as writer:
            await writer.send(BOOK, market_key(venue, "QUERY-USD"), snapshot("QUERY-USD", 1))
            await writer.flush()
            async with aiohttp.ClientSession() as http:
                query = f"{worker.url}/books/{venue}/QUERY-USD"
                while (await http.get(query)).status != 200:
                    await asyncio.sleep(0.1)
                before = await metric_sum(worker.url, "marketpipe_processor_malformed_total", stream="book")
                body = snapshot("X-USD", 1)[5:]
                base = 1_500_000_000 + int(tag[:6], 16) % 100_000_000
                started = time.monotonic()
                flood_markets = markets_on(venue, lambda p: p == 0, args.ids)
                other, behind = markets_on(venue, lambda p: p != 0, 1)[0], markets_on(venue, lambda p: p == 0, 1,
                                                                                      "B")[0]
                for i, market in enumerate(flood_markets):  # distinct unknown ids, all on partition 0
                    await writer.send(BOOK, market_key(venue, market), b"\x00" + struct.pack(">I", base + i) + body)
                await writer.send(BOOK, market_key(venue, behind), snapshot(behind, 1))
                await writer.send(BOOK, market_key(venue, other), snapshot(other, 1))
                await writer.flush()
                produced = time.monotonic() - started
                latencies: list[float] = []
                visible: dict[str, float] = {}
                skipped = 0.0
                while skipped < args.ids or len(visible) < 2:
                    t = time.monotonic()
                    async with http.get(query) as r:
                        assert r.status == 200
                    latencies.append(time.monotonic() - t)
                    for market in (other, behind):
                        if market not in visible:
                            async with http.get(f"{worker.url}/books/{venue}/{market}") as r:
                                if r.status == 200:
                                    visible[market] = time.monotonic() - started
                    skipped = await metric_sum(worker.url, "marketpipe_processor_malformed_total",
                                               stream="book") - before
                    if time.monotonic() - started > 300:
                        raise TimeoutError(f"only {skipped} of {args.ids} skipped after 300 s")
                    await asyncio.sleep(0.05)
                done = time.monotonic() - started
        print(f"{args.ids} records with distinct unknown schema ids (produced in {produced:.2f}s):")
        print(f"  all counted malformed and skipped after {done:.2f}s")
        print(f"  valid snapshot sent after the flood, another partition: queryable after {visible[other]:.2f}s")
        print(f"  valid snapshot sent after the flood, behind it on its partition: queryable after "
              f"{visible[behind]:.2f}s")
        print(f"  book queries meanwhile: {len(latencies)}, median {statistics.median(latencies) * 1e3:.1f} ms, "
              f"max {max(latencies) * 1e3:.1f} ms")
    finally:
        worker.stop()
        delete_topics(settings.kafka_bootstrap, (prefix, app_id))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=2000)
    parser.add_argument("--log-level", default="ERROR")
    asyncio.run(main(parser.parse_args()))
