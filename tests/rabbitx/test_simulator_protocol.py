"""The RabbitX simulator speaks Centrifugo faithfully (checked with a plain websockets client, no producer
code): id echo, pipelined commands, snapshot in the subscribe reply with ascending bids, error replies,
pings that need a pong (3012), close 3500 on a bad token, and several messages per frame."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosedError

from simulators.rabbitx import RabbitXSimulator


async def recv_lines(ws: websockets.ClientConnection, n: int, timeout: float = 3.0) -> list[dict]:
    out: list[dict] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            frame = await ws.recv()
            out.extend(orjson.loads(line) for line in str(frame).split("\n"))
    return out


@pytest.mark.sim(ping_interval=0.3, pong_timeout=0.4)
async def test_centrifugo_commands_replies_and_errors(sim: RabbitXSimulator) -> None:
    m = sorted(sim.markets)[0]
    async with websockets.connect(sim.ws_url) as ws:
        # pipelined before the connect reply, ids 7.. (echoed verbatim), unknown field "name" ignored
        await ws.send("\n".join(orjson.dumps(c).decode() for c in (
            {"connect": {"token": sim.issue_token(ttl=60), "name": "js"}, "id": 7},
            {"subscribe": {"channel": f"orderbook:{m}", "name": "js"}, "id": 8},
            {"subscribe": {"channel": f"orderbook:{m}"}, "id": 9},
            {"subscribe": {"channel": "orderbook:NOPE-USD"}, "id": 10},
            {"subscribe": {"channel": "account@1"}, "id": 11},
        )))
        replies = {r["id"]: r for r in await recv_lines(ws, 5) if "id" in r}
        assert replies[7]["connect"]["pong"] is True and replies[7]["connect"]["expires"] is True
        assert 55 <= replies[7]["connect"]["ttl"] <= 60
        book = replies[8]["subscribe"]["data"]
        prices = [float(p) for p, _ in book["bids"]]
        assert prices == sorted(prices) and book["sequence"] == sim.markets[m].sequence  # bids ascending
        assert [replies[i]["error"]["code"] for i in (9, 10, 11)] == [105, 102, 103]
        sim.generate(60)
        msgs = await recv_lines(ws, 10)
        assert any("push" in x for x in msgs)
        # no pong: the server gives up with 3012
        with pytest.raises(ConnectionClosedError) as info:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 3012
    assert sim.stats["pongs_missed"] == 1


async def test_bad_token_closes_3500_and_expired_token_gets_109(sim: RabbitXSimulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps({"connect": {"token": sim.issue_token(ttl=-5)}, "id": 1}).decode())
        assert (await recv_lines(ws, 1))[0] == {"id": 1, "error": {"code": 109, "message": "token expired"}}
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(orjson.dumps({"connect": {"token": "x.y.z"}, "id": 1}).decode())
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.rcvd is not None and (info.value.rcvd.code, info.value.rcvd.reason) == (3500,
                                                                                                  "invalid token")


@pytest.mark.sim(rest_trade_history=1100)
async def test_rest_trades_pages_newest_first_within_the_retained_history(sim: RabbitXSimulator) -> None:
    import aiohttp

    m = sorted(sim.markets)[0]
    while len(sim.markets[m].trades) < 1300:
        sim.generate(500)
    truth = [t["id"] for t in sim.markets[m].trades]
    async with aiohttp.ClientSession() as http:
        async def page(path: str, **params: str) -> list[dict]:
            async with http.get(f"{sim.rest_url}{path}", params={"market_id": m, **params}) as r:
                body = await r.json()
                assert r.status == 200 and body["success"] is True and body["error"] == ""
                return body["result"]

        assert [t["id"] for t in await page("/markets/trades")] == truth[::-1][:100]  # DESC, 100 by default
        desc = [t["id"] for p in range(13) for t in await page("/markets/trades", p_limit="100", p_page=str(p))]
        assert desc == truth[::-1][:1100]  # only the last 1100 are retained: pages 11 and 12 are empty
        asc = await page("/trades", p_limit="5000", p_order="ASC")  # the doc's path; p_limit is capped at 1000
        assert [t["id"] for t in asc] == truth[-1100:][:1000]
        assert set(asc[0]) >= {"id", "market_id", "price", "size", "taker_side", "timestamp", "liquidation"}
        async with http.get(f"{sim.rest_url}/markets/trades", params={"market_id": "NOPE-USD"}) as r:
            assert r.status == 400 and (await r.json())["success"] is False
