"""Drift DLOB producer: grouped order-book snapshots and fills -> Kafka."""

from producers.drift.feed import DriftFeed
from producers.drift.main import main, run
from producers.drift.settings import DriftMarketSpec, DriftSettings

__all__ = ["DriftFeed", "DriftMarketSpec", "DriftSettings", "main", "run"]
