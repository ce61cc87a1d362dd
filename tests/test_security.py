"""Hostile input never reaches SQL as code: filter keys, values, ids, scope ids and query text with SQL and
FTS5 metacharacters either work as plain data or raise a typed error, and a caller scoped to one tenant
never sees or changes another's memories."""
import pytest

from memlane import MemlaneError
from memlane import filters as F
from memlane.stores.sqlite_filters import to_sql

from conftest import seed, snapshot

METACHARS = ["'", '"', ";", "--", "/*", "*/", ")", "(", "*", "NEAR(", ":", "AND", "OR", "NOT", "%", "_",
             "\\", "$", "[0]", ".", "'; DROP TABLE memories; --", "') OR 1=1 --", '" OR 1=1 --']
# Crafted to close the JSON path string that the filter compiler (stores/sqlite_filters.py) once spliced into
# the SQL and OR in a tautology.
INJECTED_KEYS = ["x') OR 1=1 OR json_extract(metadata, '$.x", "a' OR '1'='1", "a'b", "k') IS NOT NULL OR ('1"]


@pytest.fixture
def tenants(memory):
    seed(memory, ["alice likes green tea", "alice lives in Lisbon"], user_id="alice")
    seed(memory, ["mallory plays chess"], user_id="mallory")
    return memory


def alice_rows(m):
    return [r for r in snapshot(m)["memories"] if "alice" in r]


@pytest.mark.parametrize("key", INJECTED_KEYS)
def test_crafted_filter_key_cannot_widen_the_scope(tenants, key):
    m = tenants
    before = snapshot(m)
    for value in ("*", "x", {"ne": "x"}, {"in": ["a", None]}, {"icontains": "a"}, {"gte": 0}):
        try:
            got = m.get_all(user_id="mallory", filters={key: value})
        except MemlaneError:
            continue
        assert all(r["user_id"] == "mallory" for r in got["results"])
        found = m.search("tea", user_id="mallory", filters={key: value})
        assert all(r["user_id"] == "mallory" for r in found["results"])
        try:
            m.delete_all(user_id="mallory", filters={key: value})
        except MemlaneError:
            pass
    assert alice_rows(m) == [r for r in before["memories"] if "alice" in r]
    assert len(m.get_all(user_id="alice")["results"]) == 2


def test_quote_in_a_filter_key_is_data_not_sql(memory):
    seed(memory, ["a"], user_id="u")
    memory.update(memory.get_all(user_id="u")["results"][0]["id"], metadata={"it's": "ok"})
    assert [r["metadata"] for r in memory.get_all(user_id="u", filters={"it's": "ok"})["results"]] == \
        [{"it's": "ok"}]
    assert memory.get_all(user_id="u", filters={"it's": "no"})["results"] == []


@pytest.mark.parametrize("key", ['a"b', "a\\b", "a\x00b", "a\nb", "\ud800", "x" * 201, ""])
def test_keys_outside_the_grammar_are_validation_errors(memory, key):
    with pytest.raises(MemlaneError):
        memory.get_all(user_id="u", filters={key: "v"})
    with pytest.raises(MemlaneError):
        memory.add("hello", user_id="u", metadata={key: "v"})


def test_to_sql_never_splices_a_metadata_key():
    for key in INJECTED_KEYS + ["plain", "it's"]:
        for spec in ("*", "v", {"ne": 1}, {"in": [1, "a", None]}, {"contains": "q"}, {"icontains": "Q"},
                     {"lt": 3}):
            params: list = []
            sql = to_sql(F.parse({key: spec}), params)
            assert key not in sql
            assert sql.count("?") == len(params)


@pytest.mark.parametrize("text", METACHARS)
def test_metacharacters_in_every_position_stay_data(tenants, text):
    m = tenants
    content = f"mallory {text} note"
    added = m.add(content, user_id="mallory", metadata={"tag": text, f"k{text}"[:200]: text}
                  if '"' not in text and "\\" not in text else {"tag": text}, infer=False)
    mid = added["results"][0]["id"]
    assert m.get(mid)["memory"] == content
    assert mid in [r["id"] for r in m.get_all(user_id="mallory", filters={"tag": text})["results"]]
    for query in (text, f"{text} chess", content):
        try:
            found = m.search(query, user_id="mallory", filters={"tag": {"contains": text}})
        except MemlaneError:
            continue
        assert all(r["user_id"] == "mallory" for r in found["results"])
    # a scope id full of metacharacters is its own tenant
    seed(m, [f"scoped {text}"], user_id=f"mallory{text}")
    assert [r["memory"] for r in m.get_all(user_id=f"mallory{text}")["results"]] == [f"scoped {text}"]
    assert [r["content"] for r in m.message_log(user_id=f"mallory{text}")["results"]] == [f"scoped {text}"]
    found = m.search(text + " scoped", user_id=f"mallory{text}")["results"]
    assert all(r["user_id"] == f"mallory{text}" for r in found)
    m.update(mid, text=f"{text} edited", metadata={"tag": text})
    assert m.history(mid)[-1]["new_memory"] == f"{text} edited"
    m.delete_all(user_id=f"mallory{text}")
    assert len(m.get_all(user_id="alice")["results"]) == 2
    with pytest.raises(MemlaneError):
        m.get(text)  # not a UUID


def test_to_sql_refuses_an_operator_parse_never_makes():
    with pytest.raises(MemlaneError):
        to_sql(F.Cmp("k", "like", "%"), [])
