"""One valid record per contract (and every account kind), with exact decimal text."""

from __future__ import annotations

from typing import Any

TS = 1_732_000_000_123_456


def base(event_id: str, market: str = "BTC-USD") -> dict[str, Any]:
    return {"event_id": event_id, "venue": "test", "market": market, "venue_symbol": market.replace("-", ""),
            "exchange_ts": TS, "receive_ts": TS + 250}


def samples() -> dict[str, list[dict[str, Any]]]:
    lvl = [{"price": "65289.20", "size": "0.00000001"}, {"price": "65289.1", "size": "123456789.123456789"}]
    order = {"order_id": "340282366920938463463374607431768211455", "client_order_id": None, "side": "SELL",
             "order_type": "limit", "status": "PARTIALLY_FILLED", "price": "0.000001", "size": "10",
             "filled_size": "2.5", "remaining_size": "7.5", "average_price": None, "venue_status": "open"}
    return {
        "trade": [{**base("t1"), "trade_id": "42", "price": "0.1", "size": "3.0000", "side": "SELL", "liquidation": True,
                   "gap": None},
                  {**base("t2"), "trade_id": "gap:41:45", "price": "0", "size": "0", "side": "UNKNOWN",
                   "liquidation": None, "gap": {"reason": "id-gap", "after_id": "41", "before_id": "45",
                                                "missing_count": 3, "from_ts": TS - 5, "to_ts": TS}}],
        "book": [
            {**base("b1"), "kind": "SNAPSHOT", "sequence": 9097270, "prev_sequence": None, "checksum": 2232194968,
             "bids": lvl, "asks": lvl[:1], "reason": None},
            {**base("b2"), "kind": "DELTA", "sequence": 9097271, "prev_sequence": 9097270, "checksum": -855196043,
             "bids": [{"price": "65289.20", "size": "0"}], "asks": [], "reason": None},
            {**base("b3"), "kind": "RESET", "sequence": None, "prev_sequence": None, "checksum": None,
             "bids": [], "asks": [], "reason": "gap 9097271 -> 9097275"},
        ],
        "ticker": [{**base("k1"), "best_bid": "1.5", "best_bid_size": None, "best_ask": "1.6", "best_ask_size": "3",
                    "last_price": "1.55", "mark_price": "1.551", "index_price": None, "funding_rate": "0.0000125",
                    "open_interest": None, "volume_24h": "1000000.5"}],
        "candle": [{**base("c1"), "interval": "1m", "start_ts": TS, "end_ts": TS + 60_000_000, "open": "1",
                    "high": "2", "low": "0.5", "close": "1.5", "volume": "100", "quote_volume": None,
                    "trade_count": 7, "closed": True}],
        "account": [
            {**base("a1", "*"), "account": "13", "kind": "BALANCE",
             "balance": {"asset": "USD", "total": "26820.952219892065306000000000000000016", "available": None,
                         "locked": "0"}, "order": None, "fill": None, "position": None, "gap": None},
            {**base("a2"), "account": "13", "kind": "ORDER", "balance": None, "order": order, "fill": None,
             "position": None, "gap": None},
            {**base("a3"), "account": "13", "kind": "FILL", "balance": None, "order": None, "position": None, "gap": None,
             "fill": {"fill_id": "f1", "order_id": "o1", "side": "BUY", "price": "65289.2", "size": "0.5",
                      "fee": "-0.01", "fee_asset": "USD", "is_maker": True}},
            {**base("a4"), "account": "13", "kind": "POSITION", "balance": None, "order": None, "fill": None, "gap": None,
             "position": {"side": "SHORT", "size": "1.25", "entry_price": "65000", "mark_price": None,
                          "liquidation_price": None, "unrealized_pnl": "-12.5", "margin": None}},
            {**base("a5"), "account": "13", "kind": "FILL", "balance": None, "order": None, "fill": None,
             "position": None, "gap": {"reason": "reconnect", "after_id": None, "before_id": None,
                                       "missing_count": None, "from_ts": TS - 10, "to_ts": TS}},
        ],
        "book_top": [{**base("bt1"), "in_sync": True, "crossed": False, "sequence": 5, "best_bid": "1", "best_bid_size": "2",
                      "best_ask": "1.1", "best_ask_size": "3", "spread": "0.1", "mid": "1.05", "bids": lvl, "asks": []}],
        "ohlcv": [{**base("o1"), "interval": "5m", "start_ts": TS, "end_ts": TS + 300_000_000, "open": "1", "high": "2",
                   "low": "0.5", "close": "1.5", "volume": "10", "quote_volume": "15", "vwap": "1.5",
                   "buy_volume": "6", "sell_volume": "4", "trade_count": 3, "revision": 1,
                   "gap": False}],
    }
