"""Unit checks of the ccxt producer's pieces that need no network: journal, exactness, symbols, settings."""

from __future__ import annotations

import zlib
from decimal import Decimal

import pytest

from producers.ccxt import CcxtSettings
from producers.ccxt.checksums import kraken_book_checksum, okx_book_checksum
from producers.ccxt.exact import exact_text, safe_exact, to_exact_decimal
from producers.ccxt.exchange import build_exchange
from producers.ccxt.host import TapOverflow, TapQueue
from producers.ccxt.journal import JournaledOrderBook
from producers.ccxt.mapping import order_payload
from producers.ccxt.symbols import normalize_market, normalize_symbol, resolve_symbols
from simulators.kraken import kraken_checksum
from simulators.okx import okx_checksum


def deep_book(levels: int) -> JournaledOrderBook:
    ob = JournaledOrderBook({}, None)
    for i in range(levels):
        ob["bids"].store(f"{100000 - i}.5", "1.000")
        ob["asks"].store(f"{100001 + i}.5", "2.000")
    ob.take_snapshot()
    return ob


def test_journal_reports_only_what_changed_whatever_the_depth():
    ob = deep_book(20_000)
    ob["bids"].store("99999.5", "3.250")  # resize
    ob["asks"].store("100001.5", "0")  # delete
    ob["asks"].store("100000.7", "0.100")  # insert
    ob["bids"].store("1.5", "0")  # delete of an unknown level: not a change
    assert ob.has_changes()
    bids, asks = ob.drain()
    assert bids == [(Decimal("99999.5"), Decimal("3.250"))]
    assert sorted(asks) == [(Decimal("100000.7"), Decimal("0.100")), (Decimal("100001.5"), Decimal(0))]
    assert ob.drain() == ([], []) and not ob.has_changes()
    assert ob["asks"][0] == [Decimal("100000.7"), Decimal("0.100")]  # ccxt still sorts numerically


def test_journal_coalesces_and_records_levels_trimmed_by_depth():
    ob = JournaledOrderBook({}, 3)
    for p in ("10", "9", "8"):
        ob["bids"].store(p, "1")
    ob.take_snapshot()
    ob["bids"].store("11", "1")
    ob["bids"].store("11", "2")  # the last size wins
    ob.limit()  # ccxt trims to depth: 8 falls out of scope
    bids, _ = ob.drain()
    assert sorted(bids) == [(Decimal(8), Decimal(0)), (Decimal(11), Decimal(2))]


def test_reset_in_place_is_a_snapshot():
    ob = deep_book(5)
    assert not ob.was_reset
    ob.reset({"bids": [["1.0", "1"]], "asks": [["2.0", "1"]]})
    assert ob.was_reset
    bids, asks = ob.take_snapshot()
    assert bids == [(Decimal("1.0"), Decimal(1))] and asks == [(Decimal("2.0"), Decimal(1))]


def test_exact_numbers_keep_venue_text():
    assert exact_text("0.00100000") == "0.00100000"
    assert exact_text("1e-7") == "0.0000001"
    assert exact_text(Decimal("0.00000010")) == "0.00000010"
    assert exact_text(None) is None
    assert safe_exact(["65289.20", "0.5"], 0) == "65289.20"
    assert safe_exact({"p": None}, "p", "x") == "x"
    assert to_exact_decimal(0.1) == Decimal("0.1")  # shortest repr, not 0.1000000000000000055...
    with pytest.raises(ValueError):
        exact_text("abc")


def test_okx_checksum_matches_the_documented_vectors_and_the_simulator():
    ob = JournaledOrderBook({}, None)
    for p, s in (("3366.1", "7"), ("3366", "6")):
        ob["bids"].store(p, s)
    for p, s in (("3366.8", "9"), ("3368", "8")):
        ob["asks"].store(p, s)
    assert okx_book_checksum(ob) == -1881014294
    assert okx_checksum([["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"], ["3368", "8"]]) == -1881014294


def test_symbols_are_normalized_and_resolved():
    spot = {"symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "id": "BTCUSDT", "spot": True}
    perp = {"symbol": "SOL/USDT:USDT", "base": "SOL", "quote": "USDT", "id": "SOLUSDT", "swap": True}
    assert normalize_market(spot) == "BTC-USDT" and normalize_market(perp) == "SOL-USDT-PERP"
    assert normalize_symbol("BTC/USDT:USDT") == "BTC-USDT-PERP" and normalize_symbol("eth/usd") == "ETH-USD"
    markets = {"BTC/USDT": spot, "SOL/USDT:USDT": perp}
    assert resolve_symbols(markets, ["BTC-USDT", "SOL/USDT:USDT", "sol-usdt-perp"]) == \
        ["BTC/USDT", "SOL/USDT:USDT", "SOL/USDT:USDT"]
    with pytest.raises(ValueError, match="not listed"):
        resolve_symbols(markets, ["DOGE-USDT"])


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("MARKETPIPE_EXCHANGE", "okx")
    monkeypatch.setenv("MARKETPIPE_MARKETS", "BTC/USDT,ETH/USDT")
    monkeypatch.setenv("MARKETPIPE_CHANNELS", "book,trades")
    monkeypatch.setenv("MARKETPIPE_OHLCV_INTERVALS", "1m,5m")
    monkeypatch.setenv("MARKETPIPE_URL_OVERRIDES", '{"api.ws": "ws://127.0.0.1:1/ws/v5"}')
    monkeypatch.setenv("MARKETPIPE_API_KEY", "k")
    monkeypatch.setenv("MARKETPIPE_API_SECRET", "s")
    s = CcxtSettings()
    assert (s.exchange, s.markets, s.channels, s.ohlcv_intervals) == \
        ("okx", ["BTC/USDT", "ETH/USDT"], ["book", "trades"], ["1m", "5m"])
    assert s.effective_private_channels() == ["balance", "orders", "fills"]
    monkeypatch.setenv("MARKETPIPE_CHANNELS", "book,orderbook")
    with pytest.raises(ValueError, match="unknown channels"):
        CcxtSettings()


def test_kraken_checksum_hashes_the_wire_digits_asks_first():
    """Kraken v2 doc: "45285.2" -> "452852", "0.00100000" -> "100000"; asks low to high, then bids high to low."""
    asks = [("45285.2", "0.00100000"), ("45286.0", "1.50000000")]
    bids = [("45283.5", "0.10000000"), ("45280.0", "0.00000500")]
    ob = JournaledOrderBook({}, None)
    for p, q in asks:
        ob["asks"].store(p, q)
    for p, q in bids:
        ob["bids"].store(p, q)
    expected = zlib.crc32(b"452852100000" b"452860150000000" b"45283510000000" b"452800500")
    assert kraken_book_checksum(ob) == expected == kraken_checksum(bids, asks)
    # the same values as floats lose the trailing zeros Kraken hashes: a float-built book cannot match
    ob_float = JournaledOrderBook({}, None)
    for p, q in asks:
        ob_float["asks"].store(float(p), float(q))
    for p, q in bids:
        ob_float["bids"].store(float(p), float(q))
    assert kraken_book_checksum(ob_float) != expected


async def test_kraken_sockets_decode_json_numbers_as_their_text():
    s = CcxtSettings(exchange="kraken", markets=["BTC/USD"], rest_base_override="http://127.0.0.1:9",
                     url_overrides={"api.ws.publicV2": "ws://127.0.0.1:9/v2"})
    ex = build_exchange(s)
    try:
        client = ex.client(ex.urls["api"]["ws"]["publicV2"])
        got: list[object] = []
        client.on_message_callback = lambda _client, message: got.append(message)
        client.handle_text_or_binary_message('{"data":[{"price":62807.0,"qty":0.50930100,"trade_id":4665906}]}')
        assert got == [{"data": [{"price": "62807.0", "qty": "0.50930100", "trade_id": 4665906}]}]
    finally:
        await ex.close()


async def test_build_exchange_points_ccxt_at_overrides_and_keeps_text():
    s = CcxtSettings(exchange="binance", rest_base_override="http://127.0.0.1:9", markets=["BTC/USDT"],
                     url_overrides={"api.ws.spot": "ws://127.0.0.1:9/ws"})
    ex = build_exchange(s)
    try:
        assert ex.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
        assert ex.urls["api"]["ws"]["spot"] == "ws://127.0.0.1:9/ws"
        assert ex.number is str and ex.parse_number("0.10") == "0.10"
        assert isinstance(ex.order_book({}, 10), JournaledOrderBook)
    finally:
        await ex.close()


def test_order_status_mapping():
    base = {"id": "1", "side": "buy", "type": "limit", "price": "10.0", "amount": "2.0", "remaining": "2.0",
            "info": {"state": "live"}}
    assert order_payload({**base, "status": "open", "filled": "0.0"})["status"] == "NEW"
    assert order_payload({**base, "status": "open", "filled": "0.5"})["status"] == "PARTIALLY_FILLED"
    assert order_payload({**base, "status": "closed", "filled": "2.0"})["status"] == "FILLED"
    assert order_payload({**base, "status": "canceled", "filled": "0"})["venue_status"] == "live"
    with pytest.raises(ValueError):
        order_payload({**base, "side": "hold", "status": "open", "filled": "0"})


def test_books_ccxt_keeps_in_counted_sides_are_diffed():
    from ccxt.async_support.base.ws.order_book import CountedOrderBook

    from producers.ccxt.journal import DiffedBook

    src = CountedOrderBook({}, None)
    src["bids"].store(Decimal("10.0"), Decimal("1"), 2)
    src["asks"].store(Decimal("11.0"), Decimal("2"), 1)
    diffed = DiffedBook()
    mirror = diffed.observe(src)
    assert mirror.was_reset
    assert mirror.take_snapshot() == ([(Decimal("10.0"), Decimal(1))], [(Decimal("11.0"), Decimal(2))])
    src["bids"].store(Decimal("10.0"), Decimal("0"), 0)
    src["bids"].store(Decimal("9.5"), Decimal("3"), 1)
    assert diffed.observe(src) is mirror
    bids, asks = mirror.drain()
    assert sorted(bids) == [(Decimal("9.5"), Decimal(3)), (Decimal("10.0"), Decimal(0))] and asks == []


def test_a_full_tap_queue_refuses_items_into_one_overflow_record_in_their_place():
    q = TapQueue(limit=3)
    for i in range(1, 8):  # 3 fit, 4 refused
        q.put({"id": i, "timestamp": 1000 + i})
    assert len(q.items) == 4 and q.refused == 4
    *kept, lost = q.items
    assert [t["id"] for t in kept] == [1, 2, 3]  # type: ignore[index]
    assert isinstance(lost, TapOverflow)
    assert (lost.count, lost.first_ms, lost.last_ms, lost.first_id, lost.last_id) == (4, 1004, 1007, "4", "7")
    q.items.popleft()
    q.items.popleft()  # room again: new items queue after the overflow record, which keeps its place
    q.put({"id": 8, "timestamp": 1008})
    q.put({"id": 9, "timestamp": 1009})  # full again (3 items + the record): a second record after item 8
    assert [getattr(x, "count", None) or x["id"] for x in q.items] == [3, 4, 8, 1]  # type: ignore[index]
    assert q.refused == 5
