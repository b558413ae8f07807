"""Binance combined streams (``/stream?streams=a/b``, or ``/stream`` + SUBSCRIBE): every event arrives wrapped
as ``{"stream": name, "data": payload}`` with the payload byte for byte what a raw-stream socket gets, and
only for the streams the socket asked for. In-process simulator, no broker needed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from simulators.binance import BinanceSimulator, MarketModel

STREAMS = ("btcusdt@depth@100ms", "btcusdt@aggTrade")


async def receive(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[str]:
    out = []
    while len(out) < n:
        msg = await asyncio.wait_for(ws.receive(), 30)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append(msg.data)
    return out


async def wait_subscribed(sim: BinanceSimulator, n: int) -> None:
    async with asyncio.timeout(30):
        while not all(sim.subscribers(s) >= n for s in STREAMS):
            await asyncio.sleep(0.01)


async def test_combined_streams_wrap_the_raw_payload_unchanged() -> None:
    sim = BinanceSimulator([MarketModel("BTCUSDT", "BTC", "USDT", seed=5), MarketModel("ETHUSDT", "ETH", "USDT",
                                                                                        seed=6)])
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"{sim.ws_url}/0") as raw, \
                http.ws_connect(f"{sim.rest_url}/stream?streams={'/'.join(STREAMS)}") as combined, \
                http.ws_connect(f"{sim.rest_url}/stream") as subscribed:
            await raw.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": list(STREAMS), "id": 1}).decode())
            assert orjson.loads((await receive(raw, 1))[0]) == {"result": None, "id": 1}
            await subscribed.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": [STREAMS[1]],
                                                    "id": 7}).decode())
            assert orjson.loads((await receive(subscribed, 1))[0]) == {"result": None, "id": 7}
            await wait_subscribed(sim, 2)
            frames = await sim.burst(40)  # both markets; only BTCUSDT is subscribed here
            trades = len(sim.agg_trades["BTCUSDT"])
            raw_msgs = await receive(raw, 1)
            while True:  # drain what the raw socket got (the burst is over: everything is queued already)
                try:
                    raw_msgs += await asyncio.wait_for(receive(raw, 1), 0.5)
                except TimeoutError:
                    break
            btc_frames = len(raw_msgs)
            assert frames > btc_frames > trades > 0
            wrapped = await receive(combined, btc_frames)
            for raw_text, text in zip(raw_msgs, wrapped, strict=True):
                envelope: dict[str, Any] = orjson.loads(text)
                assert set(envelope) == {"stream", "data"}
                payload = orjson.loads(raw_text)
                expected = "btcusdt@aggTrade" if payload["e"] == "aggTrade" else "btcusdt@depth@100ms"
                assert envelope["stream"] == expected and payload["s"] == "BTCUSDT"
                assert text == f'{{"stream":"{expected}","data":{raw_text}}}'  # the payload bytes unchanged
            only_trades = [orjson.loads(t) for t in await receive(subscribed, trades)]
            assert [m["stream"] for m in only_trades] == ["btcusdt@aggTrade"] * trades
            assert [m["data"]["a"] for m in only_trades] == [a.agg_id for a in sim.agg_trades["BTCUSDT"]]
    finally:
        await sim.stop()
