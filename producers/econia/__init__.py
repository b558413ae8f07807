"""Econia DSS producer: fills and order events -> Trades and AccountEvents, gaps backfilled from PostgREST."""

from producers.econia.feed import EconiaFeed
from producers.econia.main import main, run
from producers.econia.settings import EconiaSettings

__all__ = ["EconiaFeed", "EconiaSettings", "main", "run"]
