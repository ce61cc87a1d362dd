"""The WHERE clauses both SQL stores' graph tables are read with (sqlite_graph.py, postgres/graph.py);
`mark` is the driver's parameter placeholder ("?" for sqlite3, "%s" for psycopg)."""
from __future__ import annotations

from typing import Any, Optional

from ..models import Scope


def scope_sql(scope: Scope, mark: str) -> tuple[str, list[Any]]:
    """Rows of the scope: each id it fixes matches (a None id matches any)."""
    parts, params = [], []
    for key in ("user_id", "agent_id", "run_id"):
        value = getattr(scope, key)
        if value is not None:
            parts.append(f"{key} = {mark}")
            params.append(value)
    return " AND ".join(parts) or "1 = 1", params


def valid_sql(as_of: Optional[str], ended: bool, mark: str) -> tuple[str, list[Any]]:
    """Relations that held at `as_of` (None: the current ones); ended: every relation."""
    if ended:
        return "1 = 1", []
    if as_of is None:
        return "valid_to IS NULL", []
    return (f"(valid_from IS NULL OR valid_from <= {mark}) AND (valid_to IS NULL OR valid_to > {mark})",
            [as_of, as_of])
