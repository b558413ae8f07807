"""The venue registry: the one table every venue list is derived from.

`marketpipe produce <venue>`, `marketpipe simulate <venue>`, `marketpipe dev --venues`, the dev plan
(marketpipe/dev/plan.py), the Helm chart's allowed `producers.<name>.venue` values (checked by
tests/helm/test_venue_registry.py) and the venue table in README.md all come from ``VENUES``.

Vocabulary: a *venue* is where events come from and is the `venue` field of every event (`binance`, `okx`,
`rabbitx`, ...). A *producer* is the package under ``producers/`` that speaks a venue's protocol: one per
venue, except the ccxt.pro producer, which serves every ccxt exchange; each ccxt exchange in this table is a
venue of its own (`produce binance` runs the ccxt producer with ``MARKETPIPE_EXCHANGE=binance``). The entry
``ccxt`` is that producer for any other ccxt.pro exchange, named by ``MARKETPIPE_EXCHANGE``.

Adding a venue: its producer package (or nothing, for a ccxt exchange), its simulator under
``simulators/``, its tests, and one entry here; then ``python -m marketpipe.venues --write`` rewrites the
files that cannot import this table (README.md's venue table, the Helm chart's enum and venue list; tests
fail until they match).

Nothing here imports a producer or a simulator: the CLI stays fast; modules are named by dotted path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: a simulator's announced facts (its JSON start line: ws/rest URLs, tokens) plus "port"
SimInfo = Mapping[str, object]


@dataclass(frozen=True)
class DevWiring:
    """How `marketpipe dev` runs the venue against its simulator."""

    simulator_args: tuple[str, ...]  # after `--port <port>`
    producer_env: Callable[[SimInfo], dict[str, str]]  # MARKETPIPE_* for the producer, from the simulator
    truth_markets: dict[str, str]  # normalized market -> the simulator's own market name (/_sim/top)
    announces: bool = True  # the simulator prints a JSON line with its URLs once listening
    fixed_env: dict[str, str] = field(default_factory=dict)  # set even when run against the real venue


@dataclass(frozen=True)
class Venue:
    name: str  # the venue id: produce/simulate/dev argument, Helm `venue`, `venue` field of the events
    producer: str  # package under producers/ speaking its protocol
    settings: str  # "module:Class", the pydantic-settings class the producer reads (MARKETPIPE_*)
    summary: str
    simulator: str | None = None  # package under simulators/ (None: no simulator)
    env: dict[str, str] = field(default_factory=dict)  # settings the venue implies (ccxt: the exchange id)
    required_env: tuple[str, ...] = ()  # settings `produce` refuses to start without
    dev: DevWiring | None = None  # None: not part of `marketpipe dev`

    @property
    def producer_module(self) -> str:
        return f"producers.{self.producer}"

    @property
    def simulator_module(self) -> str | None:
        return f"simulators.{self.simulator}.__main__" if self.simulator else None


SIM_SECONDS = "86400"  # dev simulators stop by themselves after a day at the latest


def _text(info: SimInfo, key: str) -> str:
    return str(info.get(key, ""))


def _rabbitx_env(info: SimInfo) -> dict[str, str]:
    return {"MARKETPIPE_WS_URL": _text(info, "ws"), "MARKETPIPE_REST_URL": _text(info, "rest"),
            "MARKETPIPE_MARKETS": json.dumps(["BTC-USD", "ETH-USD"]),
            "MARKETPIPE_REFRESH_TOKEN": _text(info, "refresh_token"),
            "MARKETPIPE_ACCOUNT_ID": _text(info, "profile_id")}


def _drift_env(info: SimInfo) -> dict[str, str]:
    return {"MARKETPIPE_WS_URL": _text(info, "ws"), "MARKETPIPE_REST_URL": _text(info, "rest"),
            "MARKETPIPE_MARKETS": json.dumps(["perp:0:SOL-PERP", "perp:1:BTC-PERP", "perp:2:ETH-PERP"])}


def _econia_env(info: SimInfo) -> dict[str, str]:
    return {"MARKETPIPE_WS_URL": _text(info, "ws"), "MARKETPIPE_REST_URL": _text(info, "rest"),
            "MARKETPIPE_API_TOKEN": _text(info, "token")}


CCXT_DEV_ENV = {"MARKETPIPE_MARKETS": json.dumps(["BTC/USDT"]),
                "MARKETPIPE_CCXT_OPTIONS": json.dumps({"fetchMarkets": {"types": ["spot"]}}),
                "MARKETPIPE_BOOK_DEPTH": "100"}


def _ccxt_sim_env(ws_overrides: Callable[[int], dict[str, str]]) -> Callable[[SimInfo], dict[str, str]]:
    def env(info: SimInfo) -> dict[str, str]:
        port = int(str(info["port"]))
        return {"MARKETPIPE_REST_BASE_OVERRIDE": f"http://127.0.0.1:{port}",
                "MARKETPIPE_URL_OVERRIDES": json.dumps(ws_overrides(port))}
    return env


CCXT_SETTINGS = "producers.ccxt.settings:CcxtSettings"

VENUES: tuple[Venue, ...] = (
    Venue("rabbitx", "rabbitx", "producers.rabbitx.settings:RabbitXSettings",
          "RabbitX perpetuals (Centrifugo WebSocket + REST)", simulator="rabbitx",
          dev=DevWiring(("--markets", "BTC-USD", "ETH-USD", "--rate", "40", "--max-seconds", SIM_SECONDS),
                        _rabbitx_env, {"BTC-USD-PERP": "BTC-USD", "ETH-USD-PERP": "ETH-USD"})),
    Venue("drift", "drift", "producers.drift.settings:DriftSettings",
          "Drift DLOB server (grouped books, fills)", simulator="drift",
          dev=DevWiring(("--max-seconds", SIM_SECONDS), _drift_env,
                        {"SOL-PERP": "SOL-PERP", "BTC-PERP": "BTC-PERP", "ETH-PERP": "ETH-PERP"})),
    Venue("econia", "econia", "producers.econia.settings:EconiaSettings",
          "Econia DSS (postgres-websockets + PostgREST)", simulator="econia",
          dev=DevWiring(("--max-seconds", SIM_SECONDS), _econia_env, {"APT-USDC": "1", "WETH-USDC": "2"})),
    Venue("binance", "ccxt", CCXT_SETTINGS, "Binance spot through ccxt.pro", simulator="binance",
          env={"MARKETPIPE_EXCHANGE": "binance"},
          dev=DevWiring(("--rate", "10", "--duration", SIM_SECONDS),
                        _ccxt_sim_env(lambda p: {"api.ws.spot": f"ws://127.0.0.1:{p}/ws",
                                                 "api.ws.ws-api.spot": f"ws://127.0.0.1:{p}/ws-api/v3"}),
                        {"BTC-USDT": "BTCUSDT"}, announces=False, fixed_env=CCXT_DEV_ENV)),
    Venue("okx", "ccxt", CCXT_SETTINGS, "OKX spot through ccxt.pro", simulator="okx",
          env={"MARKETPIPE_EXCHANGE": "okx"},
          dev=DevWiring(("--rate", "10", "--duration", SIM_SECONDS),
                        _ccxt_sim_env(lambda p: {"api.ws": f"ws://127.0.0.1:{p}/ws/v5"}),
                        {"BTC-USDT": "BTC-USDT"}, announces=False, fixed_env=CCXT_DEV_ENV)),
    Venue("kraken", "ccxt", CCXT_SETTINGS, "Kraken spot (WebSocket v2) through ccxt.pro; book CRC32 verified by the "
          "producer", simulator="kraken", env={"MARKETPIPE_EXCHANGE": "kraken"},
          dev=DevWiring(("--rate", "10", "--duration", SIM_SECONDS),
                        _ccxt_sim_env(lambda p: {"api.ws.publicV2": f"ws://127.0.0.1:{p}/v2"}),
                        {"BTC-USD": "BTC/USD"}, announces=False,
                        fixed_env={**CCXT_DEV_ENV, "MARKETPIPE_MARKETS": json.dumps(["BTC/USD"]),
                                   "MARKETPIPE_BOOK_DEPTH": "25", "MARKETPIPE_CHANNELS": "book,trades,ticker"})),
    Venue("bybit", "ccxt", CCXT_SETTINGS, "Bybit v5 linear perpetuals through ccxt.pro; the book's u chain checked by "
          "the producer", simulator="bybit", env={"MARKETPIPE_EXCHANGE": "bybit"},
          dev=DevWiring(("--rate", "10", "--duration", SIM_SECONDS),
                        _ccxt_sim_env(lambda p: {"api.ws.public.linear": f"ws://127.0.0.1:{p}/v5/public/linear"}),
                        {"BTC-USDT-PERP": "BTCUSDT"}, announces=False,
                        fixed_env={"MARKETPIPE_MARKETS": json.dumps(["BTC/USDT:USDT"]),
                                   "MARKETPIPE_CCXT_OPTIONS": json.dumps({"fetchMarkets": {"types": ["linear"]}}),
                                   "MARKETPIPE_BOOK_DEPTH": "50", "MARKETPIPE_CHANNELS": "book,trades,ticker"})),
    # coinbase: options.fetchMarkets is a method name (no ccxt options); ccxt has no coinbase watchOHLCV
    Venue("coinbase", "ccxt", CCXT_SETTINGS, "Coinbase Advanced Trade through ccxt.pro; per-connection sequence_num "
          "checked and heartbeats kept by the producer", simulator="coinbase", env={"MARKETPIPE_EXCHANGE": "coinbase"},
          dev=DevWiring(("--rate", "10", "--duration", SIM_SECONDS),
                        _ccxt_sim_env(lambda p: {"api.ws": f"ws://127.0.0.1:{p}/ws"}),
                        {"BTC-USD": "BTC-USD"}, announces=False,
                        fixed_env={"MARKETPIPE_MARKETS": json.dumps(["BTC/USD"]), "MARKETPIPE_CCXT_OPTIONS": "{}",
                                   "MARKETPIPE_BOOK_DEPTH": "100", "MARKETPIPE_CHANNELS": "book,trades,ticker"})),
    Venue("ccxt", "ccxt", CCXT_SETTINGS,
          "any other ccxt.pro exchange, named by MARKETPIPE_EXCHANGE (the venue id is the exchange id)",
          required_env=("MARKETPIPE_EXCHANGE",)),
)


def by_name(registry: Sequence[Venue] = VENUES) -> dict[str, Venue]:
    return {v.name: v for v in registry}


def producer_names(registry: Sequence[Venue] = VENUES) -> list[str]:
    """`marketpipe produce` choices = the Helm chart's allowed `venue` values."""
    return [v.name for v in registry]


def simulator_names(registry: Sequence[Venue] = VENUES) -> list[str]:
    return [v.name for v in registry if v.simulator]


def dev_names(registry: Sequence[Venue] = VENUES) -> list[str]:
    return [v.name for v in registry if v.dev is not None]


def load_settings_class(venue: Venue) -> type:
    import importlib

    module, _, cls = venue.settings.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def markdown_table(registry: Sequence[Venue] = VENUES) -> str:
    """The venue table of README.md (tests/cli/test_venue_registry.py checks it is this)."""
    rows = ["| venue | `marketpipe produce` runs | simulator | in `marketpipe dev` | what |",
            "| --- | --- | --- | --- | --- |"]
    for v in registry:
        fixed = "".join(f" with `{k}={val}`" for k, val in v.env.items())
        rows.append(f"| `{v.name}` | `producers/{v.producer}`{fixed} | "
                    f"{f'`simulators/{v.simulator}`' if v.simulator else '-'} | {'yes' if v.dev else 'no'} | "
                    f"{v.summary} |")
    return "\n".join(rows) + "\n"


def write_derived_files(root: Path, registry: Sequence[Venue] = VENUES) -> list[Path]:
    """Rewrite what cannot import this module: README.md's venue table, the Helm chart's values schema enum and
    its ``marketpipe.venues`` list. Returns the files that changed."""
    names = [v.name for v in registry]
    edits = [
        (root / "README.md", re.compile(r"(<!-- venues:begin.*?-->\n)(.*?)(<!-- venues:end -->)", re.S),
         markdown_table(registry)),
        (root / "helm" / "marketpipe" / "values.schema.json",
         re.compile(r'("venue": \{\n\s*"type": "string",\n\s*"enum": )(\[.*?\])(,)', re.S), json.dumps(names)),
        (root / "helm" / "marketpipe" / "templates" / "_helpers.tpl",
         re.compile(r'(define "marketpipe.venues" -}}\n)(.*?)(\n)'), " ".join(names)),
    ]
    changed = []
    for path, pattern, text in edits:
        old = path.read_text()
        def replace(m: re.Match[str], text: str = text) -> str:
            return m.group(1) + text + m.group(3)

        new, count = pattern.subn(replace, old, count=1)
        if count != 1:
            raise SystemExit(f"{path}: the venue block was not found")
        if new != old:
            path.write_text(new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        for changed_path in write_derived_files(Path(__file__).resolve().parents[1]):
            print(f"updated {changed_path}")
    else:
        print(markdown_table(), end="")
