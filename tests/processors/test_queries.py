"""Query endpoints: clear 404s for unknown keys, 400s for bad parameters, metrics and readiness."""

from __future__ import annotations

import pytest

from tests.processors.harness import EventWriter, Worker, get_json, poll_json


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
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{ready_worker.url}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    for name in ("marketpipe_processor_events_total", "marketpipe_processor_consumer_lag",
                 "marketpipe_processor_books_out_of_sync", "marketpipe_processor_event_to_queryable_seconds"):
        assert name in text, name
    status, body = await get_json(f"{ready_worker.url}/processor/ready")
    assert status == 200 and body["ready"] is True
