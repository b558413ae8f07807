"""What `marketpipe dev` runs per venue: the simulator process(es) and the producer process, wired by
environment variables exactly as the Helm chart wires the real services. A venue whose real URL is given
in the environment (MARKETPIPE_DEV_<VENUE>_WS_URL ...) runs against it instead of a simulator.

The venues and their wiring come from the registry (marketpipe/venues.py); nothing here names a venue."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from marketpipe.dev.supervisor import Component, python_module
from marketpipe.infra.ports import free_port
from marketpipe.venues import VENUES, DevWiring, Venue


@dataclass
class VenuePlan:
    name: str
    simulator: Callable[[], Component] | None
    producer_env: Callable[[Component | None], dict[str, str]]
    produce_as: str  # `marketpipe produce <produce_as>`
    # normalized market -> the simulator's own market name (for /_sim/top, the simulator's truth)
    truth_markets: dict[str, str] | None = None

    def simulators(self, base_env: dict[str, str]) -> list[Component]:
        if self.simulator is None or os.environ.get(f"MARKETPIPE_DEV_{self.name.upper()}_WS_URL"):
            self._sim = None
            return []
        self._sim = self.simulator()
        return [self._sim]

    def producer(self, base_env: dict[str, str], health_port: int) -> Component:
        env = {**base_env, **self.producer_env(getattr(self, "_sim", None)),
               "MARKETPIPE_HEALTH_PORT": str(health_port), "MARKETPIPE_METRICS_PORT": str(health_port),
               "MARKETPIPE_HEALTH_HOST": "127.0.0.1"}
        real = os.environ.get(f"MARKETPIPE_DEV_{self.name.upper()}_WS_URL")
        if real:
            env["MARKETPIPE_WS_URL"] = real
            rest = os.environ.get(f"MARKETPIPE_DEV_{self.name.upper()}_REST_URL")
            if rest:
                env["MARKETPIPE_REST_URL"] = rest
        return Component(f"producer-{self.name}", python_module("marketpipe.cli", "produce", self.produce_as), env,
                         ready_url=f"http://127.0.0.1:{health_port}/ready", ready_timeout=90)


def _simulator(venue: Venue, wiring: DevWiring) -> Callable[[], Component]:
    def make() -> Component:
        port = free_port()
        return Component(f"simulator-{venue.name}",
                         python_module(f"simulators.{venue.simulator}", "--port", str(port), *wiring.simulator_args),
                         ready_port=port, announces=wiring.announces)
    return make


def _producer_env(wiring: DevWiring) -> Callable[[Component | None], dict[str, str]]:
    def env(sim: Component | None) -> dict[str, str]:
        out = dict(wiring.fixed_env)
        if sim is not None:
            out.update(wiring.producer_env({**sim.info, "port": sim.ready_port}))
        return out
    return env


def plan_of(venue: Venue) -> VenuePlan:
    """The dev plan of a registry entry that has dev wiring."""
    assert venue.dev is not None, venue.name
    return VenuePlan(venue.name, _simulator(venue, venue.dev) if venue.simulator else None,
                     _producer_env(venue.dev), venue.name, dict(venue.dev.truth_markets))


def plans(registry: Sequence[Venue] = VENUES) -> dict[str, VenuePlan]:
    """One plan per venue of the registry (marketpipe/venues.py) that `marketpipe dev` can run."""
    return {v.name: plan_of(v) for v in registry if v.dev is not None}


PLANS: dict[str, VenuePlan] = plans()


def processor_component(base_env: dict[str, str], web_port: int, app_id: str, data_dir: Path,
                        offset_reset: str = "earliest") -> Component:
    env = {**base_env, "MARKETPIPE_PROCESSOR_APP_ID": app_id, "MARKETPIPE_PROCESSOR_STORE_URL": "memory://",
           "MARKETPIPE_PROCESSOR_DATA_DIR": str(data_dir), "MARKETPIPE_PROCESSOR_WEB_PORT": str(web_port),
           "MARKETPIPE_PROCESSOR_WEB_BIND": "127.0.0.1", "MARKETPIPE_PROCESSOR_WEB_HOST": "127.0.0.1",
           "MARKETPIPE_PROCESSOR_OFFSET_RESET": offset_reset, "MARKETPIPE_PROCESSOR_CANDLE_INTERVALS": "1s,1m,5m"}
    return Component("processor", python_module("marketpipe.cli", "process"), env,
                     ready_url=f"http://127.0.0.1:{web_port}/processor/ready", ready_timeout=120)
