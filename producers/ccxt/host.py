"""What the channel mixins (book, market data, account) need from the feed; ``CcxtFeed`` provides it."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from producers.ccxt.settings import CcxtSettings
from producers.core.backoff import Backoff
from producers.core.emitter import EventEmitter
from producers.core.metrics import FeedMetrics

Body = Callable[[Backoff], Awaitable[None]]  # one supervised watch loop


@dataclass
class WatchedMarket:
    symbol: str  # ccxt unified symbol
    market: str  # normalized id
    venue_symbol: str  # the exchange's id
    seen_trades: set[str] = field(default_factory=set)
    trade_order: deque[str] = field(default_factory=deque)


class ChannelHost:
    venue: str
    settings: CcxtSettings
    exchange: Any
    metrics: FeedMetrics
    resets: dict[str, int]
    _checksum_failed: set[str]

    def _got_data(self, name: str, channel: str, backoff: Backoff) -> None:
        raise NotImplementedError

    def _malformed(self, channel: str, item: Any, exc: BaseException) -> None:
        raise NotImplementedError

    def _count_error(self, channel: str, exc: BaseException) -> None:
        raise NotImplementedError

    def _emitter(self) -> EventEmitter:
        raise NotImplementedError
