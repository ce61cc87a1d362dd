"""The PostgreSQL store's compiler of filter trees (memlane.filters) to WHERE fragments, with the semantics
of filters.matches, as stores/sqlite_filters.py has them for SQLite. Metadata is a `json` column (its text
kept as written, so an integer and a real stay apart as in SQLite's json_type); every comparison yields
true or false, never NULL, so NOT keeps Python's meaning. Guards that must run before a cast are CASEs:
PostgreSQL does not promise to evaluate AND left to right."""
from __future__ import annotations

import json
from typing import Any, Callable

from ...errors import ValidationError
from ...filters import COLUMN_KEYS, And, Node, Not, Or

# A JSON number written without a fraction or exponent: an integer to SQLite's json_type, and to Python.
_INTEGER = "'^-?[0-9]+$'"


class Compiler:
    """`fold` is the SQL function applied for icontains: casefold(x COLLATE pg_unicode_fast) on PostgreSQL
    18 (Python's str.casefold), lower(x) before it."""

    def __init__(self, fold: str):
        self.fold = fold

    def to_sql(self, node: Node, params: list[Any], positive: bool = True) -> str:
        """A WHERE fragment over the memories (or messages) table; appends bind values to `params` in the
        order of their placeholders. Keys reach SQL only as bound values; column names come from COLUMN_KEYS.
        `positive`: no NOT above this node, so a NULL comparison excludes the row as FALSE would, and
        column comparisons are written plainly (`user_id = $1`), in the form a btree index serves."""
        if isinstance(node, And):
            if not node.children:
                return "TRUE"
            return "(" + " AND ".join(self.to_sql(c, params, positive) for c in node.children) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.to_sql(c, params, positive) for c in node.children) + ")"
        if isinstance(node, Not):
            return "(NOT " + self.to_sql(node.child, params, not positive) + ")"
        if node.key in COLUMN_KEYS:
            return self._column(node.key, node.op, node.value, params, positive)
        return self._metadata(node.key, node.op, node.value, params)

    def _folded(self, expr: str) -> str:
        return self.fold.replace("{}", expr)

    def _column(self, col: str, op: str, value: Any, params: list[Any], positive: bool = False) -> str:
        """Columns are text: only string values ever match them."""
        def bind(v: Any) -> str:
            params.append(v)
            return "%s"

        def definite(cond: str) -> str:  # true or false, never NULL (what NOT needs)
            return f"({cond})" if positive else f"coalesce({cond}, FALSE)"

        if op == "exists":
            return f"({col} IS NOT NULL)"
        if op in ("eq", "ne"):
            if value is None:
                return f"({col} IS {'NOT ' if op == 'ne' else ''}NULL)"
            if not isinstance(value, str):
                return "FALSE" if op == "eq" else "TRUE"
            if op == "eq":
                return definite(f"{col} = {bind(value)}::text")
            return f"(NOT coalesce({col} = {bind(value)}::text, FALSE))"
        if op in ("gt", "gte", "lt", "lte"):
            if not isinstance(value, str):
                return "FALSE"
            return definite(f"{col} COLLATE \"C\" {_SYMBOL[op]} {bind(value)}::text")
        if op in ("in", "nin"):
            parts = []
            strings = [v for v in value if isinstance(v, str)]
            if strings:
                parts.append(definite(f"{col} = ANY({bind(strings)}::text[])") if op == "in" else
                             f"coalesce({col} = ANY({bind(strings)}::text[]), FALSE)")
            if any(v is None for v in value):
                parts.append(f"({col} IS NULL)")
            cond = "(" + (" OR ".join(parts) or "FALSE") + ")"
            return cond if op == "in" else f"(NOT {cond})"
        if op in ("contains", "icontains"):
            if op == "icontains":
                return f"coalesce(strpos({self._folded(col)}, {bind(value.casefold())}::text) > 0, FALSE)"
            return f"coalesce(strpos({col}, {bind(value)}::text) > 0, FALSE)"
        raise ValidationError(f"filter {col!r}: unknown operator {op!r}")

    def _metadata(self, key: str, op: str, value: Any, params: list[Any]) -> str:
        def bind(v: Any) -> str:
            params.append(v)
            return "%s"

        def x() -> str:
            return f"(metadata -> {bind(key)}::text)"

        def kind() -> str:
            return f"coalesce(json_typeof({x()}), 'null')"

        def integer() -> str:  # a stored integer (not a real, not a boolean)
            return f"(json_typeof({x()}) = 'number' AND ({x()} #>> '{{}}') ~ {_INTEGER})"

        if op == "exists":
            return f"({kind()} <> 'null')"
        if op in ("eq", "ne"):
            if value is None:  # eq null: the key is missing (or null)
                return f"({kind()} {'<>' if op == 'ne' else '='} 'null')"
            cond = self._equals(value, x, integer, bind)
            return cond if op == "eq" else f"(NOT {cond})"
        if op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, str):
                return (f"(CASE WHEN {kind()} = 'string' THEN ({x()} #>> '{{}}') COLLATE \"C\" {_SYMBOL[op]} "
                        f"{bind(value)}::text ELSE FALSE END)")
            return (f"(CASE WHEN {kind()} = 'number' THEN ({x()} #>> '{{}}')::numeric {_SYMBOL[op]} "
                    f"{bind(json.dumps(value))}::numeric ELSE FALSE END)")
        if op in ("in", "nin"):
            parts = [self._equals(v, x, integer, bind) for v in _distinct(value) if v is not None]
            if any(v is None for v in value):
                parts.append(f"({kind()} = 'null')")
            cond = "(" + (" OR ".join(parts) or "FALSE") + ")"
            return cond if op == "in" else f"(NOT {cond})"
        if op not in ("contains", "icontains"):
            raise ValidationError(f"filter {key!r}: unknown operator {op!r}")
        fold = op == "icontains"
        needle = value.casefold() if fold else value

        def text(expr: str) -> str:
            return self._folded(expr) if fold else expr

        # Built in placeholder order: each x() and bind() appends its value as it is called.
        k = kind()
        whole = text(f"({x()} #>> '{{}}')")
        first = bind(needle)
        array = x()
        element = text("(e #>> '{}')")
        second = bind(needle)
        return (f"(CASE {k} WHEN 'string' THEN strpos({whole}, {first}::text) > 0 WHEN 'array' THEN EXISTS ("
                f"SELECT 1 FROM json_array_elements({array}) AS e WHERE json_typeof(e) = 'string' AND {element} = "
                f"{second}::text) ELSE FALSE END)")

    @staticmethod
    def _equals(value: Any, x: Callable[[], str], integer: Callable[[], str], bind: Callable[[Any], str]) -> str:
        """Python's _equal: a string equals strings; numbers equal numbers; a boolean also equals an
        integer 1 / 0 (True == 1), never a real."""
        if isinstance(value, bool):
            return (f"(coalesce({x()}::jsonb = {bind(json.dumps(value))}::jsonb, FALSE) OR "
                    f"coalesce({integer()} AND {x()}::jsonb = {bind(str(int(value)))}::jsonb, FALSE))")
        same = f"coalesce({x()}::jsonb = {bind(json.dumps(value))}::jsonb, FALSE)"
        if isinstance(value, int) and value in (0, 1):
            return f"({same} OR coalesce({x()}::jsonb = {bind(json.dumps(bool(value)))}::jsonb, FALSE))"
        return same


_SYMBOL = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _distinct(values: tuple) -> list[Any]:
    """The values of an in/nin list once each, keeping True apart from 1 (dict.fromkeys would merge them)."""
    seen: dict[tuple[type, Any], Any] = {}
    for v in values:
        seen.setdefault((type(v), v), v)
    return list(seen.values())
