"""Typed errors for bad input, and the promise that a failed call writes nothing."""
import numpy as np
import pytest

import memlane
from memlane import (ConfigurationError, DimensionMismatchError, Memory, MemoryConfig, MemlaneError, NotFoundError,
                   ProviderConfig, ValidationError, register_provider)

from conftest import config_for, seed, snapshot

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def filled(m):
    """Give `m` a little of everything (memories, an update, a delete); returns a live memory's id."""
    ids = seed(m, ["I like tea", "I live in Lisbon", "My cat is called Pixel"], user_id="alice")
    seed(m, ["bob's memory"], user_id="bob")
    m.update(ids[0], "I like green tea")
    m.delete(ids[2])
    return ids[0]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One database for every failing call below: each must leave it exactly as it was."""
    config = config_for(tmp_path_factory.mktemp("errors") / "errors.db")
    config.llm = ProviderConfig(provider="none")
    with Memory(config) as m:
        yield m, filled(m)


def assert_fails_and_writes_nothing(m, error, call):
    before = snapshot(m)
    totals = m.get_all(user_id="alice")["total"], m.get_all(user_id="bob")["total"]
    with pytest.raises(error) as caught:
        call()
    assert isinstance(caught.value, MemlaneError)
    assert str(caught.value)  # says what was wrong
    assert snapshot(m) == before
    assert (m.get_all(user_id="alice")["total"], m.get_all(user_id="bob")["total"]) == totals
    return caught.value


BAD_CALLS = {
    # missing scope
    "add without scope": lambda m, mid: m.add("I like tea", infer=False),
    "add with empty scope": lambda m, mid: m.add("I like tea", user_id="", infer=False),
    "add with blank scope": lambda m, mid: m.add("I like tea", user_id="   ", infer=False),
    "add with non-string scope": lambda m, mid: m.add("I like tea", user_id=42, infer=False),
    "add with control chars in scope": lambda m, mid: m.add("I like tea", user_id="a\nb", infer=False),
    "add with overlong scope": lambda m, mid: m.add("I like tea", user_id="u" * 256, infer=False),
    "search without scope": lambda m, mid: m.search("tea"),
    "search with only a non-scope filter": lambda m, mid: m.search("tea", filters={"category": "x"}),
    "search with a non-equality scope filter": lambda m, mid: m.search("tea", filters={"user_id": {"ne": "x"}}),
    "search with an OR branch without a scope": lambda m, mid: m.search(
        "tea", filters={"OR": [{"user_id": "alice"}, {"category": "x"}]}),
    "get_all without scope": lambda m, mid: m.get_all(),
    "get_all with a null scope filter": lambda m, mid: m.get_all(filters={"user_id": None}),
    "delete_all without scope": lambda m, mid: m.delete_all(),
    "delete_all with scope '*'": lambda m, mid: m.delete_all(filters={"user_id": "*"}),
    "delete_all with a null scope filter": lambda m, mid: m.delete_all(filters={"agent_id": None}),
    "message_log without scope": lambda m, mid: m.message_log(),
    # empty or malformed messages
    "empty list": lambda m, mid: m.add([], user_id="alice"),
    "empty string": lambda m, mid: m.add("", user_id="alice"),
    "whitespace": lambda m, mid: m.add(" \n\t ", user_id="alice"),
    "whitespace content in a dict": lambda m, mid: m.add({"role": "user", "content": "  "}, user_id="alice"),
    "one empty message among good ones": lambda m, mid: m.add(
        [{"role": "user", "content": "fine"}, {"role": "user", "content": ""}], user_id="alice"),
    "only system messages": lambda m, mid: m.add({"role": "system", "content": "be nice"}, user_id="alice"),
    "wrong role": lambda m, mid: m.add({"role": "tool", "content": "x"}, user_id="alice"),
    "missing role": lambda m, mid: m.add({"content": "x"}, user_id="alice"),
    "role with another case": lambda m, mid: m.add({"role": "User", "content": "x"}, user_id="alice"),
    "non-string content": lambda m, mid: m.add({"role": "user", "content": 42}, user_id="alice"),
    "list content": lambda m, mid: m.add({"role": "user", "content": ["a", "b"]}, user_id="alice"),
    "missing content": lambda m, mid: m.add({"role": "user"}, user_id="alice"),
    "message not a dict": lambda m, mid: m.add(["just a string in a list"], user_id="alice"),
    "messages of another type": lambda m, mid: m.add(42, user_id="alice"),
    "blank name": lambda m, mid: m.add({"role": "user", "content": "x", "name": " "}, user_id="alice"),
    "non-string name": lambda m, mid: m.add({"role": "user", "content": "x", "name": 7}, user_id="alice"),
    # metadata
    "metadata not a dict": lambda m, mid: m.add("x", user_id="alice", metadata=["a"]),
    "metadata string": lambda m, mid: m.add("x", user_id="alice", metadata="source=chat"),
    "metadata non-string key": lambda m, mid: m.add("x", user_id="alice", metadata={1: "a"}),
    "metadata empty key": lambda m, mid: m.add("x", user_id="alice", metadata={"": "a"}),
    "metadata quote in key": lambda m, mid: m.add("x", user_id="alice", metadata={'a"b': 1}),
    "metadata reserved user_id": lambda m, mid: m.add("x", user_id="alice", metadata={"user_id": "bob"}),
    "metadata reserved memory": lambda m, mid: m.add("x", user_id="alice", metadata={"memory": "y"}),
    "metadata reserved id": lambda m, mid: m.add("x", user_id="alice", metadata={"id": "y"}),
    "metadata not JSON": lambda m, mid: m.add("x", user_id="alice", metadata={"when": object()}),
    "metadata set": lambda m, mid: m.add("x", user_id="alice", metadata={"tags": {"a", "b"}}),
    "metadata NaN": lambda m, mid: m.add("x", user_id="alice", metadata={"score": float("nan")}),
    "metadata inf nested": lambda m, mid: m.add("x", user_id="alice", metadata={"s": [1, float("inf")]}),
    "metadata too large": lambda m, mid: m.add("x", user_id="alice", metadata={"blob": "x" * 70_000}),
    "update metadata reserved": lambda m, mid: m.update(mid, metadata={"agent_id": "a"}),
    "update metadata NaN": lambda m, mid: m.update(mid, "new text", metadata={"x": float("nan")}),
    # timestamps
    "timestamp not ISO": lambda m, mid: m.add("x", user_id="alice", timestamp="yesterday"),
    "timestamp bool": lambda m, mid: m.add("x", user_id="alice", timestamp=True),
    "timestamp NaN": lambda m, mid: m.add("x", user_id="alice", timestamp=float("nan")),
    "timestamp list": lambda m, mid: m.add("x", user_id="alice", timestamp=[2026]),
    # malformed memory ids
    "get with a non-UUID": lambda m, mid: m.get("not-a-uuid"),
    "get with an int": lambda m, mid: m.get(42),
    "get with None": lambda m, mid: m.get(None),
    "update with a non-UUID": lambda m, mid: m.update("123", "new text"),
    "delete with a non-UUID": lambda m, mid: m.delete("'; DROP TABLE memories; --"),
    "history with a non-UUID": lambda m, mid: m.history("nope"),
    # update arguments
    "update with nothing": lambda m, mid: m.update(mid),
    "update to empty text": lambda m, mid: m.update(mid, ""),
    "update to whitespace": lambda m, mid: m.update(mid, "   "),
    "update to a non-string": lambda m, mid: m.update(mid, 42),
    # limit / offset / threshold / query
    "search limit 0": lambda m, mid: m.search("tea", user_id="alice", limit=0),
    "search limit negative": lambda m, mid: m.search("tea", user_id="alice", limit=-1),
    "search limit float": lambda m, mid: m.search("tea", user_id="alice", limit=2.5),
    "search limit bool": lambda m, mid: m.search("tea", user_id="alice", limit=True),
    "search limit string": lambda m, mid: m.search("tea", user_id="alice", limit="10"),
    "search limit huge": lambda m, mid: m.search("tea", user_id="alice", limit=10**6),
    "get_all limit 0": lambda m, mid: m.get_all(user_id="alice", limit=0),
    "get_all offset negative": lambda m, mid: m.get_all(user_id="alice", offset=-1),
    "get_all offset float": lambda m, mid: m.get_all(user_id="alice", offset=1.0),
    "threshold above 1": lambda m, mid: m.search("tea", user_id="alice", threshold=1.5),
    "threshold negative": lambda m, mid: m.search("tea", user_id="alice", threshold=-0.1),
    "threshold NaN": lambda m, mid: m.search("tea", user_id="alice", threshold=float("nan")),
    "threshold string": lambda m, mid: m.search("tea", user_id="alice", threshold="0.5"),
    "empty query": lambda m, mid: m.search("", user_id="alice"),
    "blank query": lambda m, mid: m.search("  ", user_id="alice"),
    "query not a string": lambda m, mid: m.search(["tea"], user_id="alice"),
    # other add() arguments
    "unknown memory_type": lambda m, mid: m.add("x", user_id="alice", memory_type="episodic_memory"),
    "prompt not a string": lambda m, mid: m.add("x", user_id="alice", prompt=["p"]),
    "message ids not a list of strings": lambda m, mid: m.messages([1, 2]),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_input_is_a_validation_error_and_writes_nothing(seeded, name):
    m, mid = seeded
    assert_fails_and_writes_nothing(m, ValidationError, lambda: BAD_CALLS[name](m, mid))


@pytest.mark.parametrize("call", [
    lambda m: m.update(UNKNOWN, "new text"),
    lambda m: m.update(UNKNOWN, metadata={"a": 1}),
    lambda m: m.delete(UNKNOWN),
], ids=["update text", "update metadata", "delete"])
def test_unknown_uuid_is_not_found_and_writes_nothing(seeded, call):
    m, _ = seeded
    error = assert_fails_and_writes_nothing(m, NotFoundError, lambda: call(m))
    assert UNKNOWN in str(error)


def test_deleted_memory_is_not_found_for_update_and_delete(memory):
    m, mid = memory, filled(memory)
    m.delete(mid)
    assert_fails_and_writes_nothing(m, NotFoundError, lambda: m.update(mid, "again"))
    assert_fails_and_writes_nothing(m, NotFoundError, lambda: m.delete(mid))


def test_oversized_message_is_rejected_at_the_configured_limit(tmp_path):
    config = config_for(tmp_path / "small.db")
    config.max_message_chars = 50
    with Memory(config) as m:
        m.add("x" * 50, user_id="alice", infer=False)  # at the limit: fine
        for call in (lambda: m.add("x" * 51, user_id="alice", infer=False),
                     lambda: m.add([{"role": "user", "content": "ok"}, {"role": "assistant", "content": "y" * 51}],
                                   user_id="alice", infer=False),
                     lambda: m.search("q" * 51, user_id="alice")):
            error = assert_fails_and_writes_nothing(m, ValidationError, call)
            assert "max_message_chars" in str(error)
        [mid] = [r["id"] for r in m.get_all(user_id="alice")["results"]]
        assert_fails_and_writes_nothing(m, ValidationError, lambda: m.update(mid, "z" * 51))


def test_error_hierarchy():
    for cls in (ValidationError, NotFoundError, ConfigurationError, DimensionMismatchError, memlane.ProviderError,
                memlane.LLMError):
        assert issubclass(cls, MemlaneError)
    assert issubclass(DimensionMismatchError, ConfigurationError)
    assert issubclass(ValidationError, ValueError) and issubclass(NotFoundError, KeyError)
    assert str(NotFoundError("memory x not found")) == "memory x not found"


# ------------------------------------------------------------------ dimension mismatch

class TinyEmbedder:
    """8-dimensional, deterministic: enough to be a different vector space."""

    model_id = "tiny-test-8"
    dimension = 8

    def __init__(self, config):
        self.config = config

    def embed(self, texts, purpose="add"):
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for row, text in enumerate(texts):
            for ch in text:
                out[row, ord(ch) % 8] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


register_provider("embedder", "tiny-test-8", TinyEmbedder)


def tiny_config(path):
    return MemoryConfig(embedder=ProviderConfig(provider="tiny-test-8"),
                        vector_store=ProviderConfig(provider="sqlite", config={"path": str(path)}))


@pytest.fixture
def db_384(tmp_path):
    path = tmp_path / "384.db"
    with Memory(config_for(path)) as m:
        seed(m, ["I like tea"], user_id="alice")
        before = snapshot(m)
    return path, before


def test_configured_dims_that_differ_from_the_embedder_raise(db_384):
    path, _ = db_384
    config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={
        "path": str(path), "embedding_model_dims": 1536}))
    with pytest.raises(DimensionMismatchError, match="1536"):
        Memory(config)


def test_another_embedder_on_an_existing_database_raises_and_changes_nothing(db_384):
    path, before = db_384
    with pytest.raises(DimensionMismatchError) as caught:
        Memory(tiny_config(path))
    assert "384" in str(caught.value) and "tiny-test-8" in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)
    with Memory(config_for(path)) as m:  # the original embedder still opens it, data intact
        assert snapshot(m) == before
        assert m.search("tea", user_id="alice")["results"][0]["memory"] == "I like tea"


def test_the_tiny_embedder_works_on_its_own_database(tmp_path):
    # so the mismatch above is about the vector space, not a broken test embedder
    with Memory(tiny_config(tmp_path / "tiny.db")) as m:
        seed(m, ["aaaa", "zzzz"], user_id="alice")
        assert m.search("aaaa", user_id="alice")["results"][0]["memory"] == "aaaa"
    with pytest.raises(DimensionMismatchError):
        Memory(config_for(tmp_path / "tiny.db"))


def test_unknown_provider_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="tiny-test-8"):  # names the ones that exist
        Memory(MemoryConfig(embedder=ProviderConfig(provider="no-such-embedder"),
                            vector_store=ProviderConfig(provider="sqlite", config={"path": str(tmp_path / "x.db")})))
    with pytest.raises(ConfigurationError):
        Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "y.db")}}, "bogus": 1})
