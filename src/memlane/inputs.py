"""Validation and normalisation of what callers pass in. Pure functions; every failure is a ValidationError
that says what was wrong, raised before anything is written.

Limits (README "Limits"): text is valid Unicode (no lone UTF-16 surrogate, "\\ud800": no UTF-8 encoder takes
one, so the database, the tokenizer and the HTTP providers would fail on it); U+0000 is kept in message
text, queries and prompts (a TEXT column stores it whole) but not in metadata, where SQLite's JSON
functions cut a string at it and filters would see another value than get() returns; ids are at most
MAX_ID_CHARS printable characters; metadata is at most MAX_METADATA_BYTES of JSON nested at most
MAX_METADATA_DEPTH deep, its integers 64-bit; offsets at most MAX_OFFSET; timestamps within years 1-9999."""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional

from . import filters as F
from .errors import ValidationError
from .filters import encodable, show
from .models import SCOPE_KEYS

ROLES = ("user", "assistant", "system")
MAX_ID_CHARS = 255
MAX_METADATA_BYTES = 64_000
MAX_METADATA_DEPTH = 20  # dicts and lists nested in one another, the metadata dict itself being level 1
MAX_OFFSET = 10**9
MAX_MESSAGE_IDS = 10_000  # ids in one messages() call
MAX_WAIT_SECONDS = 10**9  # wait(timeout=...): finite (NaN would never pass, inf is None spelt oddly)
MAX_PARTS = 100  # content parts in one message
MAX_IMAGE_URL_CHARS = 20_000_000  # an image part's URL; a data: URL holds the image itself (~15 MB of it)
IMAGE_DETAILS = ("auto", "low", "high")
MAX_BATCH = 1000  # memories in one batch_update / batch_delete (mem0's limit)
INT64 = (-2**63, 2**63 - 1)
# Event times: what datetime holds in UTC (years 1 to 9999); as epoch seconds, this range.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MIN_EPOCH_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_EPOCH_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MEMORY_TYPES = ("semantic_memory", "procedural_memory")
# Keys that are fields of a memory; letting metadata shadow them would make filters ambiguous.
RESERVED_METADATA_KEYS = frozenset(F.COLUMN_KEYS + ("memory", "score", "metadata", "source_message_ids",
                                                    "event", "previous_memory"))


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    name: Optional[str] = None
    # The content as OpenAI-style parts, when it was given so (normalised: {"type": "text", "text": ...} and
    # {"type": "image_url", "image_url": {"url": ..., "detail"?: ...}}, in the order given). `content` is then
    # the text parts joined by a space (mem0 joins them so), and "" for a message of images only. The parts
    # go to the message log whole; the images reach memories only through an LLM with vision.
    parts: Optional[list[dict[str, Any]]] = None

    @property
    def images(self) -> list[dict[str, Any]]:
        return [p for p in self.parts or () if p["type"] == "image_url"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def new_id() -> str:
    return str(uuid.uuid4())


def text(value: Any, what: str) -> str:
    """A string that is valid Unicode text (no lone surrogate)."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    if not encodable(value):
        raise ValidationError(f"{what} contains a lone UTF-16 surrogate (not valid Unicode text)")
    return value


def _uuid(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationError(f"invalid {what} {show(value)}: expected a UUID") from None


def memory_id(value: Any) -> str:
    """A memory id must be a UUID string; anything else is a caller bug, not a miss."""
    return _uuid(value, "memory id")


def job_id(value: Any) -> str:
    """A background job's id (a UUID string, as add(background=True) returns it)."""
    return _uuid(value, "job id")


def message_ids(value: Any) -> list[str]:
    """The ids messages() takes: one id or a list of them (UUID strings, as source_message_ids holds)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f"message ids must be a list of strings, got {type(value).__name__}")
    if len(value) > MAX_MESSAGE_IDS:
        raise ValidationError(f"messages() takes at most {MAX_MESSAGE_IDS} ids at once, got {len(value)}")
    return [_uuid(v, "message id") for v in value]


def _scope_value(key: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{key} must be a non-empty string, got {show(value)}")
    if value != value.strip():  # stored as given, " alice " would be another tenant than "alice"
        raise ValidationError(f"{key} {show(value)} has leading or trailing whitespace; pass the id without "
                              "it")
    if len(value) > MAX_ID_CHARS or any(ord(c) < 32 for c in value) or not encodable(value):
        raise ValidationError(f"{key} must be at most {MAX_ID_CHARS} printable characters (valid Unicode), "
                              f"got {show(value)}")
    return value


def scope_ids(user_id: Any = None, agent_id: Any = None, run_id: Any = None) -> dict[str, Optional[str]]:
    ids = {"user_id": _scope_value("user_id", user_id), "agent_id": _scope_value("agent_id", agent_id),
           "run_id": _scope_value("run_id", run_id)}
    return ids


def require_scope(ids: dict[str, Optional[str]]) -> None:
    if not any(ids.values()):
        raise ValidationError("at least one of user_id, agent_id, run_id is required")


def _scope_values(node: F.Node) -> None:
    """Every scope id a filter compares with (eq, ne, in, nin, anywhere in the tree) is a valid id."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (F.And, F.Or)):
            stack.extend(n.children)
        elif isinstance(n, F.Not):
            stack.append(n.child)
        elif isinstance(n, F.Cmp) and n.key in SCOPE_KEYS and n.op in ("eq", "ne", "in", "nin"):
            for value in n.value if n.op in ("in", "nin") else (n.value,):
                if value is not None:
                    _scope_value(n.key, value)


def pins_scope(node: F.Node) -> bool:
    """Whether every row `node` matches has a scope id the filter names: an equality or an `in` list of
    ids, alone, under AND beside anything, or in every branch of an OR (filters.scope_cover). A null
    equality, `ne`, `nin`, "*" and NOT select across tenants, so they are not a scope."""
    return bool(F.scope_cover(node))


def scoped_filter(user_id: Any, agent_id: Any, run_id: Any, filters: Optional[dict[str, Any]]) -> F.Node:
    """The filter tree for a read: scope kwargs ANDed with `filters`; a scope is required in one or the other
    (in filters, in any form that pins one: see pins_scope), and the two must not disagree."""
    ids = scope_ids(user_id, agent_id, run_id)
    node = F.parse(filters)
    _scope_values(node)
    in_filters = F.top_level_equalities(node)
    for key in SCOPE_KEYS:
        for value in in_filters.get(key, []):
            if ids[key] is not None and value != ids[key]:
                raise ValidationError(f"{key}={ids[key]!r} conflicts with filters {key}={show(value)}")
    if not any(ids.values()) and not pins_scope(node):
        raise ValidationError("at least one of user_id, agent_id, run_id is required (as an argument, or in "
                              "filters as an equality, an 'in' list, or in every branch of an OR)")
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
        if not isinstance(role, str) or role not in ROLES:
            raise ValidationError(f"message {i}: role must be one of {', '.join(ROLES)}, got {show(role)}")
        parts = None
        if isinstance(content, (list, tuple, dict)):
            content, parts = content_parts(content, f"message {i}")
        if not isinstance(content, str):
            raise ValidationError(f"message {i}: content must be a string or a list of content parts, got "
                                  f"{type(content).__name__}")
        if not content.strip() and not parts:
            raise ValidationError(f"message {i}: content is empty")
        if len(content) > max_chars:
            raise ValidationError(f"message {i}: {len(content)} characters exceeds max_message_chars="
                                  f"{max_chars} (split it, or raise the limit in MemoryConfig)")
        text(content, f"message {i}: content")
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise ValidationError(f"message {i}: name must be a non-empty string")
            if len(name) > MAX_ID_CHARS or any(ord(c) < 32 for c in name) or not encodable(name):
                raise ValidationError(f"message {i}: name must be at most {MAX_ID_CHARS} printable characters "
                                      f"(valid Unicode), got {show(name)}")
        out.append(Message(role=role, content=content, name=name, parts=parts))
    if all(m.role == "system" for m in out):
        raise ValidationError("messages hold only system messages; there is nothing to remember")
    return out


def _image_part(spec: Any, where: str) -> dict[str, Any]:
    if isinstance(spec, str):  # {"type": "image_url", "image_url": "https://..."}: some clients send it so
        spec = {"url": spec}
    if not isinstance(spec, dict):
        raise ValidationError(f"{where}: image_url must be a dict with a 'url', got {type(spec).__name__}")
    url, detail = spec.get("url"), spec.get("detail")
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(f"{where}: image_url needs a non-empty 'url' string, got {show(url)}")
    if len(url) > MAX_IMAGE_URL_CHARS or any(ord(c) < 32 for c in url) or not encodable(url):
        raise ValidationError(f"{where}: the image url must be at most {MAX_IMAGE_URL_CHARS:,} printable "
                              "characters (valid Unicode)")
    if detail is not None and detail not in IMAGE_DETAILS:
        raise ValidationError(f"{where}: image detail must be one of {', '.join(IMAGE_DETAILS)}, got "
                              f"{show(detail)}")
    return {"type": "image_url", "image_url": {"url": url, **({"detail": detail} if detail else {})}}


def content_parts(value: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    """OpenAI-style content parts -> (the text parts joined by a space, the normalised parts). Text and
    image_url parts are taken (a single part dict as the whole content too, as mem0 takes an image so);
    any other part type is an error rather than silently dropped."""
    if isinstance(value, dict):
        value = [value]
    if not value:
        raise ValidationError(f"{where}: content is an empty list of parts")
    if len(value) > MAX_PARTS:
        raise ValidationError(f"{where}: at most {MAX_PARTS} content parts, got {len(value)}")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(value):
        at = f"{where}, content part {j}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            piece = part.get("text")
            if not isinstance(piece, str):
                raise ValidationError(f"{at}: a text part needs a 'text' string, got {show(piece)}")
            parts.append({"type": "text", "text": text(piece, f"{at}: text")})
        elif kind == "image_url":
            parts.append(_image_part(part.get("image_url"), at))
        elif isinstance(part, dict):
            raise ValidationError(f"{at}: type {show(kind)} is not supported (text and image_url are)")
        else:
            raise ValidationError(f"{at} must be a dict like {{'type': 'text', 'text': ...}}, got "
                                  f"{type(part).__name__}")
    joined = " ".join(p["text"].strip() for p in parts if p["type"] == "text" and p["text"].strip())
    return joined, parts


def memory_text(value: Any, max_chars: int, what: str = "text") -> str:
    """The new text of a memory (update, batch_update): a non-empty string within max_message_chars."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(f"{what} is empty")
    if len(value) > max_chars:
        raise ValidationError(f"{what} of {len(value)} characters exceeds max_message_chars={max_chars}")
    return text(value, what)


def text_or_data(text_value: Any, data: Any) -> Any:
    """update(text=...) and mem0 1.x's update(data=...): one of them, or both the same."""
    if data is None:
        return text_value
    if text_value is not None and text_value != data:
        raise ValidationError("update() takes the new text as text= or as data= (mem0 1.x's name), not two "
                              "different values")
    return data


def limit_or_top_k(limit_value: Any, top_k: Any, default: int, maximum: int = 10_000) -> int:
    """`limit` (mem0 1.x) and `top_k` (mem0 2.x) are one setting: either, or both equal."""
    if top_k is None:
        return limit(default if limit_value is None else limit_value, maximum=maximum)
    top_k = limit(top_k, "top_k", maximum)
    if limit_value is not None and limit(limit_value, maximum=maximum) != top_k:
        raise ValidationError(f"top_k={top_k} and limit={show(limit_value)} disagree: they are one setting "
                              "(top_k is mem0 2.x's name for limit); pass one of them")
    return top_k


EXPIRATION_FORMS = ("expiration_date must be a date: YYYY-MM-DD, a datetime.date, or a datetime or ISO 8601 "
                    "date-time (its date is taken, as mem0 takes it)")


def expiration_date(value: Any) -> Optional[str]:
    """add/update(expiration_date=...) -> "YYYY-MM-DD", or None (none; on update, clear it). mem0's
    meaning: the memory is visible through that day and hidden from search/get_all once it has passed
    (UTC), unless show_expired=True."""
    if value is None:
        return None
    given = value
    if isinstance(value, str):
        raw = value.strip()
        try:
            if any(ord(c) < 32 for c in raw):  # fromisoformat stops at U+0000 and ignores the rest
                raise ValueError(raw)
            value = date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"{EXPIRATION_FORMS}, got {show(given)}") from None
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        raise ValidationError(f"{EXPIRATION_FORMS}, got {show(given)}")
    return value.isoformat()


def today() -> str:
    """Today's date in UTC ("YYYY-MM-DD"): a memory whose expiration_date is before it has expired."""
    return datetime.now(timezone.utc).date().isoformat()


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # update(expiration_date=...) not given, beside None (clear it)


def _batch(value: Any, what: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f"{what}() takes a list of dicts with a 'memory_id', got {type(value).__name__}")
    if not value:
        raise ValidationError(f"{what}() got an empty list")
    if len(value) > MAX_BATCH:
        raise ValidationError(f"{what}() takes at most {MAX_BATCH} memories at once, got {len(value)}")
    return list(value)


def _unique(ids: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for mid in ids:
        if mid in seen:
            raise ValidationError(f"{what}() names memory {mid} twice")
        seen.add(mid)
    return ids


BATCH_UPDATE_KEYS = ("memory_id", "text", "metadata", "expiration_date")


def batch_updates(value: Any) -> list[dict[str, Any]]:
    """batch_update([{"memory_id", "text"?, "metadata"?, "expiration_date"?}, ...]) -> the items, checked
    for shape (memory_id a UUID, no unknown key, something to change, no id twice); the values are checked
    as update() checks them."""
    items = []
    for i, item in enumerate(_batch(value, "batch_update")):
        if not isinstance(item, dict):
            raise ValidationError(f"batch_update() item {i} must be a dict, got {type(item).__name__}")
        unknown = sorted(str(k) for k in item if k not in BATCH_UPDATE_KEYS)
        if unknown:
            raise ValidationError(f"batch_update() item {i}: unknown key(s) {', '.join(map(repr, unknown))}; "
                                  f"an item takes {', '.join(BATCH_UPDATE_KEYS)}")
        if "memory_id" not in item:
            raise ValidationError(f"batch_update() item {i} has no 'memory_id'")
        if item.get("text") is None and item.get("metadata") is None and "expiration_date" not in item:
            raise ValidationError(f"batch_update() item {i} changes nothing: give text, metadata or "
                                  "expiration_date")
        items.append({**item, "memory_id": memory_id(item["memory_id"])})
    _unique([it["memory_id"] for it in items], "batch_update")
    return items


def batch_deletes(value: Any) -> list[str]:
    """batch_delete([{"memory_id": ...}, ...]) (mem0's shape; a bare id string is taken too) -> the ids."""
    ids = []
    for i, item in enumerate(_batch(value, "batch_delete")):
        if isinstance(item, dict):
            if set(item) != {"memory_id"}:
                raise ValidationError(f"batch_delete() item {i} must be {{'memory_id': ...}}, got keys "
                                      f"{show(sorted(map(str, item)))}")
            item = item["memory_id"]
        ids.append(memory_id(item))
    return _unique(ids, "batch_delete")


def _at(where: str) -> str:
    return where if len(where) <= 100 else where[:60] + "..." + where[-30:]


def _metadata_string(value: str, where: str, what: str) -> None:
    if not encodable(value):
        raise ValidationError(f"metadata {what} at {_at(where)} contains a lone UTF-16 surrogate "
                              "(not valid Unicode text)")
    if "\x00" in value:
        raise ValidationError(f"metadata {what} at {_at(where)} contains U+0000 (SQLite's JSON functions cut a "
                              "string there, so filters would not see it)")


def _check_metadata_tree(value: dict[str, Any]) -> None:
    """Walk the metadata without recursion (so no depth can blow the stack) and check every key and value:
    at most MAX_METADATA_DEPTH levels, string keys, valid Unicode without U+0000, finite floats, 64-bit
    integers, only JSON types. Stops as soon as the walk has seen more than JSON's size limit could hold."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "metadata")]
    size = 0  # a lower bound of its JSON length: every value takes a character or more
    while stack:
        node, depth, where = stack.pop()
        size += 1 + (len(node) if isinstance(node, (dict, list, tuple)) else 0)  # a separator per item
        if size > MAX_METADATA_BYTES:
            raise ValidationError(f"metadata is larger than the limit of {MAX_METADATA_BYTES} bytes as JSON")
        if isinstance(node, dict):
            if depth > MAX_METADATA_DEPTH:
                raise ValidationError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels (at {_at(where)})")
            for key, child in node.items():
                if not isinstance(key, str):
                    raise ValidationError(f"metadata key {show(key)} at {_at(where)} must be a string")
                _metadata_string(key, where, "key")
                size += len(key)
                stack.append((child, depth + 1, f"{where}[{show(key)}]"))
        elif isinstance(node, (list, tuple)):
            if depth > MAX_METADATA_DEPTH:
                raise ValidationError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels (at {_at(where)})")
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(node))
        elif isinstance(node, str):
            _metadata_string(node, where, "value")
            size += len(node)
        elif isinstance(node, bool) or node is None:
            pass
        elif isinstance(node, int):
            if not INT64[0] <= node <= INT64[1]:
                raise ValidationError(f"metadata integer at {_at(where)} is out of the 64-bit range SQLite stores")
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise ValidationError(f"metadata must be JSON-serialisable (no NaN/inf): {node!r} at {_at(where)}")
        else:
            raise ValidationError(f"metadata must be JSON-serialisable: {type(node).__name__} at {_at(where)} is not "
                                  "a string, number, boolean, null, list or dict")


def metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"metadata must be a dict, got {type(value).__name__}")
    for key in value:
        F.check_key(key, "metadata key")  # the filter grammar: every stored key can be filtered on
        if key in RESERVED_METADATA_KEYS:
            raise ValidationError(f"metadata key {key!r} is reserved (it is a field of the memory itself)")
    _check_metadata_tree(value)
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata must be JSON-serialisable (no NaN/inf): {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata is {len(encoded)} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    return json.loads(encoded)  # a detached copy, with tuples as lists, as it will be stored


TIMESTAMP_FORMS = ("timestamp must be an ISO 8601 string, a datetime or epoch seconds (years 1 to 9999, "
                   f"epoch {MIN_EPOCH_SECONDS} to {MAX_EPOCH_SECONDS})")


def timestamp(value: Any) -> Optional[str]:
    """Event time (when the conversation happened) as ISO 8601, its UTC offset kept; naive datetimes are
    taken as UTC. Accepted: years 1 to 9999 (the instant in UTC too), i.e. epoch seconds from
    MIN_EPOCH_SECONDS to MAX_EPOCH_SECONDS."""
    if value is None:
        return None
    given = value
    if isinstance(value, bool):
        raise ValidationError(TIMESTAMP_FORMS)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError("timestamp must be finite")
        if not MIN_EPOCH_SECONDS <= value <= MAX_EPOCH_SECONDS:
            raise ValidationError(f"timestamp {show(value)} is out of range: {TIMESTAMP_FORMS}")
        try:  # not datetime.fromtimestamp: its range depends on the platform's time_t
            value = EPOCH + timedelta(seconds=value)
        except OverflowError:
            raise ValidationError(f"timestamp {show(value)} is out of range: {TIMESTAMP_FORMS}") from None
    elif isinstance(value, str):
        try:
            if any(ord(c) < 32 for c in value.strip()):  # fromisoformat stops at U+0000 and ignores the rest
                raise ValueError(value)
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"timestamp {show(value)} is not ISO 8601") from None
    if not isinstance(value, datetime):
        raise ValidationError(TIMESTAMP_FORMS)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:  # a caller's tzinfo may answer anything; the instant must exist in UTC and read back the same
        value.astimezone(timezone.utc)
        out = value.isoformat()
        same = datetime.fromisoformat(out) == value
    except Exception as exc:  # noqa: BLE001 - OverflowError, ValueError, or whatever a tzinfo raises
        raise ValidationError(f"timestamp {show(given)} is out of range or unreadable ({exc}): "
                              f"{TIMESTAMP_FORMS}") from None
    if not same:
        raise ValidationError(f"timestamp {show(given)} does not survive ISO 8601: {TIMESTAMP_FORMS}")
    return out


def limit(value: Any, name: str = "limit", maximum: int = 10_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > maximum:
        raise ValidationError(f"{name} must be an integer from 1 to {maximum}, got {show(value)}")
    return int(value)


def offset(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OFFSET:
        raise ValidationError(f"offset must be an integer from 0 to {MAX_OFFSET:,}, got {show(value)}")
    return int(value)


def threshold(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValidationError(f"threshold must be a number in [0, 1] (scores are in [0, 1]), got {show(value)}")
    return float(value)


def flag(value: Any, name: str) -> bool:
    """A boolean parameter: True or False, nothing merely truthy ("no" is not False)."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be True or False, got {show(value)}")
    return value


def query(value: Any, max_chars: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("query must be a non-empty string")
    if len(value) > max_chars:
        raise ValidationError(f"query of {len(value)} characters exceeds max_message_chars={max_chars}")
    return text(value, "query")


def prompt(value: Any, max_chars: int) -> Optional[str]:
    """add(prompt=...): extra extraction instructions for one call."""
    if value is None:
        return None
    text(value, "prompt")
    if len(value) > max_chars:
        raise ValidationError(f"prompt of {len(value)} characters exceeds max_message_chars={max_chars}")
    return value


def memory_type(value: Any) -> Optional[str]:
    """add(memory_type=...): None, 'semantic_memory' or 'procedural_memory'."""
    if value is not None and (not isinstance(value, str) or value not in MEMORY_TYPES):
        raise ValidationError(f"memory_type must be 'semantic_memory' or 'procedural_memory', got {show(value)}"
                              " (episodic memories are the logged turns themselves)")
    return value


def wait_timeout(value: Any) -> Optional[float]:
    """wait(timeout=...): None (no deadline) or a finite number of seconds, 0 or more."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_WAIT_SECONDS:
        raise ValidationError(f"timeout must be None or a number of seconds from 0 to {MAX_WAIT_SECONDS:,}, "
                              f"got {show(value)}")
    return float(value)
