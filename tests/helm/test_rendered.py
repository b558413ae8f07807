"""Assertions over the rendered YAML: workloads per venue, the schema Job's hooks and ordering, volumes,
probes, Secrets kept out of ConfigMaps, checksums that roll pods, scaling bounds and security."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.helm.chart import RELEASE, Manifests, fullname, render
from tests.helm.conftest import MONITORING_API, VALUES_FILES, values_file
from tests.helm.podenv import ContainerEnvironment, container_of, pod_spec_of, secret_file

FULL = fullname()
EXISTING = {  # what the cluster holds for the Secrets the CI values only reference
    "econia-dss": {"jwt-secret": "econia-dss-hs256-secret"},
    "binance-api": {"key": "binance-key", "secret": "binance-secret"},
    "rabbitx-api": {"api-key": "rbx-key", "api-secret": "rbx-secret", "refresh-token": "rbx-refresh"},
    "marketpipe-kafka-user": {"user": "svc-marketpipe", "password": "scram-pass"},
    "kafka-cluster-ca": {"ca.crt": "CA", "user.crt": "CERT", "user.key": "KEY"},
    "registry-credentials": {"username": "reg-user", "password": "reg:pass"},
}


def values_of(stem: str) -> dict[str, Any]:
    return yaml.safe_load(values_file(stem).read_text())


def workloads(m: Manifests) -> list[dict[str, Any]]:
    return m.of_kind("Deployment") + m.of_kind("StatefulSet") + m.of_kind("Job")


def env_of(m: Manifests, obj: dict[str, Any]) -> dict[str, str]:
    return ContainerEnvironment(m, EXISTING).resolve(container_of(obj))


# -- producers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_one_deployment_per_configured_producer(values: Any, rendered: dict[str, Manifests]) -> None:
    m = rendered[values.stem]
    producers = (yaml.safe_load(values.read_text()) or {}).get("producers") or {}
    assert m.names("Deployment") == {f"{FULL}-{name}" for name in producers}
    for name, p in producers.items():
        dep = m.get("Deployment", f"{FULL}-{name}")
        c = container_of(dep)
        assert c["command"] == ["marketpipe"]
        assert c["args"] == ["produce", p.get("venue", name)]
        env = env_of(m, dep)
        assert json.loads(env["MARKETPIPE_MARKETS"]) == [str(x) for x in p["markets"]]
        if "channels" in p:
            assert env["MARKETPIPE_CHANNELS"].split(",") == p["channels"]
        for key, value in (p.get("settings") or {}).items():
            rendered_value = env[f"MARKETPIPE_{key.upper()}"]
            if isinstance(value, list):
                assert rendered_value.split(",") == [str(v) for v in value], key
            elif isinstance(value, dict):
                assert json.loads(rendered_value) == value, key
            else:
                assert rendered_value == (str(value).lower() if isinstance(value, bool) else str(value)), key
        for field, var in (("wsUrl", "MARKETPIPE_WS_URL"), ("restUrl", "MARKETPIPE_REST_URL"),
                           ("accountId", "MARKETPIPE_ACCOUNT_ID")):
            assert env.get(var) == p.get(field), var
        # every Deployment selects only its own pods
        sel = dep["spec"]["selector"]["matchLabels"]
        others = [d for d in m.of_kind("Deployment") if d is not dep]
        assert all(not _selects(sel, d["spec"]["template"]["metadata"]["labels"]) for d in others)
        assert _selects(sel, dep["spec"]["template"]["metadata"]["labels"])


def test_producer_credentials_come_from_the_referenced_secrets(rendered: dict[str, Manifests]) -> None:
    m = rendered["multi-venue-values"]
    econia = env_of(m, m.get("Deployment", f"{FULL}-econia"))
    assert econia["MARKETPIPE_ECONIA_JWT_SECRET"] == "econia-dss-hs256-secret"
    assert "MARKETPIPE_API_KEY" not in econia
    binance = env_of(m, m.get("Deployment", f"{FULL}-binance"))
    assert (binance["MARKETPIPE_API_KEY"], binance["MARKETPIPE_API_SECRET"]) == ("binance-key", "binance-secret")
    rabbitx = env_of(m, m.get("Deployment", f"{FULL}-rabbitx"))
    assert rabbitx["MARKETPIPE_API_TOKEN"] == "inline-rabbitx-jwt"  # inline value -> the chart's Secret
    assert rabbitx["MARKETPIPE_REFRESH_TOKEN"] == "rbx-refresh"  # referenced key of the existing Secret
    assert m.get("Secret", f"{FULL}-credentials")["data"].keys() == {"rabbitx-api-token"}
    okx = env_of(m, m.get("Deployment", f"{FULL}-okx"))
    assert not {k for k in okx if k.startswith("MARKETPIPE_API_")}
    coinbase = env_of(m, m.get("Deployment", f"{FULL}-coinbase"))  # public channels: no credentials needed
    assert not {k for k in coinbase if k.startswith("MARKETPIPE_API_")}
    assert (coinbase["MARKETPIPE_CHECK_SEQUENCE"], coinbase["MARKETPIPE_HEARTBEATS"]) == ("true", "true")
    assert container_of(m.get("Deployment", f"{FULL}-coinbase"))["args"] == ["produce", "coinbase"]


def test_kraken_is_a_ccxt_deployment_of_its_own(rendered: dict[str, Manifests]) -> None:
    m = rendered["multi-venue-values"]
    dep = m.get("Deployment", f"{FULL}-kraken")
    env = env_of(m, dep)
    assert (env["MARKETPIPE_BOOK_DEPTH"], env["MARKETPIPE_MARKETS"]) == ("25", '["BTC/USD","ETH/USD"]')
    assert env["MARKETPIPE_CHANNELS"] == "book,trades,ticker"
    # `produce kraken` is the ccxt producer with MARKETPIPE_EXCHANGE=kraken (marketpipe/venues.py)
    assert "kraken" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "MARKETPIPE_EXCHANGE" not in env


def test_bybit_is_a_ccxt_deployment_of_linear_perpetuals(rendered: dict[str, Manifests]) -> None:
    m = rendered["multi-venue-values"]
    dep = m.get("Deployment", f"{FULL}-bybit")
    env = env_of(m, dep)
    assert (env["MARKETPIPE_BOOK_DEPTH"], env["MARKETPIPE_MARKETS"]) == ("50", '["BTC/USDT:USDT"]')
    assert json.loads(env["MARKETPIPE_CCXT_OPTIONS"]) == {"fetchMarkets": {"types": ["linear"]}}
    assert "bybit" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "MARKETPIPE_EXCHANGE" not in env


@pytest.mark.parametrize(("credentials", "expected"), [
    ({"keys": {"api_key": "k"}}, "set credentials.existingSecret"),
    ({"existingSecret": "s"}, "credentials.keys maps no setting"),
])
def test_incomplete_credentials_are_refused(credentials: dict[str, Any], expected: str, helm_bin: str) -> None:
    from tests.helm.chart import helm, template_args

    proc = helm(*template_args(set_values={"producers": {"x": {"venue": "rabbitx", "markets": ["BTC-USD"], "credentials": credentials}}}),
                check=False)
    assert proc.returncode != 0 and expected in proc.stderr, proc.stderr


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# -- schema registration Job -----------------------------------------------------------------------------

HOOK = "helm.sh/hook"


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_schema_job_runs_before_install_and_upgrade_with_its_own_config(values: Any,
                                                                          rendered: dict[str, Manifests]) -> None:
    m = rendered[values.stem]
    job = m.get("Job", f"{FULL}-schemas")
    ann = job["metadata"]["annotations"]
    assert set(ann[HOOK].split(",")) == {"pre-install", "pre-upgrade"}
    assert set(ann["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    c = container_of(job)
    assert (c["command"], c["args"]) == (["marketpipe"], ["schemas", "register"])
    spec = job["spec"]
    assert pod_spec_of(job)["restartPolicy"] == "Never" and spec["backoffLimit"] <= 2
    assert spec["activeDeadlineSeconds"] > 0  # a hung registry fails the release instead of hanging it

    # Everything the Job reads must exist when pre-install hooks run: only hook objects with a lower
    # weight (created first) or Secrets that already exist, never the release's own ConfigMap/Secret.
    hooks = {(o["kind"], o["metadata"]["name"]): o for o in m.objects if HOOK in o["metadata"].get("annotations", {})}
    job_weight = int(ann["helm.sh/hook-weight"])
    refs = _config_refs(pod_spec_of(job))
    assert refs, "the Job reads no configuration"
    for kind, name in refs:
        if (kind, name) in hooks:
            hook = hooks[(kind, name)]["metadata"]["annotations"]
            assert set(hook[HOOK].split(",")) == {"pre-install", "pre-upgrade"}
            assert int(hook["helm.sh/hook-weight"]) < job_weight, f"{kind} {name} is created after the Job"
        else:
            assert kind == "Secret" and name in EXISTING, f"the Job reads {kind} {name}, missing at pre-install"
    # and the Job sees the same Kafka/registry settings as the services
    job_env = env_of(m, job)
    common = m.get("ConfigMap", f"{FULL}-common")["data"]
    assert {k: job_env[k] for k in common} == common
    # no regular resource is a hook
    assert set(hooks) <= {("Job", f"{FULL}-schemas"), ("ConfigMap", f"{FULL}-schemas"), ("Secret", f"{FULL}-schemas")}


def _config_refs(pod: dict[str, Any]) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for c in pod["containers"]:
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                refs.add(("ConfigMap", src["configMapRef"]["name"]))
            else:
                refs.add(("Secret", src["secretRef"]["name"]))
        for e in c.get("env") or []:
            ref = e.get("valueFrom") or {}
            if "secretKeyRef" in ref:
                refs.add(("Secret", ref["secretKeyRef"]["name"]))
            if "configMapKeyRef" in ref:
                refs.add(("ConfigMap", ref["configMapKeyRef"]["name"]))
    for v in pod.get("volumes") or []:
        if "secret" in v:
            refs.add(("Secret", v["secret"]["secretName"]))
        if "configMap" in v:
            refs.add(("ConfigMap", v["configMap"]["name"]))
    return refs


def test_schema_job_hook_secret_carries_inline_credentials(rendered: dict[str, Manifests]) -> None:
    m = rendered["inline-secrets-values"]
    job_env = env_of(m, m.get("Job", f"{FULL}-schemas"))
    assert job_env["MARKETPIPE_REGISTRY_BASIC_AUTH"] == "sentinel-registry-user:sentinel-registry-password"
    assert job_env["MARKETPIPE_KAFKA_SASL_PASSWORD"] == "sentinel-kafka-password"
    hook_secret = m.get("Secret", f"{FULL}-schemas")
    assert not any(k.startswith(("rabbitx", "binance")) for k in hook_secret["data"])  # venue keys stay out


def test_schema_job_can_be_disabled_then_services_register_themselves(helm_bin: str) -> None:
    m = render(set_values={"schemaRegistration.enabled": False})
    assert not m.of_kind("Job")
    assert m.get("ConfigMap", f"{FULL}-common")["data"]["MARKETPIPE_REGISTER_SCHEMAS"] == "true"


# -- processors ------------------------------------------------------------------------------------------

def test_statefulset_keeps_rocksdb_on_a_volume(rendered: dict[str, Manifests]) -> None:
    m = rendered["multi-venue-values"]
    sts = m.get("StatefulSet", f"{FULL}-processors")
    c = container_of(sts)
    assert (c["command"], c["args"]) == (["marketpipe"], ["process"])
    env = env_of(m, sts)
    assert env["MARKETPIPE_PROCESSOR_STORE_URL"] == "rocksdb://"
    data_dir = env["MARKETPIPE_PROCESSOR_DATA_DIR"]
    mount = next(v for v in c["volumeMounts"] if v["mountPath"] == data_dir)
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == mount["name"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert sts["spec"]["serviceName"] in m.names("Service")
    headless = m.get("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert env["MARKETPIPE_PROCESSOR_PROCESSING_GUARANTEE"] == "exactly_once"
    # other workers reach this one by its stable DNS name (pod name under the headless Service)
    assert env["MARKETPIPE_PROCESSOR_WEB_HOST"] == f"pod-0.{headless['metadata']['name']}.markets.svc.cluster.local"


def test_workers_prefer_separate_nodes(rendered: dict[str, Manifests], helm_bin: str) -> None:
    sts = rendered["minimal-values"].get("StatefulSet", f"{FULL}-processors")
    (term,) = pod_spec_of(sts)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert _selects(term["podAffinityTerm"]["labelSelector"]["matchLabels"], sts["spec"]["template"]["metadata"]["labels"])
    custom = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["stream"]}]}]}}}
    m = render(set_values={"processors.affinity": custom})
    assert pod_spec_of(m.get("StatefulSet", f"{FULL}-processors"))["affinity"] == custom  # replaces the default


def test_statefulset_without_persistence_uses_an_empty_dir(helm_bin: str) -> None:
    m = render(set_values={"processors.persistence.enabled": False})
    sts = m.get("StatefulSet", f"{FULL}-processors")
    assert "volumeClaimTemplates" not in sts["spec"]
    vols = {v["name"]: v for v in pod_spec_of(sts)["volumes"]}
    assert "emptyDir" in vols["data"]


def test_query_service_and_autoscaling_bounds(rendered: dict[str, Manifests]) -> None:
    m = rendered["multi-venue-values"]
    sts = m.get("StatefulSet", f"{FULL}-processors")
    assert "replicas" not in sts["spec"]  # the HPA owns the replica count
    hpa = m.get("HorizontalPodAutoscaler", f"{FULL}-processors")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                             "name": sts["metadata"]["name"]}
    partitions = int(m.get("ConfigMap", f"{FULL}-processors")["data"]["MARKETPIPE_PROCESSOR_TOPIC_PARTITIONS"])
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions
    svc = m.get("Service", f"{FULL}-processors")
    assert _selects(svc["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"])
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == "web"
    minimal = rendered["minimal-values"]
    assert not minimal.of_kind("HorizontalPodAutoscaler")
    assert minimal.get("StatefulSet", f"{FULL}-processors")["spec"]["replicas"] == 2


def test_pod_disruption_budgets(rendered: dict[str, Manifests]) -> None:
    m = rendered["multi-venue-values"]
    pdbs = {p["metadata"]["name"]: p for p in m.of_kind("PodDisruptionBudget")}
    # workers: one at a time; okx runs 2 replicas; single-replica producers get none (it would block drains)
    assert set(pdbs) == {f"{FULL}-processors", f"{FULL}-okx"}
    for name, pdb in pdbs.items():
        kind = "StatefulSet" if name.endswith("processors") else "Deployment"
        target = m.get(kind, name)
        assert _selects(pdb["spec"]["selector"]["matchLabels"], target["spec"]["template"]["metadata"]["labels"])
        assert pdb["spec"]["maxUnavailable"] == 1


# -- probes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_probes_point_at_the_port_the_service_opens(values: Any, rendered: dict[str, Manifests]) -> None:
    m = rendered[values.stem]
    for obj in m.of_kind("Deployment") + m.of_kind("StatefulSet"):
        c = container_of(obj)
        env = env_of(m, obj)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        if obj["kind"] == "Deployment":
            opened, paths = int(env["MARKETPIPE_HEALTH_PORT"]), {"livenessProbe": "/health", "readinessProbe": "/ready"}
        else:
            opened = int(env["MARKETPIPE_PROCESSOR_WEB_PORT"])
            paths = {"startupProbe": "/processor/live", "livenessProbe": "/processor/live",
                     "readinessProbe": "/processor/ready"}
        for probe, path in paths.items():
            get = c[probe]["httpGet"]
            port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
            assert port == opened, f"{obj['metadata']['name']} {probe} on {port}, service listens on {opened}"
            assert get["path"] == path
    for sts in m.of_kind("StatefulSet"):
        c = container_of(sts)
        # changelog recovery: the startup probe allows minutes before liveness may restart the pod
        start = c["startupProbe"]
        assert start["periodSeconds"] * start["failureThreshold"] >= 600


# -- secrets ---------------------------------------------------------------------------------------------

SENTINELS = ["sentinel-kafka-user", "sentinel-kafka-password", "sentinel-registry-user",
             "sentinel-registry-password", "sentinel-rabbitx-key", "sentinel-rabbitx-secret",
             "sentinel-rabbitx-token", "sentinel-binance-key", "sentinel-binance-secret"]


def test_secrets_never_rendered_into_config_maps_or_plain_env(rendered: dict[str, Manifests]) -> None:
    m = rendered["inline-secrets-values"]
    for cm in m.of_kind("ConfigMap"):
        text = yaml.safe_dump(cm)
        assert not [s for s in SENTINELS if s in text], cm["metadata"]["name"]
    for obj in workloads(m):
        for c in pod_spec_of(obj)["containers"]:
            plain = yaml.safe_dump([e for e in c.get("env") or [] if "value" in e])
            assert not [s for s in SENTINELS if s in plain], obj["metadata"]["name"]
    secret_text = " ".join(ContainerEnvironment(m).secret(s["metadata"]["name"]).__repr__() for s in m.of_kind("Secret"))
    assert all(s in secret_text for s in SENTINELS)
    rabbitx = env_of(m, m.get("Deployment", f"{FULL}-rabbitx"))
    assert rabbitx["MARKETPIPE_API_SECRET"] == "sentinel-rabbitx-secret"
    assert rabbitx["MARKETPIPE_KAFKA_SASL_USERNAME"] == "sentinel-kafka-user"


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_no_config_map_key_names_a_secret(values: Any, rendered: dict[str, Manifests]) -> None:
    for cm in rendered[values.stem].of_kind("ConfigMap"):
        for key in cm.get("data") or {}:
            assert not any(w in key for w in ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "BASIC_AUTH")), key


def test_tls_and_sasl_from_existing_secrets(rendered: dict[str, Manifests]) -> None:
    m = rendered["tls-sasl-values"]
    assert not m.of_kind("Secret")  # nothing inline: every credential is referenced
    for obj in workloads(m):
        env = env_of(m, obj)
        assert env["MARKETPIPE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["MARKETPIPE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert (env["MARKETPIPE_KAFKA_SASL_USERNAME"], env["MARKETPIPE_KAFKA_SASL_PASSWORD"]) == \
            ("svc-marketpipe", "scram-pass")
        assert env["MARKETPIPE_REGISTRY_BASIC_AUTH"] == "reg-user:reg:pass"
        c, pod = container_of(obj), pod_spec_of(obj)
        files = {var: secret_file(pod, c, env[var]) for var in
                 ("MARKETPIPE_KAFKA_SSL_CAFILE", "MARKETPIPE_KAFKA_SSL_CERTFILE", "MARKETPIPE_KAFKA_SSL_KEYFILE")}
        assert files == {"MARKETPIPE_KAFKA_SSL_CAFILE": ("kafka-cluster-ca", "ca.crt"),
                         "MARKETPIPE_KAFKA_SSL_CERTFILE": ("kafka-cluster-ca", "user.crt"),
                         "MARKETPIPE_KAFKA_SSL_KEYFILE": ("kafka-cluster-ca", "user.key")}


# -- rolling on config change ----------------------------------------------------------------------------

def _checksums(m: Manifests) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: {k: v for k, v in o["spec"]["template"]["metadata"]["annotations"].items()
                                    if k.startswith("checksum/")}
            for o in m.of_kind("Deployment") + m.of_kind("StatefulSet")}


def test_pods_roll_exactly_when_their_configuration_changes(helm_bin: str) -> None:
    base_file = [values_file("inline-secrets-values")]
    base = _checksums(render(base_file))
    assert base == _checksums(render(base_file))  # deterministic
    rbx, bnb, proc = f"{FULL}-rabbitx", f"{FULL}-binance", f"{FULL}-processors"

    def changed(set_values: dict[str, Any]) -> dict[str, set[str]]:
        now = _checksums(render(base_file, set_values))
        return {name: {k for k in now[name] if now[name][k] != base[name][k]} for name in now}

    assert changed({"producers.rabbitx.markets": ["BTC-USD", "ETH-USD"]}) == \
        {rbx: {"checksum/config"}, bnb: set(), proc: set()}
    assert changed({"producers.binance.credentials.values.api_secret": "rotated"}) == \
        {rbx: set(), bnb: {"checksum/secret"}, proc: set()}
    assert changed({"kafka.bootstrap": "kafka-new:9092"}) == \
        {rbx: {"checksum/common-config"}, bnb: {"checksum/common-config"}, proc: {"checksum/common-config"}}
    assert changed({"kafka.sasl.password": "rotated"}) == \
        {rbx: {"checksum/secret"}, bnb: {"checksum/secret"}, proc: {"checksum/secret"}}
    assert changed({"processors.bookDepth": 20}) == {rbx: set(), bnb: set(), proc: {"checksum/config"}}


# -- monitoring, security --------------------------------------------------------------------------------

def test_service_monitor_only_when_the_crd_exists(helm_bin: str, rendered: dict[str, Manifests]) -> None:
    with_crd = rendered["multi-venue-values"]
    (sm,) = with_crd.of_kind("ServiceMonitor")
    assert sm["apiVersion"] == MONITORING_API
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    scraped = [s for s in with_crd.of_kind("Service") if _selects(sm["spec"]["selector"]["matchLabels"],
                                                                  s["metadata"]["labels"])]
    endpoint_ports = {e["port"] for e in sm["spec"]["endpoints"]}
    assert len(scraped) == len(with_crd.of_kind("Deployment")) + 1  # every producer + the processors
    for svc in scraped:
        assert {p["name"] for p in svc["spec"]["ports"]} & endpoint_ports, svc["metadata"]["name"]
    without_crd = render([values_file("multi-venue-values")])
    assert not without_crd.of_kind("ServiceMonitor")


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_every_pod_runs_unprivileged(values: Any, rendered: dict[str, Manifests]) -> None:
    m = rendered[values.stem]
    for obj in workloads(m):
        pod = pod_spec_of(obj)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "/tmp" in {v["mountPath"] for v in c["volumeMounts"]}  # writable scratch space
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
            assert c["image"] == "ghcr.io/marketpipe/marketpipe:0.1.0"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
