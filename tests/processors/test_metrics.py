"""observe_all (bulk histogram observation) gives exactly what prometheus_client's per-value observe gives."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from processors.metrics import observe_all


def samples(h: Histogram) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value for m in h.collect() for s in m.samples
            if not s.name.endswith("_created")}


def test_observe_all_matches_observe_per_value() -> None:
    rng = random.Random(7)
    buckets = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
    # values on, just below and just above every bound, zero and beyond the last bound (+Inf bucket)
    values = [b + d for b in buckets for d in (-1e-9, 0.0, 1e-9)] + [0.0, 11.0, 1e6]
    values += [rng.uniform(0, 12) for _ in range(500)]
    one = Histogram("one_by_one", "x", buckets=buckets, registry=CollectorRegistry())
    bulk = Histogram("one_by_one", "x", buckets=buckets, registry=CollectorRegistry())
    for v in values:
        one.observe(v)
    observe_all(bulk, values[:100])
    observe_all(bulk, values[100:])
    observe_all(bulk, [])
    got, want = samples(bulk), samples(one)
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert abs(got[k] - v) < 1e-6, k
    assert want[("one_by_one_count", "")] == len(values)


def test_events_by_stream_reads_the_labelled_counters() -> None:
    from processors import metrics

    before = metrics.events_by_stream()
    metrics.EVENTS.labels("fence-test").inc(3)
    metrics.EVENTS.labels("fence-test").inc(4)
    after = metrics.events_by_stream()
    assert after["fence-test"] - before.get("fence-test", 0) == 7
    assert all(after[k] == v for k, v in before.items() if k != "fence-test")


def test_gc_pauses_are_timed_per_generation() -> None:
    """GcPauses (installed by the worker at start-up) observes one duration per collection, by generation."""
    import gc

    from processors import metrics

    def count(generation: int) -> float:
        for family in metrics.GC_SECONDS.collect():
            for sample in family.samples:
                if sample.name.endswith("_count") and sample.labels["generation"] == str(generation):
                    return sample.value
        return 0.0

    installed = [cb for cb in gc.callbacks if isinstance(cb, metrics.GcPauses)]
    for cb in installed:  # exactly one timer while counting
        gc.callbacks.remove(cb)
    timer = metrics.GcPauses()
    gc.callbacks.append(timer)
    try:
        before = count(2)
        gc.collect(2)
        gc.collect(2)
        assert count(2) == before + 2
    finally:
        gc.callbacks.remove(timer)
        gc.callbacks.extend(installed)
