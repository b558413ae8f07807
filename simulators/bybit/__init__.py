"""Bybit v5 simulator (REST instruments + public linear WebSocket) that ccxt.pro and native clients can use."""

from simulators.bybit.server import BybitSimulator, trade_uuid

__all__ = ["BybitSimulator", "trade_uuid"]
