"""Read OHLCV candles from marketpipe.derived.ohlcv.v1 with the marketpipe.consumer library.

    MARKETPIPE_KAFKA_BOOTSTRAP=... MARKETPIPE_REGISTRY_URL=... \\
        python examples/candle_reader.py --venue drift --interval 1m --until-end

What a candle consumer must do (docs/topics.md):
- keep the highest `revision` per (market, interval, start_ts): a late trade or a late gap marker
  re-publishes a candle with revision + 1;
- check `gap` before reading figures: a gap candle may be short, and an empty gap candle (trade_count 0,
  prices "0") carries no data at all;
- duplicates (same event_id) are dropped by the library.
Prints every candle as it arrives, then at exit one JSON line per candle (latest revision).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from marketpipe.consumer import ConsumerSettings, EventStream
from schemas.topics import OHLCV

CandleKey = tuple[str, str, str, int]  # venue, market, interval, start_ts


async def read(args: argparse.Namespace) -> dict[CandleKey, dict[str, Any]]:
    settings = ConsumerSettings(consumer_group_id=args.group)
    candles: dict[CandleKey, dict[str, Any]] = {}
    async with EventStream(settings, OHLCV.name, venues=args.venue, markets=args.market,
                           stop_at_end=args.until_end) as stream:
        async for record in stream:
            c = record.value
            if args.interval and c["interval"] not in args.interval:
                continue
            key = (c["venue"], c["market"], c["interval"], c["start_ts"])
            if key in candles and candles[key]["revision"] >= c["revision"]:
                continue  # an older revision arriving late (or a replay): keep the newest
            candles[key] = c
            if args.quiet:
                continue
            if c["gap"] and c["trade_count"] == 0:
                print(f"{c['market']} {c['interval']} {c['start_ts']}: no data (inside a gap window)")
            else:
                flag = " (gap: trades may be missing)" if c["gap"] else ""
                print(f"{c['market']} {c['interval']} {c['start_ts']} rev {c['revision']}: O={c['open']} "
                      f"H={c['high']} L={c['low']} C={c['close']} V={c['volume']} n={c['trade_count']}{flag}")
    return candles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venue", action="append")
    parser.add_argument("--market", action="append")
    parser.add_argument("--interval", action="append", help="only this interval (repeatable), e.g. 1m")
    parser.add_argument("--group", help="consumer group id: resume from its committed offsets")
    parser.add_argument("--until-end", action="store_true", help="stop at the end of the topic")
    parser.add_argument("--quiet", action="store_true", help="only the final JSON lines")
    args = parser.parse_args()
    try:
        candles = asyncio.run(read(args))
    except KeyboardInterrupt:
        return
    for key in sorted(candles):
        c = candles[key]
        print(json.dumps({k: c[k] for k in ("venue", "market", "interval", "start_ts", "revision", "gap", "open",
                                            "high", "low", "close", "volume", "trade_count")}))


if __name__ == "__main__":
    main()
