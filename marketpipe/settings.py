"""Settings shared by every service: how to reach Kafka and the schema registry.

Each service has one pydantic-settings class that extends this one; all are read from the
environment (``MARKETPIPE_*``), which is what the Helm chart sets.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_list(value: object) -> object:
    """Environment lists: a JSON array (`["a","b"]`) or comma-separated text (`a,b`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# A list[str] setting that accepts both forms from the environment (what Helm renders).
EnvList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]

# A TCP port to listen on; 0 = any free port.
Port = Annotated[int, Field(ge=0, le=65535)]
# Seconds of a timeout or interval (> 0); Count: a size or a number of items (> 0). Subclasses that change
# a default keep the bound by reusing the type.
Seconds = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(gt=0)]


def url_of(schemes: tuple[str, ...]) -> AfterValidator:
    """A URL setting: parsed, one of ``schemes``, with a host (an empty value is left to the field's type)."""

    def check(value: str | None) -> str | None:
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected a {'/'.join(schemes)}:// URL with a host")
        return value

    return AfterValidator(check)


HttpUrl = Annotated[str, url_of(("http", "https"))]
WsUrl = Annotated[str, url_of(("ws", "wss"))]


def _check_bootstrap(value: str) -> str:
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError(f"{server.strip()!r}: expected host:port[,host:port...]")
    return value


def _check_log_level(value: str) -> str:
    if not isinstance(logging.getLevelName(value.upper()), int):
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value.upper()


class KafkaClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARKETPIPE_", extra="ignore")

    kafka_bootstrap: Annotated[str, AfterValidator(_check_bootstrap)] = "127.0.0.1:19092"
    registry_url: HttpUrl = "http://127.0.0.1:18081/apis/ccompat/v7"
    registry_basic_auth: SecretStr | None = None  # "user:password"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    create_topics: bool = True  # create missing topics at start-up (off when a platform team owns them)
    # replication of the topics marketpipe creates (1 and 1 on a single-broker cluster: topics_admin.py)
    topic_replication: int = Field(3, gt=0)
    topic_min_insync_replicas: int = Field(2, gt=0)
    register_schemas: bool = True  # register schemas at start-up (the Helm Job does it before upgrades)
    metrics_port: Port = 9108
    log_level: Annotated[str, AfterValidator(_check_log_level)] = "INFO"
    # at start, how long a service waits for Kafka and the registry to answer (a countdown on stderr, with
    # backoff) before it exits with status 2; 0 = exit at once
    startup_wait_s: float = Field(60.0, ge=0)

    def aiokafka_security(self) -> dict[str, object]:
        """Keyword arguments for aiokafka producers/consumers/admin."""
        kw: dict[str, object] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(
                cafile=self.kafka_ssl_cafile, certfile=self.kafka_ssl_certfile, keyfile=self.kafka_ssl_keyfile
            )
        if self.kafka_security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            kw["sasl_plain_username"] = self.kafka_sasl_username
            kw["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return kw

    def librdkafka_security(self) -> dict[str, str]:
        """The same options for confluent-kafka's AdminClient."""
        conf: dict[str, str] = {"security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = self.kafka_ssl_cafile
        if self.kafka_ssl_certfile:
            conf["ssl.certificate.location"] = self.kafka_ssl_certfile
        if self.kafka_ssl_keyfile:
            conf["ssl.key.location"] = self.kafka_ssl_keyfile
        return conf

    def registry_auth(self) -> str | None:
        return self.registry_basic_auth.get_secret_value() if self.registry_basic_auth else None


class PublisherSettings(KafkaClientSettings):
    """Settings of the Kafka publisher used by every producer service."""

    # Memory bound: at most publisher_buffer + publisher_max_in_flight events are held (the buffer, plus
    # the drain the sender is delivering); publish() waits while the buffer is full. Both must be > 0
    # (an asyncio queue of size 0 would be unbounded).
    publisher_buffer: int = Field(50_000, gt=0)  # events held in memory before publish() blocks the caller
    publisher_max_in_flight: int = Field(20_000, gt=0)  # events taken from the buffer per delivery round
    publisher_linger_ms: int = Field(5, ge=0)
    publisher_max_batch_bytes: int = Field(512 * 1024, gt=0)
    publisher_compression: Literal["none", "gzip"] = "none"
    # how long one produce request may take before aiokafka drops the connection and retries it (same
    # producer id and sequence numbers). Batches never expire: a batch is retried until Kafka has it.
    publisher_request_timeout_ms: int = Field(30_000, gt=0)
