"""A tiny PostgREST query engine over lists of row dicts: ``col=op.value`` filters, ``order``, ``limit``,
``offset``, and the server's max-rows cap. Enough of https://postgrest.org/en/stable/references/api/tables_views.html
for the DSS endpoints the producer calls."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

_OPS = {
    "eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
}


class QueryError(ValueError):
    pass


def _coerce(text: str, sample: Any) -> Any:
    if isinstance(sample, bool):
        return text.lower() == "true"
    if isinstance(sample, int):
        try:
            return int(text)
        except ValueError as exc:
            raise QueryError(f"invalid input syntax for type numeric: {text!r}") from exc
    return text


def _matches(row: Mapping[str, Any], column: str, expr: str) -> bool:
    if column not in row:
        raise QueryError(f"column {column} does not exist")
    op, _, value = expr.partition(".")
    cell = row[column]
    if op == "in":
        items = value.strip("()").split(",")
        return cell in {_coerce(i, cell) for i in items}
    if op == "is":
        return cell is None if value == "null" else cell == (value == "true")
    fn = _OPS.get(op)
    if fn is None:
        raise QueryError(f"unknown operator {op!r}")
    return cell is not None and fn(cell, _coerce(value, cell))


def _sort_key(column: str) -> Callable[[Mapping[str, Any]], tuple[bool, Any]]:
    """PostgREST's ``order=column``: nulls last in ascending order."""
    return lambda row: (row[column] is None, row[column])


def query(rows: Iterable[Mapping[str, Any]], params: Mapping[str, str], *, max_rows: int) -> list[Mapping[str, Any]]:
    filters = {k: v for k, v in params.items() if k not in ("order", "limit", "offset", "select")}
    out = [r for r in rows if all(_matches(r, c, e) for c, e in filters.items())]
    for part in reversed([p for p in params.get("order", "").split(",") if p]):
        column, _, direction = part.partition(".")
        out.sort(key=_sort_key(column), reverse=direction.startswith("desc"))
    offset = int(params.get("offset", "0"))
    limit = min(int(params.get("limit", str(max_rows))), max_rows)
    return out[offset:offset + limit]
