"""The faust fence (processors/faust_fence.py): the pinned versions are the installed and the declared ones,
the upstream functions it copies or overrides are the ones it was written against, and another version is
refused at start-up with a message saying what to do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from faust.transport.consumer import Consumer

from marketpipe import fencing
from processors import faust_fence

REPO = Path(__file__).resolve().parents[2]


def declared_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {name.strip().lower(): version.strip() for name, _, version in (d.partition("==") for d in deps) if version}


def test_upstream_functions_unchanged() -> None:
    """Every upstream function the fence copies, overrides or relies on the workings of has the source it
    was written against. On an upgrade this names exactly the ones to read again and port."""
    changed = fencing.changed_upstream(faust_fence.UPSTREAM_SHA256)
    assert not changed, ("upstream functions changed since processors/faust_fence.py was written; port "
                         "their changes into the fence, then update UPSTREAM_SHA256:\n"
                         + "\n".join(f"  {name}: {what}" for name, what in sorted(changed.items())))


def test_fingerprint_names_exactly_the_changed_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an upgrade looks like: one upstream method's code differs, and only that one is named."""
    async def _add_gap(self: Consumer, tp: object, offset_from: int, offset_to: int) -> None:  # new upstream code
        return None

    monkeypatch.setattr(Consumer, "_add_gap", _add_gap)
    assert fencing.changed_upstream(faust_fence.UPSTREAM_SHA256) == {
        "faust.transport.consumer:Consumer._add_gap": "changed"}


def test_fingerprints_cover_every_touch_point_and_resolve() -> None:
    names = set(faust_fence.UPSTREAM_SHA256)
    for needed in ("faust.transport.consumer:Consumer._drain_messages",
                   "faust.transport.conductor:Conductor._compile_message_handler",
                   "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer",
                   "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread",
                   "faust.app.base:App._new_transport",
                   "faust.streams:Stream._py_aiter", "faust/_cython/streams.pyx",
                   "faust.streams:Stream._channel_stop_iteration", "faust.streams:Stream._set_current_event"):
        assert needed in names
    assert all(not h.startswith("missing") for h in fencing.fingerprints(names).values())


def test_pinned_versions_are_installed_and_declared_exactly() -> None:
    faust_fence.require_pinned_versions()  # the installed ones
    declared = declared_pins()
    for dist, version in faust_fence.PINNED.items():
        assert declared.get(dist) == version, f"pyproject.toml must pin {dist}=={version}"


def test_another_faust_version_is_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fencing.installed_version
    monkeypatch.setattr(fencing, "installed_version",
                        lambda dist: "0.16.0" if dist == "faust-streaming" else real(dist))
    with pytest.raises(fencing.UnpinnedLibraryError) as refused:
        faust_fence.require_pinned_versions()
    message = str(refused.value)
    assert "faust-streaming: pinned 0.15.3, installed 0.16.0" in message
    assert "pip install faust-streaming==0.15.3" in message
    assert "processors/faust_fence.py" in message and faust_fence.FENCE_TEST in message
    assert "mode-streaming" not in message and "aiokafka" not in message  # only what is wrong is named


def test_missing_library_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fencing.installed_version
    monkeypatch.setattr(fencing, "installed_version", lambda dist: None if dist == "aiokafka" else real(dist))
    with pytest.raises(fencing.UnpinnedLibraryError, match="aiokafka: pinned 0.14.0, installed none"):
        faust_fence.require_pinned_versions()


FAKE_VERSION = """
import importlib.metadata as metadata
real = metadata.version
metadata.version = lambda dist: "{fake}" if dist.lower() == "{dist}" else real(dist)
from processors.worker import main
raise SystemExit(main([]))
"""


@pytest.mark.parametrize(("dist", "fake", "pinned"), [("faust-streaming", "0.16.0", "0.15.3"),
                                                      ("prometheus-client", "0.27.0", "0.26.0")])
def test_worker_start_refuses_another_fenced_library_version(tmp_path: Path, dist: str, fake: str,
                                                             pinned: str) -> None:
    """`marketpipe process` with a faked installed version: exit code 2 and the message, before touching
    Kafka (the bootstrap address is a closed port; reaching it would fail after retries with a traceback)."""
    env = {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": "127.0.0.1:9", "MARKETPIPE_REGISTRY_URL": "http://127.0.0.1:9",
           "MARKETPIPE_PROCESSOR_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", FAKE_VERSION.format(dist=dist, fake=fake)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr
    assert f"{dist}: pinned {pinned}, installed {fake}" in done.stderr
    assert f"pip install {dist}=={pinned}" in done.stderr
    assert "Traceback" not in done.stderr


# the private faust / mode members the fence touches (and aiokafka's fetch long-poll, which only
# marketpipe/aiokafka_fence.py sets), and any private name imported from faust or mode
FAUST_PRIVATE = re.compile(
    r"\._(finalized|tp_to_callback\w*|read_offset|n_acked|commit_fut|commit_every|add_gap|drain_messages|"
    r"channel_stop_iteration|current_event|set_current_event|new_transport|create_worker_consumer|"
    r"new_consumer_thread|fetch_max_wait_ms|stopped)\b|from (faust|mode)[\w.]* import _")


def test_only_the_fence_reaches_into_faust() -> None:
    """A reach into these members anywhere else would run unguarded on another faust version."""
    offenders = []
    for package in ("marketpipe", "processors", "producers", "simulators", "benchmarks", "schemas", "tests"):
        for path in (REPO / package).rglob("*.py"):
            if path in (REPO / "processors" / "faust_fence.py", REPO / "marketpipe" / "aiokafka_fence.py",
                        Path(__file__).resolve()):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if FAUST_PRIVATE.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
