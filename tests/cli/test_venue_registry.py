"""The venue registry (marketpipe/venues.py) drives the CLI and the dev plan: a venue added to the table
shows up in `produce`, `simulate` and `dev --venues`, and in the plan `marketpipe dev` runs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from marketpipe.cli import build_parser
from marketpipe.dev import plan
from marketpipe.venues import VENUES, DevWiring, Venue, dev_names, producer_names, simulator_names

README = Path(__file__).resolve().parents[2] / "README.md"

FAKE = Venue("fakex", "drift", "producers.drift.settings:DriftSettings", "a venue added for this test",
             simulator="drift", env={"MARKETPIPE_DRIFT_TRADES": "false"},
             dev=DevWiring(("--max-seconds", "5"), lambda info: {"MARKETPIPE_WS_URL": str(info.get("ws", ""))},
                           {"SOL-PERP": "SOL-PERP"}))
REGISTRY = (*VENUES, FAKE)


def test_an_added_venue_is_a_produce_simulate_and_dev_choice() -> None:
    parser = build_parser(REGISTRY, simulator_options=False)
    assert "fakex" in parser.subcommands["produce"].subcommands
    assert "fakex" in parser.subcommands["simulate"].subcommands
    args = parser.parse_args(["produce", "fakex"])
    assert args.venue_entry is FAKE
    args = parser.parse_args(["simulate", "fakex"])
    assert args.simulator_module == "simulators.drift.__main__"
    args = parser.parse_args(["dev", "--venues", "drift,fakex"])
    assert args.venues == "drift,fakex"
    assert parser.parse_args(["dev"]).venues.split(",") == dev_names(REGISTRY)
    assert "fakex" in " ".join(parser.subcommands["dev"].format_help().split())


def test_without_the_entry_the_venue_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser(VENUES, simulator_options=False)
    for argv in (["produce", "fakex"], ["simulate", "fakex"], ["dev", "--venues", "drift,fakex"]):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(argv)
        assert exit_.value.code == 2
        assert "fakex" in capsys.readouterr().err


def test_the_dev_plan_is_derived_from_the_registry() -> None:
    plans = plan.plans(REGISTRY)
    assert list(plans) == dev_names(REGISTRY)
    fake = plans["fakex"]
    assert fake.produce_as == "fakex" and fake.truth_markets == {"SOL-PERP": "SOL-PERP"}
    (sim,) = fake.simulators({})
    assert sim.name == "simulator-fakex" and "simulators.drift" in sim.argv and "--max-seconds" in sim.argv
    sim.info["ws"] = "ws://127.0.0.1:1/ws"
    producer = fake.producer({"MARKETPIPE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, 5555)
    assert producer.argv[-2:] == ["produce", "fakex"]
    assert producer.env["MARKETPIPE_WS_URL"] == "ws://127.0.0.1:1/ws"
    assert set(plan.PLANS) == set(dev_names())


def test_ccxt_exchanges_are_venues_named_the_same_everywhere() -> None:
    assert {"binance", "okx"} <= set(producer_names()) & set(simulator_names()) & set(dev_names())
    for name in ("binance", "okx"):
        assert plan.PLANS[name].produce_as == name
    entry = {v.name: v for v in VENUES}
    assert entry["binance"].producer == entry["okx"].producer == entry["ccxt"].producer == "ccxt"
    assert entry["binance"].env == {"MARKETPIPE_EXCHANGE": "binance"}


def test_readme_venue_table_is_the_registry() -> None:
    from marketpipe.venues import markdown_table

    text = README.read_text()
    match = re.search(r"<!-- venues:begin.*?-->\n(.*?)<!-- venues:end -->", text, re.S)
    assert match, "README.md has no <!-- venues:begin --> ... <!-- venues:end --> block"
    assert match.group(1).strip() == markdown_table().strip(), \
        "README venue table differs from marketpipe/venues.py; regenerate: python -m marketpipe.venues --write"


def test_parser_built_without_simulators_still_parses_other_commands() -> None:
    args = build_parser(simulator_options=False).parse_args(["query", "fills", "binance:default", "--json"])
    assert isinstance(args, argparse.Namespace) and args.what == "fills" and args.json
