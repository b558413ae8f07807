"""The dev view's renderable: states carry their colour (read from the segments rich renders, not pixels)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.style import Style

from marketpipe.dev.view import LAG_BAD, PipelineState, render


def _top(in_sync: bool) -> dict[str, object]:
    return {"best_bid": "100.5", "best_ask": "100.7", "spread": "0.2", "in_sync": in_sync}


def _feed(up: bool, connected: bool = True, gaps: float = 0) -> dict[str, float]:
    return {"up": float(up), "connected": float(connected), "gaps": gaps, "resyncs": 0.0, "reconnects": 0.0,
            "bad": 0.0}


def styles_of(state: PipelineState) -> dict[str, list[Style]]:
    """Text of every rendered segment -> the styles it was drawn with (as a terminal would get them)."""
    console = Console(width=200, force_terminal=True, color_system="truecolor")
    out: dict[str, list[Style]] = {}
    for seg in console.render(render(state, time.monotonic())):
        text = seg.text.strip()
        if text and seg.style is not None:
            out.setdefault(text, []).append(seg.style)
    return out


def colour(style: Style) -> str | None:
    return style.color.name if style.color is not None else None


def test_a_producer_down_is_red_and_an_up_one_green() -> None:
    state = PipelineState(feeds={"drift": _feed(up=False), "rabbitx": _feed(up=True)})
    styles = styles_of(state)
    assert [colour(s) for s in styles["DOWN"]] == ["red"] and styles["DOWN"][0].bold
    assert [colour(s) for s in styles["up"]] == ["green"]


def test_a_producer_up_but_not_connected_to_its_venue_is_yellow() -> None:
    styles = styles_of(PipelineState(feeds={"econia": _feed(up=True, connected=False)}))
    assert [colour(s) for s in styles["disconnected"]] == ["yellow"]
    assert "up" not in styles and "DOWN" not in styles


def test_a_book_out_of_sync_is_red_and_one_in_sync_green() -> None:
    state = PipelineState(tops={"drift:SOL-PERP": _top(in_sync=False), "okx:BTC-USDT": _top(in_sync=True)})
    styles = styles_of(state)
    assert [colour(s) for s in styles["OUT OF SYNC"]] == ["red"]
    assert [colour(s) for s in styles["in sync"]] == ["green"]


def test_gaps_counted_are_yellow_and_a_large_lag_red() -> None:
    state = PipelineState(feeds={"drift": _feed(up=True, gaps=3)}, lag=LAG_BAD + 1)
    styles = styles_of(state)
    assert [colour(s) for s in styles["3"]] == ["yellow"]
    assert [colour(s) for s in styles[str(LAG_BAD + 1)]] == ["red"]
    assert [colour(s) for s in styles_of(PipelineState(lag=5))["5"]] == ["green"]
