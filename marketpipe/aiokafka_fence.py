"""The one module that reaches into aiokafka's private members (the publisher's and the processors' fence).

Three things the public API does not offer:

- **Batches that never expire.** aiokafka gives every batch a time to live of ``request_timeout_ms``,
  counted from the batch's creation; ``MessageAccumulator.drain_by_nodes`` fails the head batch of a
  partition whose leader is unknown once that time has passed (it happens for a moment after a broker
  restart, when metadata says "no leader" for a partition). The batch has sequence numbers by then, and
  may already be in the log (an attempt written, its answer lost): re-sending it on a new producer id
  writes it twice, keeping it on the same producer leaves a sequence gap. ``never_expire_batches`` sets
  the accumulator's time to live to infinity, so an idempotent producer retries a batch until the broker
  answers, always with the same producer id, epoch and sequence numbers; the broker then drops a retry
  of a batch it already has (DuplicateSequenceNumber, reported as success). Requests still time out
  after ``request_timeout_ms`` (a hung connection is dropped and the batch retried), they just never
  give up.
- **aiokafka's internal retries, counted.** The sender retries a failed produce request inside aiokafka
  and only says so in a WARNING on ``aiokafka.producer.sender`` (one per failed request or partition).
  ``RetryCounter`` is a logging filter on that logger that counts those records (it never hides them;
  the rate limit is applied by the handlers, see ``producers.core.runtime``).

- **The fetch long-poll of a consumer built by faust** (``set_fetch_max_wait``): faust constructs the
  consumer with ``fetch_max_wait_ms=1500``; the processors shorten it before the consumer starts.

Written for the pinned aiokafka version only: importing this module raises on any other version, and
``tests/foundation/test_publisher_units.py`` names the upstream functions (source fingerprints below)
whose code changed after an upgrade.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from marketpipe.fencing import UnpinnedLibraryError, fingerprints, require_versions

PINNED = {"aiokafka": "0.14.0"}

# The upstream code this fence depends on the inner workings of (SHA-256 of its source).
UPSTREAM_SHA256 = {
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start":
        "2f1ba70443327538800d348e61042cdedd5a5e6306f40ebe1a06dddba7494c45",
    "aiokafka.producer.producer:AIOKafkaProducer.__init__":
        "fd6f2966fb3dc883ffcd325fe27b2580f005c3246bec5f20fc8412b2134f6180",
    "aiokafka.producer.message_accumulator:MessageAccumulator.__init__":
        "eb57f3c1d5c7657b1fec503d4913013ac318547a9cc1e0daa17a37acbe28e94c",
    "aiokafka.producer.message_accumulator:MessageAccumulator._append_batch":
        "4762abfc42cbaa15fe50756abbcf2de129cfe472efd0c844b7549960d08a10e9",
    "aiokafka.producer.message_accumulator:MessageAccumulator.drain_by_nodes":
        "fc995afbfc5718e2bbc40bc7078322f7e2a5b7c85df9b3cabbd14aca03201a5c",
    "aiokafka.producer.message_accumulator:MessageAccumulator._pop_batch":
        "41cc98a298ef2628d8f8568b7067526c7d5c4c8b941792ca20e1557a55ef9fee",
    "aiokafka.producer.message_accumulator:MessageBatch.__init__":
        "6fd2fe1c2df19a7efe23a17a64e132aa1bea8a2f0a71a42b5342a670a5daec75",
    "aiokafka.producer.message_accumulator:MessageBatch.expired":
        "3b28f15f56f2acb153aff3388e92b2379ba57ec5cfdf378565d6ccfd64003642",
    "aiokafka.producer.sender:SendProduceReqHandler.do":
        "2dccd3d56b1607fbbdf158e57ecfad82ab793d6755651488aab4255ed259a695",
    "aiokafka.producer.sender:SendProduceReqHandler.handle_response":
        "850323cc8f77abc3d315603e8fb3941bd7b39577bf06cce5c2ffe5f38a974f4c",
    "aiokafka.producer.sender:SendProduceReqHandler._can_retry":
        "7ff5d491d977aacfb18859c6fc71edf920f61833489bfff8ce5ff7a3b3f7eb13",
}

# aiokafka.producer.sender's WARNING templates for a produce attempt it failed and retries (or, for a
# non-retriable error, fails: the publisher counts those itself)
RETRY_TEMPLATES = (
    "Got error produce response: %s",
    "Got error produce response on topic-partition %s, retrying. Error: %s",
)
SENDER_LOGGER = "aiokafka.producer.sender"


UnpinnedAiokafkaError = UnpinnedLibraryError  # the shared fence error (marketpipe.fencing)
FENCE_TEST = "tests/foundation/test_publisher_units.py"


def require_pinned_version() -> None:
    """Refuse to run on aiokafka in any version but the pinned one."""
    require_versions(PINNED, fence="marketpipe/aiokafka_fence.py", test=FENCE_TEST)


def upstream_fingerprints() -> dict[str, str]:
    """name -> SHA-256 of the installed source ("missing: ..." when it no longer exists)."""
    return fingerprints(UPSTREAM_SHA256)


def never_expire_batches(producer: AIOKafkaProducer) -> None:
    """Call right after constructing the producer (before any batch exists: a batch copies the time to
    live when it is created)."""
    accumulator = producer._message_accumulator  # noqa: SLF001 - the fence's reason to exist
    if not hasattr(accumulator, "_batch_ttl"):
        raise UnpinnedAiokafkaError("aiokafka's MessageAccumulator has no _batch_ttl any more")
    accumulator._batch_ttl = math.inf  # noqa: SLF001


def set_fetch_max_wait(consumer: Any, ms: int) -> None:
    """The fetch long-poll of a consumer built by someone else (faust hard-codes 1500 ms when it builds its
    consumer, see processors/faust_fence.py): aiokafka reads ``_fetch_max_wait_ms`` when ``start()`` creates
    the Fetcher, so this must be called before ``start()``."""
    if not hasattr(consumer, "_fetch_max_wait_ms"):
        raise UnpinnedAiokafkaError("AIOKafkaConsumer has no _fetch_max_wait_ms any more")
    consumer._fetch_max_wait_ms = ms  # noqa: SLF001 - read by the Fetcher created at start()


class RetryCounter(logging.Filter):
    """Counts aiokafka's internal produce retries from its sender's WARNING records; never filters."""

    def __init__(self, on_retry: Callable[[], None]) -> None:
        super().__init__()
        self.on_retry = on_retry

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in RETRY_TEMPLATES:
            self.on_retry()
        return True


def count_internal_retries(on_retry: Callable[[], None]) -> RetryCounter:
    """Install (once per process) a RetryCounter on aiokafka's sender logger. The records exist only if
    that logger is enabled for WARNING (the default; `marketpipe` sets aiokafka to WARNING)."""
    logger = logging.getLogger(SENDER_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, RetryCounter):
            existing.on_retry = on_retry
            return existing
    counter = RetryCounter(on_retry)
    logger.addFilter(counter)
    return counter


require_pinned_version()
