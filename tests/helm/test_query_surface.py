"""The processors' query surface in the chart: static membership from the pod name, the web port bound to the
pod IP and advertised under a name that survives restarts, the optional query token from an existing Secret,
and NetworkPolicies for the query and metrics ports that render, validate and admit only what they say."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_validate import utils as kv

from tests.helm.chart import NAMESPACE, Manifests, fullname, render
from tests.helm.conftest import VALUES_FILES
from tests.helm.podenv import ContainerEnvironment, container_of, pod_spec_of
from tests.helm.test_lint_validate import KUBERNETES_VERSIONS
from tests.helm.test_rendered import EXISTING

FULL = fullname()
PROCESSORS = f"{FULL}-processors"
POD = "mp-marketpipe-processors-1"  # what the downward API gives the second pod


def processor_env(m: Manifests, existing: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    env = ContainerEnvironment(m, {**EXISTING, **(existing or {})}, field_values={
        "status.podIP": "10.1.2.3", "metadata.namespace": NAMESPACE, "metadata.name": POD})
    return env.resolve(container_of(m.get("StatefulSet", PROCESSORS)))


def field_ref(m: Manifests, var: str) -> str | None:
    for e in container_of(m.get("StatefulSet", PROCESSORS)).get("env") or []:
        if e["name"] == var:
            return e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    raise AssertionError(f"{var} not in the processors' env")


# -- static membership, bind address, advertised address ------------------------------------------------------

@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_group_instance_id_is_the_pod_name_by_default(values: Any, rendered: dict[str, Manifests]) -> None:
    m = rendered[values.stem]
    assert field_ref(m, "MARKETPIPE_PROCESSOR_GROUP_INSTANCE_ID") == "metadata.name"
    assert processor_env(m)["MARKETPIPE_PROCESSOR_GROUP_INSTANCE_ID"] == POD


def test_static_membership_can_be_turned_off(helm_bin: str) -> None:
    env = processor_env(render(set_values={"processors.staticMembership": False}))
    assert "MARKETPIPE_PROCESSOR_GROUP_INSTANCE_ID" not in env


def test_web_port_binds_the_pod_ip_and_advertises_the_stable_pod_name(helm_bin: str) -> None:
    m = render()
    assert field_ref(m, "MARKETPIPE_PROCESSOR_WEB_BIND") == "status.podIP"
    env = processor_env(m)
    assert env["MARKETPIPE_PROCESSOR_WEB_BIND"] == "10.1.2.3"
    # the name resolves through the headless Service (publishNotReadyAddresses) and stays the same when the
    # pod comes back with a new IP: a static member rejoining causes no rebalance that would spread a new IP
    sts = m.get("StatefulSet", PROCESSORS)
    headless = m.get("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert env["MARKETPIPE_PROCESSOR_WEB_HOST"] == f"{POD}.{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert "MARKETPIPE_PROCESSOR_WEB_BIND" not in m.get("ConfigMap", PROCESSORS)["data"]
    explicit = processor_env(render(set_values={"processors.webBind": "0.0.0.0", "processors.clusterDomain": "k.test"}))
    assert explicit["MARKETPIPE_PROCESSOR_WEB_BIND"] == "0.0.0.0"
    assert explicit["MARKETPIPE_PROCESSOR_WEB_HOST"].endswith(".svc.k.test")


# -- query token ------------------------------------------------------------------------------------------------

def test_query_token_comes_from_the_existing_secret(helm_bin: str) -> None:
    m = render(set_values={"processors.queryToken": {"existingSecret": "mp-query", "key": "bearer"}})
    env = processor_env(m, {"mp-query": {"bearer": "s3cret-token"}})
    assert env["MARKETPIPE_PROCESSOR_QUERY_TOKEN"] == "s3cret-token"
    assert not any("s3cret" in str(cm) for cm in m.of_kind("ConfigMap"))
    assert "MARKETPIPE_PROCESSOR_QUERY_TOKEN" not in processor_env(render())
    # probes stay on paths that never need the token
    c = container_of(m.get("StatefulSet", PROCESSORS))
    assert {c[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")} == \
        {"/processor/live", "/processor/ready"}


def test_query_token_cannot_be_given_as_a_plain_setting(helm_bin: str) -> None:
    from tests.helm.chart import helm, template_args

    for settings in ({"processor_query_token": "x"}, {"processor_group_instance_id": "x"}):
        proc = helm(*template_args(set_values={"processors.settings": settings}), check=False)
        assert proc.returncode != 0 and "processors.settings.processor_" in proc.stderr, proc.stderr


# -- NetworkPolicy ------------------------------------------------------------------------------------------------

QUERY_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "trading"}},
              "podSelector": {"matchLabels": {"app": "dashboard"}}}
METRICS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def policies(m: Manifests) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in m.of_kind("NetworkPolicy")}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_network_policies_render_and_validate(version: str, helm_bin: str) -> None:
    m = render([v for v in VALUES_FILES if v.stem == "multi-venue-values"],
               set_values={"networkPolicy.queryFrom": [QUERY_PEER, {"ipBlock": {"cidr": "10.20.0.0/16"}}],
                           "networkPolicy.metricsFrom": [METRICS_PEER]})
    assert set(policies(m)) == {PROCESSORS, f"{FULL}-producers"}
    for p in m.of_kind("NetworkPolicy"):
        kv.validate(p, version, strict=True)


def test_processors_policy_admits_the_workers_and_the_configured_sources_on_the_web_port(helm_bin: str) -> None:
    m = render(set_values={"networkPolicy.queryFrom": [QUERY_PEER], "networkPolicy.metricsFrom": [METRICS_PEER]})
    pol = policies(m)[PROCESSORS]["spec"]
    sts = m.get("StatefulSet", PROCESSORS)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert selects(pol["podSelector"], labels) and pol["policyTypes"] == ["Ingress"]
    (rule,) = pol["ingress"]
    ports = {p["name"] for p in container_of(sts)["ports"]}
    assert [p["port"] for p in rule["ports"]] == ["web"] and ports == {"web"}
    peers = rule["from"]
    # the workers forward queries to each other: they must be admitted (only pods, this namespace)
    assert any(set(p) == {"podSelector"} and selects(p["podSelector"], labels) for p in peers)
    assert QUERY_PEER in peers and METRICS_PEER in peers and len(peers) == 3


def test_defaults_admit_this_namespace_for_queries_and_nothing_for_producers(helm_bin: str) -> None:
    m = render([v for v in VALUES_FILES if v.stem == "multi-venue-values"])
    pols = policies(m)
    peers = pols[PROCESSORS]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in peers  # queryFrom default: pods of the release's namespace
    prod = pols[f"{FULL}-producers"]["spec"]
    # no metrics sources configured: no ingress at all (kubelet probes come from the node and always pass);
    # a rule without `from` would admit everyone instead
    assert prod["ingress"] == [] and prod["policyTypes"] == ["Ingress"]
    for dep in m.of_kind("Deployment"):
        assert selects(prod["podSelector"], dep["spec"]["template"]["metadata"]["labels"])
    assert not selects(prod["podSelector"], m.get("StatefulSet", PROCESSORS)["spec"]["template"]["metadata"]["labels"])


def test_producers_policy_admits_metrics_sources_on_the_health_port(helm_bin: str) -> None:
    m = render([v for v in VALUES_FILES if v.stem == "multi-venue-values"],
               set_values={"networkPolicy.metricsFrom": [METRICS_PEER]})
    (rule,) = policies(m)[f"{FULL}-producers"]["spec"]["ingress"]
    assert rule["from"] == [METRICS_PEER] and [p["port"] for p in rule["ports"]] == ["http"]
    for dep in m.of_kind("Deployment"):
        assert "http" in {p["name"] for p in container_of(dep)["ports"]}


def test_no_rule_ever_admits_everyone(helm_bin: str) -> None:
    """An ingress rule with no (or an empty) `from` admits every source: the chart never renders one."""
    for set_values in ({}, {"networkPolicy.queryFrom": []}, {"networkPolicy.metricsFrom": [METRICS_PEER]}):
        m = render([v for v in VALUES_FILES if v.stem == "multi-venue-values"], set_values=set_values)
        for p in m.of_kind("NetworkPolicy"):
            for rule in p["spec"].get("ingress") or []:
                assert rule.get("from"), (set_values, p["metadata"]["name"], rule)


def test_network_policies_can_be_turned_off(helm_bin: str) -> None:
    assert not render(set_values={"networkPolicy.enabled": False}).of_kind("NetworkPolicy")
    sts = render(set_values={"networkPolicy.enabled": False}).get("StatefulSet", PROCESSORS)
    assert pod_spec_of(sts)["containers"]
