"""Chart fixtures: rendered manifests of every CI values file (rendered once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helm.chart import CI_VALUES, TEST_VALUES, Manifests, find_helm, render

VALUES_FILES = sorted(CI_VALUES.glob("*-values.yaml")) + sorted(TEST_VALUES.glob("*-values.yaml"))
MONITORING_API = "monitoring.coreos.com/v1"


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return find_helm()


@pytest.fixture(scope="session")
def rendered(helm_bin: str) -> dict[str, Manifests]:
    """{values file stem: manifests} rendered as on a cluster with the Prometheus Operator."""
    return {f.stem: render([f], api_versions=[MONITORING_API]) for f in VALUES_FILES}


def values_file(stem: str) -> Path:
    for f in VALUES_FILES:
        if f.stem == stem:
            return f
    raise AssertionError(f"no values file {stem}")
