"""Drift fixtures: a simulator with per-test market names (the broker is shared), and a feed factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from marketpipe.infra.stack import Cluster
from producers.drift import DriftFeed, DriftSettings
from schemas.registry import ContractRegistry
from simulators.drift import DriftMarket, DriftSimulator
from tests.waiting import wait_until  # noqa: F401 - re-exported for this venue's tests


def make_markets(unique: str) -> tuple[DriftMarket, ...]:
    tag = unique.upper()
    return (
        DriftMarket("perp", 0, f"T{tag}-PERP", start_price=150_000_000),
        DriftMarket("perp", 3, f"B{tag}-PERP", tick_size=100_000, start_price=65_000_000_000),
        DriftMarket("spot", 5, f"S{tag}", base_precision_exp=6, tick_size=10, start_price=1_000_000),
    )


def spec_text(m: DriftMarket) -> str:
    return f"{m.market_type}:{m.index}:{m.name}" + (f":{m.base_precision_exp}" if m.market_type == "spot" else "")


@pytest.fixture
async def drift_sim(unique: str) -> AsyncIterator[DriftSimulator]:
    sim = DriftSimulator(make_markets(unique), book_interval=0.05, trade_interval=0.03, heartbeat_interval=0.5,
                         seed=int(unique[:6], 16))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def make_feed(cluster: Cluster, registry: ContractRegistry) -> Callable[..., DriftFeed]:
    def make(sim: DriftSimulator, **overrides: Any) -> DriftFeed:
        knobs: dict[str, Any] = {
            "ws_url": sim.ws_url, "rest_url": sim.rest_url, "markets": [spec_text(m) for m in sim.markets],
            "kafka_bootstrap": cluster.bootstrap, "registry_url": registry.url, "create_topics": False,
            "register_schemas": False, "reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.3,
            "drift_heartbeat_timeout": 2.0, "watchdog_seconds": 5.0, "subscribe_timeout": 5.0,
            "ws_ping_interval": None, **overrides,
        }
        return DriftFeed(DriftSettings(**knobs), registry=registry, serve_health=False)

    return make
