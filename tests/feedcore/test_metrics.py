"""FeedMetrics: plain counts for tests, exported to Prometheus at scrape time."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from producers.core.metrics import FeedMetrics


def test_counts_are_exported_summed_per_venue_and_channel() -> None:
    a, b = FeedMetrics("metricsunit"), FeedMetrics("metricsunit")
    a.inc("gaps", "orderbook:X")
    b.inc("gaps", "orderbook:X", 2)
    a.inc("widgets", "w")  # a venue's own count
    a.message("orderbook:X")
    a.frame()
    a.reconnect("watchdog")
    a.set_connected(True)
    text = generate_latest(REGISTRY).decode()
    assert 'marketpipe_feed_gaps_total{channel="orderbook:X",venue="metricsunit"} 3.0' in text
    assert 'marketpipe_feed_widgets_total{channel="w",venue="metricsunit"} 1.0' in text
    assert 'marketpipe_feed_frames_total{venue="metricsunit"} 1.0' in text
    assert 'marketpipe_feed_reconnects_total{reason="watchdog",venue="metricsunit"} 1.0' in text
    assert 'marketpipe_feed_connected{venue="metricsunit"} 1.0' in text
    assert 'marketpipe_feed_last_message_age_seconds{channel="orderbook:X",venue="metricsunit"}' in text
    assert a.count("gaps") == 1 and b.count("gaps", "orderbook:X") == 2 and a.count("reconnects") == 1
    assert a.snapshot()["frames"] == 1
