"""Problems at a service's boundary are one line each naming the setting (or the URL and the setting), exit
status 2, never a traceback: bad settings, Kafka or the registry unreachable at start, a data directory that
cannot be created. The unreachable cases run the real CLI as a subprocess against closed 127.0.0.1 ports."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpipe.cli import main


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("MARKETPIPE_"):
            monkeypatch.delenv(key)
    return monkeypatch


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    return subprocess.run([sys.executable, "-m", "marketpipe.cli", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=timeout)


def problem_lines(stderr: str, prog: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(f"{prog}: ")]


# one bad setting each -> the variable named in one line
BAD_SETTINGS = [
    ({"MARKETPIPE_HEALTH_PORT": "99999"}, "MARKETPIPE_HEALTH_PORT=99999: Input should be less than or equal to 65535"),
    ({"MARKETPIPE_PUBLISHER_BUFFER": "12x"}, "MARKETPIPE_PUBLISHER_BUFFER=12x: Input should be a valid integer"),
    ({"MARKETPIPE_PUBLISHER_BUFFER": "0"}, "MARKETPIPE_PUBLISHER_BUFFER=0: Input should be greater than 0"),
    ({"MARKETPIPE_WS_URL": "not-a-url"}, "MARKETPIPE_WS_URL=not-a-url: expected a ws/wss:// URL"),
    ({"MARKETPIPE_REST_URL": "http://"}, "MARKETPIPE_REST_URL=http://: expected a http/https:// URL with a host"),
    ({"MARKETPIPE_MARKETS": ""}, "MARKETPIPE_MARKETS=: empty: the feed would run idle"),
    ({"MARKETPIPE_RECONNECT_INITIAL_DELAY": "-1"}, "MARKETPIPE_RECONNECT_INITIAL_DELAY=-1: Input should be greater than 0"),
    ({"MARKETPIPE_RECONNECT_MAX_DELAY": "-5"}, "MARKETPIPE_RECONNECT_MAX_DELAY=-5: Input should be greater than 0"),
    ({"MARKETPIPE_KAFKA_BOOTSTRAP": "kafka"}, "MARKETPIPE_KAFKA_BOOTSTRAP=kafka: 'kafka': expected host:port"),
    ({"MARKETPIPE_REGISTRY_URL": "registry:8081"}, "MARKETPIPE_REGISTRY_URL=registry:8081: expected a http/https://"),
    ({"MARKETPIPE_STARTUP_WAIT_S": "-1"}, "MARKETPIPE_STARTUP_WAIT_S=-1: Input should be greater than or equal to 0"),
    ({"MARKETPIPE_LOG_LEVEL": "LOUD"}, "MARKETPIPE_LOG_LEVEL=LOUD: expected DEBUG, INFO"),
]


@pytest.mark.parametrize(("env", "line"), BAD_SETTINGS, ids=[next(iter(e)) + "=" + next(iter(e.values()))
                                                             for e, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_and_exit_2(env: dict[str, str], line: str, clean_env: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in env.items():
        clean_env.setenv(key, value)
    assert main(["produce", "drift"]) == 2
    err = capsys.readouterr().err
    lines = problem_lines(err, "marketpipe produce drift")
    assert len(lines) == 1, err
    assert lines[0].startswith(f"marketpipe produce drift: {line}"), lines[0]


def test_every_bad_setting_is_reported_at_once_without_a_traceback() -> None:
    proc = run_cli(["produce", "rabbitx"], {
        "MARKETPIPE_HEALTH_PORT": "99999", "MARKETPIPE_PUBLISHER_BUFFER": "lots", "MARKETPIPE_WS_URL": "not-a-url",
        "MARKETPIPE_MARKETS": "", "MARKETPIPE_RECONNECT_INITIAL_DELAY": "-0.5"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = problem_lines(proc.stderr, "marketpipe produce rabbitx")
    named = sorted(ln.split(": ", 1)[1].split("=", 1)[0] for ln in lines)
    assert named == ["MARKETPIPE_HEALTH_PORT", "MARKETPIPE_MARKETS", "MARKETPIPE_PUBLISHER_BUFFER",
                     "MARKETPIPE_RECONNECT_INITIAL_DELAY", "MARKETPIPE_WS_URL"], proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 5, proc.stderr


def test_bad_json_in_a_map_setting_names_it(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("MARKETPIPE_MARKETS", "BTC/USDT")
    clean_env.setenv("MARKETPIPE_URL_OVERRIDES", "{api.ws: nope")
    assert main(["produce", "okx"]) == 2
    (line,) = problem_lines(capsys.readouterr().err, "marketpipe produce okx")
    assert line.startswith("marketpipe produce okx: MARKETPIPE_URL_OVERRIDES={api.ws: nope: not valid JSON")


def test_a_ccxt_venue_refuses_another_exchange(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("MARKETPIPE_MARKETS", "BTC/USDT")
    clean_env.setenv("MARKETPIPE_EXCHANGE", "okx")
    assert main(["produce", "binance"]) == 2
    (line,) = problem_lines(capsys.readouterr().err, "marketpipe produce binance")
    assert "MARKETPIPE_EXCHANGE=okx: `produce binance` runs binance" in line


def test_processor_settings_are_checked_too(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("MARKETPIPE_PROCESSOR_WEB_PORT", "70000")
    clean_env.setenv("MARKETPIPE_PROCESSOR_BATCH_MAX", "0")
    assert main(["process"]) == 2
    lines = problem_lines(capsys.readouterr().err, "marketpipe process")
    assert sorted(ln.split(": ", 1)[1].split("=", 1)[0] for ln in lines) == \
        ["MARKETPIPE_PROCESSOR_BATCH_MAX", "MARKETPIPE_PROCESSOR_WEB_PORT"]


def test_a_data_dir_that_cannot_be_created_is_named(tmp_path: Path, clean_env: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    clean_env.setenv("MARKETPIPE_PROCESSOR_STORE_URL", "memory://")
    clean_env.setenv("MARKETPIPE_PROCESSOR_DATA_DIR", str(blocker / "processors"))
    assert main(["process"]) == 2
    (line,) = problem_lines(capsys.readouterr().err, "marketpipe process")
    assert line.startswith(f"marketpipe process: MARKETPIPE_PROCESSOR_DATA_DIR={blocker / 'processors'}: "
                           "cannot create the directory")


# -- Kafka / registry unreachable (real CLI, closed ports) -------------------------------------------------

@pytest.fixture
def http_answering() -> Iterator[str]:
    """Something answering HTTP on 127.0.0.1 (a 404 for every path is "reachable" for the check)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/apis/ccompat/v7"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tcp_listening() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


def test_registry_unreachable_is_one_line_naming_url_and_setting(tcp_listening: str) -> None:
    registry = f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7"
    proc = run_cli(["produce", "drift"], {"MARKETPIPE_KAFKA_BOOTSTRAP": tcp_listening,
                                          "MARKETPIPE_REGISTRY_URL": registry, "MARKETPIPE_STARTUP_WAIT_S": "0"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"marketpipe produce drift: schema registry unreachable at {registry} (MARKETPIPE_REGISTRY_URL): "
        "Connection refused"], proc.stderr


def test_kafka_unreachable_is_one_line_naming_url_and_setting(http_answering: str) -> None:
    kafka = f"127.0.0.1:{closed_port()}"
    proc = run_cli(["produce", "rabbitx"], {"MARKETPIPE_KAFKA_BOOTSTRAP": kafka,
                                            "MARKETPIPE_REGISTRY_URL": http_answering,
                                            "MARKETPIPE_STARTUP_WAIT_S": "0"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"marketpipe produce rabbitx: Kafka unreachable at {kafka} (MARKETPIPE_KAFKA_BOOTSTRAP): "
        f"{kafka}: Connection refused"], proc.stderr


def test_unreachable_at_start_waits_with_a_countdown_then_exits_2(tmp_path: Path) -> None:
    kafka, registry = f"127.0.0.1:{closed_port()}", f"http://127.0.0.1:{closed_port()}/apis"
    data_dir = tmp_path / "not" / "yet" / "there"
    proc = run_cli(["process"], {"MARKETPIPE_KAFKA_BOOTSTRAP": kafka, "MARKETPIPE_REGISTRY_URL": registry,
                                 "MARKETPIPE_STARTUP_WAIT_S": "2", "MARKETPIPE_PROCESSOR_STORE_URL": "memory://",
                                 "MARKETPIPE_PROCESSOR_DATA_DIR": str(data_dir)})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert data_dir.is_dir()  # the directory it needs was created before it waited
    lines = problem_lines(proc.stderr, "marketpipe process")
    assert len(lines) == len(proc.stderr.strip().splitlines()), proc.stderr
    assert any("retrying in 1s" in ln and "MARKETPIPE_STARTUP_WAIT_S=2" in ln for ln in lines), proc.stderr
    assert lines[-1] == "marketpipe process: gave up after 2s (MARKETPIPE_STARTUP_WAIT_S)"
    assert sum("(MARKETPIPE_KAFKA_BOOTSTRAP)" in ln for ln in lines) >= 2  # tried again after the countdown


def test_schemas_register_names_the_unreachable_registry() -> None:
    registry = f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7"
    proc = run_cli(["schemas", "register"], {"MARKETPIPE_REGISTRY_URL": registry, "MARKETPIPE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
                                             "MARKETPIPE_STARTUP_WAIT_S": "0"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"marketpipe schemas register: schema registry unreachable at {registry} (MARKETPIPE_REGISTRY_URL): "
        "Connection refused"], proc.stderr


def test_produce_ccxt_needs_the_exchange_named(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("MARKETPIPE_MARKETS", "BTC/USDT")
    assert main(["produce", "ccxt"]) == 2
    (line,) = problem_lines(capsys.readouterr().err, "marketpipe produce ccxt")
    assert line.startswith("marketpipe produce ccxt: MARKETPIPE_EXCHANGE=: `produce ccxt` needs it set")
