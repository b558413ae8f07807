"""SnapshotEncoder: BookUpdate records written straight to Avro binary, for Drift's hot path.

Why: every Drift book message is a full 20+20-level snapshot. fastavro's generic writer needs ~44 µs for
such a record on these machines, more than the whole frame budget (30k frames per CPU-second = 33 µs).
Drift repeats the same prices and sizes frame after frame, so each level's Avro bytes (length-prefixed
text) are cached per integer value and a record is a ``b"".join`` of pre-encoded pieces.

Safety: the writer follows the BookUpdate field order of ``schemas/avro/book.avsc``. ``matches_fastavro()``
encodes sample records with this writer (both entry points) and with fastavro (``AvroFramer``) and compares
the bytes; the feed uses the fast path only when they are identical (a schema change makes them differ and
the feed falls back to fastavro, with a warning). Tests run the same comparison on random records.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from typing import Any

from producers.core.numbers import units_text
from producers.drift.precision import json_units
from schemas.serde import MAGIC, AvroFramer

_NULL = b"\x00"
_SOME = b"\x02"  # union branch 1 (zig-zag of 1)
_END = b"\x00"
_SNAPSHOT = b"\x00"  # enum index 0
_CACHE_MAX = 200_000


def _varint(z: int) -> bytes:
    """Base-128 varint of a non-negative ``z``, little end first (the reference for the tables below)."""
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# Timestamps and slots are 7-8 byte varints on every snapshot: emitting them 14 bits (two bytes) per table
# lookup halves the cost of the bit-by-bit loop. _MID14[i]: the two bytes of 14 bits with more to follow;
# _LAST14[i]: the final group(s) of a varint whose remaining value is i.
_MID14 = [bytes(((i & 0x7F) | 0x80, (i >> 7) | 0x80)) for i in range(1 << 14)]
_LAST14 = [_varint(i) for i in range(1 << 14)]
_SMALL = [_varint(i << 1) for i in range(4096)]


def zigzag_varint(n: int) -> bytes:
    """Avro ``long``: zig-zag, then base-128 varint, little end first (small values from a table)."""
    if 0 <= n < 4096:
        return _SMALL[n]
    z = (n << 1) ^ (n >> 63)
    if z < 16384:
        return _LAST14[z]
    parts = []
    while z >= 16384:
        parts.append(_MID14[z & 0x3FFF])
        z >>= 14
    parts.append(_LAST14[z])
    return b"".join(parts)


def avro_string(text: str) -> bytes:
    raw = text.encode()
    return zigzag_varint(len(raw)) + raw


class LevelTextCache:
    """Integer units -> Avro-encoded decimal text, cached (bounded: cleared when it grows too big).

    Only values that passed validation (an ``int``, in range) are ever cached, so a cache hit needs no check.
    """

    __slots__ = ("exp", "minimum", "_cache")

    def __init__(self, exp: int, minimum: int) -> None:
        self.exp = exp
        self.minimum = minimum
        self._cache: dict[int, bytes] = {}

    def get(self, units: int) -> bytes:
        b = self._cache.get(units)
        if b is None or type(units) is not int:
            b = self.miss(units)
        return b

    def miss(self, units: object) -> bytes:
        if type(units) is not int:
            units = json_units(units)  # JS exponent forms of big integers; anything else raises
        if units < self.minimum:
            raise ValueError(f"level value {units} below {self.minimum}")
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        b = self._cache[units] = avro_string(units_text(units, self.exp))
        return b


class SnapshotEncoder:
    """Encodes SNAPSHOT BookUpdates of one market (Confluent header included)."""

    def __init__(self, framer: AvroFramer, *, venue: str, market: str, venue_symbol: str, price_exp: int,
                 size_exp: int) -> None:
        self._header = struct.pack(">bI", MAGIC, framer.schema_id)  # Confluent wire header
        self._fixed = avro_string(venue) + avro_string(market) + avro_string(venue_symbol)
        self.prices = LevelTextCache(price_exp, 1)
        self.sizes = LevelTextCache(size_exp, 0)

    def _side(self, levels: Sequence[tuple[int, int]]) -> list[bytes]:
        if not levels:
            return [_END]
        price, size = self.prices.get, self.sizes.get
        parts = [zigzag_varint(len(levels))]
        for p, s in levels:
            parts.append(price(p))
            parts.append(size(s))
        parts.append(_END)
        return parts

    def wire_side(self, levels: list[dict[str, Any]]) -> list[bytes]:
        """Avro array bytes straight from the venue's level dicts (``{"price": int, "size": int, ...}``)."""
        if not levels:
            return [_END]
        pc, sc = self.prices._cache, self.sizes._cache  # noqa: SLF001 - the hot path's one dict lookup
        pmiss, smiss = self.prices.miss, self.sizes.miss
        parts = [zigzag_varint(len(levels))]
        append = parts.append
        for lv in levels:
            p = lv["price"]
            s = lv["size"]
            b = pc.get(p)
            append(b if b is not None and type(p) is int else pmiss(p))
            b = sc.get(s)
            append(b if b is not None and type(s) is int else smiss(s))
        append(_END)
        return parts

    def encode_wire(self, event_id: str, exchange_ts: int, receive_ts: int, sequence: int,
                    prev_sequence: int | None, bids: list[dict[str, Any]], asks: list[dict[str, Any]]) -> bytes:
        """A SNAPSHOT from the wire's level dicts: converts, validates and encodes in one pass."""
        parts = [self._header, avro_string(event_id), self._fixed, zigzag_varint(exchange_ts),
                 zigzag_varint(receive_ts), _SNAPSHOT, _SOME + zigzag_varint(sequence),
                 _NULL if prev_sequence is None else _SOME + zigzag_varint(prev_sequence), _NULL]
        parts += self.wire_side(bids)
        parts += self.wire_side(asks)
        parts.append(_NULL)
        return b"".join(parts)

    def encode(self, event_id: str, exchange_ts: int, receive_ts: int, sequence: int | None,
               prev_sequence: int | None, bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]]) -> bytes:
        parts = [self._header, avro_string(event_id), self._fixed, zigzag_varint(exchange_ts),
                 zigzag_varint(receive_ts), _SNAPSHOT,
                 _NULL if sequence is None else _SOME + zigzag_varint(sequence),
                 _NULL if prev_sequence is None else _SOME + zigzag_varint(prev_sequence),
                 _NULL]  # checksum: Drift has none
        parts += self._side(bids)
        parts += self._side(asks)
        parts.append(_NULL)  # reason
        return b"".join(parts)


def snapshot_record(event_id: str, exchange_ts: int, receive_ts: int, sequence: int | None, prev_sequence: int | None,
                    bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], *, venue: str, market: str,
                    venue_symbol: str, price_exp: int, size_exp: int) -> dict[str, Any]:
    """The same SNAPSHOT as a plain BookUpdate record (the fastavro path, and the reference for checks)."""
    return {
        "event_id": event_id, "venue": venue, "market": market, "venue_symbol": venue_symbol,
        "exchange_ts": exchange_ts, "receive_ts": receive_ts, "kind": "SNAPSHOT", "sequence": sequence,
        "prev_sequence": prev_sequence, "checksum": None,
        "bids": [{"price": units_text(a, price_exp), "size": units_text(b, size_exp)} for a, b in bids],
        "asks": [{"price": units_text(a, price_exp), "size": units_text(b, size_exp)} for a, b in asks],
        "reason": None,
    }


def matches_fastavro(framer: AvroFramer, price_exp: int, size_exp: int, samples: int = 12) -> bool:
    """True when this writer's bytes equal fastavro's for sample snapshots (edge values included)."""
    rng = random.Random(5)
    enc = SnapshotEncoder(framer, venue="drift", market="X-PERP", venue_symbol="X-PERP", price_exp=price_exp,
                          size_exp=size_exp)
    for i in range(samples):
        n = (0, 1, 20, 3)[i % 4]
        bids = [(rng.choice((1, 999_999, 10**6, 2**62)) + j, rng.randint(1, 2**40)) for j in range(n)]
        asks = [(rng.randint(1, 10**12), rng.choice((1, 10**9, 2**53 + 1))) for _ in range((n + 1) % 21)]
        seq = None if i == 1 else rng.randint(0, 2**62)
        prev = None if i % 2 else rng.randint(-(2**62), 2**62)
        args = (f"drift:X-PERP:book:S:{i}:\u00e9", rng.randint(0, 2**60), -rng.randint(0, 2**60), seq, prev, bids, asks)
        rec = snapshot_record(*args, venue="drift", market="X-PERP", venue_symbol="X-PERP", price_exp=price_exp,
                              size_exp=size_exp)
        reference = framer.encode(rec)
        wire_args = (*args[:5], [{"price": p, "size": q} for p, q in bids], [{"price": p, "size": q} for p, q in asks])
        if enc.encode(*args) != reference:
            return False
        if seq is not None and enc.encode_wire(args[0], args[1], args[2], seq, prev, wire_args[5], wire_args[6]) != reference:
            return False
    return True
