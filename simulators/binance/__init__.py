"""Binance spot simulator (REST + WS streams + WS-API user data) that ccxt.pro and native clients can use.

``market.py`` (true book, trades, candles) and ``account.py`` (balances, orders, fills) are venue-neutral
and shared with the OKX simulator.
"""

from simulators.binance.account import SimAccount, SimBalance, SimFill, SimOrder
from simulators.binance.market import LevelChange, MarketModel, SimCandle, SimTrade, StepResult
from simulators.binance.server import BinanceSimulator

__all__ = ["BinanceSimulator", "LevelChange", "MarketModel", "SimAccount", "SimBalance", "SimCandle", "SimFill",
           "SimOrder", "SimTrade", "StepResult"]
