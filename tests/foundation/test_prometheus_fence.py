"""The prometheus_client fence (marketpipe/prometheus_fence.py): pinned and installed version agree, the
upstream functions observe_all reproduces are unchanged, another version is refused with a clear message,
and no other module reaches into prometheus_client's private members."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from prometheus_client import Histogram

from marketpipe import fencing, prometheus_fence

REPO = Path(__file__).resolve().parents[2]


def test_upstream_functions_unchanged() -> None:
    changed = fencing.changed_upstream(prometheus_fence.UPSTREAM_SHA256)
    assert not changed, ("upstream functions changed since marketpipe/prometheus_fence.py was written; port "
                         "their changes into the fence, then update UPSTREAM_SHA256:\n"
                         + "\n".join(f"  {name}: {what}" for name, what in sorted(changed.items())))


def test_fingerprint_names_exactly_the_changed_function(monkeypatch: pytest.MonkeyPatch) -> None:
    def observe(self: Histogram, amount: float, exemplar: object = None) -> None:  # new upstream code
        return None

    monkeypatch.setattr(Histogram, "observe", observe)
    assert fencing.changed_upstream(prometheus_fence.UPSTREAM_SHA256) == {
        "prometheus_client.metrics:Histogram.observe": "changed"}


def test_pinned_version_is_installed_and_declared_exactly() -> None:
    prometheus_fence.require_pinned_version()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dist, version in prometheus_fence.PINNED.items():
        assert f"{dist}=={version}" in deps


def test_another_version_is_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fencing, "installed_version", lambda dist: "1.0.0")
    with pytest.raises(fencing.UnpinnedLibraryError) as refused:
        prometheus_fence.require_pinned_version()
    message = str(refused.value)
    assert "prometheus-client: pinned 0.26.0, installed 1.0.0" in message
    assert "pip install prometheus-client==0.26.0" in message
    assert "marketpipe/prometheus_fence.py" in message and prometheus_fence.FENCE_TEST in message


# private members of prometheus_client's metric objects, as the project would spell a reach into them
PRIVATE_METRIC_FIELD = re.compile(r"\.(_value|_sum|_count|_buckets|_upper_bounds|_metrics|_lock|_created|"
                                  r"_names_to_collectors|_collector_to_names|_labelvalues|_labelnames)\b")


def test_only_the_fence_reaches_into_prometheus_client() -> None:
    """A new `metric._value.get()` elsewhere would be an unguarded private touch point: use the public
    API (collect(), generate_latest) or add it to the fence."""
    offenders = []
    for package in ("marketpipe", "processors", "producers", "simulators", "benchmarks", "schemas", "tests"):
        for path in (REPO / package).rglob("*.py"):
            if path in (REPO / "marketpipe" / "prometheus_fence.py", Path(__file__).resolve()):
                continue
            text = path.read_text()
            if "prometheus" not in text and "metrics" not in text:
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if PRIVATE_METRIC_FIELD.search(line) and "self._" not in line:
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
