"""Compiled Avro readers: a parsed schema turned once into a specialised Python decoding function.

Why: the stream processors decode ~20k Confluent-framed Avro messages per second per worker, and
``fastavro.schemaless_reader`` interprets the schema on every call (a dispatch per field and per type, a
BytesIO around each message). ``compile_reader`` walks the schema once and generates straight-line source
for it: every field read in order, the common one-byte varint decoded inline, strings by slice and
``.decode()``, each record built as one dict literal. The source is exec'd once; the resulting function is
called per message (``reader(data, 5)`` skips the Confluent header) and keeps its source in ``.source``
(tracebacks show the generated lines too).

Contract: for a well-formed datum the result is exactly what
``fastavro.schemaless_reader(io.BytesIO(data[offset:]), parsed_schema, None)`` returns: dicts for records,
lists for arrays, dicts for maps, the symbol string for enums, bytes for bytes and fixed, str, int, float,
bool, None. tests/foundation/test_compiled_reader.py checks this against fastavro on random data of every
contract in schemas/avro, on synthetic schemas for the types the contracts do not use, and on thousands of
corrupted messages.

Schemas with a ``logicalType`` anywhere (fastavro converts those to datetime, Decimal, UUID, ...) or any
other construct this module does not implement raise NotImplementedError at compile time; callers fall
back to fastavro for them.

Malformed bytes always raise ``schemas.serde.DecodeError`` (a ValueError), never another exception type.
Where fastavro is lenient this reader is stricter:

* bytes left after the datum are an error (a Confluent message holds exactly one datum); fastavro ignores them;
* a boolean byte other than 0 or 1 is an error; fastavro reads any non-zero byte as True;
* an ``int`` outside 32 bits, a varint longer than 10 bytes or beyond 64 bits is an error; fastavro returns
  an out-of-range int, or wraps silently;
* a negative union branch or enum index is an error; fastavro indexes the branches or symbols from the end;
* an array or map block may not declare more items than bytes remain in the message. For items that take
  at least one byte that only reports the truncation early; items that take zero bytes (null, a record
  without fields, fixed of size 0) are thus limited, where fastavro lets a few bytes allocate without bound;
* invalid UTF-8 and nesting deeper than the recursion limit (recursive records) raise DecodeError, chained
  to the UnicodeDecodeError or RecursionError, where fastavro raises those directly.
"""

from __future__ import annotations

import itertools
import linecache
import re
import struct
from collections.abc import Callable
from typing import Any, Protocol, cast

import fastavro

from schemas.serde import DecodeError

__all__ = ["CompiledReader", "DecodeError", "compile_reader"]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "enum", "fixed"})
_CONTAINERS = frozenset({"array", "map"})

# A record that is not recursive is inlined wherever it is used, unless its inlined code would exceed this
# many schema nodes: then it gets a function of its own, which keeps the source linear in the schema size.
INLINE_LIMIT = 400

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,80}")
_filenames = itertools.count(1)


class CompiledReader(Protocol):
    """What compile_reader returns: the generated function itself (no method-call overhead per message)."""

    source: str
    schema_name: str

    def __call__(self, data: bytes, offset: int = 0) -> Any:
        """Decode the one datum that starts at ``data[offset]`` and ends at the end of ``data``."""
        ...


def compile_reader(parsed_schema: Any) -> CompiledReader:
    """A decoder of one Avro binary datum of ``parsed_schema`` (as from fastavro.parse_schema).

    ``reader(data, offset)`` returns what ``fastavro.schemaless_reader(io.BytesIO(data[offset:]), parsed_schema,
    None)`` returns, and raises DecodeError when the bytes are malformed or do not end with the datum.
    ``data`` should be bytes (anything else with the buffer protocol is copied to bytes first).
    Raises NotImplementedError for schemas it does not support (any logicalType): use fastavro for those."""
    schema = fastavro.parse_schema(parsed_schema)
    try:
        gen = _Generator(schema)
        source = gen.source()
        filename = f"<compiled_reader {gen.schema_name} #{next(_filenames)}>"
        code = compile(source, filename, "exec")
    except (RecursionError, SyntaxError, MemoryError) as exc:  # a pathologically deep schema
        raise NotImplementedError(f"schema too deeply nested for a compiled reader: {exc}") from exc
    namespace = dict(gen.namespace)
    exec(code, namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    fn = namespace[gen.entry]
    fn.source = source
    fn.schema_name = gen.schema_name
    return cast(CompiledReader, fn)


# --- runtime helpers, called by the generated code -------------------------------------------------------


def _long(buf: bytes, pos: int, b: int) -> tuple[int, int]:
    """(value, position after it) of a zigzag varint whose first byte ``b`` (>= 0x80) is at ``pos - 1``.

    Multi-byte longs (timestamps, sequence numbers) are on the hot path: the generated code decodes
    one-byte varints inline and calls this for the rest, unrolled (a loop costs ~15% more on a timestamp)."""
    n = b & 0x7F
    b = buf[pos]
    if b < 0x80:
        n |= b << 7
        return (n >> 1) ^ -(n & 1), pos + 1
    n |= (b & 0x7F) << 7
    b = buf[pos + 1]
    if b < 0x80:
        n |= b << 14
        return (n >> 1) ^ -(n & 1), pos + 2
    n |= (b & 0x7F) << 14
    b = buf[pos + 2]
    if b < 0x80:
        n |= b << 21
        return (n >> 1) ^ -(n & 1), pos + 3
    n |= (b & 0x7F) << 21
    b = buf[pos + 3]
    if b < 0x80:
        n |= b << 28
        return (n >> 1) ^ -(n & 1), pos + 4
    n |= (b & 0x7F) << 28
    b = buf[pos + 4]
    if b < 0x80:
        n |= b << 35
        return (n >> 1) ^ -(n & 1), pos + 5
    n |= (b & 0x7F) << 35
    b = buf[pos + 5]
    if b < 0x80:
        n |= b << 42
        return (n >> 1) ^ -(n & 1), pos + 6
    n |= (b & 0x7F) << 42
    b = buf[pos + 6]
    if b < 0x80:
        n |= b << 49
        return (n >> 1) ^ -(n & 1), pos + 7
    n |= (b & 0x7F) << 49
    b = buf[pos + 7]
    if b < 0x80:
        n |= b << 56
        return (n >> 1) ^ -(n & 1), pos + 8
    n |= (b & 0x7F) << 56
    b = buf[pos + 8]
    if b > 1:  # the 10th byte holds the 64th bit only, and ends the varint
        raise DecodeError(f"varint ending at byte {pos + 8} is longer than 10 bytes or exceeds 64 bits")
    n |= b << 63
    return (n >> 1) ^ -(n & 1), pos + 9


def _int(buf: bytes, pos: int, b: int) -> tuple[int, int]:
    """As _long, for an Avro int: the value must fit 32 bits."""
    n, pos = _long(buf, pos, b)
    if not -0x80000000 <= n <= 0x7FFFFFFF:
        raise DecodeError(f"int {n} ending at byte {pos - 1} is outside the 32-bit range")
    return n, pos


def _varint(buf: bytes, pos: int, b: int) -> tuple[int, int]:
    """(raw value, position after it) of a varint whose first byte ``b`` (>= 0x80) is at ``pos - 1``.

    Raw means still zigzag-encoded: union branch and enum indexes are compared as raw values (index k is 2k)."""
    n, pos = _long(buf, pos, b)
    return (n << 1) ^ (n >> 63), pos


def _length(buf: bytes, pos: int, b: int) -> tuple[int, int]:
    """Byte length of a string or bytes value whose varint's first byte ``b`` is negative or multi-byte."""
    if b < 0x80:
        raise DecodeError(f"negative length {(b >> 1) ^ -1} at byte {pos - 1}")
    n, pos = _long(buf, pos, b)
    if n < 0:
        raise DecodeError(f"negative length {n} ending at byte {pos - 1}")
    return n, pos


def _short(where: str, need: int, pos: int, blen: int) -> DecodeError:
    return DecodeError(f"truncated: {where} needs {need} bytes at byte {pos}, {blen - pos} left")


def _too_many(where: str, count: int, pos: int, blen: int) -> DecodeError:
    return DecodeError(f"truncated: {where} block of {count} items at byte {pos}, {blen - pos} bytes left")


def _bad_union(where: str, raw: int, branches: int, pos: int) -> DecodeError:
    index = (raw >> 1) ^ -(raw & 1)
    return DecodeError(f"{where}: union branch {index} before byte {pos} out of range, {branches} branches")


def _bad_enum(where: str, raw: int, symbols: int, pos: int) -> DecodeError:
    index = (raw >> 1) ^ -(raw & 1)
    return DecodeError(f"{where}: enum index {index} before byte {pos} out of range, {symbols} symbols")


def _bad_bool(where: str, value: int, pos: int) -> DecodeError:
    return DecodeError(f"{where}: boolean byte {value} at byte {pos} is neither 0 nor 1")


def _as_bytes(data: Any) -> bytes:
    return bytes(memoryview(data))


def _end_error(name: str, pos: int, blen: int) -> DecodeError:
    if pos > blen:  # only when the offset itself is past the end and the schema reads no byte (null)
        return DecodeError(f"{name}: offset {pos} is past the end of a {blen}-byte message")
    return DecodeError(f"{name}: {blen - pos} trailing bytes after the datum (it ends at byte {pos} of {blen})")


_HELPERS: dict[str, Any] = {
    "DecodeError": DecodeError,
    "_StructError": struct.error,
    "_long": _long,
    "_int": _int,
    "_varint": _varint,
    "_length": _length,
    "_short": _short,
    "_too_many": _too_many,
    "_bad_union": _bad_union,
    "_bad_enum": _bad_enum,
    "_bad_bool": _bad_bool,
    "_as_bytes": _as_bytes,
    "_end_error": _end_error,
    "_unpack_float": struct.Struct("<f").unpack_from,
    "_unpack_double": struct.Struct("<d").unpack_from,
}

_HEADER = '''\
# Generated by schemas.compiled_reader for {name!r}.
# buf: the message bytes, pos: the next byte to read, blen: len(buf).
# Union branch and enum indexes are compared as raw zigzag varints: index k is the value 2k.
'''

_ENTRY = '''\
def {entry}(data, offset=0):
    """Decode one {label} datum at data[offset:]; DecodeError when malformed."""
    buf = data
    if type(buf) is not bytes:
        buf = _as_bytes(buf)
    pos = offset
    blen = len(buf)
    if pos < 0:
        raise ValueError(f"negative offset {{pos}}")
    try:
{body}
    except (IndexError, _StructError):
        raise DecodeError(f"{{_NAME}}: truncated: the datum runs past the end of the {{blen}}-byte message") from None
    except DecodeError as exc:
        raise DecodeError(f"{{_NAME}}: {{exc}}") from None
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{{_NAME}}: invalid UTF-8 in a string: {{exc.reason}}") from exc
    except RecursionError as exc:
        raise DecodeError(f"{{_NAME}}: data nested too deeply (recursive record)") from exc
    if pos != blen:
        raise _end_error(_NAME, pos, blen)
    return value
'''


class _Generator:
    """Generates the decoder source of one parsed schema; ``namespace`` holds what the source refers to."""

    def __init__(self, schema: Any) -> None:
        self.named: dict[str, dict[str, Any]] = {}
        self._collect(schema, "")
        if isinstance(schema, dict):
            for name, definition in schema.get("__named_schemas", {}).items():
                if name not in self.named:  # defined by an earlier parse_schema(..., named_schemas=...)
                    self._collect(definition, name)
        self.schema = schema
        top = self._resolve(schema)
        self.schema_name = top["name"] if isinstance(top, dict) and "name" in top else _type_label(top)
        self.entry = "read_" + _ident(self.schema_name.rsplit(".", 1)[-1], "datum")
        self.recursive = self._find_recursive()
        self.namespace: dict[str, Any] = {**_HELPERS, "_NAME": self.schema_name}
        self._enums: dict[str, str] = {}  # enum name -> name of its symbols tuple
        self._ids = itertools.count(1)
        self._sizes: dict[str, int] = {}
        self._functions: dict[str, str] = {}  # record name -> name of its generated function
        self._pending: list[str] = []

    # --- schema analysis -----------------------------------------------------------------------------

    def _collect(self, node: Any, path: str) -> None:
        """Check that every construct is supported and collect the named types' definitions."""
        if isinstance(node, str):
            return  # a primitive, or a name resolved by _resolve
        if isinstance(node, list):
            for i, branch in enumerate(node):
                self._collect(branch, f"{path}<{i}>")
            return
        if not isinstance(node, dict):
            raise NotImplementedError(f"{path or 'schema'}: unexpected schema node {node!r}")
        if "logicalType" in node:
            raise NotImplementedError(
                f"{path or 'schema'}: logicalType {node['logicalType']!r} is converted by fastavro; use fastavro"
            )
        kind = node.get("type")
        if isinstance(kind, dict | list):
            self._collect(kind, path)
            return
        if not isinstance(kind, str):
            raise NotImplementedError(f"{path or 'schema'}: unexpected type {kind!r}")
        if kind in _NAMED:
            self.named[node["name"]] = node
        if kind == "record":
            for field in node["fields"]:
                self._collect(field["type"], f"{node['name']}.{field['name']}")
        elif kind == "array":
            self._collect(node["items"], f"{path}[]")
        elif kind == "map":
            self._collect(node["values"], f"{path}{{}}")
        elif kind == "fixed":
            if not isinstance(node.get("size"), int) or node["size"] < 0:
                raise NotImplementedError(f"{node['name']}: fixed size {node.get('size')!r}")
        elif kind in ("error", "request", "error_union"):
            raise NotImplementedError(f"{path or 'schema'}: protocol type {kind!r} is not supported")

    def _resolve(self, node: Any) -> Any:
        """A primitive name, a union list, or the dict of a record, enum, fixed, array or map."""
        while True:
            if isinstance(node, str):
                if node in PRIMITIVES:
                    return node
                if node not in self.named:
                    raise NotImplementedError(f"unknown type {node!r}")
                return self.named[node]
            if isinstance(node, dict) and not (node["type"] in _NAMED or node["type"] in _CONTAINERS):
                node = node["type"]  # {"type": "string"}, {"type": "some.Name"}, {"type": {...}}
                continue
            return node

    def _records_within(self, node: Any, out: set[str]) -> None:
        """Names of the records a value of ``node`` contains without passing through another record."""
        node = self._resolve(node)
        if isinstance(node, list):
            for branch in node:
                self._records_within(branch, out)
        elif isinstance(node, dict):
            if node["type"] == "record":
                out.add(node["name"])
            elif node["type"] == "array":
                self._records_within(node["items"], out)
            elif node["type"] == "map":
                self._records_within(node["values"], out)

    def _find_recursive(self) -> set[str]:
        """Records that can contain themselves: they need a function of their own."""
        edges: dict[str, set[str]] = {}
        for name, node in self.named.items():
            if node["type"] == "record":
                edges[name] = set()
                for field in node["fields"]:
                    self._records_within(field["type"], edges[name])
        recursive = set()
        for start in edges:
            seen: set[str] = set()
            todo = list(edges[start])
            while todo:
                name = todo.pop()
                if name == start:
                    recursive.add(start)
                    break
                if name not in seen:
                    seen.add(name)
                    todo.extend(edges[name])
        return recursive

    def _inline(self, name: str) -> bool:
        if name in self.recursive:
            return False
        self._size(self.named[name])
        return self._sizes[name] <= INLINE_LIMIT

    def _size(self, node: Any) -> int:
        """Schema nodes the inlined code of ``node`` covers (a called record counts 1)."""
        node = self._resolve(node)
        if isinstance(node, str):
            return 1
        if isinstance(node, list):
            return 1 + sum(self._size(branch) for branch in node)
        kind = node["type"]
        if kind == "record":
            name = node["name"]
            if name in self.recursive:
                return 1
            if name not in self._sizes:
                self._sizes[name] = 1 + sum(self._size(f["type"]) for f in node["fields"])
            return self._sizes[name] if self._sizes[name] <= INLINE_LIMIT else 1
        if kind == "array":
            return 1 + self._size(node["items"])
        if kind == "map":
            return 1 + self._size(node["values"])
        return 1

    # --- code generation -----------------------------------------------------------------------------

    def source(self) -> str:
        body: list[str] = []
        self._read(self.schema, "value", _type_label(self._resolve(self.schema)), 2, body)
        parts = [_HEADER.format(name=self.schema_name)]
        label = self.schema_name.rsplit(".", 1)[-1]
        parts.append(_ENTRY.format(entry=self.entry, label=_ident(label, "Avro"), body="\n".join(body)))
        done: set[str] = set()
        while self._pending:
            name = self._pending.pop(0)
            if name not in done:
                done.add(name)
                parts.append(self._record_function(name))
        return "\n\n".join(parts)

    def _record_function(self, name: str) -> str:
        node = self.named[name]
        why = "recursive" if name in self.recursive else "large"
        lines = [
            f"def {self._functions[name]}(buf, pos):",
            f'    """Record {name} ({why}: a function of its own); returns (record, position after it)."""',
            "    blen = len(buf)",
        ]
        self._record_body(node, "record", 1, lines)
        lines.append("    return record, pos")
        return "\n".join(lines) + "\n"

    def _var(self, hint: str) -> str:
        return f"{_ident(hint, 'v')}_{next(self._ids)}"

    def _const(self, hint: str, value: Any) -> str:
        name = f"{_ident(hint, 'C').upper()}_{next(self._ids)}"
        self.namespace[name] = value
        return name

    def _read(self, node: Any, target: str, where: str, ind: int, out: list[str]) -> None:
        """Append the lines that read one value of ``node`` at ``pos`` into the variable ``target``."""
        node = self._resolve(node)
        pad = "    " * ind

        def emit(*lines: str, extra: int = 0) -> None:
            out.extend("    " * extra + pad + line for line in lines)

        if isinstance(node, list):
            self._read_index(emit)
            for i, branch in enumerate(node):
                emit(f"{'if' if i == 0 else 'elif'} u == {2 * i}:  # {_type_label(self._resolve(branch))}")
                self._read(branch, target, where, ind + 1, out)
            emit("else:", f"    raise _bad_union({where!r}, u, {len(node)}, pos)")
            return
        kind = node if isinstance(node, str) else node["type"]
        if kind == "null":
            emit(f"{target} = None")
        elif kind == "boolean":
            emit(
                "b = buf[pos]; pos += 1",
                f"if b > 1: raise _bad_bool({where!r}, b, pos - 1)",
                f"{target} = b == 1",
            )
        elif kind == "int":
            self._read_long(target, "_int", emit)
        elif kind == "long":
            self._read_long(target, "_long", emit)
        elif kind == "float":
            emit(f"{target} = _unpack_float(buf, pos)[0]; pos += 4")
        elif kind == "double":
            emit(f"{target} = _unpack_double(buf, pos)[0]; pos += 8")
        elif kind in ("string", "bytes"):
            emit(
                "n = buf[pos]; pos += 1",
                "if n & 0x81: n, pos = _length(buf, pos, n)  # multi-byte or negative",
                "else: n >>= 1",
                "end = pos + n",
                f"if end > blen: raise _short({where!r}, n, pos, blen)",
                f"{target} = buf[pos:end]{'.decode()' if kind == 'string' else ''}; pos = end",
            )
        elif kind == "fixed":
            size = node["size"]
            emit(
                f"end = pos + {size}",
                f"if end > blen: raise _short({where!r}, {size}, pos, blen)",
                f"{target} = buf[pos:end]; pos = end",
            )
        elif kind == "enum":
            if node["name"] not in self._enums:
                self._enums[node["name"]] = self._const(node["name"].rsplit(".", 1)[-1], tuple(node["symbols"]))
            symbols = self._enums[node["name"]]
            self._read_index(emit)
            emit(
                f"if u & 1 or u >= {2 * len(node['symbols'])}: raise _bad_enum({where!r}, u, "
                f"{len(node['symbols'])}, pos)",
                f"{target} = {symbols}[u >> 1]",
            )
        elif kind == "record":
            name = node["name"]
            if self._inline(name):
                self._record_body(node, target, ind, out)
            else:
                if name not in self._functions:
                    self._functions[name] = self._unique_function_name(name)
                    self._pending.append(name)
                emit(f"{target}, pos = {self._functions[name]}(buf, pos)")
        elif kind in ("array", "map"):
            self._read_blocks(node, target, where, ind, out, emit)
        else:  # unreachable after _collect
            raise NotImplementedError(f"type {kind!r}")

    def _read_long(self, target: str, slow: str, emit: Callable[..., None]) -> None:
        emit(
            f"{target} = buf[pos]; pos += 1",
            f"if {target} < 128: {target} = ({target} >> 1) ^ -({target} & 1)",
            f"else: {target}, pos = {slow}(buf, pos, {target})",
        )

    def _read_index(self, emit: Callable[..., None]) -> None:
        emit("u = buf[pos]; pos += 1", "if u > 127: u, pos = _varint(buf, pos, u)")

    def _record_body(self, node: dict[str, Any], target: str, ind: int, out: list[str]) -> None:
        short = node["name"].rsplit(".", 1)[-1]
        names = []
        for field in node["fields"]:
            var = self._var(field["name"])
            self._read(field["type"], var, f"{short}.{field['name']}", ind, out)
            names.append((field["name"], var))
        pad = "    " * ind
        if not names:
            out.append(f"{pad}{target} = {{}}")
            return
        out.append(f"{pad}{target} = {{")
        out.extend(f"{pad}    {name!r}: {var}," for name, var in names)
        out.append(f"{pad}}}")

    def _read_blocks(
        self, node: dict[str, Any], target: str, where: str, ind: int, out: list[str], emit: Callable[..., None]
    ) -> None:
        """Arrays and maps: blocks of items, each preceded by its count, the last one empty. A negative count
        is followed by the block's size in bytes, which is not needed here (fastavro ignores it too)."""
        count = self._var("count")
        is_map = node["type"] == "map"
        where = f"{where}{{}}" if is_map else f"{where}[]"
        emit(f"{target} = {{}}" if is_map else f"{target} = []")
        self._read_long(count, "_long", emit)
        emit(f"while {count}:")
        emit(f"if {count} < 0:", extra=1)
        emit(f"{count} = -{count}", extra=2)
        self._read_long("skip", "_long", lambda *lines, extra=0: emit(*lines, extra=extra + 2))
        emit(f"if {count} > blen - pos: raise _too_many({where!r}, {count}, pos, blen)", extra=1)
        emit(f"for _ in range({count}):", extra=1)
        if is_map:
            key, item = self._var("key"), self._var("value")
            self._read("string", key, f"{where} key", ind + 2, out)
            self._read(node["values"], item, where, ind + 2, out)
            emit(f"{target}[{key}] = {item}", extra=2)
        else:
            item = self._var("item")
            self._read(node["items"], item, where, ind + 2, out)
            emit(f"{target}.append({item})", extra=2)
        self._read_long(count, "_long", lambda *lines, extra=0: emit(*lines, extra=extra + 1))

    def _unique_function_name(self, name: str) -> str:
        fn = "_read_" + _ident(name.replace(".", "_"), "record")
        taken = set(self._functions.values())
        return fn if fn not in taken else f"{fn}_{next(self._ids)}"


def _ident(text: str, fallback: str) -> str:
    """A readable Python identifier fragment from an Avro name."""
    return text if _IDENT.fullmatch(text) else fallback


def _type_label(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "union"
    return str(node.get("name", node["type"]))
