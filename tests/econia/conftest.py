"""Econia fixtures: a DSS simulator with per-test markets and users (the broker is shared), a feed factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from marketpipe.infra.stack import Cluster
from producers.econia import EconiaFeed, EconiaSettings
from schemas.registry import ContractRegistry
from simulators.econia.markets import EconiaMarket
from simulators.econia.server import DEV_SECRET, EconiaSimulator
from tests.waiting import wait_until  # noqa: F401 - re-exported for this venue's tests


def make_markets(unique: str) -> tuple[EconiaMarket, ...]:
    tag = unique.upper()
    return (
        EconiaMarket(1, f"A{tag}", "USDC", base_decimals=8, quote_decimals=6, lot_size=100_000, tick_size=1),
        EconiaMarket(2, f"W{tag}", "USDC", base_decimals=8, quote_decimals=6, lot_size=1_000, tick_size=10),
    )


@pytest.fixture
async def econia_sim(unique: str) -> AsyncIterator[EconiaSimulator]:
    sim = EconiaSimulator(make_markets(unique), ping_interval=1.0, max_rows=25, seed=int(unique[:6], 16))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def make_feed(cluster: Cluster, registry: ContractRegistry) -> Callable[..., EconiaFeed]:
    def make(sim: EconiaSimulator, **overrides: Any) -> EconiaFeed:
        knobs: dict[str, Any] = {
            "ws_url": sim.ws_base, "rest_url": sim.rest_url, "econia_jwt_secret": DEV_SECRET,
            "kafka_bootstrap": cluster.bootstrap, "registry_url": registry.url, "create_topics": False,
            "register_schemas": False, "reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.3,
            "subscribe_timeout": 5.0, "ws_ping_interval": 2.0, "econia_backfill_page": 25, **overrides,
        }
        return EconiaFeed(EconiaSettings(**knobs), registry=registry, serve_health=False)

    return make


def caught_up(feed: EconiaFeed, sim: EconiaSimulator) -> bool:
    return feed.ready and feed._cursor is not None and feed._cursor[0] == sim.exchange.txn_version  # noqa: SLF001
