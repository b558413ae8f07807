"""NOTES.txt: rendered (helm template does not print it, so a copy of the chart renders it into a
ConfigMap), it tells how to query the tables on routes the processors really serve, and where metrics are."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from tests.helm.chart import CHART, REPO, render
from tests.helm.conftest import MONITORING_API, values_file

NOTES_PROBE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: rendered-notes
data:
  NOTES.txt: {{ include (print $.Template.BasePath "/NOTES.txt") . | quote }}
"""


def rendered_notes(tmp_path: Path, values: str, api_versions: tuple[str, ...] = ()) -> str:
    chart = tmp_path / "marketpipe"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-notes.yaml").write_text(NOTES_PROBE)
    m = render([values_file(values)], api_versions=api_versions, chart=chart)
    return m.get("ConfigMap", "rendered-notes")["data"]["NOTES.txt"]


def processor_routes() -> list[re.Pattern[str]]:
    """The faust pages processors/views.py registers, as regexes over concrete paths."""
    source = (REPO / "processors" / "views.py").read_text()
    routes = re.findall(r'@page\("([^"]+)"', source)
    assert routes, "no @page routes found in processors/views.py"
    return [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", r) + "$") for r in routes]


def test_notes_tell_how_to_query_tables_on_real_routes(tmp_path: Path) -> None:
    notes = rendered_notes(tmp_path, "multi-venue-values")
    assert "curl -s \"http://mp-marketpipe-processors.markets.svc:6066/books/<venue>/<market>?depth=10\"" in notes
    paths = re.findall(r'curl -s "mp-marketpipe-processors:6066(/[^"?]*)', notes)
    assert len(paths) >= 5, notes
    routes = processor_routes()
    for path in paths:
        assert any(r.match(path) for r in routes), f"NOTES show {path}, which no processor route serves"
    for producer in ("rabbitx", "drift", "econia", "binance", "okx"):
        assert f"mp-marketpipe-{producer}: marketpipe produce" in notes
    assert "/metrics" in notes
    # no Prometheus Operator in this render: the notes say so instead of promising a ServiceMonitor
    assert "no ServiceMonitor was created" in notes


def test_notes_with_the_monitoring_api(tmp_path: Path) -> None:
    notes = rendered_notes(tmp_path, "multi-venue-values", (MONITORING_API,))
    assert "A ServiceMonitor (mp-marketpipe) scrapes them all." in notes
    assert yaml.safe_load(yaml.safe_dump(notes))  # plain text, nothing unrendered
    assert "{{" not in notes
