"""The chart's Grafana dashboard and PrometheusRule: off by default; rendered, they parse, every metric a
panel or an alert reads is one the code exports (cross-checked against the collectors themselves), and
promtool checks the rules and the panels' queries and runs unit tests of every alert on synthetic series."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import REPO, Manifests, fullname, render
from tests.helm.conftest import MONITORING_API, values_file

METRIC = re.compile(r"\bmarketpipe_[a-zA-Z0-9_]+")
GRAFANA_VARS = {"$namespace": "markets", "$__rate_interval": "1m", "${namespace}": "markets"}


def find_promtool() -> str:
    for c in (shutil.which("promtool"), str(REPO / ".venv" / "bin" / "promtool"), str(Path(sys.prefix) / "bin" / "promtool")):
        if c and Path(c).is_file():
            return c
    raise AssertionError("promtool not found (PATH, <repo>/.venv/bin): install it with .ci/install-promtool")


def exported_metric_names() -> set[str]:
    """Every series name the services' Prometheus collectors export, read from the collectors themselves
    (the same default registry the /metrics endpoints serve)."""
    import importlib

    from prometheus_client import REGISTRY

    for module in ("producers.publisher", "producers.core.metrics", "producers.ccxt.feed", "producers.ccxt.exact",
                   "producers.ccxt.book_channel", "producers.ccxt.market_channels", "processors.metrics"):
        importlib.import_module(module)
    from producers.core.metrics import SERIES, FeedMetrics

    feed = FeedMetrics("testvenue")  # families of the feed collector appear once a feed exists
    for name in SERIES:
        feed.inc(name)
    names: set[str] = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
                    "summary": ("_sum", "_count", "_created"), "info": ("_info",)}.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
        names.update(sample.name for sample in family.samples)
    del feed
    return {n for n in names if n.startswith("marketpipe_")}


@pytest.fixture(scope="module")
def monitored(helm_bin: str) -> Manifests:
    return render([values_file("multi-venue-values")], api_versions=[MONITORING_API])


@pytest.fixture(scope="module")
def dashboard(monitored: Manifests) -> dict[str, Any]:
    cm = monitored.get("ConfigMap", f"{fullname()}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # the Grafana sidecar's label convention
    return json.loads(cm["data"]["marketpipe.json"])


@pytest.fixture(scope="module")
def rule_groups(monitored: Manifests) -> list[dict[str, Any]]:
    rule = monitored.get("PrometheusRule", fullname())
    assert rule["apiVersion"] == MONITORING_API
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    return rule["spec"]["groups"]


def panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


def alert_exprs(groups: list[dict[str, Any]]) -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def test_dashboard_and_rules_are_off_by_default(helm_bin: str) -> None:
    m = render(api_versions=[MONITORING_API])
    assert not m.of_kind("PrometheusRule")
    assert not [c for c in m.of_kind("ConfigMap") if "grafana_dashboard" in c["metadata"].get("labels", {})]


def test_rules_only_where_the_operator_is_installed(helm_bin: str) -> None:
    assert not render([values_file("multi-venue-values")]).of_kind("PrometheusRule")


def test_dashboard_covers_producers_publisher_processors_and_lag(dashboard: dict[str, Any]) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Producers", "Publisher (producer -> Kafka)", "Processors", "Lag"]
    used = {m for e in panel_exprs(dashboard) for m in METRIC.findall(e)}
    for prefix in ("marketpipe_feed_", "marketpipe_publisher_", "marketpipe_processor_"):
        assert any(m.startswith(prefix) for m in used), prefix
    assert "marketpipe_processor_consumer_lag" in used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_alerts_cover_the_failure_modes(rule_groups: list[dict[str, Any]]) -> None:
    assert set(alert_exprs(rule_groups)) == {"MarketpipeProducerDown", "MarketpipeFeedDisconnected",
                                             "MarketpipePublisherBlocked", "MarketpipeBooksOutOfSync",
                                             "MarketpipeGapsRising", "MarketpipeConsumerLag"}
    for g in rule_groups:
        for r in g["rules"]:
            assert r["labels"]["severity"] in {"critical", "warning"} and r["annotations"]["summary"]


def test_every_metric_in_panels_and_alerts_is_exported_by_the_code(dashboard: dict[str, Any],
                                                                   rule_groups: list[dict[str, Any]]) -> None:
    exported = exported_metric_names()
    assert "marketpipe_feed_gaps_total" in exported and "marketpipe_publisher_blocked_seconds_total" in exported
    used = {m: where for where, exprs in (("dashboard", panel_exprs(dashboard)),
                                          ("alerts", list(alert_exprs(rule_groups).values())))
            for e in exprs for m in METRIC.findall(e)}
    unknown = {m: where for m, where in used.items() if m not in exported}
    assert not unknown, f"metrics no collector exports: {unknown}"


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules_and_the_panel_queries(dashboard: dict[str, Any], rule_groups: list[dict[str, Any]],
                                                         tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}))
    res = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert res.returncode == 0 and "SUCCESS: 6 rules found" in res.stdout, res.stdout + res.stderr
    # the panels' queries, Grafana's variables filled in, parsed by Prometheus' own parser as recording rules
    exprs = []
    for e in panel_exprs(dashboard):
        for var, value in GRAFANA_VARS.items():
            e = e.replace(var, value)
        exprs.append(e)
    rules = [{"record": f"marketpipe:dashboard_panel_{i}", "expr": e} for i, e in enumerate(exprs)]
    (tmp_path / "panels.yaml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    res = _promtool("check", "rules", "panels.yaml", cwd=tmp_path)
    assert res.returncode == 0 and f"SUCCESS: {len(rules)} rules found" in res.stdout, res.stdout + res.stderr


ALERT_TESTS = """
evaluation_interval: 1m
rule_files: [rules.yaml]
tests:
  - interval: 1m
    input_series:
      - {series: 'up{namespace="markets", endpoint="http", service="mp-marketpipe-rabbitx", pod="r1"}', values: '0x10'}
      - {series: 'up{namespace="markets", endpoint="http", service="mp-marketpipe-drift", pod="d1"}', values: '1x10'}
      - {series: 'up{namespace="markets", endpoint="web", service="mp-marketpipe", pod="w0"}', values: '0x10'}
      - {series: 'marketpipe_feed_connected{namespace="markets", venue="econia", pod="e1"}', values: '0x10'}
      - {series: 'marketpipe_feed_connected{namespace="markets", venue="drift", pod="d1"}', values: '1x10'}
      - {series: 'marketpipe_processor_books_out_of_sync{namespace="markets", pod="w0"}', values: '2x10'}
      - {series: 'marketpipe_processor_books_out_of_sync{namespace="markets", pod="w1"}', values: '0x10'}
    alert_rule_test:
      - {eval_time: 1m, alertname: MarketpipeProducerDown, exp_alerts: []}
      - eval_time: 3m
        alertname: MarketpipeProducerDown
        exp_alerts:
          - exp_labels: {severity: critical, namespace: markets, endpoint: http, service: mp-marketpipe-rabbitx, pod: r1}
      - eval_time: 3m
        alertname: MarketpipeFeedDisconnected
        exp_alerts:
          - exp_labels: {severity: critical, namespace: markets, venue: econia}
      - {eval_time: 4m, alertname: MarketpipeBooksOutOfSync, exp_alerts: []}
      - eval_time: 6m
        alertname: MarketpipeBooksOutOfSync
        exp_alerts:
          - exp_labels: {severity: warning, namespace: markets}
  - interval: 1m
    input_series:
      - {series: 'marketpipe_publisher_blocked_seconds_total{namespace="markets", pod="p1"}', values: '0+60x30'}
      - {series: 'marketpipe_publisher_blocked_seconds_total{namespace="markets", pod="p2"}', values: '0+6x30'}
      - {series: 'marketpipe_feed_gaps_total{namespace="markets", venue="rabbitx", channel="orderbook:BTC-USD"}', values: '0+1x40'}
      - {series: 'marketpipe_feed_gaps_total{namespace="markets", venue="drift", channel="orderbook:SOL-PERP"}', values: '0+0.1x40'}
      - {series: 'marketpipe_processor_consumer_lag{namespace="markets", topic="marketpipe.book.v1", partition="0"}', values: '15000x30'}
      - {series: 'marketpipe_processor_consumer_lag{namespace="markets", topic="marketpipe.trades.v1", partition="0"}', values: '10x30'}
    alert_rule_test:
      - eval_time: 12m
        alertname: MarketpipePublisherBlocked
        exp_alerts:
          - exp_labels: {severity: critical, namespace: markets, pod: p1}
      - {eval_time: 20m, alertname: MarketpipeGapsRising, exp_alerts: []}
      - eval_time: 30m
        alertname: MarketpipeGapsRising
        exp_alerts:
          - exp_labels: {severity: warning, namespace: markets, venue: rabbitx}
      - {eval_time: 5m, alertname: MarketpipeConsumerLag, exp_alerts: []}
      - eval_time: 15m
        alertname: MarketpipeConsumerLag
        exp_alerts:
          - exp_labels: {severity: warning, namespace: markets, topic: marketpipe.book.v1}
"""


def test_promtool_unit_tests_each_alert_fires_when_it_should_and_only_then(rule_groups: list[dict[str, Any]],
                                                                          tmp_path: Path) -> None:
    # annotations are message templates: left out here so the tests state the firing logic (expr, for, labels)
    groups = [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
              for g in rule_groups]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "alerts_test.yaml").write_text(ALERT_TESTS)
    res = _promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout
