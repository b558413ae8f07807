"""Kraken spot simulator (REST asset pairs + public WebSocket v2) that ccxt.pro and native clients can use."""

from simulators.kraken.server import KrakenSimulator, kraken_checksum

__all__ = ["KrakenSimulator", "kraken_checksum"]
