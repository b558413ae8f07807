"""The ccxt fence: the exact version pin, the fingerprints of the upstream code it relies on, the item taps."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from pathlib import Path

import ccxt
import ccxt.pro as ccxtpro
import pytest
from ccxt.async_support.base.ws.cache import ArrayCache, ArrayCacheBySymbolById

from producers.ccxt import CcxtSettings
from producers.ccxt.exchange import build_exchange
from producers.ccxt.fence import (
    CCXT_VERSION,
    UPSTREAM,
    CcxtVersionMismatch,
    cached_iso8601,
    check_ccxt_version,
    install_binance_fast_dispatch,
    install_item_taps,
)

ROOT = Path(__file__).resolve().parents[2]


def fingerprint(path: str) -> str:
    module, owner, name = path.rsplit(".", 2)
    function = getattr(getattr(importlib.import_module(module), owner), name)
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def test_installed_ccxt_is_the_pinned_one():
    assert ccxt.__version__ == CCXT_VERSION
    pin = re.search(r'"ccxt==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin is not None and pin.group(1) == CCXT_VERSION, "pyproject.toml must pin ccxt exactly to CCXT_VERSION"


def test_upstream_functions_the_fence_relies_on_are_unchanged():
    """On a ccxt upgrade this names every replaced/wrapped/relied-on function whose source changed."""
    changed = {path: (expected, fingerprint(path)) for path, expected in UPSTREAM.items()
               if fingerprint(path) != expected}
    assert not changed, "ccxt changed code the fence relies on (re-read each, then update UPSTREAM): " + \
        "; ".join(f"{p} {old} -> {new}" for p, (old, new) in changed.items())


def test_another_ccxt_version_is_refused_with_a_clear_message(monkeypatch):
    with pytest.raises(CcxtVersionMismatch, match=r"needs ccxt==4\.5\.90 exactly, found ccxt 4\.6\.1"):
        check_ccxt_version("4.6.1")
    monkeypatch.setattr(ccxt, "__version__", "4.5.91")
    with pytest.raises(CcxtVersionMismatch, match=r"found ccxt 4\.5\.91.*producers/ccxt/fence\.py"):
        build_exchange(CcxtSettings(exchange="binance", markets=["BTC/USDT"]))


def test_producer_main_exits_2_on_another_ccxt_version(monkeypatch, caplog):
    from producers.ccxt import main

    monkeypatch.setattr(ccxt, "__version__", "5.0.0")
    with caplog.at_level("CRITICAL"):
        assert main(CcxtSettings(exchange="binance", markets=["BTC/USDT"], serve_health=False)) == 2
    assert any("needs ccxt==4.5.90" in r.getMessage() for r in caplog.records)


def test_taps_see_every_item_whatever_the_ring_keeps():
    exchange = ccxtpro.binance()
    trades: list[dict] = []
    fills: list[dict] = []
    orders: list[dict] = []
    install_item_taps(exchange, on_trade=trades.append, on_my_trade=fills.append, on_order=orders.append)

    # binance's handle_trade: a new cache gets one trade appended, then is stored, then appended to
    ring = ArrayCache(5)
    ring.append({"id": "0", "symbol": "BTC/USDT"})
    exchange.trades["BTC/USDT"] = ring
    for i in range(1, 50):
        exchange.trades["BTC/USDT"].append({"id": str(i), "symbol": "BTC/USDT"})
        exchange.trades["BTC/USDT"] = ring  # stored again every message: tapped once
    assert [t["id"] for t in trades] == [str(i) for i in range(50)]
    assert len(ring) == 5  # ccxt's own ring kept only the last five

    exchange.clean_ws_data()  # ccxt resets its caches: the new ones are tapped too
    exchange.trades["ETH/USDT"] = ArrayCache(2)
    exchange.trades["ETH/USDT"].append({"id": "x", "symbol": "ETH/USDT"})
    assert trades[-1]["id"] == "x"

    exchange.myTrades = ArrayCacheBySymbolById(3)
    exchange.orders = ArrayCacheBySymbolById(3)
    for i in range(10):
        exchange.myTrades.append({"id": f"f{i}", "symbol": "BTC/USDT"})
        exchange.orders.append({"id": f"o{i % 4}", "symbol": "BTC/USDT", "status": f"s{i}"})
    assert [f["id"] for f in fills] == [f"f{i}" for i in range(10)]
    assert [(o["id"], o["status"]) for o in orders] == [(f"o{i % 4}", f"s{i}") for i in range(10)]
    cached = exchange.orders.hashmap["BTC/USDT"]["o1"]
    cached["status"] = "mutated later by ccxt"
    assert orders[1]["status"] == "s1"  # the tap handed over a snapshot


def test_cached_iso8601_gives_ccxt_own_text():
    iso = cached_iso8601()
    values = [0, 1, 999, 1000, 59_999, 60_000, 1_700_000_000_123, 1_700_000_000_124, 1_700_000_000_999,
              1_700_000_001_000, 1_700_000_000_500, 1_709_251_199_999, 1_709_251_200_000, 253_402_300_799_999,
              253_402_300_800_000, 8_640_000_000_000_000, 8_640_000_000_000_001, -1, None, 1.5, 1_700_000_000_123.7,
              "1700000000123", True, float("nan")]
    values += list(range(1_733_000_000_000, 1_733_000_000_000 + 5_000, 7))  # repeats within a second, in order
    values += [1_733_000_000_000 - 86_400_000 * d for d in range(0, 4000, 13)]  # going back across days
    for v in values:
        assert iso(v) == ccxt.Exchange.iso8601(v), v


class _Client:
    def __init__(self, subscriptions: dict) -> None:
        self.subscriptions = subscriptions
        self.url = "ws://127.0.0.1/ws/0"


def test_binance_fast_dispatch_sends_each_message_where_ccxt_would():
    """Bare depthUpdate/aggTrade/trade payloads skip ccxt's dispatch; the handler called, with what, is the
    one ccxt's own ``handle_message`` calls, for those and for wrapped or id-carrying messages alike."""
    exchange = ccxtpro.binance()
    calls: list[tuple[str, object]] = []
    exchange.handle_order_book = lambda client, message: calls.append(("book", message))
    exchange.handle_trade = lambda client, message: calls.append(("trade", message))
    exchange.handle_subscription_status = lambda client, message: calls.append(("status", message))
    depth = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 5, "u": 7, "b": [["1.0", "2"]], "a": []}
    agg = {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 9, "p": "1.0", "q": "2", "f": 9, "l": 9, "T": 1, "m": True}
    trade = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 3, "p": "1.0", "q": "2", "T": 1, "m": False}
    messages = [depth, agg, trade, {"stream": "btcusdt@depth@100ms", "data": depth},
                {"stream": "btcusdt@aggTrade", "data": agg}, {"result": None, "id": 1}, {**depth, "id": 4},
                {**depth, "id": 5}]
    client = _Client({"4": {"method": lambda client, message: calls.append(("subscription", message))}})
    for message in messages:
        type(exchange).handle_message(exchange, client, message)
    expected, calls[:] = list(calls), []
    assert [c[0] for c in expected] == ["book", "trade", "trade", "book", "trade", "status", "subscription",
                                           "book"]
    assert install_binance_fast_dispatch(exchange)
    for message in messages:
        exchange.handle_message(client, message)
    assert calls == expected and all(a[1] is b[1] for a, b in zip(calls, expected, strict=True))
    assert not install_binance_fast_dispatch(ccxtpro.okx())
