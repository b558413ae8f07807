"""RabbitX fixtures: a simulator with markets/profile unique to the test, and a feed factory wired to
the real Kafka + registry of the session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from marketpipe.infra.ports import free_port
from producers.rabbitx import RabbitXFeed, RabbitXSettings
from schemas.registry import ContractRegistry
from simulators.rabbitx import RabbitXSimulator, SimConfig
from tests.waiting import wait_until  # noqa: F401 - re-exported for this venue's tests


def sim_config(unique: str, **kw: Any) -> SimConfig:
    tag = unique[:6].upper()
    base: dict[str, Any] = {
        "markets": {f"R{tag}-USD": ("65000", "0.5"), f"E{tag}-USD": ("3400", "0.1")},
        "profile_id": str(int(unique[:8], 16)),
        "ping_interval": 0.5, "pong_timeout": 2.0, "batch_max": 6, "seed": int(unique[:6], 16),
    }
    base.update(kw)
    return SimConfig(**base)


@pytest.fixture
async def sim(unique: str, request: pytest.FixtureRequest) -> AsyncIterator[RabbitXSimulator]:
    marker = request.node.get_closest_marker("sim")
    simulator = RabbitXSimulator(sim_config(unique, **(marker.kwargs if marker else {})))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


FeedFactory = Callable[..., RabbitXFeed]


@pytest.fixture
def make_feed(cluster: Any, registry: ContractRegistry, registry_url: str,
              sim: RabbitXSimulator) -> FeedFactory:
    def factory(**overrides: Any) -> RabbitXFeed:
        knobs: dict[str, Any] = {
            "ws_url": sim.ws_url, "rest_url": sim.rest_url, "markets": sorted(sim.markets),
            "account_id": sim.config.profile_id, "api_token": sim.issue_token(),
            "refresh_token": sim.config.refresh_token, "kafka_bootstrap": cluster.bootstrap,
            "registry_url": registry_url, "health_port": free_port(), "health_host": "127.0.0.1",
            "reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.5, "watchdog_seconds": 1.5,
            "ws_ping_interval": None, "create_topics": False, "register_schemas": False, "subscribe_timeout": 5,
        }
        knobs.update(overrides)
        return RabbitXFeed(RabbitXSettings(**knobs), registry=registry)

    return factory


def books_caught_up(feed: RabbitXFeed, sim: RabbitXSimulator) -> bool:
    return all(feed.books[m].synced and feed.books[m].last_sequence == sim.markets[m].sequence for m in sim.markets)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim(**config): RabbitX simulator config overrides")
