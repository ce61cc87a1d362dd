"""Validation and normalisation of what callers pass in. Pure functions; every failure is a ValidationError
that says what was wrong, raised before anything is written."""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from . import filters as F
from .errors import ValidationError
from .models import SCOPE_KEYS

ROLES = ("user", "assistant", "system")
MAX_ID_CHARS = 255
MAX_METADATA_BYTES = 64_000
# Keys that are fields of a memory; letting metadata shadow them would make filters ambiguous.
RESERVED_METADATA_KEYS = frozenset(F.COLUMN_KEYS + ("memory", "score", "metadata", "source_message_ids",
                                                    "event", "previous_memory"))


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    name: Optional[str] = None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def new_id() -> str:
    return str(uuid.uuid4())


def memory_id(value: Any) -> str:
    """A memory id must be a UUID string; anything else is a caller bug, not a miss."""
    if not isinstance(value, str):
        raise ValidationError(f"memory id must be a string, got {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationError(f"invalid memory id {value!r}: expected a UUID") from None


def _scope_value(key: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{key} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_CHARS or any(ord(c) < 32 for c in value):
        raise ValidationError(f"{key} must be at most {MAX_ID_CHARS} printable characters")
    return value


def scope_ids(user_id: Any = None, agent_id: Any = None, run_id: Any = None) -> dict[str, Optional[str]]:
    ids = {"user_id": _scope_value("user_id", user_id), "agent_id": _scope_value("agent_id", agent_id),
           "run_id": _scope_value("run_id", run_id)}
    return ids


def require_scope(ids: dict[str, Optional[str]]) -> None:
    if not any(ids.values()):
        raise ValidationError("at least one of user_id, agent_id, run_id is required")


def scoped_filter(user_id: Any, agent_id: Any, run_id: Any, filters: Optional[dict[str, Any]]) -> F.Node:
    """The filter tree for a read: scope kwargs ANDed with `filters`; a scope is required in one or the other,
    and the two must not disagree."""
    ids = scope_ids(user_id, agent_id, run_id)
    node = F.parse(filters)
    in_filters = F.top_level_equalities(node)
    for key in SCOPE_KEYS:
        for value in in_filters.get(key, []):
            _scope_value(key, value)
            if ids[key] is not None and value != ids[key]:
                raise ValidationError(f"{key}={ids[key]!r} conflicts with filters {key}={value!r}")
    # A null equality ({"user_id": None}) selects the rows *without* that id, across every tenant: not a scope.
    if not any(ids.values()) and not any(v is not None for k in SCOPE_KEYS for v in in_filters.get(k, [])):
        raise ValidationError("at least one of user_id, agent_id, run_id is required "
                              "(as an argument or an equality in filters)")
    scope_nodes = [F.Cmp(k, "eq", v) for k, v in ids.items() if v is not None]
    return F.conjoin(*scope_nodes, node)


def messages(value: Any, max_chars: int) -> list[Message]:
    """str | dict | list[dict] -> messages; rejects empty, oversized and malformed input."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    elif isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f"messages must be a string, a message dict or a list of them, "
                              f"got {type(value).__name__}")
    if not value:
        raise ValidationError("messages is empty")
    out: list[Message] = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict):
            raise ValidationError(f"message {i} must be a dict with 'role' and 'content'")
        role, content, name = msg.get("role"), msg.get("content"), msg.get("name")
        if role not in ROLES:
            raise ValidationError(f"message {i}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise ValidationError(f"message {i}: content must be a string, got {type(content).__name__}")
        if not content.strip():
            raise ValidationError(f"message {i}: content is empty")
        if len(content) > max_chars:
            raise ValidationError(f"message {i}: {len(content)} characters exceeds max_message_chars="
                                  f"{max_chars} (split it, or raise the limit in MemoryConfig)")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValidationError(f"message {i}: name must be a non-empty string")
        out.append(Message(role=role, content=content, name=name))
    if all(m.role == "system" for m in out):
        raise ValidationError("messages hold only system messages; there is nothing to remember")
    return out


def metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"metadata must be a dict, got {type(value).__name__}")
    for key in value:
        F.check_key(key, "metadata key")  # the filter grammar: every stored key can be filtered on
        if key in RESERVED_METADATA_KEYS:
            raise ValidationError(f"metadata key {key!r} is reserved (it is a field of the memory itself)")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata must be JSON-serialisable (no NaN/inf): {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata is {len(encoded)} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    return json.loads(encoded)  # a detached copy, with tuples as lists, as it will be stored


def timestamp(value: Any) -> Optional[str]:
    """Event time (when the conversation happened) as ISO 8601; naive datetimes are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError("timestamp must be an ISO string, a datetime or epoch seconds")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValidationError("timestamp must be finite")
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"timestamp {value!r} is not ISO 8601") from None
    if not isinstance(value, datetime):
        raise ValidationError("timestamp must be an ISO string, a datetime or epoch seconds")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def limit(value: Any, name: str = "limit", maximum: int = 10_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > maximum:
        raise ValidationError(f"{name} must be an integer from 1 to {maximum}, got {value!r}")
    return value


def offset(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"offset must be a non-negative integer, got {value!r}")
    return value


def threshold(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValidationError(f"threshold must be a number in [0, 1] (scores are in [0, 1]), got {value!r}")
    return float(value)


def query(value: Any, max_chars: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("query must be a non-empty string")
    if len(value) > max_chars:
        raise ValidationError(f"query of {len(value)} characters exceeds max_message_chars={max_chars}")
    return value
