"""Drift DLOB server simulator (WebSocket ``/ws`` + REST ``/l2``) for tests and benchmarks."""

from simulators.drift.markets import DEFAULT_MARKETS, DriftMarket
from simulators.drift.server import DriftSimulator
from simulators.drift.truth import BookState, FillTruth, price_text, units_to_text

__all__ = ["DEFAULT_MARKETS", "BookState", "DriftMarket", "DriftSimulator", "FillTruth", "price_text",
           "units_to_text"]
