"""The web view's data paths with two workers: a market's event stream is served by its owner and relayed by the
other worker (live, token passed on), and the overview of either worker lists every worker's markets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka.partitioner import murmur2

from marketpipe.infra.stack import Cluster
from schemas.topics import BOOK
from tests.processors.harness import EventWriter, Worker, get_json, worker_env

TOKEN = "relay-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def partition(key: str) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % BOOK.partitions


async def authed(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=AUTH) as r:
        return r.status, await r.json(content_type=None)


async def sse_events(http: aiohttp.ClientSession, url: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    async with http.get(url, headers=AUTH) as r:
        assert r.status == 200, (r.status, await r.text())
        assert r.headers["Content-Type"].startswith("text/event-stream")
        buf = b""
        async for chunk in r.content.iter_any():
            buf += chunk
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                fields = dict(line.split(b": ", 1) for line in frame.split(b"\n") if b": " in line)
                if b"event" in fields:
                    yield fields[b"event"].decode(), json.loads(fields[b"data"])


async def collect_until(http: aiohttp.ClientSession, url: str, done: Any, timeout: float = 60.0
                        ) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def read() -> None:
        async for ev in sse_events(http, url):
            seen.append(ev)
            if done(seen):
                return
    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise AssertionError(f"stream {url} did not deliver what was expected in {timeout}s: {seen[-5:]}") from None
    return seen


async def test_stream_served_by_owner_and_relayed_and_overview_spans_workers(
        cluster: Cluster, writer: EventWriter, unique: str, tmp_path: Path, topic_prefix: str,
        session_tag: str) -> None:
    assert cluster.registry_url
    env = worker_env(cluster.bootstrap, cluster.registry_url, f"test-proc-ui-{session_tag}", tmp_path / "data",
                     standby_replicas="0", topic_prefix=topic_prefix, query_token=TOKEN)
    a = Worker(env, tmp_path / "a.log").start()
    b = Worker(env, tmp_path / "b.log")
    try:
        await a.wait_ready()
        b.start()
        await b.wait_ready()
        deadline = time.monotonic() + 90
        while True:  # the rebalance settled: each worker owns some book partitions, together all
            ra, rb = (await get_json(f"{a.url}/processor/ready"))[1], (await get_json(f"{b.url}/processor/ready"))[1]
            pa = {int(x.rsplit(":", 1)[1]) for x in ra["actives"] if x.split(":")[0].endswith(BOOK.name)}
            pb = {int(x.rsplit(":", 1)[1]) for x in rb["actives"] if x.split(":")[0].endswith(BOOK.name)}
            if ra["ready"] and rb["ready"] and pa and pb and not pa & pb and pa | pb == set(range(BOOK.partitions)):
                break
            assert time.monotonic() < deadline, f"partitions never split: {ra} {rb}"
            await asyncio.sleep(0.3)

        venue = f"ui{unique}"
        on_a = next(f"A{i}-USD" for i in range(100) if partition(f"{venue}:A{i}-USD") in pa)
        on_b = next(f"B{i}-USD" for i in range(100) if partition(f"{venue}:B{i}-USD") in pb)
        for market in (on_a, on_b):
            await writer.book(venue, market, "SNAPSHOT", seq=1, bids=[("10.5", "1")], asks=[("11", "2")])
            await writer.trade(venue, market, 1_700_000_000_000_000, "10.75", "0.1", "BUY")
        await writer.flush()

        # the overview of either worker lists both markets, each from its owner
        for w in (a, b):
            deadline = time.monotonic() + 60
            while True:
                status, ov = await authed(f"{w.url}/ui/api/overview")
                assert status == 200, ov
                owners = {m["market"]: wk["worker"] for wk in ov["workers"] for m in wk["markets"]
                          if m["venue"] == venue}
                if owners == {on_a: a.url, on_b: b.url}:
                    break
                assert time.monotonic() < deadline, f"overview of {w.url}: {ov}"
                await asyncio.sleep(0.5)
            assert not ov["unreachable"] and len(ov["workers"]) == 2

        # a stream asked of the worker that does not own the market is relayed from the owner
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{b.url}/ui/stream/{venue}/{on_a}") as r:
                assert r.status == 401  # the relaying worker checks the token too
            for market, owner, other in ((on_a, a, b), (on_b, b, a)):
                url = f"/ui/stream/{venue}/{market}?interval=1s&depth=5"

                def first_book(seen: list[tuple[str, dict[str, Any]]]) -> bool:
                    return any(e == "book" for e, _ in seen) and any(e == "candles" for e, _ in seen)
                direct, relayed = await asyncio.gather(collect_until(http, owner.url + url, first_book),
                                                       collect_until(http, other.url + url, first_book))
                for seen in (direct, relayed):
                    assert seen[0] == ("hello", {"worker": owner.url, "interval": "1s"}), seen[0]
                    book = next(d for e, d in seen if e == "book")
                    assert (book["best_bid"], book["best_ask"], book["in_sync"]) == ("10.5", "11", True)
                    candles = next(d for e, d in seen if e == "candles")
                    assert candles["full"] and candles["candles"][-1]["close"] == "10.75"

            # live through the relay: an event written after the stream opened arrives on it
            url = f"{b.url}/ui/stream/{venue}/{on_a}?interval=1s"

            async def write_later() -> None:
                await asyncio.sleep(1.0)
                await writer.book(venue, on_a, "DELTA", seq=2, prev=1, bids=[("10.6", "3")], asks=[])
                await writer.trade(venue, on_a, 1_700_000_000_500_000, "10.8", "0.2", "SELL")
                await writer.flush()
            seen, _ = await asyncio.gather(collect_until(http, url, lambda s: any(
                e == "book" and d["best_bid"] == "10.6" for e, d in s) and any(
                e == "trades" and any(t["price"] == "10.8" for t in d["trades"]) for e, d in s)), write_later())
            assert seen[0][1]["worker"] == a.url
    finally:
        b.stop()
        a.stop()
