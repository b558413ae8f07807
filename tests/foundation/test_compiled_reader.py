"""schemas.compiled_reader against fastavro: same output on random valid data of every contract (and of
synthetic schemas for the types the contracts do not use), DecodeError and nothing else on malformed bytes.
No broker, no network."""

from __future__ import annotations

import io
import math
import random
import struct
from typing import Any

import fastavro
import pytest
from fastavro import schemaless_reader, schemaless_writer

from schemas import contracts
from schemas.compiled_reader import compile_reader
from schemas.serde import DecodeError
from tests.foundation.samples import samples

HEADER = b"\x00\x00\x00\x00\x07"  # Confluent framing: magic 0, schema id 7
CHARS = "abcXYZ0189.-_ :éüß€中文🚀\x00\n"


# --- helpers ---------------------------------------------------------------------------------------------


def encode(parsed: Any, datum: Any) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parsed, datum)
    return out.getvalue()


def fastavro_read(parsed: Any, data: bytes) -> tuple[Any, bool]:
    """fastavro's result and whether it consumed every byte."""
    stream = io.BytesIO(data)
    value = schemaless_reader(stream, parsed, None)
    return value, stream.tell() == len(data)


def strict(value: Any) -> Any:
    """A form whose == also compares types (True is not 1), float bits (-0.0 is not 0.0) and dict key order."""
    if isinstance(value, dict):
        return ("dict", [(k, strict(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [strict(v) for v in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    return (type(value).__name__, value)


def varint(n: int) -> bytes:
    """Zigzag varint of a long, as Avro writes it."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def named_types(node: Any, out: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {} if out is None else out
    if isinstance(node, list):
        for branch in node:
            named_types(branch, out)
    elif isinstance(node, dict):
        kind = node["type"]
        if isinstance(kind, dict | list):
            named_types(kind, out)
        elif kind in ("record", "enum", "fixed"):
            out[node["name"]] = node
        if kind == "record":
            for field in node["fields"]:
                named_types(field["type"], out)
        elif kind == "array":
            named_types(node["items"], out)
        elif kind == "map":
            named_types(node["values"], out)
    return out


class RandomDatum:
    """Random valid values of a parsed schema: every union branch, empty and long strings (non-ASCII too),
    longs of every varint length, empty and long (> 64 items: multi-byte counts) arrays and maps."""

    MAX_DEPTH = 4

    def __init__(self, parsed: Any, rng: random.Random) -> None:
        self.parsed = parsed
        self.rng = rng
        self.named = named_types(parsed)

    def __call__(self) -> Any:
        return self.value(self.parsed, 0)

    def length(self, depth: int) -> int:
        if depth >= self.MAX_DEPTH:
            return 0
        if depth >= 2:
            return self.rng.choice([0, 1, 2])
        return self.rng.choice([0, 1, self.rng.randint(2, 10), self.rng.randint(65, 130)])

    def text(self) -> str:
        n = self.rng.choice([0, 1, self.rng.randint(2, 20), self.rng.randint(60, 90)])
        return "".join(self.rng.choice(CHARS) for _ in range(n))

    def integer(self, bits: int) -> int:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        pick = self.rng.random()
        if pick < 0.3:
            return self.rng.randint(-64, 63)  # one-byte varint
        if pick < 0.5:
            return self.rng.choice([lo, hi, 0, -1, 63, 64, -64, -65, 8191, 8192, lo + 1, hi - 1])
        width = self.rng.randint(1, bits - 1)
        return self.rng.randint(-(2**width), 2**width - 1)

    def value(self, node: Any, depth: int) -> Any:
        rng = self.rng
        if isinstance(node, list):
            branches = node
            if depth >= self.MAX_DEPTH and "null" in node:
                branches = ["null"]
            return self.value(rng.choice(branches), depth)
        if isinstance(node, str) and node in self.named:
            node = self.named[node]
        if isinstance(node, dict) and isinstance(node["type"], dict | list):
            return self.value(node["type"], depth)
        kind = node if isinstance(node, str) else node["type"]
        if kind == "null":
            return None
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "int":
            return self.integer(32)
        if kind == "long":
            return self.integer(64)
        if kind == "float":
            x = rng.choice([0.0, -0.0, math.inf, -math.inf, 1e-40, 3.4e38, rng.uniform(-1e6, 1e6)])
            return struct.unpack("<f", struct.pack("<f", x))[0]
        if kind == "double":
            x = struct.unpack("<d", rng.randbytes(8))[0]
            return rng.choice([0.0, -0.0, math.inf, 5e-324, 1.7976931348623157e308, 0.0 if math.isnan(x) else x])
        if kind == "bytes":
            return rng.randbytes(rng.choice([0, 1, rng.randint(2, 20), rng.randint(64, 200)]))
        if kind == "string":
            return self.text()
        if kind == "enum":
            return rng.choice(node["symbols"])
        if kind == "fixed":
            return rng.randbytes(node["size"])
        if kind == "array":
            return [self.value(node["items"], depth + 1) for _ in range(self.length(depth))]
        if kind == "map":
            return {self.text() + str(i): self.value(node["values"], depth + 1) for i in range(self.length(depth))}
        if kind == "record":
            return {f["name"]: self.value(f["type"], depth + 1) for f in node["fields"]}
        raise AssertionError(f"unexpected schema node {node!r}")


def check_same_as_fastavro(parsed: Any, data: bytes, reader: Any) -> None:
    expected, consumed_all = fastavro_read(parsed, data)
    assert consumed_all
    assert strict(reader(data)) == strict(expected)
    assert strict(reader(HEADER + data, 5)) == strict(expected)
    with pytest.raises(DecodeError, match="trailing"):
        reader(data + b"\x00")


# --- schemas ---------------------------------------------------------------------------------------------


def contract_schemas() -> dict[str, Any]:
    """Every contract of the working tree and every released version (the processors read old writers too)."""
    out = {name: contracts.parsed(name) for name in contracts.schema_names()}
    for name in contracts.schema_names():
        for version, schema in contracts.released_versions(name):
            out[f"{name}@v{version}"] = fastavro.parse_schema(schema)
    return out


POINT = {"type": "record", "name": "Point", "namespace": "t", "fields": [
    {"name": "x", "type": "double"}, {"name": "y", "type": "float"}]}
LABEL = {"type": "record", "name": "Label", "namespace": "t", "fields": [
    {"name": "text", "type": "string"}, {"name": "tags", "type": {"type": "array", "items": "string"}}]}

SYNTHETIC: dict[str, Any] = {
    "primitives": {"type": "record", "name": "Primitives", "namespace": "t", "fields": [
        {"name": "n", "type": "null"}, {"name": "flag", "type": "boolean"}, {"name": "i", "type": "int"},
        {"name": "l", "type": "long"}, {"name": "f", "type": "float"}, {"name": "d", "type": "double"},
        {"name": "raw", "type": "bytes"}, {"name": "s", "type": "string"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 16}},
        {"name": "empty", "type": {"type": "fixed", "name": "Empty", "size": 0}},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": [f"C{i}" for i in range(70)]}},
        {"name": "again", "type": ["null", "t.Color", "t.Digest"]},
        {"name": "class", "type": {"type": "string"}},  # a Python keyword as a field name
    ]},
    "containers": {"type": "record", "name": "Containers", "namespace": "t", "fields": [
        {"name": "prices", "type": {"type": "map", "values": "string"}},
        {"name": "points", "type": {"type": "map", "values": POINT}},
        {"name": "matrix", "type": {"type": "array", "items": {"type": "array", "items": "long"}}},
        {"name": "blobs", "type": {"type": "array", "items": "bytes"}},
        {"name": "groups", "type": {"type": "map", "values": {"type": "array", "items": "int"}}},
        {"name": "outer", "type": {"type": "record", "name": "Outer", "fields": [
            {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
                {"name": "p", "type": "t.Point"}, {"name": "q", "type": ["null", "t.Point"]}]}},
            {"name": "more", "type": {"type": "array", "items": "t.Inner"}}]}},
        {"name": "shape", "type": ["null", LABEL, "t.Point", "string", "long",
                                   {"type": "map", "values": "long"}, {"type": "array", "items": "t.Label"}]},
    ]},
    "linked_list": {"type": "record", "name": "Node", "namespace": "t", "fields": [
        {"name": "value", "type": "long"}, {"name": "next", "type": ["null", "Node"]}]},
    "mutual_recursion": {"type": "record", "name": "Tree", "namespace": "t", "fields": [
        {"name": "label", "type": "string"},
        {"name": "children", "type": {"type": "array", "items": "Tree"}},
        {"name": "attrs", "type": {"type": "map", "values": {"type": "record", "name": "Attr", "fields": [
            {"name": "value", "type": ["null", "string", "Tree"]}]}}},
    ]},
    "top_union": ["null", "string", POINT, {"type": "array", "items": "t.Point"}],
    "top_long": "long",
    "top_map": {"type": "map", "values": "double"},
    "top_enum": {"type": "enum", "name": "Side", "symbols": ["BUY", "SELL"]},
    "top_fixed": {"type": "fixed", "name": "Id", "size": 4},
}


@pytest.fixture(scope="module")
def contract_messages() -> dict[str, list[bytes]]:
    """Encoded random datums per contract schema (and the hand-written samples), shared by the tests."""
    out = {}
    for name, parsed in contract_schemas().items():
        gen = RandomDatum(parsed, random.Random(f"contract {name}"))
        out[name] = [encode(parsed, gen()) for _ in range(300)]
        out[name] += [encode(parsed, record) for record in samples().get(name, [])]
    return out


# --- same output as fastavro -----------------------------------------------------------------------------


def test_the_contracts_compile() -> None:
    for name, parsed in contract_schemas().items():
        assert callable(compile_reader(parsed)), name


@pytest.mark.parametrize("name", sorted(contract_schemas()))
def test_contract_datums_decode_like_fastavro(name: str, contract_messages: dict[str, list[bytes]]) -> None:
    parsed = contract_schemas()[name]
    reader = compile_reader(parsed)
    for data in contract_messages[name]:
        check_same_as_fastavro(parsed, data, reader)


def test_samples_round_trip() -> None:
    for name, records in samples().items():
        parsed = contracts.parsed(name)
        reader = compile_reader(parsed)
        for record in records:
            assert reader(HEADER + encode(parsed, record), 5) == record


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_datums_decode_like_fastavro(name: str) -> None:
    parsed = fastavro.parse_schema(SYNTHETIC[name])
    reader = compile_reader(parsed)
    gen = RandomDatum(parsed, random.Random(f"synthetic {name}"))
    for _ in range(200):
        check_same_as_fastavro(parsed, encode(parsed, gen()), reader)


def test_every_union_branch_and_deep_recursion() -> None:
    parsed = fastavro.parse_schema(SYNTHETIC["top_union"])
    reader = compile_reader(parsed)
    for datum in (None, "", "ü", {"x": 1.5, "y": -2.0}, [], [{"x": 0.0, "y": 1.0}] * 70):
        check_same_as_fastavro(parsed, encode(parsed, datum), reader)
    node = fastavro.parse_schema(SYNTHETIC["linked_list"])
    chain: dict[str, Any] = {"value": -1, "next": None}
    for i in range(200):
        chain = {"value": i * 1_000_003, "next": chain}
    check_same_as_fastavro(node, encode(node, chain), compile_reader(node))


def test_recursive_and_large_records_get_functions_of_their_own() -> None:
    node = fastavro.parse_schema(SYNTHETIC["linked_list"])
    assert "def _read_t_Node(buf, pos):" in compile_reader(node).source
    wide = {"type": "record", "name": "Wide", "namespace": "t",
            "fields": [{"name": f"f{i}", "type": ["null", "long"]} for i in range(150)]}
    outer = fastavro.parse_schema({"type": "record", "name": "Outer", "namespace": "t", "fields": [
        {"name": "a", "type": wide}, {"name": "b", "type": "t.Wide"}, {"name": "c", "type": ["null", "t.Wide"]}]})
    reader = compile_reader(outer)
    assert reader.source.count("def _read_t_Wide(buf, pos):") == 1  # called three times, generated once
    gen = RandomDatum(outer, random.Random("wide"))
    for _ in range(20):
        check_same_as_fastavro(outer, encode(outer, gen()), reader)


def test_types_named_by_an_earlier_parse() -> None:
    named: dict[str, Any] = {}
    fastavro.parse_schema(POINT, named)
    segment = fastavro.parse_schema({"type": "record", "name": "Segment", "namespace": "t", "fields": [
        {"name": "start", "type": "t.Point"}, {"name": "end", "type": "t.Point"}]}, named)
    data = encode(segment, {"start": {"x": 1.0, "y": 2.0}, "end": {"x": -1.0, "y": 0.5}})
    check_same_as_fastavro(segment, data, compile_reader(segment))


def test_negative_block_counts() -> None:
    """A negative count is followed by the block's byte size; blocks of any size, then a 0 count."""
    longs = fastavro.parse_schema({"type": "array", "items": "long"})
    for data in (
        varint(-2) + varint(2) + varint(1) + varint(2) + varint(1) + varint(3) + varint(0),
        varint(-2) + varint(2) + varint(1) + varint(2) + varint(-1) + varint(1) + varint(3) + varint(0),
    ):
        assert compile_reader(longs)(data) == fastavro_read(longs, data)[0] == [1, 2, 3]
    many = list(range(-100, 100))
    data = varint(-150) + varint(sum(len(varint(x)) for x in many[:150]))
    data += b"".join(varint(x) for x in many[:150]) + varint(50) + b"".join(varint(x) for x in many[150:]) + b"\0"
    assert compile_reader(longs)(data) == fastavro_read(longs, data)[0] == many
    strings = fastavro.parse_schema({"type": "map", "values": "string"})
    entries = varint(2) + b"ab" + varint(1) + b"x" + varint(0) + varint(2) + b"\xc3\xa9"
    data = varint(-2) + varint(len(entries)) + entries + varint(-1) + varint(4) + varint(1) + b"k" + varint(1) + b"v"
    data += varint(0)
    assert compile_reader(strings)(data) == fastavro_read(strings, data)[0] == {"ab": "x", "": "é", "k": "v"}


def test_bytes_like_input_and_source() -> None:
    parsed = contracts.parsed("trade")
    reader = compile_reader(parsed)
    data = HEADER + encode(parsed, samples()["trade"][0])
    assert reader(bytearray(data), 5) == reader(memoryview(data), 5) == reader(data, 5) == samples()["trade"][0]
    assert reader.schema_name == "io.marketpipe.v1.Trade"
    assert "def read_Trade(data, offset=0):" in reader.source
    compile(reader.source, "<source>", "exec")


# --- compile-time refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [
    {"type": "long", "logicalType": "timestamp-micros"},
    {"type": "record", "name": "R", "fields": [{"name": "at", "type": {"type": "int", "logicalType": "date"}}]},
    {"type": "record", "name": "R", "fields": [
        {"name": "amount", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}]}]},
    {"type": "array", "items": {"type": "string", "logicalType": "uuid"}},
    {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 18}},
        {"name": "b", "type": "Money"}]},
])
def test_logical_types_are_refused_at_compile_time(schema: Any) -> None:
    with pytest.raises(NotImplementedError, match="logicalType"):
        compile_reader(fastavro.parse_schema(schema))


# --- malformed input: DecodeError, never anything else ---------------------------------------------------


def test_every_truncation_raises_decode_error(contract_messages: dict[str, list[bytes]]) -> None:
    rng = random.Random("truncations")
    cases = []
    for name, msgs in contract_messages.items():
        cases.append((contract_schemas()[name], sorted(msgs, key=len)[::50] + msgs[300:]))  # short to long, samples
    for name in ("primitives", "containers", "mutual_recursion", "top_union"):
        parsed = fastavro.parse_schema(SYNTHETIC[name])
        gen = RandomDatum(parsed, rng)
        cases.append((parsed, sorted((encode(parsed, gen()) for _ in range(40)), key=len)[::8]))
    checked = 0
    for parsed, msgs in cases:
        reader = compile_reader(parsed)
        for data in msgs:
            framed = HEADER + data
            cuts = range(len(data)) if len(data) <= 400 else sorted(rng.sample(range(len(data)), 400))
            for cut in cuts:
                for args in ((data[:cut], 0), (framed[: 5 + cut], 5)):
                    try:
                        reader(*args)
                    except DecodeError:
                        checked += 1
                    else:
                        raise AssertionError(f"{args} decoded, but it is cut after {cut} of {len(data)} bytes")
    assert checked > 10_000, checked


def corrupt(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3])):
        pos = rng.randrange(len(out) + 1)
        action = rng.random()
        if action < 0.45 and pos < len(out):
            out[pos] = rng.choice([rng.randrange(256), 0x00, 0x01, 0x7F, 0x80, 0xFF, out[pos] ^ 1, out[pos] ^ 0x80])
        elif action < 0.7:
            out.insert(pos, rng.randrange(256))
        elif action < 0.9 and pos < len(out):
            del out[pos]
        else:
            out[pos:pos] = rng.choice([b"\xff" * 11, b"\x80" * 10 + b"\x01", b"\xfe\xff\xff\xff\x0f", b"\x01"])
    return bytes(out)


def test_corrupted_bytes_decode_like_fastavro_or_raise_decode_error(
    contract_messages: dict[str, list[bytes]],
) -> None:
    """fastavro is the oracle: whatever the compiled reader accepts, fastavro reads the same from the same bytes
    (consuming all of them); everything else is a DecodeError. Schemas with zero-byte array items are left out:
    on those a few corrupted bytes make fastavro allocate without bound."""
    rng = random.Random("corruption")
    cases = [(contract_schemas()[name], msgs) for name, msgs in contract_messages.items()]
    for name in ("primitives", "containers", "linked_list", "mutual_recursion", "top_union"):
        parsed = fastavro.parse_schema(SYNTHETIC[name])
        gen = RandomDatum(parsed, rng)
        cases.append((parsed, [encode(parsed, gen()) for _ in range(20)]))
    decoded = failed = 0
    for parsed, msgs in cases:
        reader = compile_reader(parsed)
        for _ in range(300):
            data = corrupt(rng, rng.choice(msgs))
            try:
                got = reader(data)
            except DecodeError:
                failed += 1
                continue
            decoded += 1
            expected, consumed_all = fastavro_read(parsed, data)
            assert consumed_all and strict(got) == strict(expected), data
    assert decoded > 100 and failed > 1000, (decoded, failed)


def test_trailing_bytes_raise() -> None:
    parsed = contracts.parsed("trade")
    data = encode(parsed, samples()["trade"][0])
    reader = compile_reader(parsed)
    for extra in (b"\x00", b"garbage"):
        with pytest.raises(DecodeError, match=f"{len(extra)} trailing bytes"):
            reader(HEADER + data + extra, 5)


MIXED = {"type": "record", "name": "C", "fields": [
    {"name": "count", "type": "int"}, {"name": "closed", "type": "boolean"},
    {"name": "side", "type": {"type": "enum", "name": "S", "symbols": ["BUY", "SELL", "UNKNOWN"]}},
    {"name": "note", "type": ["null", "string"]}]}


@pytest.mark.parametrize(("data", "message"), [
    (varint(1) + b"\x00" + varint(0) + varint(2), r"union branch 2 .* 2 branches"),
    (varint(1) + b"\x00" + varint(0) + varint(-1), r"union branch -1"),
    (varint(1) + b"\x00" + varint(3) + varint(0), r"enum index 3 .* 3 symbols"),
    (varint(1) + b"\x00" + varint(-1) + varint(0), r"enum index -1"),
    (varint(1) + b"\x02" + varint(0) + varint(0), r"boolean byte 2"),
    (varint(2**31) + b"\x00" + varint(0) + varint(0), r"outside the 32-bit range"),
    (b"\x80" * 10 + b"\x01" + b"\x00" + varint(0) + varint(0), r"longer than 10 bytes"),
    (varint(1) + b"\x00" + varint(0) + varint(1) + varint(-3) + b"abc", r"negative length -3"),
    (varint(1) + b"\x00" + varint(0) + varint(1) + varint(-300) + b"abc", r"negative length -300"),
    (varint(1) + b"\x00" + varint(0) + varint(1) + varint(4) + b"abc", r"truncated: C.note needs 4 bytes"),
    (varint(1) + b"\x00" + varint(0) + varint(1) + varint(2) + b"\xc3(", r"invalid UTF-8"),
    (varint(1), r"truncated"),
    (b"", r"truncated"),
])
def test_malformed_fields_raise_decode_error(data: bytes, message: str) -> None:
    reader = compile_reader(fastavro.parse_schema(MIXED))
    with pytest.raises(DecodeError, match=message):
        reader(data)
    with pytest.raises(DecodeError, match=message):
        reader(HEADER + data, 5)


def test_nesting_beyond_the_recursion_limit_raises_decode_error() -> None:
    reader = compile_reader(fastavro.parse_schema(SYNTHETIC["linked_list"]))
    depth = 100_000
    data = (varint(7) + varint(1)) * depth + varint(7) + varint(0)  # value 7, next: branch 1 (a Node), ...
    with pytest.raises(DecodeError, match="nested too deeply"):
        reader(data)


def test_zero_byte_items_are_limited_by_the_bytes_left() -> None:
    """Stricter than fastavro, which would allocate 2**62 Nones for these 10 bytes."""
    reader = compile_reader(fastavro.parse_schema({"type": "array", "items": "null"}))
    assert reader(varint(1) + varint(0)) == [None]
    with pytest.raises(DecodeError, match="block of"):
        reader(varint(2**62) + varint(0))


def test_offsets() -> None:
    reader = compile_reader(fastavro.parse_schema("null"))
    assert reader(HEADER, 5) is None
    with pytest.raises(DecodeError, match="past the end"):
        reader(HEADER, 6)
    with pytest.raises(ValueError, match="negative offset"):
        reader(HEADER, -1)


def test_processor_setting_switches_the_compiled_readers_off() -> None:
    """MARKETPIPE_PROCESSOR_COMPILED_READERS=false gives fastavro's reader (the benchmark's comparison); both
    read the same datum to the same record."""
    import io as _io

    from fastavro import schemaless_writer

    from processors.settings import ProcessorSettings
    from processors.wire import datum_reader
    from schemas.compiled_reader import compile_reader
    from schemas.contracts import parsed
    from tests.foundation.samples import samples

    schema = parsed("trade")
    record = samples()["trade"][1]
    buf = _io.BytesIO()
    schemaless_writer(buf, schema, record)
    data = b"\0\0\0\0\1" + buf.getvalue()
    compiled, interpreted = datum_reader(schema, True), datum_reader(schema, False)
    assert compiled(data, 5) == interpreted(data, 5) == record
    assert type(compiled) is type(compile_reader(schema))
    assert interpreted.__name__ == "<lambda>" and compiled.__name__ != "<lambda>"
    assert ProcessorSettings(processor_compiled_readers="false").processor_compiled_readers is False  # type: ignore[arg-type]
