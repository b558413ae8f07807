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
from producers.ccxt.fence import CCXT_VERSION, UPSTREAM, CcxtVersionMismatch, check_ccxt_version, install_item_taps

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
