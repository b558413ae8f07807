"""Run a CcxtFeed against a simulator and read back what reached Kafka (real broker + registry)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from producers.ccxt import CcxtFeed, CcxtSettings
from schemas.registry import ContractRegistry
from schemas.topics import ACCOUNT, BOOK, TICKER, TRADES, VENUE_CANDLES, TopicSpec, account_key, market_key
from tests.feedcore.book_replay import ReplayedBook, replay_book
from tests.feedcore.kafka_reader import end_offsets, read_events

TOPICS = (BOOK, TRADES, TICKER, VENUE_CANDLES, ACCOUNT)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class FeedRun:
    """Starts the feed (owning its publisher), remembers the topics' end offsets, reads events back."""

    def __init__(self, settings: CcxtSettings, registry: ContractRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.feed = CcxtFeed(settings, registry=registry, serve_health=False)
        self.task: asyncio.Task[None] | None = None
        self.start: dict[str, dict[int, int]] = {}

    async def __aenter__(self) -> FeedRun:
        self.start = await end_offsets(self.settings.kafka_bootstrap, TOPICS)
        self.task = asyncio.create_task(self.feed.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        if self.task.done():
            self.task.result()  # surface a crash
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def flush(self) -> None:
        assert self.feed.publisher is not None
        await self.feed.publisher.flush()

    async def events(self, topic: TopicSpec, market: str | None = None) -> list[dict[str, Any]]:
        await self.flush()
        venue = self.settings.venue_id()
        key = account_key(venue, self.settings.account()) if topic is ACCOUNT else market_key(venue, market or "")
        return await read_events(self.settings.kafka_bootstrap, self.registry, topic, self.start[topic.name],
                                 keys={key})

    async def events_reaching(self, topic: TopicSpec, market: str, exchange_ts: int,
                              timeout: float = 15.0) -> list[dict[str, Any]]:
        """The market's events once one with ``exchange_ts`` (micros) is among them (or AssertionError)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            events = await self.events(topic, market)
            if any(e["exchange_ts"] == exchange_ts for e in events):
                return events
            if loop.time() > deadline:
                raise AssertionError(f"no {topic.name} event with exchange_ts {exchange_ts} after {timeout}s")
            await asyncio.sleep(0.2)

    async def book_until(self, market: str, truth: Callable[[], tuple[dict, dict]],
                         timeout: float = 20.0) -> tuple[ReplayedBook, list[dict[str, Any]]]:
        """Replays the market's BookUpdates until they equal the simulator's truth (or times out)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            events = await self.events(BOOK, market)
            book = replay_book(events)
            bids, asks = truth()
            if book.in_sync and book.bids == bids and book.asks == asks:
                return book, events
            if loop.time() > deadline:
                missing = {p: s for p, s in bids.items() if book.bids.get(p) != s}
                raise AssertionError(f"book from Kafka != simulator truth after {timeout}s: in_sync={book.in_sync} "
                                     f"resets={book.resets} problems={book.problems[:5]} differing bids={missing}")
            await asyncio.sleep(0.3)


def dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
