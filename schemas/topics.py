"""The single source of truth for topic names, partition counts, keys and subjects.

Every producer, processor, chart and test reads topic facts from here.

Keys are UTF-8 text, not Avro: ``"<venue>:<market>"`` for market topics and
``"<venue>:<account>"`` for account topics. Kafka's default (murmur2) partitioner maps a
key to one partition, so every event of a market (or account) lands on one partition,
in the order the producer published it: that is the per-market order contract.

Subjects follow Confluent's TopicNameStrategy: ``<topic>-value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class KeyKind(StrEnum):
    MARKET = "market"
    ACCOUNT = "account"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema: str  # file stem in schemas/avro
    partitions: int
    key: KeyKind
    derived: bool = False
    retention_ms: int | None = None
    cleanup_policy: str = "delete"

    @property
    def subject(self) -> str:
        return f"{self.name}-value"


TRADES = TopicSpec("marketpipe.trades.v1", "trade", 6, KeyKind.MARKET)
BOOK = TopicSpec("marketpipe.book.v1", "book", 6, KeyKind.MARKET)
TICKER = TopicSpec("marketpipe.ticker.v1", "ticker", 6, KeyKind.MARKET)
VENUE_CANDLES = TopicSpec("marketpipe.candles.v1", "candle", 6, KeyKind.MARKET)
ACCOUNT = TopicSpec("marketpipe.account.v1", "account", 6, KeyKind.ACCOUNT)
BOOK_TOP = TopicSpec("marketpipe.derived.book-top.v1", "book_top", 6, KeyKind.MARKET, derived=True)
OHLCV = TopicSpec("marketpipe.derived.ohlcv.v1", "ohlcv", 6, KeyKind.MARKET, derived=True)

ALL_TOPICS: tuple[TopicSpec, ...] = (TRADES, BOOK, TICKER, VENUE_CANDLES, ACCOUNT, BOOK_TOP, OHLCV)
BY_NAME = {t.name: t for t in ALL_TOPICS}
BY_SCHEMA = {t.schema: t for t in ALL_TOPICS}


def market_key(venue: str, market: str) -> bytes:
    return f"{venue}:{market}".encode()


def account_key(venue: str, account: str) -> bytes:
    return f"{venue}:{account}".encode()


def parse_key(key: bytes) -> tuple[str, str]:
    venue, _, rest = key.decode().partition(":")
    if not rest:
        raise ValueError(f"malformed marketpipe key {key!r}: expected '<venue>:<id>'")
    return venue, rest
