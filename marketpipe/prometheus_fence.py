"""The prometheus_client fence: every place marketpipe reaches into prometheus_client's private members.

Written against prometheus-client 0.26.0 (pyproject.toml pins it); importing this module refuses any other
installed version with a message saying what to do (`require_pinned_version`; the processor worker imports
it at start-up). `tests/foundation/test_prometheus_fence.py` compares the source of every upstream function
in `UPSTREAM_SHA256` with the fingerprint recorded here and names each one that changed.

Touch points, and why the public API is not enough for each:

1. `Histogram._upper_bounds`, `Histogram._buckets`, `Histogram._sum` (a labelled child's per-bucket values,
   as `Histogram._metric_init` creates them) -- `observe_all` observes a whole batch of values at once.
   prometheus_client has no bulk observe: `Histogram.observe` runs a Python loop over the bounds and two
   locked increments per value, and the processors observe one event -> queryable latency per event (tens
   of thousands per second). `observe_all` makes one increment per bucket touched, with the same result as
   `observe` for every value (tests/processors/test_metrics.py compares the two).

Everything else reads metrics through the public API (`collect()`, `generate_latest`, the text parser).

To move to another version: install it, run `pytest tests/foundation/test_prometheus_fence.py`, read the
upstream changes of every function it names, port them here, then update PINNED, UPSTREAM_SHA256 and the
pin in pyproject.toml.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally

from prometheus_client import Histogram

from marketpipe.fencing import UnpinnedLibraryError, require_versions

__all__ = ["PINNED", "UPSTREAM_SHA256", "UnpinnedLibraryError", "observe_all", "require_pinned_version"]

# The exact version this module was written against (pyproject.toml pins the same).
PINNED: dict[str, str] = {"prometheus-client": "0.26.0"}
FENCE_TEST = "tests/foundation/test_prometheus_fence.py"


def require_pinned_version() -> None:
    """Refuse to run on prometheus_client in any version but the pinned one."""
    require_versions(PINNED, fence="marketpipe/prometheus_fence.py", test=FENCE_TEST)


require_pinned_version()  # at import, i.e. at start-up

# SHA-256 of the source of each upstream function `observe_all` reproduces or whose private state it uses.
UPSTREAM_SHA256: dict[str, str] = {
    # what observe_all must give the same result as
    "prometheus_client.metrics:Histogram.observe":
        "38beca3be1d1595b61a274180f55537000e15133ead54fa07e303a86d9ceca39",
    # where _upper_bounds, _buckets and _sum are made, and how they are exposed (cumulative buckets, count)
    "prometheus_client.metrics:Histogram._prepare_buckets":
        "e857c68ce98710d98e1d4621b7b9ca0b29d149cb519eb5d189d76a5f0ce5e800",
    "prometheus_client.metrics:Histogram._metric_init":
        "61aeac1b768d4786bed708a86af53b14af8c549ed208ad348c96083ce97e38bc",
    "prometheus_client.metrics:Histogram._child_samples":
        "a20de7fdbe76e25be618b2ea30cf6a57518f81b673a21d16c9d343db9dd041b6",
    # the value class of each bucket (inc under a lock)
    "prometheus_client.values:MutexValue.inc":
        "cbb724b5da1f910cdda0c08421fc0a0ee42608a7e24a44518f32402b584dd7a2",
}


def observe_all(histogram: Histogram, values: list[float]) -> None:
    """`histogram.observe(v)` for every value, bucket by bucket: one increment per bucket touched instead of a
    Python loop over the bounds and two locked increments per value (prometheus_client has no bulk observe).
    Same result as observe(): a value lands in the first bucket whose upper bound is >= it."""
    if not values:
        return
    bounds, buckets = histogram._upper_bounds, histogram._buckets  # type: ignore[attr-defined]
    for index, count in Tally(bisect_left(bounds, v) for v in values).items():
        buckets[index].inc(count)
    histogram._sum.inc(sum(values))  # type: ignore[attr-defined]
