"""What `marketpipe dev` runs per venue: the simulator process(es) and the producer process, wired by
environment variables exactly as the Helm chart wires the real services. A venue whose real URL is given
in the environment (MARKETPIPE_DEV_<VENUE>_WS_URL ...) runs against it instead of a simulator."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from marketpipe.dev.supervisor import Component, python_module
from marketpipe.infra.ports import free_port

SIM_SECONDS = "86400"  # simulators stop by themselves after a day at the latest


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


def _sim(name: str, *args: str, announces: bool = True) -> Callable[[], Component]:
    def make() -> Component:
        port = free_port()
        return Component(f"simulator-{name}", python_module(f"simulators.{name}", "--port", str(port), *args),
                         ready_port=port, announces=announces)
    return make


def _info(sim: Component | None, key: str) -> str:
    return str(sim.info[key]) if sim is not None and key in sim.info else ""


def _port(sim: Component | None) -> int:
    assert sim is not None and sim.ready_port is not None
    return sim.ready_port


def _rabbitx_env(sim: Component | None) -> dict[str, str]:
    if sim is None:
        return {}
    return {"MARKETPIPE_WS_URL": _info(sim, "ws"), "MARKETPIPE_REST_URL": _info(sim, "rest"),
            "MARKETPIPE_MARKETS": json.dumps(["BTC-USD", "ETH-USD"]),
            "MARKETPIPE_REFRESH_TOKEN": _info(sim, "refresh_token"),
            "MARKETPIPE_ACCOUNT_ID": _info(sim, "profile_id")}


def _drift_env(sim: Component | None) -> dict[str, str]:
    if sim is None:
        return {}
    return {"MARKETPIPE_WS_URL": _info(sim, "ws"), "MARKETPIPE_REST_URL": _info(sim, "rest"),
            "MARKETPIPE_MARKETS": json.dumps(["perp:0:SOL-PERP", "perp:1:BTC-PERP", "perp:2:ETH-PERP"])}


def _econia_env(sim: Component | None) -> dict[str, str]:
    if sim is None:
        return {}
    return {"MARKETPIPE_WS_URL": _info(sim, "ws"), "MARKETPIPE_REST_URL": _info(sim, "rest"),
            "MARKETPIPE_API_TOKEN": _info(sim, "token")}


def _ccxt_env(exchange: str, ws_overrides: Callable[[int], dict[str, str]], markets: tuple[str, ...] = ("BTC/USDT",),
              options: dict[str, object] | None = None,
              channels: str | None = None) -> Callable[[Component | None], dict[str, str]]:
    ccxt_options = {"fetchMarkets": {"types": ["spot"]}} if options is None else options

    def env(sim: Component | None) -> dict[str, str]:
        out = {"MARKETPIPE_EXCHANGE": exchange, "MARKETPIPE_MARKETS": json.dumps(list(markets)),
               "MARKETPIPE_CCXT_OPTIONS": json.dumps(ccxt_options), "MARKETPIPE_BOOK_DEPTH": "100"}
        if channels is not None:
            out["MARKETPIPE_CHANNELS"] = channels
        if sim is not None:
            port = _port(sim)
            out["MARKETPIPE_REST_BASE_OVERRIDE"] = f"http://127.0.0.1:{port}"
            out["MARKETPIPE_URL_OVERRIDES"] = json.dumps(ws_overrides(port))
        return out
    return env


PLANS: dict[str, VenuePlan] = {
    "rabbitx": VenuePlan("rabbitx", _sim("rabbitx", "--markets", "BTC-USD", "ETH-USD", "--rate", "40", "--max-seconds", SIM_SECONDS), _rabbitx_env,
                         "rabbitx", {"BTC-USD-PERP": "BTC-USD", "ETH-USD-PERP": "ETH-USD"}),
    "drift": VenuePlan("drift", _sim("drift", "--max-seconds", SIM_SECONDS), _drift_env, "drift",
                       {"SOL-PERP": "SOL-PERP", "BTC-PERP": "BTC-PERP", "ETH-PERP": "ETH-PERP"}),
    "econia": VenuePlan("econia", _sim("econia", "--max-seconds", SIM_SECONDS), _econia_env, "econia",
                        {"APT-USDC": "1", "WETH-USDC": "2"}),
    "binance": VenuePlan("binance", _sim("binance", "--rate", "10", "--duration", SIM_SECONDS, announces=False),
                         _ccxt_env("binance", lambda p: {"api.ws.spot": f"ws://127.0.0.1:{p}/ws",
                                                         "api.ws.ws-api.spot": f"ws://127.0.0.1:{p}/ws-api/v3"}),
                         "ccxt", {"BTC-USDT": "BTCUSDT"}),
    "okx": VenuePlan("okx", _sim("okx", "--rate", "10", "--duration", SIM_SECONDS, announces=False),
                     _ccxt_env("okx", lambda p: {"api.ws": f"ws://127.0.0.1:{p}/ws/v5"}), "ccxt",
                     {"BTC-USDT": "BTC-USDT"}),
    # coinbase: options.fetchMarkets is a method name, not a dict (no ccxt options); ccxt has no watchOHLCV
    "coinbase": VenuePlan("coinbase", _sim("coinbase", "--rate", "10", "--duration", SIM_SECONDS, announces=False),
                          _ccxt_env("coinbase", lambda p: {"api.ws": f"ws://127.0.0.1:{p}/ws"}, ("BTC/USD",), {},
                                    "book,trades,ticker"),
                          "ccxt", {"BTC-USD": "BTC-USD"}),
}


def processor_component(base_env: dict[str, str], web_port: int, app_id: str, data_dir: Path,
                        offset_reset: str = "earliest") -> Component:
    env = {**base_env, "MARKETPIPE_PROCESSOR_APP_ID": app_id, "MARKETPIPE_PROCESSOR_STORE_URL": "memory://",
           "MARKETPIPE_PROCESSOR_DATA_DIR": str(data_dir), "MARKETPIPE_PROCESSOR_WEB_PORT": str(web_port),
           "MARKETPIPE_PROCESSOR_WEB_BIND": "127.0.0.1", "MARKETPIPE_PROCESSOR_WEB_HOST": "127.0.0.1",
           "MARKETPIPE_PROCESSOR_OFFSET_RESET": offset_reset, "MARKETPIPE_PROCESSOR_CANDLE_INTERVALS": "1s,1m,5m"}
    return Component("processor", python_module("marketpipe.cli", "process"), env,
                     ready_url=f"http://127.0.0.1:{web_port}/processor/ready", ready_timeout=120)
