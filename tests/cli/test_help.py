"""Every `marketpipe` subcommand explains itself: `--help` exits 0, every option has help text and shows its
default, `produce <venue> --help` lists every setting of the venue's settings class, and `simulate <venue>`
carries its own program name."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from marketpipe.cli import build_parser, main
from marketpipe.cli_help import Parser
from marketpipe.venues import VENUES, load_settings_class


def command_paths(parser: Parser, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Parser]]:
    out = [(prefix, parser)]
    for name, child in parser.subcommands.items():
        out += command_paths(child, (*prefix, name))
    return out


PATHS = command_paths(build_parser())


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_walk_reaches_every_command() -> None:
    names = {path for path, _ in PATHS}
    for top in ("infra", "schemas", "smoke", "dev", "produce", "process", "simulate", "record", "replay", "query"):
        assert (top,) in names
    for venue in VENUES:
        assert ("produce", venue.name) in names
        if venue.simulator:
            assert ("simulate", venue.name) in names


@pytest.mark.parametrize(("path", "parser"), PATHS, ids=[" ".join(p) or "marketpipe" for p, _ in PATHS])
def test_help_exits_0_and_documents_every_option(path: tuple[str, ...], parser: Parser,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside "(default: sim-secret)"
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    text = flat(capsys.readouterr().out)
    assert text.startswith(f"usage: {' '.join(('marketpipe', *path))}")
    for action in parser.recorded_actions:
        if "--help" in action.option_strings:  # argparse's own
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"{path} {action.dest}: no help"
        if action.option_strings:
            assert f"(default: {action.default})" in text, f"{path} {action.option_strings}: default not shown"


@pytest.mark.parametrize("venue", VENUES, ids=[v.name for v in VENUES])
def test_produce_help_lists_every_setting_of_the_venue(venue, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["produce", venue.name, "--help"])
    text = capsys.readouterr().out
    cls = load_settings_class(venue)
    for name in cls.model_fields:
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"MARKETPIPE_{name.upper()} (")), None)
        assert line is not None, f"MARKETPIPE_{name.upper()} missing from `produce {venue.name} --help`"
        assert "default" in line or "set to" in line
    for env, value in venue.env.items():
        assert f"{env} (" in text and f"set to {value} by this venue" in text
    if venue.name == "drift":  # a constrained field shows its range, a commented one its comment
        assert "MARKETPIPE_HEALTH_PORT (int | unset (>=0, <=65535); default unset)" in text
        assert "(txSig, fillRecordId) pairs remembered" in text


def test_simulate_help_from_the_installed_command_names_marketpipe() -> None:
    proc = subprocess.run([sys.executable, "-m", "marketpipe.cli", "simulate", "drift", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: marketpipe simulate drift")
    assert "python -m simulators.drift [" not in proc.stdout
    assert "--heartbeat-interval HEARTBEAT_INTERVAL" in proc.stdout
    assert "seconds between heartbeat messages (default: 5.0)" in flat(proc.stdout)
