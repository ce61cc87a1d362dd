"""Metadata filters: parsed once into a small tree, then evaluated in Python (`matches`) or compiled by a
store (the SQLite store's compiler is stores/sqlite_filters.py).

Syntax (mem0 v2): ``{"key": value}`` is equality; ``{"key": {"op": value, ...}}`` applies operators
(eq ne gt gte lt lte in nin contains icontains), several operators on one key are ANDed;
``{"AND": [...]}``, ``{"OR": [...]}``, ``{"NOT": {...} or [...]}`` combine; ``{"key": "*"}`` means the
key is present. Keys are the scope/system fields or metadata keys. Unknown operators are an error.

Semantics are the same in SQL and in Python: a missing key never matches eq/gt/gte/lt/lte/in/contains
and always matches ne/nin; range operators only compare numbers with numbers and strings with strings.

Limits (checked by `parse`, so every filter that parses also compiles and runs in SQLite, with the scope and
memory type ANDed on): MAX_DEPTH levels of AND / OR / NOT, MAX_TERMS conditions (each comparison and each
filter dict inside AND / OR / NOT counts one), MAX_IN_VALUES values in all in/nin lists together,
MAX_VALUE_CHARS characters of string values in all. They keep clear of SQLite's parser stack (measured with
SQLite 3.40: nested NOT overflows it from 35 levels, AND / OR from 67), its expression depth (1000: an AND /
OR chain of ~990 conditions) and its bound-parameter limit (32,766 by default; an in/nin value binds one or
two). tests/test_input_limits.py runs filters at every limit through get_all, search and delete_all.
"""
from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any, Optional, Union

from .errors import ValidationError
from .models import SCOPE_KEYS, Scope

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "icontains")
LOGICAL = ("AND", "OR", "NOT")
# Fields stored as columns; every other key is looked up in metadata.
COLUMN_KEYS = SCOPE_KEYS + ("actor_id", "role", "memory_type", "id", "hash", "created_at", "updated_at",
                            "timestamp", "context", "expiration_date")
Scalar = Union[str, int, float, bool, None]


@dataclass(frozen=True)
class Cmp:
    key: str
    op: str  # one of OPERATORS, or "exists"
    value: Any = None


@dataclass(frozen=True)
class And:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    child: "Node"


Node = Union[Cmp, And, Or, Not]
TRUE = And(())


MAX_KEY_CHARS = 200
MAX_DEPTH = 10  # AND / OR / NOT nested in one another
MAX_TERMS = 100  # comparisons and filter dicts in one filter
MAX_IN_VALUES = 1000  # values of all in / nin lists in one filter
MAX_VALUE_CHARS = 1_000_000  # characters of all string values in one filter

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = 6
_short.maxlevel = 3


def show(value: Any) -> str:
    """repr() cut to a readable length, for error messages about caller input of any size."""
    try:
        return _short.repr(value)
    except Exception:  # a caller's object whose __repr__ fails
        return f"<{type(value).__name__}>"


def encodable(text: str) -> bool:
    """Whether `text` is valid Unicode text (no lone UTF-16 surrogate, which no UTF-8 encoder accepts: the
    database, the tokenizer and every HTTP provider would fail on it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_key(key: Any, what: str = "filter key") -> str:
    """The key grammar shared by filters and metadata: a string of 1 to MAX_KEY_CHARS characters, none of
    them a double quote, backslash, control character or lone surrogate. A key only ever reaches SQL inside
    a bound JSON path (stores/sqlite_filters.json_path), so this grammar is what keeps that path well
    formed."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise ValidationError(f"{what} must be a string of 1 to {MAX_KEY_CHARS} characters, got {show(key)}")
    if any(c in key for c in '"\\') or any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in key):
        raise ValidationError(f"{what} {show(key)} contains a double quote, backslash, control character or "
                              "lone surrogate")
    return key


class _Budget:
    """What one filter may hold in all (see the limits above); counted while parsing."""

    def __init__(self) -> None:
        self.terms = 0
        self.chars = 0
        self.in_values = 0

    def values(self, key: str, op: str, count: int) -> None:
        self.in_values += count
        if self.in_values > MAX_IN_VALUES:
            raise ValidationError(f"filter {key!r}: {op!r} lists hold more than {MAX_IN_VALUES} values in all")

    def term(self) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise ValidationError(f"filters hold more than {MAX_TERMS} conditions (each comparison and each "
                                  "filter dict counts one); split the query or use 'in'")

    def text(self, key: str, value: str) -> None:
        if not encodable(value):
            raise ValidationError(f"filter {key!r}: value {show(value)} contains a lone surrogate (not valid "
                                  "Unicode text)")
        self.chars += len(value)
        if self.chars > MAX_VALUE_CHARS:
            raise ValidationError(f"filter values hold more than {MAX_VALUE_CHARS:,} characters in all")


def _check_number(key: str, op: str, value: Any) -> None:
    # NaN/inf have no JSON form (metadata cannot hold them; SQLite binds NaN as NULL) and SQLite integers
    # are 64-bit: both would make the SQL and Python paths disagree or fail at query time.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"filter {key!r}: operator {op!r} takes a finite number, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        raise ValidationError(f"filter {key!r}: integer {show(value)} is out of the 64-bit range")


def _check_scalar(key: str, op: str, value: Any, budget: _Budget) -> Scalar:
    if value is None or isinstance(value, (str, int, float, bool)):
        _check_number(key, op, value)
        if isinstance(value, str):
            budget.text(key, value)
        return value
    raise ValidationError(f"filter {key!r}: operator {op!r} takes a string, number, boolean or null, "
                          f"got {type(value).__name__}")


def _parse_ops(key: str, spec: dict[Any, Any], budget: _Budget) -> Node:
    if not spec:
        raise ValidationError(f"filter {key!r}: empty operator dict")
    nodes: list[Node] = []
    for op, value in spec.items():
        if op not in OPERATORS:
            raise ValidationError(f"filter {key!r}: unknown operator {show(op)}; supported: {', '.join(OPERATORS)}")
        budget.term()
        if op in ("in", "nin"):
            if not isinstance(value, (list, tuple)):
                raise ValidationError(f"filter {key!r}: {op!r} takes a list, got {type(value).__name__}")
            budget.values(key, op, len(value))
            value = tuple(_check_scalar(key, op, v, budget) for v in value)
        elif op in ("contains", "icontains"):
            if not isinstance(value, str):
                raise ValidationError(f"filter {key!r}: {op!r} takes a string, got {type(value).__name__}")
            budget.text(key, value)
        elif op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValidationError(f"filter {key!r}: {op!r} takes a number or a string, got {show(value)}")
            _check_number(key, op, value)
            if isinstance(value, str):
                budget.text(key, value)
        else:
            value = _check_scalar(key, op, value, budget)
        nodes.append(Cmp(key, op, value))
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def parse(filters: dict[str, Any] | None) -> Node:
    """Parse a filter dict into a tree, raising ValidationError on anything malformed or over the limits
    (MAX_DEPTH, MAX_TERMS, MAX_IN_VALUES, MAX_VALUE_CHARS)."""
    if filters is None:
        return TRUE
    return _parse(filters, 0, _Budget())


def _parse(filters: Any, depth: int, budget: _Budget) -> Node:
    if not isinstance(filters, dict):
        raise ValidationError(f"filters must be a dict, got {type(filters).__name__}")
    if depth:  # a filter dict inside AND / OR / NOT
        budget.term()
    nodes: list[Node] = []
    for key, value in filters.items():
        if key in LOGICAL:
            items = value if isinstance(value, (list, tuple)) else [value] if key == "NOT" else None
            if items is None or not items or not all(isinstance(v, dict) for v in items):
                raise ValidationError(f"filter {key!r} takes a non-empty list of filter dicts")
            if depth >= MAX_DEPTH:  # checked before descending: recursion stays this shallow
                raise ValidationError(f"filters nest AND / OR / NOT more than {MAX_DEPTH} deep")
            if len(items) > MAX_TERMS:
                raise ValidationError(f"filter {key!r} takes at most {MAX_TERMS} filter dicts, got {len(items)}")
            children = tuple(_parse(v, depth + 1, budget) for v in items)
            if key == "AND":
                nodes.append(And(children))
            elif key == "OR":
                nodes.append(Or(children))
            else:  # NOT of a list means none of them holds
                nodes.append(Not(children[0] if len(children) == 1 else Or(children)))
            continue
        key = check_key(key)
        if key.upper() in LOGICAL:
            raise ValidationError(f"logical operator {key!r} must be upper case: {key.upper()!r}")
        if isinstance(value, dict):
            nodes.append(_parse_ops(key, value, budget))
        elif isinstance(value, str) and value == "*":
            budget.term()
            nodes.append(Cmp(key, "exists"))
        elif isinstance(value, (list, tuple)):
            raise ValidationError(f"filter {key!r}: a list needs an operator, e.g. {{{key!r}: {{'in': [...]}}}}")
        else:
            budget.term()
            nodes.append(Cmp(key, "eq", _check_scalar(key, "eq", value, budget)))
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def conjoin(*nodes: Node) -> Node:
    parts = tuple(n for n in nodes if n != TRUE)
    return TRUE if not parts else parts[0] if len(parts) == 1 else And(parts)


def top_level_equalities(node: Node) -> dict[str, list[Any]]:
    """Equality constraints that hold for every match (top level or under top-level ANDs)."""
    found: dict[str, list[Any]] = {}
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, And):
            stack.extend(n.children)
        elif isinstance(n, Cmp) and n.op == "eq":
            found.setdefault(n.key, []).append(n.value)
    return found


def scope_of(node: Node) -> Scope:
    """The scope every match of `node` is in: each scope id with exactly one string equality at the top
    level (a null or contradictory one fixes nothing)."""
    equalities = top_level_equalities(node)
    fixed: dict[str, Optional[str]] = {}
    for key in SCOPE_KEYS:
        values = {v for v in equalities.get(key, []) if isinstance(v, str)}
        fixed[key] = values.pop() if len(values) == 1 else None
    return Scope(**fixed)


def scope_cover(node: Node) -> list[Scope]:
    """Scopes that together hold every match of `node` (each match has every id of one of them), or []
    when the filter pins none and may match across tenants. A scope is a string equality on a scope id, or
    an `in` list of them, alone or under AND beside anything (the top-level equalities together make one
    scope, as scope_of), or in every branch of an OR. Search reads each scope of the cover in turn."""
    if isinstance(node, Cmp):
        if node.key in SCOPE_KEYS and node.op == "eq" and isinstance(node.value, str):
            return [Scope(**{node.key: node.value})]
        if node.key in SCOPE_KEYS and node.op == "in" and node.value and all(isinstance(v, str)
                                                                             for v in node.value):
            return [Scope(**{node.key: v}) for v in dict.fromkeys(node.value)]
        return []
    if isinstance(node, And):
        fixed = scope_of(node)
        if fixed != Scope():
            return [fixed]
        covers = [c for c in (scope_cover(child) for child in node.children) if c]
        return min(covers, key=len) if covers else []
    if isinstance(node, Or):
        covers = [scope_cover(child) for child in node.children]
        if not covers or not all(covers):
            return []
        return list(dict.fromkeys(scope for cover in covers for scope in cover))
    return []


def mentions(node: Node, key: str) -> bool:
    """Whether any comparison in the tree is on `key`."""
    if isinstance(node, Cmp):
        return node.key == key
    if isinstance(node, Not):
        return mentions(node.child, key)
    return any(mentions(c, key) for c in node.children)


# ---------------------------------------------------------------- Python

_MISSING = object()


def _lookup(item: dict[str, Any], key: str) -> Any:
    if key in COLUMN_KEYS:
        value = item.get(key)
    else:
        value = (item.get("metadata") or {}).get(key, _MISSING)
    return _MISSING if value is None else value


def _same_kind(a: Any, b: Any) -> bool:
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, (bool, int)) and isinstance(b, (bool, int)) and not isinstance(a, float)
    return (isinstance(a, num) and isinstance(b, num)) or (isinstance(a, str) and isinstance(b, str))


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


def matches(node: Node, item: dict[str, Any]) -> bool:
    """Evaluate against a memory dict (columns at top level, metadata under "metadata")."""
    if isinstance(node, And):
        return all(matches(c, item) for c in node.children)
    if isinstance(node, Or):
        return any(matches(c, item) for c in node.children)
    if isinstance(node, Not):
        return not matches(node.child, item)
    value = _lookup(item, node.key)
    op, target = node.op, node.value
    if op == "exists":
        return value is not _MISSING
    if op in ("eq", "ne"):
        hit = (value is _MISSING) if target is None else (value is not _MISSING and _equal(value, target))
        return hit if op == "eq" else not hit
    if op in ("in", "nin"):
        hit = any((value is _MISSING) if t is None else (value is not _MISSING and _equal(value, t))
                  for t in target)
        return hit if op == "in" else not hit
    if value is _MISSING:
        return False
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not _same_kind(value, target):
            return False
        return {"gt": value > target, "gte": value >= target, "lt": value < target, "lte": value <= target}[op]
    needle = target.casefold() if op == "icontains" else target
    fold = (lambda s: s.casefold()) if op == "icontains" else (lambda s: s)
    if isinstance(value, str):
        return needle in fold(value)
    if isinstance(value, list) and node.key not in COLUMN_KEYS:
        return any(isinstance(v, str) and fold(v) == needle for v in value)
    return False
