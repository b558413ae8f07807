"""EventEmitter + BookSynchronizer into the real Kafka and registry, read back with the shared helpers."""

from __future__ import annotations

from decimal import Decimal

from marketpipe.settings import PublisherSettings
from producers.core.book import BookSynchronizer
from producers.core.emitter import EventEmitter
from producers.core.metrics import FeedMetrics
from producers.publisher import KafkaPublisher
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, TICKER, TRADES, VENUE_CANDLES, account_key, market_key
from tests.feedcore.book_replay import replay_book
from tests.feedcore.kafka_reader import end_offsets, read_events

TS = {"exchange_ts": 1_700_000_000_123_456, "receive_ts": 1_700_000_000_200_000}


async def test_emitted_events_land_keyed_exact_and_replayable(
        cluster, registry: ContractRegistry, publisher_settings: PublisherSettings, unique: str) -> None:
    venue, market, account = f"core{unique}", "SOL-USD", f"acct-{unique}"
    topics = [TRADES, BOOK, TICKER, ACCOUNT, VENUE_CANDLES]
    start = await end_offsets(cluster.bootstrap, topics)
    publisher = KafkaPublisher(publisher_settings)
    await publisher.start()
    metrics = FeedMetrics(venue)
    emitter = EventEmitter(venue, registry, publisher, metrics)
    await emitter.prepare()
    try:
        await emitter.trade(market, "SOL-USD", trade_id="SOL-USD-1", price="25.4630", size="0.061", side="SELL", **TS)
        await emitter.trade(market, "SOL-USD", trade_id="SOL-USD-1", price="25.4630", size="0.061", side="SELL", **TS)
        await emitter.ticker(market, "SOL-USD", best_bid="25.4944", best_ask="25.4949",
                             funding_rate="0.0027396000000000000001", **TS)
        await emitter.account(account, kind="BALANCE", market="*", venue_symbol="*",
                              payload={"asset": "USDT", "total": "26820.952219892065306000000000000000016",
                                       "available": None, "locked": None}, **TS)
        await emitter.candle(market, "SOL-USD", interval="1m", start_ts=1, end_ts=60_000_001, open="1", high="2",
                             low="0.5", close="1.5", volume="10", closed=True, **TS)
        sync = BookSynchronizer(venue, market, "SOL-USD", publish=emitter.book, metrics=metrics)
        await sync.snapshot([["25.3353", "103.61"], ["25.4626", "611.76"]], [["25.4631", "73.63"]], sequence=7, **TS)
        await sync.delta([["25.4626", "0"]], [["25.4640", "1.5"]], sequence=8, **TS)
        await sync.reset("reconnect")
        await sync.snapshot([["25.40", "1"]], [["25.50", "2"]], sequence=20, **TS)
        await publisher.flush()
    finally:
        await publisher.stop()

    key = {market_key(venue, market)}
    trades = await read_events(cluster.bootstrap, registry, TRADES, start[TRADES.name], keys=key)
    assert len(trades) == 2 and trades[0]["event_id"] == trades[1]["event_id"]  # same venue trade, same id
    assert trades[0]["price"] == "25.4630" and trades[0]["side"] == "SELL" and trades[0]["_key"] == key.pop()
    tickers = await read_events(cluster.bootstrap, registry, TICKER, start[TICKER.name],
                                keys={market_key(venue, market)})
    assert tickers[0]["funding_rate"] == "0.0027396000000000000001" and tickers[0]["last_price"] is None
    acct = await read_events(cluster.bootstrap, registry, ACCOUNT, start[ACCOUNT.name],
                             keys={account_key(venue, account)})
    assert acct[0]["balance"]["total"] == "26820.952219892065306000000000000000016" and acct[0]["kind"] == "BALANCE"
    candles = await read_events(cluster.bootstrap, registry, VENUE_CANDLES, start[VENUE_CANDLES.name],
                                keys={market_key(venue, market)})
    assert candles[0]["close"] == "1.5" and candles[0]["closed"] is True
    books = await read_events(cluster.bootstrap, registry, BOOK, start[BOOK.name], keys={market_key(venue, market)})
    assert [b["kind"] for b in books] == ["SNAPSHOT", "DELTA", "RESET", "SNAPSHOT"]
    assert books[2]["reason"] == "reconnect"
    assert len({b["_partition"] for b in books}) == 1  # one key, one partition, in order
    replay = replay_book(books)
    assert replay.problems == [] and replay.in_sync and replay.sequence == 20
    assert replay.bids == {Decimal("25.40"): Decimal(1)} and replay.asks == {Decimal("25.50"): Decimal(2)}
    assert metrics.count("events_out") == 9
