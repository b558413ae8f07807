"""helm lint --strict, helm template and offline Kubernetes schema validation of every values file, and the
values the chart refuses (values.schema.json and templates/validate.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes_validate import utils as kv

from tests.helm.chart import CHART, HelmError, Manifests, helm, render, template_args
from tests.helm.conftest import VALUES_FILES

KUBERNETES_VERSION = "1.33.0"
# the chart's kubeVersion floor (Chart.yaml), the CI target, and the newest the validator knows
KUBERNETES_VERSIONS = ("1.25.0", KUBERNETES_VERSION, kv.latest_version())


def test_validator_has_the_kubernetes_version_offline() -> None:
    assert KUBERNETES_VERSION in kv.all_versions(), kv.all_versions()


def test_lint_strict_with_default_values(helm_bin: str) -> None:
    out = helm("lint", "--strict", str(CHART)).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_lint_strict(values: Path, helm_bin: str) -> None:
    out = helm("lint", "--strict", str(CHART), "-f", str(values)).stdout
    assert "0 chart(s) failed" in out, out


def _validate_all(manifests: Manifests, version: str = KUBERNETES_VERSION) -> list[str]:
    """kubernetes-validate (strict: unknown fields are errors) on each object; CRD kinds are listed apart."""
    unknown = []
    for obj in manifests.objects:
        try:
            kv.validate(obj, version, strict=True)
        except kv.SchemaNotFoundError:
            unknown.append(f"{obj['apiVersion']}/{obj['kind']}")
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            raise AssertionError(f"k8s {version} {obj['kind']}/{obj['metadata']['name']}: {path}: {e.message}") from None
    return unknown


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.stem)
def test_rendered_manifests_validate_against_kubernetes_schemas(values: Path, version: str,
                                                                rendered: dict[str, Manifests]) -> None:
    manifests = rendered[values.stem]
    assert manifests.objects
    unknown = _validate_all(manifests, version)
    assert set(unknown) <= {"monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"}, unknown


def test_default_values_render_and_validate(helm_bin: str) -> None:
    manifests = render()
    assert _validate_all(manifests) == []
    assert manifests.names("StatefulSet") and not manifests.of_kind("Deployment")  # no venue configured


def test_validation_is_strict_about_unknown_fields() -> None:
    """The validator must reject what the API server would: a typo'd field is an error, not a pass."""
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {}}
    with pytest.raises(kv.ValidationError):
        kv.validate(obj, KUBERNETES_VERSION, strict=True)


def _template_fails(set_values: dict[str, Any], expected: str) -> None:
    proc = helm(*template_args(set_values=set_values), check=False)
    assert proc.returncode != 0, f"rendered although it should fail ({set_values})"
    assert expected in proc.stderr, proc.stderr


@pytest.mark.parametrize(("set_values", "expected"), [
    ({"kafka.securityProtocol": "SASL"}, "kafka.securityProtocol"),
    ({"kafka.sasl.mechanism": "SCRAM"}, "kafka.sasl.mechanism"),
    ({"kafak": {"bootstrap": "x:9092"}}, "kafak"),  # typo'd top-level key
    ({"producers": {"rabbitx": {"channels": ["trade"]}}}, "markets"),  # markets required
    ({"producers": {"rabbitx": {"markets": ["BTC-USD"], "healthport": 8080}}}, "healthport"),
    ({"producers": {"Rabbit_X": {"markets": ["BTC-USD"]}}}, "Rabbit_X"),
    ({"producers": {"processors": {"markets": ["BTC-USD"]}}}, "processors"),  # collides with chart names
    ({"producers": {"rabbitx": {"markets": ["BTC-USD,ETH-USD"]}}}, "markets"),  # one list item per market
    ({"processors": {"processingGuarantee": "exactly-once"}}, "processingGuarantee"),
    ({"processors": {"candleIntervals": ["1 minute"]}}, "candleIntervals"),
    ({"registry": {"url": "schema-registry:8081"}}, "registry.url"),
    ({"producers": {"kraken": {"venue": "krakenx", "markets": ["BTC/USD"]}}}, "venue"),  # not in the registry
])
def test_values_schema_rejects(set_values: dict[str, Any], expected: str, helm_bin: str) -> None:
    _template_fails(set_values, expected)


@pytest.mark.parametrize(("set_values", "expected"), [
    ({"processors.replicas": 7}, "exceeds topics.partitions (6)"),
    ({"processors.autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 12}},
     "processors.autoscaling.maxReplicas (12) exceeds topics.partitions (6)"),
    ({"kafka.securityProtocol": "SASL_SSL"}, "set kafka.sasl.existingSecret"),
    ({"registry.basicAuth.enabled": True}, "set registry.basicAuth.existingSecret"),
    # secrets must not travel through `settings` (a ConfigMap), nor may settings shadow the chart's own values
    ({"producers": {"x": {"venue": "rabbitx", "markets": ["A-B"], "settings": {"api_secret": "s3cr3t"}}}}, "looks like a secret"),
    ({"producers": {"x": {"venue": "rabbitx", "markets": ["A-B"], "settings": {"econia_jwt_secret": "s"}}}}, "looks like a secret"),
    ({"producers": {"x": {"venue": "rabbitx", "markets": ["A-B"], "settings": {"health_port": 1}}}}, "is set by the chart"),
    ({"processors": {"settings": {"processor_web_port": 1}}}, "is set by the chart"),
    # a key without `venue` is the venue, so it must be one (marketpipe/venues.py)
    ({"producers": {"x": {"markets": ["A-B"]}}}, 'producers.x: venue "x" is not one of rabbitx, drift'),
    ({"producers": {"kraken": {"venue": "ccxt", "markets": ["BTC/USD"]}}}, "name it in producers.kraken.settings.exchange"),
])
def test_templates_refuse_broken_deployments(set_values: dict[str, Any], expected: str, helm_bin: str) -> None:
    _template_fails(set_values, expected)


def test_settings_that_only_mention_a_token_pass(helm_bin: str) -> None:
    m = render(set_values={"producers": {"x": {"venue": "rabbitx", "markets": ["A-B"], "settings": {"token_refresh_fraction": 0.5}}}})
    assert m.get("ConfigMap", "mp-marketpipe-x")["data"]["MARKETPIPE_TOKEN_REFRESH_FRACTION"] == "0.5"


def test_more_partitions_allow_more_workers(helm_bin: str) -> None:
    m = render(set_values={"topics.partitions": 12, "processors.autoscaling": {
        "enabled": True, "minReplicas": 2, "maxReplicas": 12}})
    assert m.get("HorizontalPodAutoscaler", "mp-marketpipe-processors")["spec"]["maxReplicas"] == 12


def test_helm_error_names_the_command() -> None:
    with pytest.raises(HelmError, match="template"):
        helm(*template_args(set_values={"kafka.securityProtocol": "nope"}))
