"""ccxt unified symbols -> marketpipe market ids (BASE-QUOTE[-PERP]); the venue's own id is kept beside."""

from __future__ import annotations

from typing import Any


def normalize_market(market: dict[str, Any]) -> str:
    """BTC/USDT -> BTC-USDT; linear/inverse perpetual swaps -> BTC-USDT-PERP; dated futures keep the expiry."""
    base, quote = str(market["base"]).upper(), str(market["quote"]).upper()
    if market.get("swap"):
        return f"{base}-{quote}-PERP"
    if market.get("future") and market.get("expiryDatetime"):
        return f"{base}-{quote}-{str(market['expiryDatetime'])[:10].replace('-', '')}"
    if market.get("option"):
        return str(market["symbol"]).replace("/", "-").replace(":", "-").upper()
    return f"{base}-{quote}"


def normalize_symbol(symbol: str) -> str:
    """Without market metadata: BTC/USDT -> BTC-USDT, BTC/USDT:USDT -> BTC-USDT-PERP."""
    pair, _, settle = symbol.partition(":")
    market = pair.replace("/", "-").upper()
    return f"{market}-PERP" if settle and "-" not in settle else market


def resolve_symbols(markets: dict[str, dict[str, Any]], wanted: list[str]) -> list[str]:
    """Settings' markets (ccxt symbols or normalized ids) -> ccxt symbols; unknown ones raise ValueError."""
    by_normalized = {normalize_market(m): s for s, m in markets.items()}
    out: list[str] = []
    for w in wanted:
        if w in markets:
            out.append(w)
        elif w.upper() in by_normalized:
            out.append(by_normalized[w.upper()])
        else:
            raise ValueError(f"market {w!r} is not listed by the exchange ({len(markets)} markets loaded)")
    return out
