"""Econia markets as registered on chain, with the coin decimals DSS joins in on ``/markets``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EconiaMarket:
    market_id: int
    base_symbol: str
    quote_symbol: str
    base_decimals: int = 8
    quote_decimals: int = 6
    lot_size: int = 100_000  # base subunits per lot
    tick_size: int = 1  # quote subunits per tick (price is ticks per lot)
    min_size: int = 1  # lots

    def registration_row(self, txn_version: int, event_idx: int, time_iso: str) -> dict[str, object]:
        """``market_registration_event`` columns in table order."""
        return {
            "txn_version": txn_version, "event_idx": event_idx, "market_id": self.market_id, "time": time_iso,
            "base_account_address": "0x" + f"{self.market_id:x}".rjust(64, "a"),
            "base_module_name": "coin", "base_struct_name": self.base_symbol, "base_name_generic": None,
            "quote_account_address": "0x" + "c" * 64, "quote_module_name": "coin",
            "quote_struct_name": self.quote_symbol, "lot_size": self.lot_size, "tick_size": self.tick_size,
            "min_size": self.min_size, "underwriter_id": 0,
        }

    def markets_row(self, txn_version: int, time_iso: str) -> dict[str, object]:
        """A row of PostgREST ``/markets`` (registration joined with coin info)."""
        reg = self.registration_row(txn_version, 0, time_iso)
        reg.pop("event_idx")
        return {
            **reg,
            "base_name": self.base_symbol.title(), "base_symbol": self.base_symbol,
            "base_decimals": self.base_decimals, "quote_name": self.quote_symbol.title(),
            "quote_symbol": self.quote_symbol, "quote_decimals": self.quote_decimals, "is_recognized": True,
        }


DEFAULT_MARKETS: tuple[EconiaMarket, ...] = (
    EconiaMarket(1, "APT", "USDC", base_decimals=8, quote_decimals=6, lot_size=100_000, tick_size=1),
    EconiaMarket(2, "WETH", "USDC", base_decimals=8, quote_decimals=6, lot_size=1_000, tick_size=10),
)
