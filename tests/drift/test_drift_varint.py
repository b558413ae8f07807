"""The table-driven Avro ``long`` writer of the fast SnapshotEncoder against the plain bit-by-bit definition."""

from __future__ import annotations

import random

from producers.drift.snapshot_encoder import zigzag_varint


def reference_zigzag_varint(n: int) -> bytes:
    """Avro spec: zig-zag (64-bit), then 7 bits per byte, little end first, high bit = more bytes follow."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def test_table_driven_varint_matches_the_definition() -> None:
    edges = [0, 1, -1, 63, 64, -64, -65, 4095, 4096, 8191, 8192, -8192, -8193, 16383, 16384, 2**63 - 1, -(2**63)]
    edges += [sign * 2**k + d for k in range(63) for d in (-1, 0, 1) for sign in (1, -1)]
    edges += [1_700_000_000_000_000, 1_700_000_000_000, 300_000_000]  # µs/ms timestamps, a Drift slot
    rng = random.Random(11)
    values = edges + [rng.randint(-(2**63), 2**63 - 1) for _ in range(20_000)]
    values += [rng.randint(-(10**6), 10**6) for _ in range(20_000)]
    for n in values:
        if -(2**63) <= n < 2**63:
            assert zigzag_varint(n) == reference_zigzag_varint(n), n
