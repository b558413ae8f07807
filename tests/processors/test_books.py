"""Order books materialized by a real worker from events in the real Kafka."""

from __future__ import annotations

from decimal import Decimal

from marketpipe.infra.stack import Cluster
from schemas.registry import ContractRegistry
from schemas.topics import BOOK, BOOK_TOP, market_key
from tests.processors.harness import DerivedReader, EventWriter, Worker, get_json, poll_json


class TruthBook:
    """The reference book the venue would show (absolute sizes, "0" deletes)."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def snapshot(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self.bids, self.asks = dict(bids), dict(asks)

    def delta(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, s in levels:
                if Decimal(s) == 0:
                    side.pop(p, None)
                else:
                    side[p] = s

    def levels(self) -> dict[str, list[dict[str, str]]]:
        order = lambda side, rev: [{"price": p, "size": side[p]}  # noqa: E731
                                   for p in sorted(side, key=Decimal, reverse=rev)]
        return {"bids": order(self.bids, True), "asks": order(self.asks, False)}


async def test_book_equals_truth_after_gap_reset_and_new_snapshot(
        ready_worker: Worker, writer: EventWriter, cluster: Cluster, registry: ContractRegistry, unique: str,
        topic_prefix: str) -> None:
    venue, market = f"tb{unique}", "BTC-USD"
    url = f"{ready_worker.url}/books/{venue}/{market}"
    truth = TruthBook()
    keys = {market_key(venue, market)}
    async with DerivedReader(cluster.bootstrap, BOOK_TOP, registry, keys, topic_prefix=topic_prefix) as tops:
        bids, asks = [("100.0", "1"), ("99.5", "2"), ("99.0", "3")], [("100.5", "1"), ("101.0", "2"), ("101.5", "4")]
        await writer.book(venue, market, "SNAPSHOT", seq=100, bids=bids, asks=asks)
        truth.snapshot(bids, asks)
        await writer.book(venue, market, "DELTA", seq=101, prev=100, bids=[("100.0", "1.5")], asks=[("100.5", "0")])
        truth.delta([("100.0", "1.5")], [("100.5", "0")])
        # a re-sent (stale) delta must be dropped
        await writer.book(venue, market, "DELTA", seq=101, prev=100, bids=[("100.0", "9")])
        await writer.book(venue, market, "DELTA", seq=102, prev=101, asks=[("100.75", "0.5")])
        truth.delta([], [("100.75", "0.5")])
        await writer.flush()
        body = await poll_json(url, lambda st, b: st == 200 and b["sequence"] == 102)
        assert {"bids": body["bids"], "asks": body["asks"]} == truth.levels()
        assert body["in_sync"] is True

        # gap: 103 never arrives; the processor must stop trusting the book
        await writer.book(venue, market, "DELTA", seq=104, prev=103, bids=[("99.9", "7")])
        await writer.book(venue, market, "DELTA", seq=105, prev=104, bids=[("99.8", "7")])
        await writer.flush()
        body = await poll_json(url, lambda st, b: st == 200 and not b["in_sync"])
        assert body["bids"] == [] and body["asks"] == []
        top = await poll_json(url + "/top", lambda st, b: st == 200)
        assert top["in_sync"] is False and top["best_bid"] is None

        await writer.book(venue, market, "RESET", reason="gap")
        bids, asks = [("98", "1"), ("97.5", "5")], [("98.5", "2"), ("99", "1")]
        await writer.book(venue, market, "SNAPSHOT", seq=200, bids=bids, asks=asks)
        truth.snapshot(bids, asks)
        await writer.book(venue, market, "DELTA", seq=201, prev=200, bids=[("98.25", "1")], asks=[("99", "0")])
        truth.delta([("98.25", "1")], [("99", "0")])
        await writer.book(venue, market, "DELTA", seq=202, prev=201, bids=[("97.5", "0.00")], asks=[("98.5", "2.50")])
        truth.delta([("97.5", "0.00")], [("98.5", "2.50")])
        await writer.flush()

        body = await poll_json(url, lambda st, b: st == 200 and b["sequence"] == 202)
        assert body["in_sync"] is True and body["crossed"] is False
        assert {"bids": body["bids"], "asks": body["asks"]} == truth.levels()
        assert truth.levels()["asks"] == [{"price": "98.5", "size": "2.50"}]  # exact venue text kept

        _, depth1 = await get_json(url + "?depth=1")
        assert depth1["bids"] == [{"price": "98.25", "size": "1"}] and depth1["asks"] == [{"price": "98.5",
                                                                                            "size": "2.50"}]
        _, top = await get_json(url + "/top")
        assert (top["best_bid"], top["best_bid_size"], top["best_ask"], top["best_ask_size"]) == (
            "98.25", "1", "98.5", "2.50")
        assert top["spread"] == "0.25" and top["mid"] == "98.375" and top["in_sync"] is True

        # the derived topic told consumers about the gap and ends with the true top of book
        records = await tops.read_until(lambda rs: any(r["sequence"] == 202 and r["in_sync"] for r in rs))
        assert any(not r["in_sync"] for r in records)
        last = records[-1]
        assert last["sequence"] == 202 and last["best_bid"] == "98.25" and last["best_ask"] == "98.5"
        assert last["bids"] == truth.levels()["bids"][:3] and last["asks"] == truth.levels()["asks"][:3]
        assert len({r["event_id"] for r in records}) == len(records)


async def test_crossed_book_is_flagged(ready_worker: Worker, writer: EventWriter, cluster: Cluster,
                                      registry: ContractRegistry, unique: str, topic_prefix: str) -> None:
    venue, market = f"tx{unique}", "ETH-USD"
    keys = {market_key(venue, market)}
    async with DerivedReader(cluster.bootstrap, BOOK_TOP, registry, keys, topic_prefix=topic_prefix) as tops:
        await writer.book(venue, market, "SNAPSHOT", seq=1, bids=[("100", "1")], asks=[("101", "1")])
        await writer.book(venue, market, "DELTA", seq=2, prev=1, bids=[("101.5", "1")])
        await writer.flush()
        top = await poll_json(f"{ready_worker.url}/books/{venue}/{market}/top",
                              lambda st, b: st == 200 and b["sequence"] == 2)
        assert top["crossed"] is True and top["best_bid"] == "101.5" and top["best_ask"] == "101"
        records = await tops.read_until(lambda rs: any(r["sequence"] == 2 for r in rs))
        assert records[-1]["crossed"] is True


async def test_malformed_events_are_counted_and_skipped(ready_worker: Worker, writer: EventWriter,
                                                        unique: str) -> None:
    venue, market = f"tm{unique}", "SOL-USD"

    async def malformed() -> float:
        _, text = await get_json_text(f"{ready_worker.url}/metrics")
        line = next(x for x in text.splitlines() if x.startswith('marketpipe_processor_malformed_total{stream="book"}'))
        return float(line.split()[-1])

    before = await malformed()
    await writer.send(BOOK, market_key(venue, market), b"\x00not avro at all")
    await writer.send(BOOK, market_key(venue, "OTHER-USD"), b"")  # empty value
    await writer.send(BOOK, market_key(venue, market),
                      writer.registry.framer("book").encode({
                          "event_id": "x", "venue": venue, "market": "NOT-THIS", "venue_symbol": "x",
                          "exchange_ts": 1, "receive_ts": 1, "kind": "SNAPSHOT", "bids": [], "asks": []}))
    await writer.book(venue, market, "SNAPSHOT", seq=5, bids=[("20.5", "abc")])  # size not decimal text
    await writer.book(venue, market, "SNAPSHOT", seq=7, bids=[("20.5", "3")], asks=[("21", "1")])
    await writer.flush()
    body = await poll_json(f"{ready_worker.url}/books/{venue}/{market}", lambda st, b: st == 200)
    assert body["sequence"] == 7 and body["bids"] == [{"price": "20.5", "size": "3"}]
    assert await malformed() - before >= 4


async def get_json_text(url: str) -> tuple[int, str]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.text()
