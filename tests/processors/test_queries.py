"""Query endpoints: clear 404s for unknown keys, 400s for bad parameters, metrics and readiness; the port serves\nonly the query API (faust's pages 404), state changes only by POST, and the optional bearer token."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka.partitioner import murmur2

from marketpipe.infra.stack import Cluster
from schemas.topics import BOOK
from tests.processors.harness import EventWriter, Worker, worker_env


@pytest.mark.parametrize("path", [
    "/books/nowhere{u}/BTC-USD", "/books/nowhere{u}/BTC-USD/top", "/candles/nowhere{u}/BTC-USD/1s",
    "/accounts/nowhere{u}/acct/balances", "/accounts/nowhere{u}/acct/orders", "/accounts/nowhere{u}/acct/positions",
])
async def test_unknown_keys_answer_404(ready_worker: Worker, unique: str, path: str) -> None:
    status, body = await get_json(ready_worker.url + path.format(u=unique))
    assert status == 404 and "unknown" in body["error"]


async def test_bad_params_answer_400(ready_worker: Worker, writer: EventWriter, unique: str) -> None:
    venue, market = f"tq{unique}", "BTC-USD"
    await writer.book(venue, market, "SNAPSHOT", seq=1, bids=[("10", "1")], asks=[("11", "1")])
    await writer.trade(venue, market, 1_700_000_000_000_000, "10.5", "1", "BUY")
    await writer.account(venue, "acct", "*", "BALANCE", {"asset": "USD", "total": "1"})
    await writer.flush()
    await poll_json(f"{ready_worker.url}/books/{venue}/{market}", lambda st, b: st == 200)
    await poll_json(f"{ready_worker.url}/candles/{venue}/{market}/1s", lambda st, b: st == 200)
    await poll_json(f"{ready_worker.url}/accounts/{venue}/acct/balances", lambda st, b: st == 200)
    for path in (f"/books/{venue}/{market}?depth=abc", f"/books/{venue}/{market}?depth=0",
                 f"/candles/{venue}/{market}/7x", f"/candles/{venue}/{market}/5m",  # 5m not configured
                 f"/candles/{venue}/{market}/1s?start=10&end=5", f"/candles/{venue}/{market}/1s?limit=-1",
                 f"/candles/{venue}/{market}/1s?include_open=maybe", f"/accounts/{venue}/acct/orders?status=odd",
                 f"/accounts/{venue}/acct/fills?limit=x"):
        status, body = await get_json(ready_worker.url + path)
        assert status == 400, (path, status, body)
        assert body["error"]
    status, _ = await get_json(f"{ready_worker.url}/accounts/{venue}/acct/nonsense")
    assert status == 404


async def test_metrics_and_readiness(ready_worker: Worker) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{ready_worker.url}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    for name in ("marketpipe_processor_events_total", "marketpipe_processor_consumer_lag",
                 "marketpipe_processor_books_out_of_sync", "marketpipe_processor_event_to_queryable_seconds"):
        assert name in text, name
    status, body = await get_json(f"{ready_worker.url}/processor/ready")
    assert status == 200 and body["ready"] is True


# -- the port serves the query API and nothing else ----------------------------------------------------------

FAUST_PAGES = ["/", "/router/", "/router/topics", "/router/accounts/", "/table/", "/table/accounts/",
               "/table/accounts/x/", "/table/books/keys/", "/graph/", "/assignment/", "/performance/",
               "/stats/", "/nothing/here"]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_faust_pages_and_unknown_paths_answer_404(ready_worker: Worker, method: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in FAUST_PAGES:
            async with http.request(method, ready_worker.url + path) as r:
                body = await r.json(content_type=None)
                assert r.status == 404 and path in body["error"], (method, path, r.status, body)


async def test_wrong_method_answers_405_with_json(ready_worker: Worker, unique: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{ready_worker.url}/books/x{unique}/BTC-USD") as r:
            body = await r.json(content_type=None)
            assert r.status == 405 and "GET" in r.headers["Allow"] and body["error"], body
        async with http.delete(f"{ready_worker.url}/processor/stats") as r:
            assert r.status == 405 and "POST" in r.headers["Allow"]


async def test_latency_reset_only_by_post(ready_worker: Worker, writer: EventWriter, unique: str) -> None:
    venue, market = f"tr{unique}", "BTC-USD"
    await writer.book(venue, market, "SNAPSHOT", seq=1, bids=[("10", "1")], asks=[("11", "1")])
    await writer.flush()
    await poll_json(f"{ready_worker.url}/books/{venue}/{market}", lambda st, b: st == 200)
    stats_url = f"{ready_worker.url}/processor/stats"
    latency = (await poll_json(stats_url, lambda st, b: b["latency"]["count"] > 0))["latency"]
    before = latency["count"]
    # the consumer thread and the drain loop stamp every message, so each event's latency is split where it
    # was spent
    for group in ("all", "slowest_1pct"):
        parts = latency["breakdown"][group]
        assert set(parts) == {"before_fetch", "handoff", "queued", "batch"} and min(parts.values()) >= 0
    async with aiohttp.ClientSession() as http:
        async with http.get(stats_url + "?reset_latency=true") as r:  # the old way: refused, nothing reset
            assert r.status == 400 and "POST" in (await r.json())["error"]
        status, after_get = await get_json(stats_url)
        assert status == 200 and after_get["latency"]["count"] >= before
        async with http.post(stats_url + "?reset_latency=false") as r:
            assert r.status == 400
        async with http.post(stats_url + "?reset_latency=true") as r:
            body = await r.json()
            assert r.status == 200 and body["latency_samples_dropped"] >= before and body["latency"] == {"count": 0}


async def test_liveness_answers(ready_worker: Worker) -> None:
    status, body = await get_json(f"{ready_worker.url}/processor/live")
    assert status == 200 and body == {"live": True}


def test_query_port_binds_loopback_by_default() -> None:
    from processors.settings import ProcessorSettings

    assert ProcessorSettings(_env_file=None).processor_web_bind == "127.0.0.1"  # type: ignore[call-arg]


async def test_bearer_token_guards_queries_and_forwarding_carries_it(
        cluster: Cluster, writer: EventWriter, unique: str, tmp_path: Path, topic_prefix: str,
        session_tag: str) -> None:
    """Two workers with a token: a query without it gets 401 on either, with it 200 on both (the one that
    does not own the key forwards it, Authorization included); metrics and probes stay open; faust's pages
    stay 404 even for the token's holder."""
    assert cluster.registry_url
    token = f"tok-{unique}"
    env = worker_env(cluster.bootstrap, cluster.registry_url, f"test-proc2-{session_tag}-tok", tmp_path / "data",
                     standby_replicas="0", topic_prefix=topic_prefix, query_token=token)
    a, b = Worker(env, tmp_path / "a.log").start(), Worker(env, tmp_path / "b.log").start()
    auth = {"Authorization": f"Bearer {token}"}
    try:
        for w in (a, b):
            await wait_ready(w, auth)
        # both own book partitions (no standbys): an answer from a worker without the key proves forwarding
        pa, pb = await split_partitions(a, b, auth)
        venue = f"tk{unique}"
        markets = [f"M{i}-USD" for i in range(12)]
        for i, m in enumerate(markets):
            await writer.book(venue, m, "SNAPSHOT", seq=i + 1, bids=[(f"{i + 10}", "1")], asks=[(f"{i + 11}", "1")])
        await writer.flush()
        owners = {m: partition(f"{venue}:{m}") in pa for m in markets}
        assert set(owners.values()) == {True, False}, owners
        async with aiohttp.ClientSession() as http:
            for i, m in enumerate(markets):
                for w in (a, b):
                    url = f"{w.url}/books/{venue}/{m}"
                    body = await poll_json(url, lambda st, bd: st == 200, headers=auth)
                    assert body["sequence"] == i + 1
                    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
                        async with http.get(url, headers=headers) as r:
                            err = await r.json()
                            assert r.status == 401 and err["error"], (headers, r.status, err)
                            assert r.headers["WWW-Authenticate"] == "Bearer"
            for w in (a, b):
                for path in ("/metrics", "/processor/ready", "/processor/live"):
                    async with http.get(w.url + path) as r:
                        assert r.status == 200, path
                for path, status in (("/processor/stats", 401), ("/router/", 404), ("/table/books/", 404)):
                    async with http.get(w.url + path) as r:
                        assert r.status == status, path
                async with http.get(w.url + "/router/", headers=auth) as r:
                    assert r.status == 404
                async with http.post(w.url + "/processor/stats?reset_latency=true") as r:
                    assert r.status == 401
                async with http.post(w.url + "/processor/stats?reset_latency=true", headers=auth) as r:
                    assert r.status == 200
        assert pb  # keeps the split visible in failures
        # `marketpipe query` sends the token from the environment
        cli = argparse.Namespace(what="top", key=f"{venue}:M0-USD", url=a.url, depth=None, interval="1m", limit=None)
        assert await asyncio.to_thread(query_cli, cli, token) == 0
        assert await asyncio.to_thread(query_cli, cli, None) == 1
    finally:
        a.stop()
        b.stop()


def partition(key: str) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % BOOK.partitions


async def split_partitions(a: Worker, b: Worker, headers: dict[str, str]) -> tuple[set[int], set[int]]:
    """Waits until the two workers own disjoint halves of the book partitions and both fetched since."""
    def book_parts(ready: dict[str, Any]) -> set[int]:
        return {int(x.rsplit(":", 1)[1]) for x in ready["actives"] if x.split(":")[0].endswith(BOOK.name)}

    deadline = time.monotonic() + 60
    while True:
        ra, rb = (await get_json(f"{a.url}/processor/ready"))[1], (await get_json(f"{b.url}/processor/ready"))[1]
        pa, pb = book_parts(ra), book_parts(rb)
        if ra["ready"] and rb["ready"] and pa and pb and not pa & pb and pa | pb == set(range(BOOK.partitions)):
            break
        assert time.monotonic() < deadline, f"partitions never split: {ra} {rb}"
        await asyncio.sleep(0.2)
    for w in (a, b):
        before = (await get_json(f"{w.url}/processor/stats", headers=headers))[1]["ticks_seen"]
        await poll_json(f"{w.url}/processor/stats", lambda st, bd, n=before: bd["ticks_seen"] >= n + 6,
                        headers=headers)
    return pa, pb


async def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def poll_json(url: str, done: Any, timeout: float = 15.0, headers: dict[str, str] | None = None) -> Any:
    """GET url (with headers) until done(status, body) is true; returns the body."""
    deadline = time.monotonic() + timeout
    status, body = None, None
    while time.monotonic() < deadline:
        status, body = await get_json(url, headers)
        if done(status, body):
            return body
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{url}: last answer {status} {body}")


async def wait_ready(w: Worker, headers: dict[str, str], timeout: float = 90.0) -> None:
    """Worker.wait_ready with the token: ready, and ticks consumed (the fetcher ran)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert w.proc is not None and w.proc.poll() is None, f"worker died: see {w.log_path}"
        try:
            if (await get_json(f"{w.url}/processor/ready"))[0] == 200:
                status, stats = await get_json(f"{w.url}/processor/stats", headers)
                if status == 200 and stats["ticks_seen"] > 0:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"worker on {w.url} not ready after {timeout}s; log {w.log_path}")


def query_cli(args: argparse.Namespace, token: str | None) -> int:
    from marketpipe.query import main

    saved = os.environ.pop("MARKETPIPE_PROCESSOR_QUERY_TOKEN", None)
    try:
        if token is not None:
            os.environ["MARKETPIPE_PROCESSOR_QUERY_TOKEN"] = token
        return main(args)
    finally:
        os.environ.pop("MARKETPIPE_PROCESSOR_QUERY_TOKEN", None)
        if saved is not None:
            os.environ["MARKETPIPE_PROCESSOR_QUERY_TOKEN"] = saved


async def test_query_command_shows_tables_and_keeps_json(ready_worker: Worker, writer: EventWriter, unique: str) -> None:
    """`marketpipe query` (the real command, a subprocess) against a real worker: the book as a ladder, the
    account's fills as a table with ISO-8601 UTC times, and `--json` exactly the endpoint's body."""
    import json
    import subprocess
    import sys

    venue, market, ts = f"tc{unique}", "BTC-USD", 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    await writer.book(venue, market, "SNAPSHOT", seq=1, bids=[("10.50", "1"), ("10.25", "3")], asks=[("11.00", "2")])
    await writer.account(venue, "acct", market, "FILL", {"fill_id": "f1", "order_id": "o1", "side": "BUY",
                                                         "price": "10.75", "size": "0.5", "fee": "0.01",
                                                         "fee_asset": "USD", "is_maker": True}, ts=ts)
    await writer.flush()
    await poll_json(f"{ready_worker.url}/books/{venue}/{market}", lambda st, b: st == 200 and len(b["bids"]) == 2, timeout=60)
    await poll_json(f"{ready_worker.url}/accounts/{venue}/acct/fills", lambda st, b: st == 200 and b["fills"], timeout=60)

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "marketpipe.cli", "query", *args, "--url", ready_worker.url],
                              capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "160"})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    ladder = [[c.strip() for c in ln.replace("┃", "│").split("│")] for ln in cli("book", f"{venue}:{market}").splitlines()]
    assert ["bid size", "bid", "ask", "ask size"] in ladder
    assert ["1", "10.50", "11.00", "2"] in ladder and ["3", "10.25", "", ""] in ladder
    fills = cli("fills", f"{venue}:acct")
    assert "f1" in fills and "10.75" in fills and "2026-01-01T00:00:00.000Z" in fills
    _, body = await get_json(f"{ready_worker.url}/books/{venue}/{market}")
    assert json.loads(cli("book", f"{venue}:{market}", "--json")) == body
