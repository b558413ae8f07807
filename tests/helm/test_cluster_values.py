"""The chart on a real cluster: topic replication and min ISR, worker placement (pod anti-affinity, topology
spread), standby replicas, and lag-based autoscaling through a KEDA ScaledObject (off by default)."""

from __future__ import annotations

from typing import Any

import pytest

from marketpipe.settings import KafkaClientSettings
from processors.settings import ProcessorSettings
from tests.helm.chart import Manifests, fullname, helm, render, template_args
from tests.helm.podenv import container_of, pod_spec_of
from tests.helm.test_lint_validate import KUBERNETES_VERSION, _validate_all
from tests.helm.test_rendered import env_of
from tests.helm.test_settings_from_env import load

FULL = fullname()
PROC = f"{FULL}-processors"
KEDA_API = "keda.sh/v1alpha1"
KEDA_KINDS = {f"{KEDA_API}/ScaledObject", f"{KEDA_API}/TriggerAuthentication"}
LAG = {"processors.autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6,
                                  "targetCPUUtilizationPercentage": 70,
                                  "lag": {"enabled": True, "lagThreshold": 40000}}}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def worker_labels(m: Manifests) -> dict[str, str]:
    return m.get("StatefulSet", PROC)["spec"]["template"]["metadata"]["labels"]


# -- replication and min ISR ---------------------------------------------------------------------------------

def test_replication_and_min_isr_reach_every_service_and_the_processors_changelogs(
        helm_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m = render()
    sts = m.get("StatefulSet", PROC)
    env = env_of(m, sts)
    assert (env["MARKETPIPE_TOPIC_REPLICATION"], env["MARKETPIPE_TOPIC_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    assert "MARKETPIPE_PROCESSOR_TOPIC_REPLICATION" not in env  # changelogs follow topics.replication
    s = load(ProcessorSettings, env, monkeypatch)
    assert (s.topic_replication, s.topic_min_insync_replicas, s.processor_topic_replication) == (3, 2, None)
    job_env = env_of(m, m.get("Job", f"{FULL}-schemas"))  # the schema Job creates topics too
    assert job_env["MARKETPIPE_TOPIC_REPLICATION"] == "3"

    dev = render(set_values={"topics.replication": 1, "topics.minInsyncReplicas": 1})
    dev_env = env_of(dev, dev.get("StatefulSet", PROC))
    assert (dev_env["MARKETPIPE_TOPIC_REPLICATION"], dev_env["MARKETPIPE_TOPIC_MIN_INSYNC_REPLICAS"]) == ("1", "1")
    s = load(KafkaClientSettings, dev_env, monkeypatch)
    assert (s.topic_replication, s.topic_min_insync_replicas) == (1, 1)

    own = render(set_values={"processors.topicReplication": 2})
    assert env_of(own, own.get("StatefulSet", PROC))["MARKETPIPE_PROCESSOR_TOPIC_REPLICATION"] == "2"


def test_min_isr_above_replication_is_refused(helm_bin: str) -> None:
    proc = helm(*template_args(set_values={"topics.replication": 2, "topics.minInsyncReplicas": 3}), check=False)
    assert proc.returncode != 0
    assert "topics.minInsyncReplicas (3) exceeds topics.replication (2)" in proc.stderr, proc.stderr


def test_standby_replicas_value_reaches_the_workers(helm_bin: str) -> None:
    for n in (0, 2):
        m = render(set_values={"processors.standbyReplicas": n})
        assert env_of(m, m.get("StatefulSet", PROC))["MARKETPIPE_PROCESSOR_STANDBY_REPLICAS"] == str(n)


# -- placement ----------------------------------------------------------------------------------------------

def test_workers_spread_over_zones_by_default(helm_bin: str) -> None:
    m = render()
    (c,) = pod_spec_of(m.get("StatefulSet", PROC))["topologySpreadConstraints"]
    assert (c["topologyKey"], c["maxSkew"], c["whenUnsatisfiable"]) == ("topology.kubernetes.io/zone", 1,
                                                                         "ScheduleAnyway")
    assert selects(c["labelSelector"]["matchLabels"], worker_labels(m))
    off = render(set_values={"processors.spreadAcrossZones": False})
    assert "topologySpreadConstraints" not in pod_spec_of(off.get("StatefulSet", PROC))


def test_explicit_topology_spread_constraints_get_the_workers_selector(helm_bin: str) -> None:
    given = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"},
             {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
              "labelSelector": {"matchLabels": {"team": "markets"}}}]
    m = render(set_values={"processors.topologySpreadConstraints": given})
    host, zone = pod_spec_of(m.get("StatefulSet", PROC))["topologySpreadConstraints"]
    assert {k: host[k] for k in given[0]} == given[0]
    assert selects(host["labelSelector"]["matchLabels"], worker_labels(m))
    assert zone == given[1]  # an explicit selector is kept as given
    assert _validate_all(m, KUBERNETES_VERSION) == []


@pytest.mark.parametrize("mode", ["required", "preferred", ""])
def test_pod_anti_affinity_modes(mode: str, helm_bin: str) -> None:
    m = render(set_values={"processors.podAntiAffinity": mode})
    spec = pod_spec_of(m.get("StatefulSet", PROC))
    if not mode:
        assert "affinity" not in spec
        return
    anti = spec["affinity"]["podAntiAffinity"]
    if mode == "required":
        (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
        assert "preferredDuringSchedulingIgnoredDuringExecution" not in anti
    else:
        (weighted,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        term = weighted["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert selects(term["labelSelector"]["matchLabels"], worker_labels(m))
    assert _validate_all(m, KUBERNETES_VERSION) == []


def test_unknown_anti_affinity_mode_is_refused(helm_bin: str) -> None:
    proc = helm(*template_args(set_values={"processors.podAntiAffinity": "soft"}), check=False)
    assert proc.returncode != 0 and "podAntiAffinity" in proc.stderr, proc.stderr


# -- autoscaling on consumer lag (KEDA) ------------------------------------------------------------------------

def test_no_scaled_object_unless_lag_autoscaling_is_enabled(helm_bin: str) -> None:
    assert not render(api_versions=[KEDA_API]).of_kind("ScaledObject")  # defaults: off
    cpu = render(set_values={"processors.autoscaling": {"enabled": True}}, api_versions=[KEDA_API])
    assert not cpu.of_kind("ScaledObject") and cpu.of_kind("HorizontalPodAutoscaler")


def test_lag_autoscaling_renders_a_scaled_object_on_the_workers_consumer_group(helm_bin: str) -> None:
    m = render(set_values={**LAG, "processors.appId": "mp-proc", "kafka.bootstrap": "k1:9092,k2:9092"},
               api_versions=[KEDA_API])
    (so,) = m.of_kind("ScaledObject")
    assert not m.of_kind("HorizontalPodAutoscaler")  # KEDA owns the HPA
    sts = m.get("StatefulSet", PROC)
    assert "replicas" not in sts["spec"]
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": PROC}
    partitions = int(m.get("ConfigMap", PROC)["data"]["MARKETPIPE_PROCESSOR_TOPIC_PARTITIONS"])
    assert so["spec"]["minReplicaCount"] == 2 and so["spec"]["maxReplicaCount"] == 6 <= partitions
    kafka = next(t for t in so["spec"]["triggers"] if t["type"] == "kafka")
    env = env_of(m, sts)
    assert kafka["metadata"]["consumerGroup"] == env["MARKETPIPE_PROCESSOR_APP_ID"] == "mp-proc"
    assert kafka["metadata"]["bootstrapServers"] == env["MARKETPIPE_KAFKA_BOOTSTRAP"]
    assert kafka["metadata"]["lagThreshold"] == "40000"
    assert "topic" not in kafka["metadata"]  # every topic the group consumes
    assert "authenticationRef" not in kafka and not m.of_kind("TriggerAuthentication")  # PLAINTEXT
    cpu = next(t for t in so["spec"]["triggers"] if t["type"] == "cpu")
    assert cpu["metadata"]["value"] == "70"
    down = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    assert set(_validate_all(m, KUBERNETES_VERSION)) == {f"{KEDA_API}/ScaledObject"}


@pytest.mark.parametrize(("mechanism", "sasl"), [("PLAIN", "plaintext"), ("SCRAM-SHA-256", "scram_sha256"),
                                                 ("SCRAM-SHA-512", "scram_sha512")])
def test_lag_trigger_authenticates_like_the_workers(mechanism: str, sasl: str, helm_bin: str) -> None:
    m = render(set_values={**LAG, "kafka.securityProtocol": "SASL_SSL", "kafka.sasl": {
        "mechanism": mechanism, "existingSecret": "kafka-user", "usernameKey": "user", "passwordKey": "pass"},
        "kafka.tls": {"existingSecret": "kafka-ca", "caKey": "ca.crt", "certKey": "", "keyKey": ""}},
        api_versions=[KEDA_API])
    (so,) = m.of_kind("ScaledObject")
    (auth,) = m.of_kind("TriggerAuthentication")
    kafka = next(t for t in so["spec"]["triggers"] if t["type"] == "kafka")
    assert kafka["metadata"]["sasl"] == sasl and kafka["metadata"]["tls"] == "enable"
    assert kafka["authenticationRef"] == {"name": auth["metadata"]["name"]}
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    worker_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container_of(m.get("StatefulSet", PROC))["env"]
                  if "secretKeyRef" in e.get("valueFrom", {})}
    user, pw = worker_env["MARKETPIPE_KAFKA_SASL_USERNAME"], worker_env["MARKETPIPE_KAFKA_SASL_PASSWORD"]
    assert refs == {"username": (user["name"], user["key"]), "password": (pw["name"], pw["key"]),
                    "ca": ("kafka-ca", "ca.crt")}
    assert set(_validate_all(m, KUBERNETES_VERSION)) == KEDA_KINDS


def test_lag_trigger_with_inline_sasl_credentials_reads_the_charts_secret(helm_bin: str) -> None:
    m = render(set_values={**LAG, "kafka.securityProtocol": "SASL_PLAINTEXT", "kafka.sasl": {
        "mechanism": "SCRAM-SHA-512", "username": "svc", "password": "pw"}}, api_versions=[KEDA_API])
    (auth,) = m.of_kind("TriggerAuthentication")
    secret = next(s for s in m.of_kind("Secret") if "kafka-sasl-password" in s.get("data", {}))
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {"username": (secret["metadata"]["name"], "kafka-sasl-username"),
                    "password": (secret["metadata"]["name"], "kafka-sasl-password")}
    kafka = m.of_kind("ScaledObject")[0]["spec"]["triggers"][0]
    assert "tls" not in kafka["metadata"]


@pytest.mark.parametrize(("set_values", "api_versions", "expected"), [
    (LAG, [], "does not serve keda.sh/v1alpha1"),
    ({"processors.autoscaling.lag.enabled": True}, [KEDA_API], "needs processors.autoscaling.enabled"),
    ({**LAG, "processors.autoscaling": {**LAG["processors.autoscaling"], "maxReplicas": 9}}, [KEDA_API],
     "maxReplicas (9) exceeds topics.partitions (6)"),
])
def test_lag_autoscaling_refuses_what_would_not_work(set_values: dict[str, Any], api_versions: list[str],
                                                     expected: str, helm_bin: str) -> None:
    proc = helm(*template_args(set_values=set_values, api_versions=api_versions), check=False)
    assert proc.returncode != 0 and expected in proc.stderr, proc.stderr
