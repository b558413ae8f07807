"""Coinbase Advanced Trade simulator (REST products + market-data WebSocket) that ccxt.pro and native clients can use."""

from simulators.coinbase.server import CoinbaseSimulator

__all__ = ["CoinbaseSimulator"]
