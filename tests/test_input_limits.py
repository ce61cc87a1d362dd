"""Hostile input at the public API: each case below once escaped as a raw TypeError, UnicodeEncodeError,
RecursionError, OverflowError or sqlite3.OperationalError. Now it is a ValidationError raised before anything
is written (README "Limits"), and whatever still escapes the pipeline untyped is an InternalError."""
import asyncio
import hashlib
import logging
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone, tzinfo

import pytest

from memlane import InternalError, Memory, MemlaneError, ValidationError
from memlane import filters as F
from memlane import inputs

from conftest import config_for, seed

SURROGATE = "\ud800"


# ------------------------------------------------------------------ helpers

def digest(path) -> dict[str, str]:
    """A hash of every row of every table in the file (FTS5 shadow tables, memory_vectors, meta, jobs
    included), read with a fresh connection: equal digests mean a call changed nothing at all."""
    out = {}
    with closing(sqlite3.connect(path)) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' "
            "ORDER BY name")]
        for table in tables:
            rows = sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{table}"'))
            out[table] = hashlib.sha256("\n".join(rows).encode("utf-8", "backslashreplace")).hexdigest()
    return out


def rejects(m, call, match=None):
    """`call` raises ValidationError (never another error) and leaves every table as it was."""
    before = digest(m.config.database_path())
    with pytest.raises(ValidationError, match=match) as caught:
        call()
    assert digest(m.config.database_path()) == before
    return caught.value


@pytest.fixture
def m(tmp_path):
    config = config_for(tmp_path / "limits.db")
    config.llm = None
    with Memory(config) as memory:
        seed(memory, ["I like tea", "I live in Lisbon"], user_id="alice")
        seed(memory, ["bob plays chess"], user_id="bob")
        yield memory


def an_id(m):
    return m.get_all(user_id="alice")["results"][0]["id"]


# ------------------------------------------------------------------ lone surrogates

@pytest.mark.parametrize("call", [
    lambda m: m.add("I like tea" + SURROGATE, user_id="alice", infer=False),
    lambda m: m.add([{"role": "user", "content": "fine"}, {"role": "assistant", "content": SURROGATE + "x"}],
                    user_id="alice", infer=False),
    lambda m: m.add({"role": "user", "content": "hi", "name": "Ann" + SURROGATE}, user_id="alice", infer=False),
    lambda m: m.add("hi", user_id="alice" + SURROGATE, infer=False),
    lambda m: m.add("hi", user_id="alice", agent_id=SURROGATE, infer=False),
    lambda m: m.add("hi", user_id="alice", run_id="r" + SURROGATE, infer=False),
    lambda m: m.add("hi", user_id="alice", metadata={"k": SURROGATE}, infer=False),
    lambda m: m.add("hi", user_id="alice", metadata={"k": {"nested": [1, {"deep": "x" + SURROGATE}]}}, infer=False),
    lambda m: m.add("hi", user_id="alice", metadata={"k": {SURROGATE: 1}}, infer=False),
    lambda m: m.add("hi", user_id="alice", metadata={SURROGATE: 1}, infer=False),
    lambda m: m.search("tea" + SURROGATE, user_id="alice"),
    lambda m: m.search("tea", user_id=SURROGATE),
    lambda m: m.search("tea", user_id="alice", filters={"k": SURROGATE}),
    lambda m: m.search("tea", user_id="alice", filters={"k": {"in": ["a", SURROGATE]}}),
    lambda m: m.get_all(user_id="alice", filters={"k": {"contains": SURROGATE}}),
    lambda m: m.get_all(user_id="alice", filters={"k": {"icontains": SURROGATE}}),
    lambda m: m.get_all(user_id="alice", filters={"k": {"gt": SURROGATE}}),
    lambda m: m.get_all(user_id="alice", filters={"OR": [{"k": 1}, {"k": {"ne": SURROGATE}}]}),
    lambda m: m.get_all(filters={"user_id": SURROGATE}),
    lambda m: m.get_all(user_id=SURROGATE),
    lambda m: m.get_all(user_id="alice", filters={SURROGATE: 1}),
    lambda m: m.delete_all(user_id="alice", filters={"k": SURROGATE}),
    lambda m: m.delete_all(user_id=SURROGATE),
    lambda m: m.message_log(user_id=SURROGATE),
    lambda m: m.get(SURROGATE),
    lambda m: m.history(SURROGATE),
    lambda m: m.delete(SURROGATE),
    lambda m: m.update(an_id(m), "new " + SURROGATE),
    lambda m: m.update(an_id(m), metadata={"k": [SURROGATE]}),
    lambda m: m.update(SURROGATE, "new"),
])
def test_lone_surrogates_are_validation_errors(m, call):
    error = rejects(m, lambda: call(m))
    assert "surrogate" in str(error) or "UUID" in str(error) or "printable" in str(error)


def test_nul_is_kept_in_message_text_and_refused_in_metadata_and_names(m):
    text = "tea\x00time with a NUL"
    [added] = m.add(text, user_id="carol", infer=False)["results"]
    assert m.get(added["id"])["memory"] == text
    assert [r["memory"] for r in m.get_all(user_id="carol")["results"]] == [text]
    assert m.search("tea\x00time", user_id="carol")["results"][0]["memory"] == text
    assert m.message_log(user_id="carol")["results"][0]["content"] == text
    m.update(added["id"], text + "!")
    assert m.history(added["id"])[-1]["new_memory"] == text + "!"
    # SQLite's JSON functions cut a string at U+0000: a filter would see "a", get() "a\x00b"
    rejects(m, lambda: m.add("x", user_id="carol", metadata={"k": "a\x00b"}, infer=False), match="U\\+0000")
    rejects(m, lambda: m.add("x", user_id="carol", metadata={"k": {"a\x00": 1}}, infer=False), match="U\\+0000")
    rejects(m, lambda: m.add({"role": "user", "content": "x", "name": "A\x00n"}, user_id="carol", infer=False))


# ------------------------------------------------------------------ metadata nesting and size

def nested(depth):
    """`depth` dicts, one inside the other."""
    value = {"a": "leaf"}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_metadata_nested_a_thousand_deep_is_a_validation_error(m):
    error = rejects(m, lambda: m.add("hi", user_id="alice", metadata=nested(1000), infer=False))
    assert "20 levels" in str(error)
    rejects(m, lambda: m.add("hi", user_id="alice", metadata={"l": [[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]},
                             infer=False), match="20 levels")
    rejects(m, lambda: m.update(an_id(m), metadata=nested(100_000)), match="20 levels")


def test_metadata_at_the_depth_limit_is_stored(m):
    value = nested(inputs.MAX_METADATA_DEPTH)  # the metadata dict itself is level 1
    [added] = m.add("hi", user_id="alice", metadata=value, infer=False)["results"]
    assert m.get(added["id"])["metadata"] == value
    rejects(m, lambda: m.add("hi", user_id="alice", metadata=nested(inputs.MAX_METADATA_DEPTH + 1), infer=False))


def test_cyclic_and_exploding_metadata_are_validation_errors(m):
    cyclic: dict = {"a": 1}
    cyclic["self"] = cyclic
    rejects(m, lambda: m.add("hi", user_id="alice", metadata=cyclic, infer=False))
    shared: list = ["x"]
    for _ in range(16):  # 2**16 leaves when written out, from 17 small lists
        shared = [shared, shared]
    rejects(m, lambda: m.add("hi", user_id="alice", metadata={"big": shared}, infer=False), match="64000")
    rejects(m, lambda: m.add("hi", user_id="alice", metadata={"big": list(range(10**6))}, infer=False),
            match="64000")


@pytest.mark.parametrize("metadata", [
    {"n": 2**63}, {"n": -2**63 - 1}, {"n": [10**30]},  # SQLite integers are 64-bit
    {"k": {1: "a"}},  # JSON would turn the key into "1" silently
    {"k": {("a",): 1}},
    {"k": {"x": b"bytes"}},
    {"k": {"x": float("inf")}},
])
def test_metadata_values_outside_json_and_sqlite_are_validation_errors(m, metadata):
    rejects(m, lambda: m.add("hi", user_id="alice", metadata=metadata, infer=False))


# ------------------------------------------------------------------ offsets and other integers

@pytest.mark.parametrize("value", [2**63, 2**64, 10**30, inputs.MAX_OFFSET + 1])
def test_huge_offsets_are_validation_errors(m, value):
    rejects(m, lambda: m.get_all(user_id="alice", offset=value), match="offset")
    rejects(m, lambda: m.message_log(user_id="alice", offset=value), match="offset")


def test_offset_at_its_maximum_pages_past_the_end(m):
    assert m.get_all(user_id="alice", offset=inputs.MAX_OFFSET) == {"results": [], "total": 2}
    assert m.message_log(user_id="alice", offset=inputs.MAX_OFFSET)["results"] == []


@pytest.mark.parametrize("call", [
    lambda m: m.get_all(user_id="alice", limit=2**63),
    lambda m: m.search("tea", user_id="alice", limit=2**64),
    lambda m: m.message_log(user_id="alice", limit=2**63),
    lambda m: m.reindex(batch_size=2**63),
    lambda m: m.reindex(batch_size="all"),
    lambda m: m.reindex(batch_size=True),
    lambda m: m.get_all(user_id="alice", filters={"n": 2**63}),
    lambda m: m.get_all(user_id="alice", filters={"n": {"in": [1, -2**63 - 1]}}),
])
def test_huge_integers_never_reach_sqlite(m, call):
    rejects(m, lambda: call(m))


# ------------------------------------------------------------------ filters SQLite could not run

def deep(depth, kind, leaf):
    f = leaf
    for i in range(depth):
        k = kind if kind != "mix" else ("NOT", "AND", "OR")[i % 3]
        f = {k: f} if k == "NOT" else {k: [f, {"other": 1}]}
    return f


@pytest.mark.parametrize("filters", [
    {"k": {"in": list(range(1000))} | {"nin": ["x"]}},
    {"k": {"in": list(range(1001))}},
    {"OR": [{"k": i} for i in range(1000)]},
    {"AND": [{"k": {"ne": i}} for i in range(1000)]},
    {f"k{i}": i for i in range(1000)},
    deep(80, "AND", {"k": 1}),
    deep(40, "NOT", {"k": 1}),
    deep(11, "OR", {"k": 1}),
    deep(10_000, "NOT", {"k": 1}),  # would be a RecursionError in a recursive parser
    {"k": {"in": ["x" * 600_000, "y" * 600_000]}},
], ids=["in+nin>1000", "in 1001", "OR 1000", "AND 1000", "1000 keys", "AND 80 deep", "NOT 40 deep", "OR 11 deep",
        "NOT 10000 deep", "1.2M characters"])
def test_filters_over_the_limits_are_validation_errors(m, filters):
    for call in (lambda: m.get_all(user_id="alice", filters=filters),
                 lambda: m.search("tea", user_id="alice", filters=filters),
                 lambda: m.delete_all(user_id="alice", filters=filters)):
        rejects(m, call, match="filter")


def at_the_limits(inner: str, more_values: int = 0, more_chars: int = 0, more_terms: int = 0,
                  more_depth: int = 0) -> dict:
    """One filter at every limit at once, with leaves that compile to the deepest SQL: MAX_DEPTH levels of
    NOT / AND / OR, MAX_TERMS conditions, MAX_IN_VALUES in/nin values and MAX_VALUE_CHARS characters."""
    # ANDed with leaves true and ORed with leaves false on our memories, so the innermost in/nin decides
    and_leaves = [{"n": {"in": [True, 2.5, None, "z"]}}, {"actor_id": {"nin": ["zz", 1]}}]
    or_leaves = [{"tags": {"icontains": "x"}}, {"note": {"contains": "y"}}, {"actor_id": {"icontains": "a"}}]

    def build(values: list, width: int) -> dict:
        core: dict = {"lang": {inner: values}}
        for i in range(F.MAX_DEPTH - 1 + more_depth):
            kind = ("NOT", "AND", "OR")[i % 3]
            leaf = (and_leaves if kind == "AND" else or_leaves)[i % 2 if kind == "AND" else i % 3]
            core = {kind: core} if kind == "NOT" else {kind: [core, leaf]}
        return {"OR": [core, {"AND": [{"n": {"gte": i}} for i in range(width)]}]}

    used = F._Budget()
    F._parse(build(["x"], 1), 0, used)  # what the rest takes; each item of the AND takes 2 conditions
    width = 1 + (F.MAX_TERMS - used.terms) // 2 + more_terms
    long = "x" * (F.MAX_VALUE_CHARS - used.chars + 1 + more_chars)
    return build([*range(F.MAX_IN_VALUES - used.in_values + more_values), long], width)


def test_the_filter_at_every_limit_is_at_every_limit():
    F.parse(at_the_limits("in"))
    for over, message in ((dict(more_values=1), "values in all"), (dict(more_chars=1), "characters"),
                          (dict(more_terms=1), "conditions"), (dict(more_depth=1), "deep")):
        with pytest.raises(ValidationError, match=message):
            F.parse(at_the_limits("in", **over))


def expected_ids(m, filters, **scope):
    node = F.parse(filters)
    return {r["id"] for r in m.get_all(**scope)["results"] if F.matches(node, r)}


def test_every_filter_that_parses_also_runs(m):
    outcomes = set()
    for inner in ("in", "nin"):
        filters = at_the_limits(inner)
        expected = expected_ids(m, filters, user_id="alice")
        outcomes.add(len(expected))
        assert {r["id"] for r in m.get_all(user_id="alice", filters=filters)["results"]} == expected
        assert {r["id"] for r in m.search("tea", user_id="alice", filters=filters)["results"]} == expected
        # naming memory_type switches off the pipeline's own memory_type condition
        typed = {**at_the_limits(inner, more_terms=-1), "memory_type": "*"}
        assert {r["id"] for r in m.get_all(user_id="alice", filters=typed)["results"]} == expected
        assert m.delete_all(user_id="nobody", filters=filters)["deleted"] == 0
    assert outcomes == {0, 2}  # the filter decides something
    assert m.delete_all(user_id="alice", filters=at_the_limits("in"))["deleted"] == 2
    assert m.get_all(user_id="bob")["total"] == 1


async def test_every_filter_that_parses_also_runs_async(amemory):
    await amemory.add("I like tea", user_id="alice", infer=False)
    for inner, count in (("in", 1), ("nin", 0)):  # as the sync test finds it with F.matches
        filters = at_the_limits(inner)
        assert (await amemory.get_all(user_id="alice", filters=filters))["total"] == count
        assert len((await amemory.search("tea", user_id="alice", filters=filters))["results"]) == count
    assert (await amemory.delete_all(user_id="alice", filters=at_the_limits("in")))["deleted"] == 1


@pytest.mark.parametrize("values", [
    [1, 1.0, True, False, 0, "1", None, -2**63, 2**63 - 1, 1e300],
    [str(i) for i in range(F.MAX_IN_VALUES)],
    list(range(F.MAX_IN_VALUES)),
])
def test_in_lists_match_as_equality_does(m, values):
    mid = an_id(m)
    for stored in (1, 1.0, True, False, 0, "1", None, 2**63 - 1, [1], {"a": 1}):
        m.update(mid, metadata={"n": stored})
        for op in ("in", "nin"):
            filters = {"n": {op: values}}
            found = {r["id"] for r in m.get_all(user_id="alice", filters=filters)["results"]}
            assert found == expected_ids(m, filters, user_id="alice"), (stored, op)
        equal = {r["id"] for v in values for r in m.get_all(user_id="alice", filters={"n": {"eq": v}})["results"]}
        assert equal == expected_ids(m, {"n": {"in": values}}, user_id="alice"), stored


# ------------------------------------------------------------------ timestamps

class Broken(tzinfo):
    def utcoffset(self, dt):
        raise RuntimeError("no offset today")


@pytest.mark.parametrize("value", [
    1e20, -1e20, 10**30, -10**30, inputs.MAX_EPOCH_SECONDS + 1, inputs.MIN_EPOCH_SECONDS - 1, float("-inf"),
    "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
    "9999-12-31T23:00:00-05:00",  # after year 9999 in UTC
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    datetime(2026, 1, 1, tzinfo=Broken()),
    "2026-13-01", "\ud800", "", "2026-01-01T00:00:00\x00",
])
def test_timestamps_out_of_range_are_validation_errors(m, value):
    rejects(m, lambda: m.add("hi", user_id="alice", timestamp=value, infer=False), match="timestamp")


@pytest.mark.parametrize("value, stored", [
    (inputs.MIN_EPOCH_SECONDS, "0001-01-01T00:00:00+00:00"),
    (inputs.MAX_EPOCH_SECONDS, "9999-12-31T23:59:59+00:00"),
    (1_700_000_000, "2023-11-14T22:13:20+00:00"),
    (1.5, "1970-01-01T00:00:01.500000+00:00"),
    ("9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:59.999999+00:00"),
    ("2026-03-02T09:00:00Z", "2026-03-02T09:00:00+00:00"),
    (datetime(2026, 3, 2, 9, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2026-03-02T09:00:00+05:30"),
])
def test_timestamps_within_the_range_are_stored_and_searchable(m, value, stored):
    [added] = m.add("teatime", user_id="dora", timestamp=value, infer=False)["results"]
    assert m.get(added["id"])["timestamp"] == stored
    assert m.search("teatime on 1 January", user_id="dora")["results"][0]["id"] == added["id"]


# ------------------------------------------------------------------ other parameters

@pytest.mark.parametrize("call", [
    lambda m: m.search("tea", user_id="alice", rerank="no"),
    lambda m: m.search("tea", user_id="alice", threshold=float("nan")),
    lambda m: m.add("hi", user_id="alice", memory_type=["semantic_memory"]),
    lambda m: m.add("hi", user_id="alice", memory_type="episodic_memory"),
    lambda m: m.add({"role": ["user"], "content": "hi"}, user_id="alice"),
    lambda m: m.add({"role": "user", "content": "hi", "name": "x" * 256}, user_id="alice", infer=False),
])
def test_other_parameters_are_checked(m, call):
    rejects(m, lambda: call(m))




@pytest.mark.parametrize("call", [
    lambda m: m.add("hi", user_id="alice", infer="no"),
    lambda m: m.add("hi", user_id="alice", infer=None),
    lambda m: m.add("hi", user_id="alice", infer=False, background="yes"),
    lambda m: m.add("hi", user_id="alice", infer=False, prompt="extra " + SURROGATE),
    lambda m: m.messages([SURROGATE]),
    lambda m: m.messages(["not-a-uuid"]),
    lambda m: m.messages(["00000000-0000-4000-8000-000000000000"] * (inputs.MAX_MESSAGE_IDS + 1)),
    lambda m: m.job(SURROGATE),
    lambda m: m.job(5),
    lambda m: m.retry_job([1]),
    lambda m: m.wait("junk"),
    lambda m: m.wait("00000000-0000-4000-8000-000000000000", timeout=float("nan")),
], ids=["infer str", "infer None", "background str", "prompt surrogate", "message id surrogate",
        "message id junk", "too many message ids", "job id surrogate", "job id int", "retry_job list",
        "wait junk", "wait NaN timeout"])
def test_parameters_checked_once_the_pipeline_calls_inputs(m, call):
    rejects(m, lambda: call(m))


@pytest.mark.parametrize("check, value", [
    (lambda v: inputs.flag(v, "infer"), "no"), (lambda v: inputs.flag(v, "infer"), 1),
    (lambda v: inputs.prompt(v, 100), SURROGATE), (lambda v: inputs.prompt(v, 100), "p" * 101),
    (lambda v: inputs.prompt(v, 100), ["p"]), (inputs.memory_type, "episodic_memory"), (inputs.memory_type, 3),
    (inputs.message_ids, [SURROGATE]), (inputs.message_ids, ["x"]), (inputs.message_ids, 5),
    (inputs.job_id, SURROGATE), (inputs.job_id, 5), (inputs.job_id, [1]),
    (inputs.wait_timeout, float("nan")), (inputs.wait_timeout, -1), (inputs.wait_timeout, "5"),
    (inputs.wait_timeout, float("inf")),
])
def test_the_checks_the_pipeline_is_to_call(check, value):
    with pytest.raises(ValidationError):
        check(value)


def test_those_checks_accept_what_is_valid():
    uid = "00000000-0000-4000-8000-000000000000"
    assert inputs.flag(False, "infer") is False and inputs.prompt(None, 5) is None
    assert inputs.memory_type("procedural_memory") == "procedural_memory" and inputs.memory_type(None) is None
    assert inputs.message_ids(uid) == [uid] and inputs.message_ids((uid.upper(),)) == [uid]
    assert inputs.job_id(uid) == uid and inputs.wait_timeout(None) is None and inputs.wait_timeout(2) == 2.0


# ------------------------------------------------------------------ the last-resort safety net

def broken_store(m, monkeypatch, exc):
    def fail(*args, **kwargs):
        raise exc
    monkeypatch.setattr(m._runtime.store, "list", fail)
    monkeypatch.setattr(m._runtime.store, "get", fail)


def test_an_unexpected_exception_becomes_internal_error(m, monkeypatch, caplog):
    broken_store(m, monkeypatch, ZeroDivisionError("boom"))
    with caplog.at_level(logging.ERROR, logger="memlane"):
        with pytest.raises(InternalError, match="get_all.*ZeroDivisionError: boom") as caught:
            m.get_all(user_id="alice")
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert isinstance(caught.value, MemlaneError)
    assert any(r.levelno == logging.ERROR and "get_all" in r.getMessage() for r in caplog.records)
    with pytest.raises(InternalError, match="get\\(\\)"):
        m.get("00000000-0000-4000-8000-000000000000")


def test_keyboard_interrupt_is_not_wrapped(m, monkeypatch):
    broken_store(m, monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        m.get_all(user_id="alice")


async def test_an_unexpected_exception_becomes_internal_error_async(amemory, monkeypatch):
    await amemory.add("I like tea", user_id="alice", infer=False)
    broken_store(amemory, monkeypatch, LookupError("async boom"))
    with pytest.raises(InternalError, match="get_all") as caught:
        await amemory.get_all(user_id="alice")
    assert isinstance(caught.value.__cause__, LookupError)
    broken_store(amemory, monkeypatch, asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await amemory.get_all(user_id="alice")


def test_safe_guards_methods_outside_the_drivers():
    from memlane.drivers import safe

    @safe
    def job(job_id):
        raise UnicodeEncodeError("utf-8", job_id, 0, 1, "surrogates not allowed")

    @safe
    async def ajob(job_id):
        raise sqlite3.ProgrammingError("type 'list' is not supported")

    @safe
    def fine():
        raise ValidationError("typed errors pass through")

    with pytest.raises(InternalError, match="job\\(\\)") as caught:
        job(SURROGATE)
    assert isinstance(caught.value.__cause__, UnicodeEncodeError)
    with pytest.raises(InternalError, match="ajob"):
        asyncio.run(ajob([1]))
    with pytest.raises(ValidationError):
        fine()


class Stop(Exception):
    pass


def test_what_a_callers_callback_raises_passes_unchanged(m, monkeypatch):
    def progress(done, total):
        raise Stop("the caller's own")

    with pytest.raises(Stop):
        m.reindex(batch_size=1, progress=progress)

    class Bar:
        def __call__(self, done, total):
            raise Stop("a callable object")

    with pytest.raises(Stop):
        m.reindex(batch_size=1, progress=Bar())
    # a bug elsewhere in the same call is still an InternalError
    broken_store(m, monkeypatch, ZeroDivisionError("boom"))
    monkeypatch.setattr(m._runtime.store, "reindex_page", lambda *a: 1 / 0)
    with pytest.raises(InternalError, match="reindex"):
        m.reindex(batch_size=1, progress=lambda done, total: None)


async def test_what_a_callers_callback_raises_passes_unchanged_async(amemory):
    await amemory.add("I like tea", user_id="alice", infer=False)

    def progress(done, total):
        raise Stop("the caller's own")

    with pytest.raises(Stop):
        await amemory.reindex(batch_size=1, progress=progress)
