"""Serde throughput on one core: Confluent-framed Avro encode/decode of a trade and of a 10-level
book delta (fastavro schemaless, the path every producer and processor uses). Prints events/s.
A second line per message compares decoding the Avro datum after the 5-byte header with fastavro
(as processors/wire.py does) and with schemas.compiled_reader.

    python benchmarks/bench_serde.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import io
import time

from fastavro import schemaless_reader

from schemas import contracts
from schemas.compiled_reader import compile_reader
from schemas.serde import AvroFramer

TS = 1_732_000_000_123_456
BASE = {"venue": "binance", "market": "BTC-USDT", "venue_symbol": "BTCUSDT", "exchange_ts": TS, "receive_ts": TS}
TRADE = {**BASE, "event_id": "binance:BTC-USDT:t:123456789", "trade_id": "123456789", "price": "65289.20",
         "size": "0.00120000", "side": "BUY", "liquidation": None}
DELTA = {**BASE, "event_id": "binance:BTC-USDT:b:160", "kind": "DELTA", "sequence": 160, "prev_sequence": 157,
         "checksum": None, "reason": None,
         "bids": [{"price": f"65289.{i:02d}", "size": f"{i}.12345678"} for i in range(5)],
         "asks": [{"price": f"65290.{i:02d}", "size": f"{i}.87654321"} for i in range(5)]}


def rate(fn, seconds: float) -> float:
    n, t0 = 0, time.process_time()
    while True:
        for _ in range(1000):
            fn()
        n += 1000
        spent = time.process_time() - t0
        if spent >= seconds:
            return n / spent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    for name, record in (("trade", TRADE), ("book", DELTA)):
        framer = AvroFramer(1, contracts.parsed(name))
        data = framer.encode(record)
        enc = rate(lambda: framer.encode(record), args.seconds)  # noqa: B023
        dec = rate(lambda: framer.decode(data), args.seconds)  # noqa: B023
        label = "trade" if name == "trade" else "book delta (10 levels)"
        print(f"{label:24} {len(data):4d} bytes  encode {enc:10,.0f} events/CPU-s  decode {dec:10,.0f} events/CPU-s")
        parsed, reader = framer.parsed, compile_reader(framer.parsed)
        fast = rate(lambda: schemaless_reader(io.BytesIO(memoryview(data)[5:]), parsed, None),  # noqa: B023
                    args.seconds)
        compiled = rate(lambda: reader(data, 5), args.seconds)  # noqa: B023
        print(f"{'':24} datum decode: fastavro {fast:10,.0f} events/CPU-s ({1e6 / fast:.2f} us)  "
              f"compiled {compiled:10,.0f} events/CPU-s ({1e6 / compiled:.2f} us, {compiled / fast:.2f}x)")


if __name__ == "__main__":
    main()
