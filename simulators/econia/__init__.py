"""Econia DSS v1 simulator (postgres-websockets + PostgREST) for tests."""

from simulators.econia.exchange import EconiaExchange, FillTruth
from simulators.econia.markets import DEFAULT_MARKETS, EconiaMarket
from simulators.econia.server import DEV_SECRET, EconiaSimulator, mint_token

__all__ = ["DEFAULT_MARKETS", "DEV_SECRET", "EconiaExchange", "EconiaMarket", "EconiaSimulator", "FillTruth",
           "mint_token"]
