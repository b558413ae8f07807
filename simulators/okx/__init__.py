"""OKX v5 simulator (REST + public/business/private WS) that ccxt.pro and native clients can use."""

from simulators.binance.account import SimAccount, SimBalance, SimFill, SimOrder
from simulators.okx.server import OkxSimulator, okx_checksum

__all__ = ["OkxSimulator", "SimAccount", "SimBalance", "SimFill", "SimOrder", "okx_checksum"]
