"""CandleStage.caught_up: the ticks may close candles of a partition only once its trades are folded in."""

from __future__ import annotations

from processors.candle_stage import CandleStage

TOPIC = "marketpipe.trades.v1"


def stage(high: int | None, start: int | None, last: int | None) -> CandleStage:
    s = CandleStage.__new__(CandleStage)  # only what caught_up reads
    s.trades_topic = TOPIC
    s.highwater = lambda topic, partition: high
    s.read_position = lambda topic, partition: start
    s.last_offsets = {} if last is None else {(TOPIC, 0): last}
    return s


def test_a_restart_with_a_backlog_is_not_caught_up_before_its_first_trade() -> None:
    # restarted at committed offset 100 with 5,000 trades behind: no trade folded yet, so not idle
    assert not stage(high=5_100, start=100, last=None).caught_up(0)
    assert not stage(high=5_100, start=None, last=None).caught_up(0)  # no commit yet: reads from the start
    assert not stage(high=None, start=100, last=None).caught_up(0)  # nothing fetched yet: unknown


def test_nothing_to_read_or_everything_folded_is_caught_up() -> None:
    assert stage(high=100, start=100, last=None).caught_up(0)  # resumed at the end: an idle market
    assert stage(high=0, start=None, last=None).caught_up(0)  # an empty partition
    assert stage(high=5_100, start=100, last=5_099).caught_up(0)
    assert not stage(high=5_100, start=100, last=4_000).caught_up(0)
