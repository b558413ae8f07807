"""The environment the chart renders for each service, parsed by that service's REAL settings class.

For every workload of every values file: resolve the container's environment as kubelet would
(ConfigMaps, Secrets, ``$(VAR)`` expansion), put exactly that into ``os.environ``, instantiate the
service's pydantic-settings class and check the values arrived; and every ``MARKETPIPE_*`` variable the
chart sets must be a field of that class (pydantic-settings ignores unknown ones, so a renamed field
would otherwise be dropped silently).
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from marketpipe.service_start import venue_overrides
from marketpipe.settings import KafkaClientSettings
from marketpipe.venues import by_name, load_settings_class
from processors.settings import ProcessorSettings
from tests.helm.chart import Manifests, fullname, render
from tests.helm.conftest import VALUES_FILES, values_file
from tests.helm.podenv import ContainerEnvironment, container_of, materialize_secret_volumes, pod_spec_of, secret_file
from tests.helm.test_rendered import EXISTING
from tests.helm.tlsfiles import ca_and_client_cert

FULL = fullname()
PREFIX = "MARKETPIPE_"
def producer_settings_class(venue: str) -> type[BaseSettings]:
    """`marketpipe produce <venue>` -> the settings class that venue's producer reads (the venue registry)."""
    return load_settings_class(by_name()[venue])


def load(cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
         venue: str | None = None) -> Any:
    """What the service reads: that environment, plus what `produce <venue>` fixes (a ccxt venue's exchange)."""
    for key in list(os.environ):
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    overrides, conflicts = venue_overrides(by_name()[venue]) if venue else ({}, [])
    assert conflicts == []
    return cls(**overrides)


def unknown_variables(cls: type[BaseSettings], env: dict[str, str]) -> list[str]:
    return sorted(k for k in env if k.startswith(PREFIX) and k[len(PREFIX):].lower() not in cls.model_fields)


def check_common(s: KafkaClientSettings, values: dict[str, Any], obj: dict[str, Any]) -> None:
    kafka, registry = values.get("kafka") or {}, values.get("registry") or {}
    assert s.kafka_bootstrap == kafka["bootstrap"]
    assert s.registry_url == registry["url"]
    assert s.kafka_security_protocol == kafka.get("securityProtocol", "PLAINTEXT")
    if s.kafka_security_protocol.startswith("SASL"):
        assert s.kafka_sasl_mechanism == kafka["sasl"]["mechanism"]
        assert s.kafka_sasl_username and s.kafka_sasl_password and s.kafka_sasl_password.get_secret_value()
        kw = s.aiokafka_security()
        assert kw["sasl_plain_username"] == s.kafka_sasl_username
    else:
        assert s.kafka_sasl_username is None and s.kafka_sasl_password is None
    if (kafka.get("tls") or {}).get("existingSecret"):
        tls = kafka["tls"]
        pod, container = pod_spec_of(obj), container_of(obj)
        assert secret_file(pod, container, s.kafka_ssl_cafile or "") == (tls["existingSecret"], tls["caKey"])
        assert secret_file(pod, container, s.kafka_ssl_certfile or "") == (tls["existingSecret"], tls["certKey"])
        assert secret_file(pod, container, s.kafka_ssl_keyfile or "") == (tls["existingSecret"], tls["keyKey"])
        # the mounted CA, certificate and key load into the SSL context aiokafka connects with
        kw = s.aiokafka_security()
        assert isinstance(kw["ssl_context"], ssl.SSLContext)
        assert kw["ssl_context"].get_ca_certs()[0]["subject"] == ((("commonName", "marketpipe-test-ca"),),)
        assert s.librdkafka_security()["ssl.ca.location"] == s.kafka_ssl_cafile
    else:
        assert s.kafka_ssl_cafile is None
    auth = (registry.get("basicAuth") or {})
    if auth.get("enabled"):
        user, _, password = (s.registry_auth() or "").partition(":")
        assert user and password, s.registry_auth()
        assert "$(" not in (s.registry_auth() or "")  # the kubelet expansion happened
    else:
        assert s.registry_auth() is None
    assert s.log_level == "INFO"


def cases() -> list[Any]:
    out = []
    for f in VALUES_FILES:
        values = yaml.safe_load(f.read_text()) or {}
        for name in (values.get("producers") or {}):
            out.append(pytest.param(f.stem, "producer", name, id=f"{f.stem}:{name}"))
        out.append(pytest.param(f.stem, "processors", None, id=f"{f.stem}:processors"))
        out.append(pytest.param(f.stem, "schemas", None, id=f"{f.stem}:schemas-job"))
    return out


@pytest.mark.parametrize(("stem", "service", "name"), cases())
def test_service_settings_parse_the_rendered_environment(stem: str, service: str, name: str | None,
                                                          rendered: dict[str, Manifests], tmp_path: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    values = yaml.safe_load(values_file(stem).read_text()) or {}
    m = rendered[stem]
    secrets = dict(EXISTING)
    if ((values.get("kafka") or {}).get("tls") or {}).get("existingSecret"):
        # mount the TLS Secret (a real CA and client certificate) where the pod would see it
        secrets[values["kafka"]["tls"]["existingSecret"]] = ca_and_client_cert()
        m = render([values_file(stem)], {"kafka.tls.mountPath": str(tmp_path / "kafka-tls")})
    if service == "producer":
        assert name is not None
        p = values["producers"][name]
        obj = m.get("Deployment", f"{FULL}-{name}")
        venue = p.get("venue", name)
        cls = producer_settings_class(venue)
    elif service == "processors":
        obj, cls = m.get("StatefulSet", f"{FULL}-processors"), ProcessorSettings
    else:
        obj, cls = m.get("Job", f"{FULL}-schemas"), KafkaClientSettings  # what `marketpipe schemas register` reads
    resolver = ContainerEnvironment(m, secrets)
    env = resolver.resolve(container_of(obj))
    materialize_secret_volumes(resolver, pod_spec_of(obj), container_of(obj))
    assert unknown_variables(cls, env) == [], f"{cls.__name__} has no field for these (silently ignored)"
    s = load(cls, env, monkeypatch, venue if service == "producer" else None)
    check_common(s, values, obj)
    container = container_of(obj)
    if service == "producer":
        assert s.markets == [str(x) for x in p["markets"]]
        if "channels" in p:
            assert s.channels == p["channels"]
        port = next(x["containerPort"] for x in container["ports"] if x["name"] == "http")
        assert s.effective_health_port() == port
        assert s.health_host == "0.0.0.0"
        creds = p.get("credentials") or {}
        inline, referenced = creds.get("values") or {}, creds.get("keys") or {}
        for field in ("api_key", "api_secret", "api_token", *inline, *referenced):
            attr = getattr(s, field)
            if field in inline:
                assert attr.get_secret_value() == inline[field], field
            elif field in referenced:
                assert attr.get_secret_value() == secrets[creds["existingSecret"]][referenced[field]], field
            else:
                assert attr is None, field
        for key, value in (p.get("settings") or {}).items():
            assert getattr(s, key) == value, key
        for field, attr in (("wsUrl", "ws_url"), ("restUrl", "rest_url"), ("accountId", "account_id")):
            if field in p:
                assert getattr(s, attr) == p[field]
        for parse in ("market_specs", "market_ids"):  # drift specs / Econia market ids must parse
            if hasattr(s, parse):
                assert len(getattr(s, parse)()) == len(p["markets"]), parse
        assert s.register_schemas is False  # the Job registered them before this pod started
    elif service == "processors":
        proc = values.get("processors") or {}
        assert s.processor_store_url == "rocksdb://"
        assert s.processor_data_dir == "/var/lib/marketpipe/processors"
        assert s.processor_web_port == next(x["containerPort"] for x in container["ports"] if x["name"] == "web")
        assert s.processor_web_bind == "127.0.0.1"  # the pod IP (status.podIP, resolved as this pod's)
        assert s.processor_web_host.startswith("pod-0.") and s.processor_group_instance_id == "pod-0"  # pod name
        assert s.processor_topic_partitions == (values.get("topics") or {}).get("partitions", 6)
        assert s.processor_processing_guarantee == proc.get("processingGuarantee", "at_least_once")
        assert s.processor_candle_intervals == proc.get("candleIntervals", ["1s", "1m", "5m", "1h"])
        assert s.processor_app_id == "marketpipe-processors"
        assert s.register_schemas is False
    assert s.create_topics is (values.get("topics") or {}).get("create", True)


def test_unknown_variables_are_caught() -> None:
    """The field check above must be able to fail: a variable no class knows is reported."""
    assert unknown_variables(ProcessorSettings, {"MARKETPIPE_PROCESSOR_WEBPORT": "1", "OTHER": "x"}) == \
        ["MARKETPIPE_PROCESSOR_WEBPORT"]
