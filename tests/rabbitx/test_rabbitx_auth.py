"""RabbitX JWT life cycle through the wire: refresh in place before expiry, reconnect with a fresh token
after close 3005, renewal after error 109 at connect, and clear terminal errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from producers.core.errors import TerminalFeedError
from simulators.rabbitx import RabbitXSimulator
from tests.rabbitx.conftest import FeedFactory, books_caught_up, wait_until


async def run_for(feed: Any, until: Any, timeout: float, what: str) -> None:
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(until, timeout, what)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.sim(token_ttl=2)
async def test_token_is_refreshed_in_place_before_expiry(sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    feed = make_feed(token_refresh_fraction=0.5)
    await run_for(feed, lambda: feed.refreshes >= 2 and feed.ready, 15, "two in-place refreshes")
    assert sim.stats["close_3005"] == 0 and sim.stats["connections"] == 1
    assert feed.metrics.count("reconnects") == 0 and feed.tokens.renewals >= 2 and sim.stats["refreshes"] >= 2


@pytest.mark.sim(token_ttl=2)
async def test_expired_connection_reconnects_with_a_fresh_token(sim: RabbitXSimulator,
                                                                make_feed: FeedFactory) -> None:
    feed = make_feed(token_refresh_fraction=None)  # no refresh in place: the server closes with 3005
    task = asyncio.create_task(feed.run())
    try:
        await wait_until(lambda: feed.connections >= 2 and feed.ready, 15, "reconnect after 3005")
        sim.generate(50)
        await sim.drain()
        await wait_until(lambda: books_caught_up(feed, sim), 10, "books after the reconnect")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sim.stats["close_3005"] >= 1 and sim.stats["jwt_issued"] >= 1 and sim.stats["refreshes"] == 0
    assert any(r.startswith("close 3005") for r in feed.disconnect_reasons)


async def test_token_expired_at_connect_is_renewed(sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    feed = make_feed(api_token=sim.issue_token(ttl=-60))
    await run_for(feed, lambda: feed.ready, 15, "connected with a renewed token")
    assert sim.stats["expired_at_connect"] == 1 and sim.stats["jwt_issued"] == 1
    assert feed.metrics.reconnect_reasons["token-expired"] == 1


async def test_invalid_token_stops_with_a_clear_error(sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    feed = make_feed(api_token="not.a.jwt")
    with pytest.raises(TerminalFeedError, match=r"3500 \(invalid token\).*terminal, not reconnecting"):
        await asyncio.wait_for(feed.run(), 15)
    assert sim.stats["connections"] == 1 and sim.stats["invalid_tokens"] == 1  # no reconnect loop
    assert not feed.readiness()[0] and "invalid token" in feed.readiness()[1]


async def test_expired_token_without_refresh_token_stops(sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    feed = make_feed(api_token=sim.issue_token(ttl=-60), refresh_token=None)
    with pytest.raises(TerminalFeedError, match="token expired.*no refresh token"):
        await asyncio.wait_for(feed.run(), 15)
    assert sim.stats["connections"] == 1


async def test_rejected_refresh_token_stops(sim: RabbitXSimulator, make_feed: FeedFactory) -> None:
    feed = make_feed(api_token=None, refresh_token="wrong")
    with pytest.raises(TerminalFeedError, match="POST /jwt refused.*HTTP 401"):
        await asyncio.wait_for(feed.run(), 15)
    assert sim.stats["connections"] == 0


async def test_someone_elses_account_is_a_terminal_permission_error(sim: RabbitXSimulator,
                                                                    make_feed: FeedFactory) -> None:
    feed = make_feed(account_id="999")
    with pytest.raises(TerminalFeedError, match=r"account@999 refused with error 103 \(permission denied\)"):
        await asyncio.wait_for(feed.run(), 15)
