"""Publisher pieces that need no broker: settings validation, the log rate limit on aiokafka's child
loggers, the aiokafka fence (pinned version, upstream fingerprints, batches that never expire)."""

from __future__ import annotations

import logging
import math

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from marketpipe import aiokafka_fence
from marketpipe.settings import PublisherSettings
from producers.core.runtime import RateLimitFilter, rate_limit_noisy_loggers


@pytest.mark.parametrize("value", ["0", "-5"])
@pytest.mark.parametrize("name", ["PUBLISHER_BUFFER", "PUBLISHER_MAX_IN_FLIGHT"])
def test_buffer_and_in_flight_limits_must_be_positive(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"MARKETPIPE_{name}", value)
    with pytest.raises(ValidationError) as err:
        PublisherSettings()
    assert name.lower() in str(err.value) and "greater than 0" in str(err.value)


def test_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPIPE_PUBLISHER_BUFFER", "7")
    monkeypatch.setenv("MARKETPIPE_PUBLISHER_MAX_IN_FLIGHT", "3")
    s = PublisherSettings()
    assert (s.publisher_buffer, s.publisher_max_in_flight) == (7, 3)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_child_aiokafka_loggers_are_rate_limited_at_the_handlers() -> None:
    """The records of aiokafka.producer.sender / aiokafka.conn propagate to the handlers without passing
    the parent logger's filters: the limit sits on the handlers. Two handlers see the same decision."""
    top = logging.getLogger("aiokafka")
    first, second = Records(), Records()
    top.addHandler(first)
    top.addHandler(second)
    rate_limit_noisy_loggers([first, second], RateLimitFilter(every=60.0))
    try:
        for _ in range(184):
            logging.getLogger("aiokafka.producer.sender").warning("Got error produce response: %s", "NodeNotReady")
            logging.getLogger("aiokafka.conn").error("Unable connect to %s", "node 1")
        logging.getLogger("aiokafka.producer.sender").warning("another template")
    finally:
        top.removeHandler(first)
        top.removeHandler(second)
    got = [(r.name, r.getMessage()) for r in first.records]
    assert got == [("aiokafka.producer.sender", "Got error produce response: NodeNotReady"),
                   ("aiokafka.conn", "Unable connect to node 1"),
                   ("aiokafka.producer.sender", "another template")]
    assert [(r.name, r.getMessage()) for r in second.records] == got


def test_rate_limit_says_how_many_it_hid_and_leaves_other_loggers_alone() -> None:
    limiter = RateLimitFilter(every=0.0)
    handler = Records()
    rate_limit_noisy_loggers([handler], limiter)
    app = logging.getLogger("producers.test_rate_limit")
    app.addHandler(handler)
    app.propagate = False
    try:
        for _ in range(5):
            app.warning("venue message")
    finally:
        app.removeHandler(handler)
        app.propagate = True
    assert len(handler.records) == 5
    limiter.every = 3600.0
    records = [logging.LogRecord("aiokafka.client", logging.WARNING, __file__, 1, "metadata %s", ("x",), None)
               for _ in range(4)]
    assert [limiter.filter(r) for r in records] == [True, False, False, False]
    limiter.every = 0.0
    passed = logging.LogRecord("aiokafka.client", logging.WARNING, __file__, 1, "metadata %s", ("x",), None)
    assert limiter.filter(passed) and "and 3 similar messages" in passed.getMessage()


def test_aiokafka_fence_matches_the_installed_upstream_code() -> None:
    changed = {name: now for name, now in aiokafka_fence.upstream_fingerprints().items()
               if now != aiokafka_fence.UPSTREAM_SHA256[name]}
    assert not changed, f"read again and port marketpipe/aiokafka_fence.py: upstream changed in {sorted(changed)}"
    aiokafka_fence.require_pinned_version()


def test_aiokafka_fence_refuses_another_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(aiokafka_fence.PINNED, "aiokafka", "0.0.1")
    with pytest.raises(aiokafka_fence.UnpinnedAiokafkaError, match="aiokafka==0.0.1"):
        aiokafka_fence.require_pinned_version()


async def test_batches_of_a_fenced_producer_never_expire() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", enable_idempotence=True, request_timeout_ms=1000)
    aiokafka_fence.never_expire_batches(producer)
    accumulator = producer._message_accumulator  # noqa: SLF001 - checking what the fence changed
    assert accumulator._batch_ttl == math.inf  # noqa: SLF001
    batch = accumulator._append_batch(accumulator.create_builder(), ("t", 0))  # noqa: SLF001
    batch._ctime -= 10 * 365 * 86400  # noqa: SLF001 - a batch created ten years ago
    assert not batch.expired()
    await producer.client.close()
