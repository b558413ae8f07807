"""Drift DLOB wire messages, built the way the TypeScript server builds them.

- Envelope: ``{"channel": <redis channel>, "data": "<JSON string>"}`` (data is stringified twice).
- Grouped orderbook levels are JSON numbers (``parseFloat`` of BN strings) in integer precision units.
- REST ``/l2`` levels are strings (``l2WithBNToStrings``).
- FillEvents carry human floats from ``convertToNumber`` (JS ``Number`` text), never integer units.
"""

from __future__ import annotations

import json
from decimal import Decimal

from simulators.drift.markets import PRICE_PRECISION_EXP
from simulators.drift.truth import BookState, FillTruth

HEARTBEAT = '{"channel":"heartbeat"}'


def js_number(x: float) -> str:
    """``String(x)`` in JavaScript: shortest round-trip digits, exponent form outside [1e-7, 1e21)."""
    if x == 0:
        return "0"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    d = Decimal(repr(x))
    if 1e-7 <= abs(x) < 1e21:
        return format(d, "f")
    sign, digits, exp = d.normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    e = exp + len(text) - 1
    mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{'-' if sign else ''}{mant}e{'+' if e >= 0 else '-'}{abs(e)}"


def convert_to_number(value: int, exp: int) -> float:
    """The SDK's ``convertToNumber(bn, precision)``: ``div.toNumber() + mod.toNumber() / precision``."""
    precision = 10**exp
    q, r = divmod(abs(value), precision)
    out = float(q) + float(r) / float(precision)
    return -out if value < 0 else out


def envelope(channel: str, data_text: str) -> str:
    return json.dumps({"channel": channel, "data": data_text}, separators=(",", ":"))


def _levels_numeric(levels: list[tuple[int, int]]) -> list[dict[str, object]]:
    return [{"size": s, "price": p, "sources": {"dlob": s}} for p, s in levels]


def _levels_text(levels: list[tuple[int, int]]) -> list[dict[str, object]]:
    return [{"price": str(p), "size": str(s), "sources": {"dlob": str(s)}} for p, s in levels]


def _book_fields(book: BookState) -> dict[str, object]:
    best_bid = book.bids[0][0] if book.bids else 0
    best_ask = book.asks[0][0] if book.asks else 0
    mid = book.mark
    oracle = book.oracle or mid
    return {
        "marketName": book.market.name,
        "marketType": book.market.market_type,
        "marketIndex": book.market.index,
        "ts": book.ts_ms,
        "slot": book.slot,
        "markPrice": str(mid),
        "bestBidPrice": str(best_bid),
        "bestAskPrice": str(best_ask),
        "spreadPct": str((best_ask - best_bid) * 10**6 // max(mid, 1)),
        "spreadQuote": str(best_ask - best_bid),
        "oracle": oracle,
        "oracleData": {"price": str(oracle), "slot": str(book.slot - 2), "confidence": "12000",
                       "hasSufficientNumberOfDataPoints": True, "twap": str(mid), "twapConfidence": "50000"},
        "marketSlot": book.slot - 1,
    }


def grouped_book_data(book: BookState) -> str:
    data = {"bids": _levels_numeric(book.bids), "asks": _levels_numeric(book.asks), **_book_fields(book)}
    return json.dumps(data, separators=(",", ":"))


def grouped_book_message(book: BookState) -> str:
    return envelope(book.market.book_channel, grouped_book_data(book))


def rest_l2(book: BookState, depth: int) -> dict[str, object]:
    return {"bids": _levels_text(book.bids[:depth]), "asks": _levels_text(book.asks[:depth]), **_book_fields(book)}


def fill_event_data(fill: FillTruth) -> str:
    """``JSON.stringify(FillEvent)`` with human floats, as tradesPublisher sends it."""
    m = fill.market
    bexp = m.base_precision_exp
    base = js_number(convert_to_number(fill.base_amount, bexp))
    quote = js_number(convert_to_number(fill.quote_amount, PRICE_PRECISION_EXP))
    fee = js_number(convert_to_number(fill.quote_amount // 2000, PRICE_PRECISION_EXP))
    parts: list[str] = [
        f'"ts":{fill.ts_s}',
        f'"marketIndex":{m.index}',
        f'"marketType":{json.dumps(m.market_type)}',
        '"filler":"FiLLer1111111111111111111111111111111111111"',
        f'"takerFee":{fee}',
        '"makerFee":-0.0001',
        '"quoteAssetAmountSurplus":0',
        f'"baseAssetAmountFilled":{base}',
        f'"quoteAssetAmountFilled":{quote}',
    ]
    if fill.taker_direction is not None:
        parts += [
            '"taker":"TaKer11111111111111111111111111111111111111"',
            f'"takerOrderId":{fill.fill_record_id * 7}',
            f'"takerOrderDirection":"{fill.taker_direction}"',
            f'"takerOrderBaseAssetAmount":{base}',
            f'"takerOrderCumulativeBaseAssetAmountFilled":{base}',
            f'"takerOrderCumulativeQuoteAssetAmountFilled":{quote}',
        ]
    parts += [
        f'"oraclePrice":{js_number(convert_to_number(fill.price_units, PRICE_PRECISION_EXP))}',
        f'"txSig":"{fill.tx_sig}"',
        f'"slot":{fill.slot}',
        f'"fillRecordId":{fill.fill_record_id}',
        '"action":"fill"',
        f'"actionExplanation":"{"orderFilledWithMatch" if fill.taker_direction else "orderFilledWithAmm"}"',
        '"referrerReward":0',
        '"bitFlags":0',
    ]
    return "{" + ",".join(parts) + "}"


def fill_event_message(fill: FillTruth) -> str:
    return envelope(fill.market.trades_channel, fill_event_data(fill))


def subscribe_ack(channel: str, market: str, market_type: str) -> str:
    return json.dumps({"message": f"Subscribe received for channel: {channel}, market: {market}, "
                                  f"marketType: {market_type}"})


def unsubscribe_ack(channel: str, market: str, market_type: str) -> str:
    return json.dumps({"message": f"Unsubscribe received for channel: {channel}, market: {market}, "
                                  f"marketType: {market_type}"})


def subscribe_error(channel: str) -> str:
    return json.dumps({"channel": channel, "error": "Error subscribing to channel"})
