"""RabbitX normalization units: partial-diff merging, key spellings, order status, fills once, settings."""

from __future__ import annotations

import pytest

from producers.rabbitx import RabbitXSettings
from producers.rabbitx.account import AccountTracker
from producers.rabbitx.normalize import merge_partial, order_status, ticker_fields

SNAPSHOT = {
    "id": 7, "balance": "100.5", "withdrawalable_balance": "90", "last_update": 1677226216475971,
    "orders": [{"id": "BTC-USD@1", "market_id": "BTC-USD", "side": "long", "type": "limit", "price": "65000.5",
                "initial_size": "0.5", "remaining_size": "0.5", "total_filled_size": "0", "status": "placed"}],
    "positions": [{"id": "pos-BTC-USD-tr-7", "market_id": "BTC-USD", "side": "long", "size": "0",
                   "avg_entry_price": "0", "fair_price": "65000"}],
    "fills": [],
}


def test_market_diff_merge_keeps_unchanged_fields() -> None:
    state = {"best_bid": "1.0", "best_ask": "1.2", "fair_price": "1.1"}
    merge_partial(state, {"best_bid": "1.05", "best_ask": "", "fair_price": None, "index_price": "1.08"})
    assert state == {"best_bid": "1.05", "best_ask": "1.2", "fair_price": "1.1", "index_price": "1.08"}
    assert ticker_fields(state)["mark_price"] == "1.1" and ticker_fields(state)["last_price"] is None


@pytest.mark.parametrize(("status", "filled", "remaining", "expected"), [
    ("placed", "0", "1", "NEW"), ("open", "0.5", "0.5", "PARTIALLY_FILLED"), ("closed", "1", "0", "FILLED"),
    ("closed", "0.2", "0.8", "CANCELLED"), ("canceled", "0", "1", "CANCELLED"), ("rejected", "0", "1", "REJECTED"),
    ("amending", "0", "1", "UNKNOWN"), ("processing", "0", "1", "NEW"),
])
def test_order_status_mapping(status: str, filled: str, remaining: str, expected: str) -> None:
    from decimal import Decimal

    assert order_status(status, Decimal(filled), Decimal(remaining)) == expected


def test_account_snapshot_then_partial_updates() -> None:
    acct = AccountTracker("7", "USDT")
    changes = acct.apply(SNAPSHOT, snapshot=True)
    assert {c.kind for c in changes} == {"BALANCE", "ORDER", "POSITION"}
    bal = next(c for c in changes if c.kind == "BALANCE")
    assert bal.payload == {"asset": "USDT", "total": "100.5", "available": "90", "locked": None}
    for c in changes:
        acct.mark_published(c)
    # a fill with the venue's alternative spellings, seconds timestamp, partial order and position diffs
    update = {"id": 7, "fills": [{"id": "f1", "order_id": "BTC-USD@1", "marketID": "BTC-USD", "price": "65000.5",
                                  "size": "0.2", "side": "long", "isMaker": True, "fee": "0.01",
                                  "timestamp": 1665313199}],
              "orders": [{"id": "BTC-USD@1", "remaining_size": "0.3", "total_filled_size": "0.2", "status": "open",
                          "price": "", "side": ""}],
              "positions": [{"id": "pos-BTC-USD-tr-7", "size": "0.2", "avg_entr_price": "65000.5",
                             "liquidation_price": ""}]}
    changes = acct.apply(update, snapshot=False)
    kinds = {c.kind: c for c in changes}
    assert set(kinds) == {"FILL", "ORDER", "POSITION"}  # balance unchanged: not republished
    fill = kinds["FILL"]
    assert fill.payload["is_maker"] is True and fill.market == "BTC-USD" and fill.exchange_ts == 1665313199_000000
    order = kinds["ORDER"].payload
    assert (order["status"], order["price"], order["side"], order["filled_size"]) == (
        "PARTIALLY_FILLED", "65000.5", "BUY", "0.2")
    pos = kinds["POSITION"].payload
    assert (pos["side"], pos["size"], pos["entry_price"], pos["mark_price"]) == ("LONG", "0.2", "65000.5", "65000")
    for c in changes:
        acct.mark_published(c)
    # the same fill again (e.g. in a resubscribe snapshot) is not published twice
    again = acct.apply({**SNAPSHOT, "fills": update["fills"], "orders": [], "positions": []}, snapshot=True)
    assert [c.kind for c in again] == []


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPIPE_MARKETS", "BTC-USD, ETH-USD")
    monkeypatch.setenv("MARKETPIPE_ACCOUNT_ID", "13579")
    monkeypatch.setenv("MARKETPIPE_REFRESH_TOKEN", "r")
    monkeypatch.setenv("MARKETPIPE_BOOK_RESYNC", "rest")
    s = RabbitXSettings()
    assert s.markets == ["BTC-USD", "ETH-USD"] and s.account_id == "13579" and s.book_resync == "rest"
    assert s.refresh_token is not None and s.refresh_token.get_secret_value() == "r"
    assert s.ws_url == "wss://api.prod.rabbitx.io/ws"
