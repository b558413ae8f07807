"""`marketpipe tail <topic>`: decoded events of a topic as readable lines (or JSON), like a console consumer.

    marketpipe tail trades --venue drift --market SOL-PERP            # from the end, until Ctrl-C
    marketpipe tail book --from 2026-12-06T10:00:00Z --max-events 50   # from a time (offsets_for_times)
    marketpipe tail marketpipe.derived.ohlcv.v1 --json --timeout 30    # one JSON object per line

A topic is named in full, by its contract (`trade`, `book`, `ohlcv`, ...) or by the part after `marketpipe.`
(`trades`, `derived.book-top`, ...). Bounded by `--max-events` and `--timeout` (seconds of wall time).
A line: event time (exchange_ts, UTC), key, partition@offset, then a summary of the event.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from marketpipe.consumer import ConsumerSettings, EventStream, Record
from schemas.topics import ALL_TOPICS, TopicSpec


def resolve_topic(name: str) -> TopicSpec:
    for spec in ALL_TOPICS:
        short = spec.name.removeprefix("marketpipe.")
        if name in (spec.name, spec.schema, short, short.rsplit(".", 1)[0]):
            return spec
    known = ", ".join(t.name for t in ALL_TOPICS)
    raise ValueError(f"unknown topic {name!r}; known: {known}")


def parse_time(text: str) -> datetime:
    """ISO 8601 with a zone (`2026-12-06T10:00:00Z`, `...+01:00`); a zone-less time is taken as UTC."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _ts(us: int | None) -> str:
    if not us:
        return "-"
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _gap(g: dict[str, Any]) -> str:
    parts = [f"GAP reason={g['reason']}", f"window={_ts(g['from_ts'])}..{_ts(g['to_ts'])}"]
    if g.get("after_id") or g.get("before_id"):
        parts.append(f"ids={g.get('after_id')}..{g.get('before_id')}")
    if g.get("missing_count") is not None:
        parts.append(f"missing={g['missing_count']}")
    return " ".join(parts)


def _levels(levels: list[dict[str, str]], n: int = 3) -> str:
    shown = " ".join(f"{lv['size']}@{lv['price']}" for lv in levels[:n])
    return shown + (f" (+{len(levels) - n})" if len(levels) > n else "")


def _trade(v: dict[str, Any]) -> str:
    if v.get("gap"):
        return _gap(v["gap"])
    return f"{v['side']} {v['size']} @ {v['price']} id={v['trade_id']}" + (" liquidation" if v.get("liquidation") else "")


def _book(v: dict[str, Any]) -> str:
    seq = f"seq={v.get('sequence')}" + (f" prev={v['prev_sequence']}" if v.get("prev_sequence") is not None else "")
    if v["kind"] == "RESET":
        return f"RESET reason={v.get('reason')}"
    return f"{v['kind']} {seq} bids[{len(v['bids'])}] {_levels(v['bids'])} | asks[{len(v['asks'])}] {_levels(v['asks'])}"


def _top(v: dict[str, Any]) -> str:
    flags = ("" if v["in_sync"] else " NOT-IN-SYNC") + (" CROSSED" if v["crossed"] else "")
    return (f"bid {v.get('best_bid_size')}@{v.get('best_bid')} ask {v.get('best_ask_size')}@{v.get('best_ask')} "
            f"spread={v.get('spread')} seq={v.get('sequence')}{flags}")


def _candle(v: dict[str, Any]) -> str:
    head = f"{v['interval']} {_ts(v['start_ts'])} O={v['open']} H={v['high']} L={v['low']} C={v['close']} V={v['volume']}"
    extra = f" n={v.get('trade_count')}"
    if "revision" in v:
        extra += f" rev={v['revision']}"
    if v.get("closed"):
        extra += " closed"
    if v.get("gap"):
        extra += " GAP"
    return head + extra


def _ticker(v: dict[str, Any]) -> str:
    fields = ("best_bid", "best_ask", "last_price", "mark_price", "funding_rate", "open_interest")
    return " ".join(f"{f}={v[f]}" for f in fields if v.get(f) is not None) or "(no fields)"


def _account(v: dict[str, Any]) -> str:
    head = f"{v['account']} {v['kind']}"
    if v.get("gap"):
        return f"{head} {_gap(v['gap'])}"
    body = v.get(str(v["kind"]).lower()) or {}
    if v["kind"] == "BALANCE":
        return f"{head} {body.get('asset')} total={body.get('total')} available={body.get('available')}"
    if v["kind"] == "ORDER":
        return (f"{head} {body.get('order_id')} {body.get('side')} {body.get('status')} {body.get('size')}"
                f"@{body.get('price')} filled={body.get('filled_size')}")
    if v["kind"] == "FILL":
        return f"{head} {body.get('fill_id')} {body.get('side')} {body.get('size')}@{body.get('price')} fee={body.get('fee')}"
    return f"{head} {body.get('side')} {body.get('size')} entry={body.get('entry_price')} pnl={body.get('unrealized_pnl')}"


SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "trade": _trade, "book": _book, "book_top": _top, "candle": _candle, "ohlcv": _candle, "ticker": _ticker,
    "account": _account,
}


def line(spec: TopicSpec, record: Record) -> str:
    v = record.value
    summary = SUMMARIES.get(spec.schema, lambda x: json.dumps(x, sort_keys=True))(v)
    return f"{_ts(v.get('exchange_ts'))} {record.key} p{record.partition}@{record.offset} {summary}"


def json_line(record: Record) -> str:
    return json.dumps({"topic": record.topic, "partition": record.partition, "offset": record.offset,
                       "timestamp_ms": record.timestamp_ms, "key": record.key, "value": record.value},
                      separators=(",", ":"), default=str)


async def tail(settings: ConsumerSettings, spec: TopicSpec, *, venues: list[str] | None = None,
               markets: list[str] | None = None, start: datetime | None = None, as_json: bool = False,
               max_events: int | None = None, timeout_s: float | None = None, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr) -> int:
    """Print events until max_events or timeout_s; returns how many were printed."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    printed = 0
    async with EventStream(settings, spec.name, venues=venues, markets=markets,
                           start=start if start is not None else "latest") as stream:
        where = f"from {start.isoformat()}" if start is not None else "from the end"
        print(f"# tailing {stream.topic} {where}", file=err, flush=True)
        while max_events is None or printed < max_events:
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                break
            for record in await stream.batch(wait):
                print(json_line(record) if as_json else line(spec, record), file=out, flush=True)
                printed += 1
                if max_events is not None and printed >= max_events:
                    break
    return printed


def main(args: Any, settings: ConsumerSettings) -> int:
    """Entry point of `marketpipe tail` (argparse namespace from marketpipe/cli.py)."""
    try:
        spec = resolve_topic(args.topic)
        start = parse_time(args.from_time) if args.from_time else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    split = lambda values: [p for v in values or [] for p in v.split(",") if p] or None  # noqa: E731
    try:
        settings = settings.model_copy(update={"consumer_group_id": None})  # a tail never commits offsets
        asyncio.run(tail(settings, spec, venues=split(args.venue), markets=split(args.market), start=start,
                         as_json=args.json, max_events=args.max_events, timeout_s=args.timeout))
    except KeyboardInterrupt:
        pass
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
