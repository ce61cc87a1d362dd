"""Property-based tests of the public API, sync and async: for arbitrary (often hostile) arguments, a call
either succeeds and behaves, or raises a MemlaneError subclass other than InternalError and leaves every
table of the file exactly as it was.

Behaving means: reads never leave the asked scope, scores are in [0, 1] and best first, a page holds at most
`limit` results, get_all's total and page agree with the filter evaluated in Python (filters.matches), and
writes change only what they name. The generators cover text with lone surrogates, NUL and SQL / FTS5
metacharacters, nested and oversized metadata, random filter trees (valid and not), ids, limits, offsets,
thresholds and timestamps. derandomize=True: the same examples on every run."""
import asyncio
import itertools
import math
import sqlite3
import uuid
from contextlib import closing
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from memlane import AsyncMemory, InternalError, Memory, MemlaneError
from memlane import filters as F
from memlane import inputs

from conftest import config_for
from test_input_limits import digest

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

# ------------------------------------------------------------------ strategies
# Each parameter is valid most of the time (`mostly`), so that calls with several parameters still often
# get through validation and the behaviour of successful calls is checked too.


def mostly(valid, hostile, valid_share=4):
    """valid_share in valid_share + 1 draws from `valid`, the rest from `hostile`."""
    return st.integers(0, valid_share).flatmap(lambda i: hostile if i == valid_share else valid)


SURROGATES = ["\ud800", "\udfff", "a\udc80b"]
SPECIAL = ["\x00", "\n", "\t", "'", '"', "*", "%", "_", "\\", "é", "ß", "İ", "😀", "\u202e", "\ufeff", " ", "AND",
           "OR", "NEAR(", ")", "^", ":", "-", "tea", "Lisbon", "x", "y", "Sweet", "on 7 July, 2023", "yesterday"]
any_texts = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(SPECIAL + SURROGATES)), max_size=6).map("".join)
valid_texts = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(SPECIAL)), min_size=1, max_size=6).map(
    "".join).filter(lambda t: t.strip())
texts = mostly(valid_texts, any_texts)
junk = st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.binary(max_size=4),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))

SCOPES = ["alice", "bob"]
scope_value = mostly(st.sampled_from(SCOPES),
                     st.one_of(any_texts, junk, st.integers(250, 260).map(lambda n: "u" * n), st.just("a\nb")))

big_ints = st.sampled_from([2**63 - 1, -2**63, 2**63, -2**63 - 1, 10**30, 2**64])
finite = st.floats(allow_nan=False, allow_infinity=False)
valid_scalars = st.one_of(st.sampled_from(["x", "y", "Sweet", "sweet", "Grandma's", 1, 2, 1.5, True, False, None, 0]),
                          valid_texts, st.integers(-3, 3), finite, big_ints.filter(lambda n: -2**63 <= n < 2**63))
scalars = mostly(valid_scalars, st.one_of(any_texts, big_ints, st.floats(allow_nan=True, allow_infinity=True)))

META_KEYS = ["a", "b", "tags", "n", "note"]
metadata_keys = mostly(st.one_of(st.sampled_from(META_KEYS), valid_texts.filter(
    lambda k: len(k) <= 200 and not any(c in k for c in '"\\') and all(ord(c) >= 32 for c in k)
    and k not in inputs.RESERVED_METADATA_KEYS)),
    st.one_of(any_texts, st.sampled_from(["user_id", "memory", "id", "", 'a"b']), st.integers(0, 3)))


def nested_metadata(depth):
    value = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


json_like = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                       st.dictionaries(metadata_keys, c, max_size=3)), max_leaves=8)
metadata = mostly(
    st.one_of(st.none(), st.dictionaries(st.sampled_from(META_KEYS), st.one_of(
        st.sampled_from(["x", "y", "Sweet", 1, 2, 1.5, True, None]), st.lists(st.sampled_from(["x", "Sweet", 1]),
                                                                               max_size=3)), max_size=3),
              st.dictionaries(metadata_keys, json_like, max_size=4)),
    st.one_of(st.integers(15, 1500).map(nested_metadata),
              st.integers(60_000, 70_000).map(lambda n: {"blob": "x" * n}),
              st.sets(st.integers(), max_size=2).map(lambda s: {"s": s}), junk,
              st.sampled_from([{"n": 2**63}, {"n": float("nan")}, {"k": {1: 2}}, {"k": "a\x00b"}])),
    valid_share=3)

OPS = list(F.OPERATORS)
FILTER_KEYS = META_KEYS + ["actor_id", "role", "memory_type", "run_id", "agent_id", "created_at", "timestamp",
                           "context", "id"]
filter_keys = mostly(st.sampled_from(FILTER_KEYS),
                     st.one_of(any_texts, st.sampled_from(["and", "Or", 'a"b', "a\\b", "x" * 201, "user_id"])))


@st.composite
def valid_leaf(draw):
    key = draw(filter_keys)
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return {key: draw(scalars)}
    if kind == 1:
        return {key: "*"}
    ops = {}
    for op in draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=2, unique=True)):
        if op in ("in", "nin"):
            ops[op] = draw(st.lists(scalars, max_size=4))
        elif op in ("contains", "icontains"):
            ops[op] = draw(st.one_of(st.sampled_from(["x", "Sweet", "sweet", "tea", "Grandma", "\x00"]), texts))
        elif op in ("gt", "gte", "lt", "lte"):
            ops[op] = draw(st.one_of(st.integers(-2, 3), finite, st.sampled_from(["a", "m", "x"]), texts))
        else:
            ops[op] = draw(scalars)
    return {key: ops}


hostile_leaf = st.one_of(
    st.builds(lambda k, op, v: {k: {op: v}}, filter_keys, st.sampled_from(["like", "$eq", "EQ", "exists", ""]),
              scalars),
    st.builds(lambda k, op, v: {k: {op: v}}, filter_keys, st.sampled_from(OPS), junk),
    st.builds(lambda k, v: {k: v}, filter_keys, st.lists(scalars, max_size=2)),
    st.just({"a": {}}))
leaves = mostly(valid_leaf(), hostile_leaf, valid_share=6)


def nest(depth, kind):
    f = {"a": 1}
    for i in range(depth):
        k = kind if kind != "mix" else ("NOT", "AND", "OR")[i % 3]
        f = {k: f} if k == "NOT" else {k: [f, {"b": i}]}
    return f


filter_trees = st.recursive(
    leaves,
    lambda c: st.one_of(
        st.lists(c, min_size=1, max_size=3).map(lambda xs: {"AND": xs}),
        st.lists(c, min_size=1, max_size=3).map(lambda xs: {"OR": xs}),
        c.map(lambda x: {"NOT": x}),
        st.lists(c, min_size=1, max_size=2).map(lambda xs: {"NOT": xs}),
        st.tuples(c, c).map(lambda xy: {**xy[0], **xy[1]}),
        mostly(st.just({}), st.one_of(c.map(lambda x: {"AND": x}), st.just({"OR": []}))),
    ),
    max_leaves=6)
filters = mostly(
    st.one_of(st.none(), filter_trees),
    st.one_of(
        junk,
        st.tuples(st.integers(5, 90), st.sampled_from(["AND", "OR", "NOT", "mix"])).map(lambda a: nest(*a)),
        st.integers(50, 1200).map(lambda n: {f"k{i}": i for i in range(n)}),
        st.integers(50, 1200).map(lambda n: {"OR": [{"a": i} for i in range(n)]}),
        st.tuples(st.integers(400, 1600), st.sampled_from(["in", "nin"])).map(
            lambda a: {"n": {a[1]: list(range(a[0]))}}),
        st.sampled_from([{"user_id": "bob"}, {"user_id": "alice", "n": {"gte": 1}}, {"user_id": None}]),
    ), valid_share=3)

limits = mostly(st.integers(1, 12), st.one_of(
    st.integers(-3, 0), st.sampled_from([1000, 1001, 10_000, 10_001, 2**63, 2**64]), st.floats(), st.booleans(),
    st.text(max_size=2), st.none()))
offsets = mostly(st.integers(0, 6), st.one_of(
    st.integers(-3, -1), st.sampled_from([10**9, 10**9 + 1, 2**62, 2**63, 2**64]), st.floats(), st.booleans(),
    st.none()))
thresholds = mostly(st.one_of(st.none(), st.floats(0, 1)), st.one_of(
    st.floats(), st.integers(-2, 2), st.booleans(), st.text(max_size=2)))
tz = st.one_of(st.none(), st.just(timezone.utc), st.integers(-1439, 1439).map(
    lambda m: timezone(timedelta(minutes=m))))
timestamps = mostly(
    st.one_of(st.none(), st.integers(-62_135_596_800, 253_402_300_799),
              st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=tz),
              st.datetimes(timezones=tz).map(lambda d: d.isoformat()),
              st.sampled_from(["2026-03-02T09:00:00Z", "2023-07-07", 1_700_000_000.5])),
    st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
              st.datetimes(timezones=tz), st.dates(), any_texts, junk,
              st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-01:00", "2026-01-01\x00"])))
flags = mostly(st.booleans(), st.sampled_from(["no", "yes", "", 0, 1, None]))
uuid_like = mostly(st.uuids().map(str), st.one_of(any_texts, junk, st.sampled_from(SURROGATES),
                                                  st.uuids().map(lambda u: str(u).upper())))
message = st.fixed_dictionaries(
    {"role": mostly(st.sampled_from(["user", "assistant"]), st.sampled_from(["system", "tool", "User", 1])),
     "content": texts}, optional={"name": mostly(st.sampled_from(["Ann", "Bob", "İlker"]), st.one_of(texts, junk))})
messages = mostly(st.one_of(valid_texts, message, st.lists(message, min_size=1, max_size=3)),
                  st.one_of(any_texts, junk, st.just([])))


# ------------------------------------------------------------------ the checks

class Harness:
    def __init__(self, memory):
        self.m = memory
        self.path = memory.config.database_path()

    def call(self, name, fn):
        """Run one public call: on a MemlaneError (never InternalError) nothing changed; returns (ok, result)."""
        before = digest(self.path)
        try:
            result = fn()
        except InternalError as exc:
            raise AssertionError(f"{name}: InternalError {exc}") from exc
        except MemlaneError as exc:
            event(f"{name}: {type(exc).__name__}")
            assert digest(self.path) == before, f"{name} raised and changed the database"
            return False, None
        event(f"{name}: ok")
        return True, result

    async def acall(self, name, coro_fn):
        before = digest(self.path)
        try:
            result = await coro_fn()
        except InternalError as exc:
            raise AssertionError(f"{name}: InternalError {exc}") from exc
        except MemlaneError as exc:
            event(f"async {name}: {type(exc).__name__}")
            assert digest(self.path) == before, f"{name} raised and changed the database"
            return False, None
        event(f"async {name}: ok")
        return True, result


def required_scope(kwargs, filters):
    """The scope ids every result must carry: the kwargs, and scope equalities at the filter's top level."""
    need = {k: v for k, v in kwargs.items() if v is not None}
    for key, values in F.top_level_equalities(F.parse(filters)).items():
        if key in ("user_id", "agent_id", "run_id"):
            for value in values:
                if value is not None:
                    need[key] = value
    return need


def in_scope(item, need):
    return all(item.get(k) == v for k, v in need.items())


def names_its_scope(item, kwargs, filters):
    """Whether the item carries a scope id the call named: as an argument, or compared (eq / in) with one
    in the filter outside any NOT. A filter may name its scope only inside OR branches or an in list."""
    named = [(k, v) for k, v in kwargs.items() if v is not None]
    stack = [F.parse(filters)]
    while stack:
        n = stack.pop()
        if isinstance(n, (F.And, F.Or)):
            stack.extend(n.children)
        elif isinstance(n, F.Cmp) and n.key in ("user_id", "agent_id", "run_id") and n.op in ("eq", "in"):
            named += [(n.key, v) for v in (n.value if n.op == "in" else (n.value,)) if v is not None]
    return any(item.get(k) == v for k, v in named)


def candidates(m, need):
    """The memories a scoped read chooses from, oldest first: the scope's (all_of), or, for a filter that
    names its scope only inside OR / in, every memory, read around the API."""
    if need:
        return all_of(m, need)
    with closing(sqlite3.connect(m.config.database_path())) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM memories WHERE memory_type != 'episodic_memory' "
                                          "ORDER BY created_at, pk")]
    return [m.get(i) for i in ids]


def seed(m):
    m.add([{"role": "user", "content": "I like green tea", "name": "Ann"},
           {"role": "assistant", "content": "Noted: tea, on 7 July, 2023"}], user_id="alice",
          metadata={"a": 1, "tags": ["x", "Sweet"], "note": "Grandma's"}, timestamp="2023-07-07T10:00:00Z",
          infer=False)
    m.add("I live in Lisbon", user_id="alice", agent_id="helper", metadata={"a": 2, "n": 1.5}, infer=False)
    m.add("tea\x00time: NUL kept", user_id="alice", metadata={"b": "y", "n": True}, infer=False)
    m.add("bob plays chess and drinks tea", user_id="bob", metadata={"a": 1}, infer=False)
    m.add({"role": "user", "content": "bob lives in Porto", "name": "Bob"}, user_id="bob", run_id="r1",
          infer=False)


@pytest.fixture
def harness(tmp_path):
    config = config_for(tmp_path / "props.db")
    config.llm = None
    with Memory(config) as m:
        seed(m)
        yield Harness(m)


def all_of(m, need):
    """Every visible memory of a scope, oldest first (the order get_all pages in)."""
    return m.get_all(**need, limit=10_000)["results"]


# ------------------------------------------------------------------ reads

@settings(max_examples=200, **SETTINGS)
@given(user_id=scope_value, agent_id=mostly(st.sampled_from([None, None, "helper"]), scope_value),
       filters=filters, limit=limits, offset=offsets)
def test_get_all(harness, user_id, agent_id, filters, limit, offset):
    m = harness.m
    ok, got = harness.call("get_all", lambda: m.get_all(user_id=user_id, agent_id=agent_id, filters=filters,
                                                        limit=limit, offset=offset))
    if not ok:
        return
    kwargs = {"user_id": user_id, "agent_id": agent_id}
    need = required_scope(kwargs, filters)
    assert all(in_scope(r, need) and names_its_scope(r, kwargs, filters) for r in got["results"])
    limit = 100 if limit is None else limit  # the default
    assert len(got["results"]) <= limit and got["total"] >= len(got["results"])
    node = F.parse(filters)
    expected = [r["id"] for r in candidates(m, need) if F.matches(node, r)]
    assert got["total"] == len(expected)
    assert [r["id"] for r in got["results"]] == expected[offset:offset + limit]


@settings(max_examples=160, **SETTINGS)
@given(query=mostly(texts, st.one_of(junk, st.integers(99_990, 100_010).map(lambda n: "q" * n))),
       user_id=scope_value, filters=filters, limit=st.one_of(limits, st.sampled_from([1, 2, 5])),
       threshold=thresholds, rerank=mostly(st.sampled_from([None, False]), flags))
def test_search(harness, query, user_id, filters, limit, threshold, rerank):
    m = harness.m
    ok, got = harness.call("search", lambda: m.search(query, user_id=user_id, filters=filters, limit=limit,
                                                      threshold=threshold, rerank=rerank))
    if not ok:
        return
    need = required_scope({"user_id": user_id}, filters)
    results = got["results"]
    assert all(in_scope(r, need) and names_its_scope(r, {"user_id": user_id}, filters) for r in results)
    assert len(results) <= (10 if limit is None else limit)
    scores = [r["score"] for r in results]
    assert all(0 <= s <= 1 and not math.isnan(s) for s in scores) and scores == sorted(scores, reverse=True)
    if threshold is not None:
        assert all(s >= threshold for s in scores)
    node = F.parse(filters)
    allowed = {r["id"] for r in candidates(m, need) if F.matches(node, r)}
    assert {r["id"] for r in results} <= allowed


@settings(max_examples=60, **SETTINGS)
@given(user_id=scope_value, limit=limits, offset=offsets)
def test_message_log(harness, user_id, limit, offset):
    m = harness.m
    ok, got = harness.call("message_log", lambda: m.message_log(user_id=user_id, limit=limit, offset=offset))
    if ok:
        assert all(r["user_id"] == user_id for r in got["results"]) and len(got["results"]) <= limit
        assert got["total"] >= len(got["results"])


# ------------------------------------------------------------------ writes

@settings(max_examples=160, **SETTINGS)
@given(msgs=messages, user_id=scope_value, run_id=mostly(st.sampled_from([None, None, "r1"]), scope_value),
       meta=metadata, infer=flags, timestamp=timestamps,
       memory_type=mostly(st.sampled_from([None, "semantic_memory"]), st.one_of(
           st.sampled_from(["procedural_memory", "episodic_memory"]), junk)),
       prompt=mostly(st.one_of(st.none(), valid_texts), st.one_of(any_texts, junk)))
def test_add(harness, msgs, user_id, run_id, meta, infer, timestamp, memory_type, prompt):
    m = harness.m
    others = {s: all_of(m, {"user_id": s}) for s in SCOPES if s != user_id}
    ok, got = harness.call("add", lambda: m.add(msgs, user_id=user_id, run_id=run_id, metadata=meta, infer=infer,
                                                timestamp=timestamp, memory_type=memory_type, prompt=prompt))
    if not ok:
        return
    for r in got["results"]:
        stored = m.get(r["id"])
        assert stored["user_id"] == user_id and stored["run_id"] == run_id and stored["memory"] == r["memory"]
        assert stored["metadata"] == (meta or {})
    assert {s: all_of(m, {"user_id": s}) for s in others} == others  # the wall, for writes


@settings(max_examples=120, **SETTINGS)
@given(data=st.data(), text=mostly(st.one_of(st.none(), valid_texts), st.one_of(texts, junk)),
       meta=mostly(metadata, st.dictionaries(st.sampled_from(META_KEYS), valid_scalars, min_size=1, max_size=2),
                   valid_share=1))
def test_get_update_delete_history(harness, data, text, meta):
    m = harness.m
    pool = [r["id"] for s in SCOPES for r in all_of(m, {"user_id": s})]
    if len(pool) < 4:  # examples delete; keep something to update
        seed(m)
        pool = [r["id"] for s in SCOPES for r in all_of(m, {"user_id": s})]
    # an index, not sampled_from(pool): the pool shrinks as examples delete, and draws must not depend on it
    kind, value = data.draw(mostly(st.integers(0, 10**6).map(lambda i: ("pool", i)),
                                   uuid_like.map(lambda u: ("raw", u)), valid_share=2))
    mid = pool[value % len(pool)] if kind == "pool" and pool else value if kind == "raw" else str(uuid.uuid4())
    ok, got = harness.call("get", lambda: m.get(mid))
    if ok and got is not None:
        assert got["id"] == mid
    ok, _ = harness.call("history", lambda: m.history(mid))
    before = m.get(mid) if ok else None
    ok, got = harness.call("update", lambda: m.update(mid, text, meta))
    if ok:
        after = m.get(mid)
        assert after["memory"] == (text if text is not None else before["memory"])
        # merged, as mem0 does: the keys given are set, a key given as None is removed
        merged = {k: v for k, v in {**before["metadata"], **(meta or {})}.items()
                  if not (meta and k in meta and meta[k] is None)}
        assert after["metadata"] == merged
        assert after["user_id"] == before["user_id"]
    if data.draw(st.booleans()):
        ok, _ = harness.call("delete", lambda: m.delete(mid))
        if ok:
            assert m.get(mid) is None and m.history(mid)[-1]["event"] == "DELETE"


VICTIMS = itertools.count()


@settings(max_examples=80, **SETTINGS)
@given(filters=filters, asked=mostly(st.just("victim"), scope_value), metas=st.lists(
    st.dictionaries(st.sampled_from(META_KEYS), st.one_of(st.integers(-2, 2), st.sampled_from(["x", "y"]))),
    min_size=1, max_size=3))
def test_delete_all(harness, filters, asked, metas):
    m = harness.m
    victim = f"victim-{next(VICTIMS)}"
    for meta in metas:
        m.add(f"victim memory {meta}", user_id=victim, metadata=meta, infer=False)
    user_id = victim if asked == "victim" else asked
    kept = {s: all_of(m, {"user_id": s}) for s in SCOPES + [victim] if s != user_id}
    ok, _ = harness.call("delete_all", lambda: m.delete_all(user_id=user_id, filters=filters))
    if not ok:
        return
    assert {s: all_of(m, {"user_id": s}) for s in kept} == kept
    need = required_scope({"user_id": user_id}, filters)
    node = F.parse(filters)
    assert not [r for r in candidates(m, need) if F.matches(node, r)]
    m.delete_all(user_id=victim)


@settings(max_examples=30, **SETTINGS)
@given(batch_size=limits)
def test_reindex(harness, batch_size):
    m = harness.m
    ok, got = harness.call("reindex", lambda: m.reindex(batch_size=batch_size))
    if ok:
        with closing(sqlite3.connect(harness.path)) as conn:
            assert got["reindexed"] == conn.execute("SELECT count(*) FROM memories").fetchone()[0]


# ------------------------------------------------------------------ async

@pytest.fixture
def aharness(tmp_path):
    config = config_for(tmp_path / "aprops.db")
    config.llm = None
    loop = asyncio.new_event_loop()
    m = loop.run_until_complete(asyncio.to_thread(AsyncMemory, config))
    with Memory(config) as sync:  # the same file, seeded through the sync API
        seed(sync)
    yield Harness(m), loop
    m.close()
    loop.close()


OPERATIONS = st.sampled_from(["add", "search", "get_all", "get", "update", "delete", "delete_all", "history",
                              "message_log"])


@settings(max_examples=250, **SETTINGS)
@given(op=OPERATIONS, msgs=messages, user_id=scope_value, filters=filters, limit=limits, offset=offsets,
       threshold=thresholds, meta=metadata, timestamp=timestamps, mid=uuid_like, text=mostly(texts, junk),
       infer=flags)
def test_async_api(aharness, op, msgs, user_id, filters, limit, offset, threshold, meta, timestamp, mid, text,
                   infer):
    harness, loop = aharness
    m = harness.m
    calls = {
        "add": lambda: m.add(msgs, user_id=user_id, metadata=meta, timestamp=timestamp, infer=infer),
        "search": lambda: m.search(text, user_id=user_id, filters=filters, limit=limit, threshold=threshold),
        "get_all": lambda: m.get_all(user_id=user_id, filters=filters, limit=limit, offset=offset),
        "get": lambda: m.get(mid), "update": lambda: m.update(mid, text, meta), "delete": lambda: m.delete(mid),
        "delete_all": lambda: m.delete_all(user_id=user_id, filters=filters), "history": lambda: m.history(mid),
        "message_log": lambda: m.message_log(user_id=user_id, limit=limit,
                                                                                  offset=offset),
    }
    ok, got = loop.run_until_complete(harness.acall(op, calls[op]))
    if ok and op in ("search", "get_all"):
        need = required_scope({"user_id": user_id}, filters)
        assert all(in_scope(r, need) and names_its_scope(r, {"user_id": user_id}, filters) for r in got["results"])
        assert len(got["results"]) <= (limit if limit is not None else 10 if op == "search" else 100)
        assert all(0 <= r["score"] <= 1 for r in got["results"] if "score" in r)


# ------------------------------------------------------------------ message ids and job ids



@settings(max_examples=40, **SETTINGS)
@given(ids=st.one_of(st.lists(uuid_like, max_size=3), uuid_like, st.sampled_from(SURROGATES),
                    st.lists(st.sampled_from(SURROGATES), min_size=1, max_size=2)))
def test_messages(harness, ids):
    m = harness.m
    ok, got = harness.call("messages", lambda: m.messages(ids))
    if ok:
        assert {r["id"] for r in got} <= set([ids] if isinstance(ids, str) else ids)


@settings(max_examples=40, **SETTINGS)
@given(job_id=uuid_like, timeout=st.one_of(st.just(0), st.floats(allow_nan=True), junk))
def test_job_ids(harness, job_id, timeout):
    m = harness.m
    harness.call("job", lambda: m.job(job_id))
    harness.call("retry_job", lambda: m.retry_job(job_id))
    harness.call("wait", lambda: m.wait(job_id, timeout=0))
