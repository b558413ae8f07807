"""The chart's optional monitoring: a Grafana dashboard ConfigMap and a PrometheusRule, both off by default.
Checked offline: they render only when asked, the dashboard is valid JSON whose queries and the alerts' expressions
name only metrics the code exports, the alerts cover what operators need, and thresholds come from values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helm.chart import NAMESPACE, HelmError, Manifests, fullname, render
from tests.helm.conftest import MONITORING_API, VALUES_FILES, values_file

REPO = Path(__file__).resolve().parents[2]
ON = {"metrics.grafanaDashboard.enabled": True, "metrics.prometheusRule.enabled": True}
REQUIRED_ALERTS = {"MarketpipeProducerDown", "MarketpipeFeedDisconnected", "MarketpipePublisherBlocked",
                   "MarketpipeBooksOutOfSync", "MarketpipeBooksCrossed", "MarketpipeGapsRising",
                   "MarketpipeConsumerLag"}


def exported_metrics() -> set[str]:
    """Every metric name the code defines (prometheus_client objects and custom collectors), as scraped:
    counters gain _total, histograms _bucket/_sum/_count."""
    names: set[str] = set()
    for package in ("producers", "processors", "marketpipe"):
        for path in (REPO / package).rglob("*.py"):
            names |= set(re.findall(r'"(marketpipe_[a-z0-9_]+)"', path.read_text()))
    scraped = set(names)
    for n in names:
        scraped |= {f"{n}_total", f"{n}_bucket", f"{n}_sum", f"{n}_count"}
    return scraped


def metrics_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(marketpipe_[a-z0-9_]+)", expr))


def balanced(expr: str) -> bool:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for ch in re.sub(r'"[^"]*"', "", expr):
        if ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] -= 1
            if depth[closing[ch]] < 0:
                return False
    return all(v == 0 for v in depth.values())


def dashboard_of(m: Manifests) -> dict[str, Any]:
    (cm,) = [o for o in m.of_kind("ConfigMap") if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert cm["metadata"]["name"] == f"{fullname()}-dashboard"
    return dict(json.loads(cm["data"]["marketpipe.json"]))


def rules_of(m: Manifests) -> list[dict[str, Any]]:
    (rule,) = m.of_kind("PrometheusRule")
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_off_by_default(values: Path, rendered: dict[str, Manifests]) -> None:
    m = rendered[values.stem]  # rendered with the monitoring API present
    assert not m.of_kind("PrometheusRule")
    assert not [o for o in m.of_kind("ConfigMap") if "grafana_dashboard" in o["metadata"].get("labels", {})]


def test_dashboard_configmap_queries_exported_metrics() -> None:
    m = render([values_file("multi-venue-values")], set_values={**ON, "metrics.grafanaDashboard.annotations":
                                                                {"grafana_folder": "marketpipe"}})
    dash = dashboard_of(m)
    (cm,) = [o for o in m.of_kind("ConfigMap") if o["metadata"]["name"] == f"{fullname()}-dashboard"]
    assert cm["metadata"]["annotations"] == {"grafana_folder": "marketpipe"}
    assert dash["uid"] == "marketpipe" and dash["panels"]
    known = exported_metrics()
    used: set[str] = set()
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"  # whichever Prometheus the user picks
        for target in panel["targets"]:
            expr = target["expr"]
            assert balanced(expr), expr
            assert 'namespace="$namespace"' in expr, expr
            names = metrics_in(expr)
            assert names, expr
            assert names <= known, f"{panel['title']}: {names - known} not exported by the code"
            used |= names
    # the health the issue asks for is on the dashboard
    for needed in ("marketpipe_feed_connected", "marketpipe_feed_gaps_total", "marketpipe_feed_resyncs_total",
                   "marketpipe_processor_consumer_lag", "marketpipe_processor_books_out_of_sync",
                   "marketpipe_processor_books_crossed", "marketpipe_publisher_blocked_seconds_total"):
        assert needed in used, needed
    # the dashboard's gridPos places no two panels on the same spot
    spots = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dash["panels"]]
    assert len(spots) == len(set(spots))


def test_prometheus_rule_alerts() -> None:
    m = render([values_file("multi-venue-values")], set_values=ON, api_versions=[MONITORING_API])
    rules = rules_of(m)
    assert {r["alert"] for r in rules} == REQUIRED_ALERTS
    known = exported_metrics()
    for r in rules:
        expr = r["expr"]
        assert balanced(expr), expr
        assert f'namespace="{NAMESPACE}"' in expr, expr  # only this release's namespace
        assert metrics_in(expr) <= known, f"{r['alert']}: {metrics_in(expr) - known} not exported"
        assert r["labels"]["severity"] in ("critical", "warning")
        assert r["annotations"]["summary"] and "{{ $labels" not in r["alert"]
        if "for" in r:
            assert re.fullmatch(r"[0-9]+[smh]", r["for"]), r
        # Prometheus templating survived helm (escaped in the chart), helm's own did not leak
        for text in r["annotations"].values():
            assert "{{`" not in text and "`}}" not in text, text
    down = next(r for r in rules if r["alert"] == "MarketpipeProducerDown")
    producer_services = {s["metadata"]["name"] for s in m.of_kind("Service")
                         if s["metadata"]["labels"].get("app.kubernetes.io/component") == "producer"}
    assert len(producer_services) == 5
    (pattern,) = re.findall(r'service=~"([^"]+)"', down["expr"])
    # the alert's regex matches every producer Service of the release and nothing else (not the processors)
    assert {s for s in (m.names("Service")) if re.fullmatch(pattern, s)} == producer_services
    assert "$labels.venue" in next(r for r in rules if r["alert"] == "MarketpipeGapsRising")["annotations"]["summary"]


def test_prometheus_rule_thresholds_from_values_and_needs_the_operator_api() -> None:
    m = render([values_file("minimal-values")], set_values={
        **ON, "metrics.prometheusRule.consumerLag": 123, "metrics.prometheusRule.publisherBlockedRatio": 0.25,
        "metrics.prometheusRule.gapMarkersPer15m": 7, "metrics.prometheusRule.booksOutOfSyncFor": "9m",
        "metrics.prometheusRule.labels": {"release": "kube-prometheus-stack"}}, api_versions=[MONITORING_API])
    rules = {r["alert"]: r for r in rules_of(m)}
    assert rules["MarketpipeConsumerLag"]["expr"].endswith("> 123")
    assert rules["MarketpipePublisherBlocked"]["expr"].endswith("> 0.25")
    assert rules["MarketpipeGapsRising"]["expr"].endswith("> 7")
    assert rules["MarketpipeBooksOutOfSync"]["for"] == "9m"
    assert m.of_kind("PrometheusRule")[0]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # without the Prometheus Operator's API the rule is not rendered (the dashboard ConfigMap still is)
    bare = render([values_file("minimal-values")], set_values=ON)
    assert not bare.of_kind("PrometheusRule") and dashboard_of(bare)
    with pytest.raises(HelmError):  # the values schema refuses a ratio above 1
        render([values_file("minimal-values")], set_values={**ON, "metrics.prometheusRule.publisherBlockedRatio": 2})
