"""Filters: every operator and combinator, on metadata and on column keys, through the SQL path
(Memory.get_all / search, which compile to SQL for the SQLite store) and the Python path (filters.matches),
plus a randomized check that the two paths agree on tricky data."""
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from memlane import Memory, MemoryConfig, ProviderConfig, ValidationError
from memlane import filters as F
from memlane.models import ChangeSet, MemoryItem, MemoryRecord
from memlane.stores.sqlite import SQLiteStore

# label -> (message, scope kwargs, metadata)
RECORDS = {
    "pie": ({"role": "user", "content": "apple pie recipe", "name": "Ann"}, {"run_id": "r1"},
            {"category": "food", "rating": 5, "price": 9.5, "tags": ["Sweet", "baked"], "vegan": False,
             "note": "Grandma's Recipe", "empty": None}),
    "salad": ({"role": "user", "content": "green salad with feta", "name": "Bob"}, {"run_id": "r1"},
              {"category": "food", "rating": 3, "price": 4, "tags": ["fresh"], "vegan": True}),
    "jazz": ({"role": "assistant", "content": "jazz concert on friday"}, {"run_id": "r2", "agent_id": "dj"},
             {"category": "music", "rating": 4, "tags": ["live", "Sweet"], "note": "front row seats"}),
    "chess": ({"role": "user", "content": "chess club meets on tuesday", "name": "Ann"}, {"run_id": "r2"},
              {"category": "games", "rating": 2.5, "level": "beginner", "venue": {"city": "Lisbon"}}),
    "plain": ({"role": "user", "content": "nothing special here"}, {}, {}),
}
ALL = set(RECORDS)

CASES = [
    # equality and its explicit spelling
    ({"category": "food"}, {"pie", "salad"}),
    ({"category": {"eq": "food"}}, {"pie", "salad"}),
    ({"rating": 4}, {"jazz"}),
    ({"rating": 5.0}, {"pie"}),
    ({"vegan": True}, {"salad"}),
    ({"vegan": False}, {"pie"}),
    ({"category": "Food"}, set()),  # eq is case-sensitive
    ({"rating": "5"}, set()),  # a string never equals a number
    ({"empty": None}, ALL),  # null in metadata counts as missing
    ({"note": {"eq": None}}, {"salad", "chess", "plain"}),
    # ne: a missing key always matches
    ({"category": {"ne": "food"}}, {"jazz", "chess", "plain"}),
    ({"note": {"ne": None}}, {"pie", "jazz"}),
    # ranges compare numbers with numbers, strings with strings
    ({"rating": {"gt": 3}}, {"pie", "jazz"}),
    ({"rating": {"gte": 3}}, {"pie", "salad", "jazz"}),
    ({"rating": {"lt": 3}}, {"chess"}),
    ({"rating": {"lte": 3}}, {"salad", "chess"}),
    ({"rating": {"gt": 2, "lt": 5}}, {"salad", "jazz", "chess"}),  # two operators on one key are ANDed
    ({"price": {"gte": 4.0}}, {"pie", "salad"}),
    ({"category": {"gte": "g"}}, {"jazz", "chess"}),
    ({"rating": {"gt": "a"}}, set()),
    ({"vegan": {"gte": 0}}, set()),  # a boolean is not a number for ranges
    # in / nin
    ({"category": {"in": ["music", "games"]}}, {"jazz", "chess"}),
    ({"rating": {"in": [5, 2.5]}}, {"pie", "chess"}),
    ({"note": {"in": [None, "front row seats"]}}, {"salad", "jazz", "chess", "plain"}),
    ({"category": {"nin": ["food"]}}, {"jazz", "chess", "plain"}),
    ({"category": {"in": []}}, set()),
    ({"category": {"nin": []}}, ALL),
    # contains: substring of a string, or an element of a list (not a substring of an element)
    ({"note": {"contains": "Recipe"}}, {"pie"}),
    ({"note": {"contains": "recipe"}}, set()),
    ({"note": {"icontains": "RECIPE"}}, {"pie"}),
    ({"tags": {"contains": "Sweet"}}, {"pie", "jazz"}),
    ({"tags": {"contains": "swe"}}, set()),
    ({"tags": {"contains": ","}}, set()),
    ({"tags": {"icontains": "sweet"}}, {"pie", "jazz"}),
    ({"venue": {"contains": "city"}}, set()),  # objects are not searched
    ({"rating": {"contains": "5"}}, set()),
    # "*": the key is present (and not null)
    ({"note": "*"}, {"pie", "jazz"}),
    ({"venue": "*"}, {"chess"}),
    ({"empty": "*"}, set()),
    # combinators
    ({"AND": [{"category": "food"}, {"rating": {"gt": 4}}]}, {"pie"}),
    ({"OR": [{"category": "music"}, {"level": "beginner"}]}, {"jazz", "chess"}),
    ({"NOT": {"category": "food"}}, {"jazz", "chess", "plain"}),
    ({"NOT": [{"category": "food"}, {"category": "music"}]}, {"chess", "plain"}),  # none of them
    ({"OR": [{"AND": [{"category": "food"}, {"NOT": {"vegan": True}}]}, {"rating": {"lt": 3}}]}, {"pie", "chess"}),
    ({"NOT": {"OR": [{"note": "*"}, {"tags": "*"}]}}, {"chess", "plain"}),
    ({"category": "food", "OR": [{"vegan": True}, {"price": {"gt": 9}}]}, {"pie", "salad"}),
    # column keys
    ({"actor_id": "Ann"}, {"pie", "chess"}),
    ({"actor_id": {"ne": "Ann"}}, {"salad", "jazz", "plain"}),
    ({"actor_id": {"icontains": "AN"}}, {"pie", "chess"}),
    ({"actor_id": {"in": ["Bob", None]}}, {"salad", "jazz", "plain"}),
    ({"actor_id": "*"}, {"pie", "salad", "chess"}),
    ({"role": "assistant"}, {"jazz"}),
    ({"role": {"nin": ["assistant"]}}, {"pie", "salad", "chess", "plain"}),
    ({"run_id": "r1"}, {"pie", "salad"}),
    ({"run_id": {"gte": "r2"}}, {"jazz", "chess"}),
    ({"agent_id": "dj"}, {"jazz"}),
    ({"agent_id": {"eq": None}}, {"pie", "salad", "chess", "plain"}),
    ({"OR": [{"run_id": "r2"}, {"actor_id": "Bob"}]}, {"salad", "jazz", "chess"}),
    ({"NOT": {"run_id": "*"}}, {"plain"}),
    ({"memory_type": "semantic_memory"}, ALL),
    ({"role": {"contains": "ist"}}, {"jazz"}),
    ({"user_id": {"gt": 1}}, set()),  # a text column is never a number
]


@pytest.fixture(scope="module")
def filter_memory(tmp_path_factory):
    config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={
        "path": str(tmp_path_factory.mktemp("filters") / "f.db")}), llm=ProviderConfig(provider="none"))
    m = Memory(config)
    labels = {}
    for label, (message, scope, metadata) in RECORDS.items():
        [item] = m.add(message, user_id="f", metadata=metadata, infer=False, **scope)["results"]
        labels[item["id"]] = label
    yield m, labels
    m.close()


@pytest.mark.parametrize("filters, expected", CASES, ids=[str(f) for f, _ in CASES])
def test_operator_on_sql_and_python_paths(filter_memory, filters, expected):
    m, labels = filter_memory
    listed = m.get_all(user_id="f", filters=filters)
    assert {labels[i["id"]] for i in listed["results"]} == expected
    assert listed["total"] == len(expected)
    hits = m.search("food music games", user_id="f", filters=filters, limit=50)["results"]
    assert {labels[h["id"]] for h in hits} == expected
    node = F.parse(filters)
    items = m.get_all(user_id="f")["results"]
    assert {labels[i["id"]] for i in items if F.matches(node, i)} == expected


def test_filters_never_widen_the_scope(filter_memory):
    m, _ = filter_memory
    assert m.get_all(user_id="someone-else", filters={"OR": [{"category": "food"}, {"user_id": "f"}]})["total"] == 0


def test_contains_on_a_metadata_list_matches_whole_elements_only(tmp_path):
    # JSON text of a list or object must not be searched as a string (it used to be, in SQL only)
    with Memory(MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(tmp_path / "c.db")}),
                             llm=ProviderConfig(provider="none"))) as m:
        m.add("tagged", user_id="u", metadata={"tags": ["alpha", "beta"], "obj": {"k": "v"}}, infer=False)
        for needle in ("alp", '"', "[", ",", "k", "alpha,beta"):
            assert m.get_all(user_id="u", filters={"tags": {"contains": needle}})["total"] == 0, needle
            assert m.get_all(user_id="u", filters={"obj": {"contains": needle}})["total"] == 0, needle
        assert m.get_all(user_id="u", filters={"tags": {"contains": "beta"}})["total"] == 1
        assert m.get_all(user_id="u", filters={"tags": '["alpha","beta"]'})["total"] == 0


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("filters", [
    {"rating": {"between": [1, 2]}},  # unknown operator
    {"rating": {"$gt": 1}},
    {"and": [{"a": 1}]},  # logical operators are upper case
    {"Or": [{"a": 1}]},
    {"AND": {"a": 1}},  # AND / OR take a list
    {"OR": []},
    {"NOT": "x"},
    {"AND": [1, 2]},
    {"tags": ["a", "b"]},  # a list needs an operator
    {"a": {"in": "abc"}},
    {"a": {"in": [[1]]}},
    {"a": {"nin": 3}},
    {"a": {"contains": 1}},
    {"a": {"icontains": None}},
    {"a": {"gt": True}},
    {"a": {"lt": None}},
    {"a": {"gte": [1]}},
    {"a": {"eq": {"b": 1}}},
    {"a": {"eq": float("nan")}},
    {"a": {"lt": float("inf")}},
    {"a": {"in": [float("nan")]}},
    {"a": 2**64},
    {"a": {}},
    {"": 1},
    {'a"b': 1},
    {1: 1},
    "user_id=alice",  # not a dict
    [{"user_id": "alice"}],
])
def test_malformed_filters_are_validation_errors(memory, filters):
    memory.add("something", user_id="alice", infer=False)
    with pytest.raises(ValidationError):
        F.parse(filters)
    with pytest.raises(ValidationError):
        memory.get_all(user_id="alice", filters=filters)
    with pytest.raises(ValidationError):
        memory.search("something", user_id="alice", filters=filters)
    with pytest.raises(ValidationError):
        memory.delete_all(user_id="alice", filters=filters)
    assert memory.get_all(user_id="alice")["total"] == 1


# ------------------------------------------------------------------ SQL and Python agree

META_KEYS = ("a", "b", "c", "tags", "flag")
COLUMN_KEYS = ("actor_id", "role", "run_id", "agent_id", "memory_type", "timestamp")
STRINGS = ("", "x", "X", "abc", "ABC", "abcd", "b", "Straße", "STRASSE", "ß", "éa", "[", '"', ",", "1", "true",
           "null", "Ann", "bob", "r1", "r2", "user", "assistant", "semantic_memory", "episodic_memory",
           "2026-01-01T00:00:00+00:00")
NUMBERS = (0, 1, -1, 2, 3, 0.5, 1.0, 2.5, -0.0, 10**15, 1e300, -7.25)
SCALARS = STRINGS + NUMBERS + (True, False, None)


def random_metadata_value(rng):
    kind = rng.random()
    if kind < 0.35:
        return rng.choice(STRINGS)
    if kind < 0.6:
        return rng.choice(NUMBERS)
    if kind < 0.7:
        return rng.choice((True, False, None))
    if kind < 0.85:
        return [rng.choice(SCALARS) for _ in range(rng.randint(0, 3))]
    return {rng.choice(("k", "x", "abc")): rng.choice(SCALARS)}


def random_records(rng, n):
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    records = []
    for i in range(n):
        metadata = {k: random_metadata_value(rng) for k in META_KEYS if rng.random() < 0.7}
        records.append(MemoryRecord(
            id=f"00000000-0000-4000-8000-{i:012d}", memory=f"memory {i}", hash="h", metadata=metadata,
            user_id="u", agent_id=rng.choice((None, "abc", "ABC", "b")), run_id=rng.choice((None, "r1", "r2")),
            actor_id=rng.choice((None, "Ann", "bob", "Straße", "x")), role=rng.choice(("user", "assistant")),
            memory_type=rng.choice(("semantic_memory", "episodic_memory")),
            created_at=(base + timedelta(seconds=i)).isoformat(), updated_at=None,
            timestamp=rng.choice((None, "2026-01-01T00:00:00+00:00", "2025-06-01T00:00:00+00:00")),
            source_message_ids=[], embedding=np.ones(4, dtype=np.float32)))
    return records


def random_leaf(rng):
    key = rng.choice(META_KEYS + COLUMN_KEYS)
    op = rng.choice(F.OPERATORS + ("exists", "bare"))
    if op == "exists":
        return {key: "*"}
    if op == "bare":
        return {key: rng.choice(SCALARS[:-1] if key == "x" else SCALARS)}
    if op in ("in", "nin"):
        return {key: {op: [rng.choice(SCALARS) for _ in range(rng.randint(0, 3))]}}
    if op in ("contains", "icontains"):
        return {key: {op: rng.choice(STRINGS)}}
    if op in ("gt", "gte", "lt", "lte"):
        return {key: {op: rng.choice(STRINGS + NUMBERS)}}
    return {key: {op: rng.choice(SCALARS)}}


def random_filter(rng, depth=0):
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return random_leaf(rng)
    if roll < 0.6:  # several keys in one dict are ANDed
        merged = {}
        for _ in range(rng.randint(2, 3)):
            merged.update(random_leaf(rng))
        return merged
    if roll < 0.75:
        return {"AND": [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if roll < 0.9:
        return {"OR": [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if rng.random() < 0.5:
        return {"NOT": random_filter(rng, depth + 1)}
    return {"NOT": [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 2))]}


def test_sql_and_python_paths_agree_on_random_data_and_filters(tmp_path):
    rng = random.Random(20260302)
    store = SQLiteStore({"path": str(tmp_path / "prop.db")})
    store.ensure_space("test", 4)
    records = random_records(rng, 80)
    store.apply(ChangeSet(inserts=records))
    # the Python path sees what the store gives back (after the JSON round trip), as get()/get_all do
    items = {r.id: MemoryItem.from_record(r).to_dict() for r in store.get([r.id for r in records])}
    assert len(items) == 80
    checked = nonempty = 0
    for _ in range(1500):
        filters = random_filter(rng)
        node = F.parse(filters)
        expected = sorted(i for i, item in items.items() if F.matches(node, item))
        assert sorted(store.ids(node)) == expected, filters
        page, total = store.list(node, 1000, 0)
        assert total == len(expected) and sorted(r.id for r in page) == expected, filters
        checked += 1
        nonempty += 0 < len(expected) < len(items)
    # the generator must produce filters that actually discriminate, or the test proves nothing
    assert checked == 1500 and nonempty > 400
    store.close()
