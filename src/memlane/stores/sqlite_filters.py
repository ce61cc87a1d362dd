"""The SQLite store's compiler of filter trees (memlane.filters) to WHERE fragments. Semantics are those of
filters.matches, which tests/test_filters.py checks against this on the same data."""
from __future__ import annotations

from typing import Any

from ..errors import ValidationError
from ..filters import COLUMN_KEYS, And, Node, Not, Or, Scalar


def json_path(key: str) -> str:
    """SQLite JSON path of a metadata key (bound as a parameter, never spliced into SQL)."""
    return f'$."{key}"'


def _sql_value(v: Scalar) -> Scalar:
    return int(v) if isinstance(v, bool) else v  # json_extract gives 1/0 for true/false


def _kinds(value: Any, ordered: bool = False) -> str:
    """The SQLite types a stored value may have to compare with `value`, mirroring filters._same_kind:
    strings with strings; numbers with numbers; for equality a bool also equals an integer (True == 1),
    never a real; ranges never take a bool."""
    if isinstance(value, str):
        kinds: tuple[str, ...] = ("text",)
    elif ordered or isinstance(value, float):
        kinds = ("integer", "real")
    elif isinstance(value, bool):
        kinds = ("true", "false", "integer")
    else:
        kinds = ("integer", "real", "true", "false")
    return "(" + ",".join(f"'{k}'" for k in kinds) + ")"


def _in_groups(values: tuple) -> list[tuple[str, Any]]:
    """For an in/nin list: (stored SQLite type, what a stored value of that type must be among) pairs,
    mirroring filters._same_kind / _equal: a string equals strings; an integer equals numbers and booleans
    (1/0); a real equals numbers, never a boolean; a stored true/false (json_type; json_extract gives 1/0) equals
    booleans and integers, never a real, so whether it is in the list is known here."""
    strings = [v for v in values if isinstance(v, str)]
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    floats = [v for v in values if isinstance(v, float)]
    bools = [int(v) for v in values if isinstance(v, bool)]
    groups: list[tuple[str, Any]] = []
    if strings:
        groups.append(("text", strings))
    if ints or floats or bools:
        groups.append(("integer", ints + floats + bools))
    if ints or floats:
        groups.append(("real", ints + floats))
    if 1 in ints + bools:
        groups.append(("true", True))
    if 0 in ints + bools:
        groups.append(("false", True))
    return groups


def to_sql(node: Node, params: list[Any], metadata_column: str = "metadata", column_prefix: str = "") -> str:
    """Compile to a WHERE fragment for the SQLite store; appends bind values to `params`.

    No caller text is ever spliced into the SQL: values and JSON paths are bound parameters (the paths are
    built from keys that passed filters.check_key), column names come from COLUMN_KEYS, and
    `metadata_column` / `column_prefix` come from the store. Fragments are built left to right, so `params` follows the
    placeholders' order. Uses the SQL function memlane_fold (str.casefold), registered on every connection,
    for icontains.
    """
    def bind(value: Any) -> str:
        params.append(value)
        return "?"

    if isinstance(node, And):
        if not node.children:
            return "1"
        return "(" + " AND ".join(to_sql(c, params, metadata_column, column_prefix) for c in node.children) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(to_sql(c, params, metadata_column, column_prefix) for c in node.children) + ")"
    if isinstance(node, Not):
        return "(NOT " + to_sql(node.child, params, metadata_column, column_prefix) + ")"
    key, op, value = node.key, node.op, node.value
    is_column = key in COLUMN_KEYS
    path = json_path(key)

    def expr() -> str:
        return f"{column_prefix}{key}" if is_column else f"json_extract({metadata_column}, {bind(path)})"

    def type_guard(v: Any, ordered: bool = False) -> str:
        # For metadata, json_type: typeof(json_extract(...)) says 'text' for arrays and objects (their JSON
        # text) and 'integer' for true/false, which would let strings match inside lists and bools in ranges.
        kind = (f"typeof({expr()})" if is_column
                else f"coalesce(json_type({metadata_column}, {bind(path)}), 'null')")
        return f"{kind} IN {_kinds(v, ordered)}"

    if op == "exists":
        return f"({expr()} IS NOT NULL)"
    if op in ("eq", "ne"):
        if value is None:
            return f"({expr()} IS {'NOT ' if op == 'ne' else ''}NULL)"  # eq null: the key is missing
        cond = f"({type_guard(value)} AND {expr()} = {bind(_sql_value(value))})"
        return cond if op == "eq" else f"(NOT {cond})"
    if op in ("gt", "gte", "lt", "lte"):
        sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        return f"({type_guard(value, ordered=True)} AND {expr()} {sym} {bind(value)})"
    if op in ("in", "nin"):
        # One CASE on the stored value's type, each branch an IN list of the values of a kind it may equal
        # (as filters._same_kind): a list costs one expression level and a bound parameter or two per value, where
        # an OR of equalities nested one level per value (SQLite's expression depth limit is 1000).
        groups = _in_groups(value)
        parts = []
        if groups:
            kind = f"typeof({expr()})" if is_column else f"json_type({metadata_column}, {bind(path)})"
            branches = []
            for stored, values in groups:
                if isinstance(values, bool):  # true / false: the answer does not depend on the row
                    branches.append(f"WHEN '{stored}' THEN {int(values)}")
                else:
                    branches.append(f"WHEN '{stored}' THEN {expr()} IN ({','.join(bind(v) for v in values)})")
            parts.append(f"(CASE {kind} {' '.join(branches)} ELSE 0 END)")
        if any(v is None for v in value):
            parts.append(f"({expr()} IS NULL)")
        cond = "(" + (" OR ".join(parts) or "0") + ")"
        return cond if op == "in" else f"(NOT {cond})"
    if op not in ("contains", "icontains"):  # parse() admits only OPERATORS; a tree built by hand may not
        raise ValidationError(f"filter {key!r}: unknown operator {op!r}")
    # contains / icontains: substring of a string, or an element of an array (metadata only)
    fold = op == "icontains"
    needle = value.casefold() if fold else value

    def text() -> str:
        return f"memlane_fold({expr()})" if fold else expr()

    if is_column:
        return f"(typeof({expr()}) = 'text' AND instr({text()}, {bind(needle)}) > 0)"
    text_cond = (f"(coalesce(json_type({metadata_column}, {bind(path)}), 'null') = 'text' "
                 f"AND instr({text()}, {bind(needle)}) > 0)")
    elem = "memlane_fold(value)" if fold else "value"
    array_cond = (f"(json_type({metadata_column}, {bind(path)}) = 'array' AND EXISTS (SELECT 1 FROM "
                  f"json_each({metadata_column}, {bind(path)}) WHERE type = 'text' AND {elem} = {bind(needle)}))")
    return f"({text_cond} OR {array_cond})"
