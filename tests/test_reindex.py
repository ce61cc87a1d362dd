"""Re-embedding a store (memlane/reindex.py): vectors made again as add() makes them, a store moved to another
vector space, an interrupted reindex that resumes, and the file refusing normal use until it is done."""
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from memlane import AsyncMemory, Memory, MemoryConfig, ProviderConfig
from memlane.errors import DimensionMismatchError, ValidationError
from memlane.models import ChangeSet
from memlane.pipeline import new_memory
from memlane.registry import register_provider

from conftest import config_for

CONVERSATION = [
    ("alice", [("Tim", "Tim: I started surfing last summer. The waves were huge."), ("Anna", "Where do you surf?")]),
    ("bob", [("Bo", "I keep bees on the roof."), ("Al", "Do they sting? I would be scared!")]),
    ("alice", [("Tim", "Mostly in Ericeira. It is an hour from Lisbon."), ("Anna", "Nice, I should try it.")]),
]


def _fill(m: Memory) -> None:
    # interleaved scopes, and a scope continued by a later add(), so contexts cross add() calls and pages
    for user, turns in CONVERSATION:
        m.add([{"role": "user", "content": text, "name": name} for name, text in turns], user_id=user, infer=False)


def _vectors(path) -> dict[str, tuple[np.ndarray, str]]:
    with closing(sqlite3.connect(path)) as conn:
        return {i: (np.frombuffer(e, dtype=np.float32), c)
                for i, e, c in conn.execute("SELECT id, embedding, context FROM memories")}


def _scramble(path) -> None:
    rng = np.random.default_rng(0)
    with closing(sqlite3.connect(path)) as conn:
        conn.create_function("memlane_half", 1, lambda b: np.frombuffer(b, np.float32).astype(np.float16).tobytes())
        for (pk,) in conn.execute("SELECT pk FROM memories").fetchall():
            conn.execute("UPDATE memories SET embedding = ? WHERE pk = ?",
                         (rng.standard_normal(384).astype(np.float32).tobytes(), pk))
        conn.commit()


def _found(m, query: str, user: str) -> list[tuple[str, float]]:
    return [(r["memory"], round(r["score"], 5)) for r in m.search(query, user_id=user)["results"]]


def _no_pooling(path) -> MemoryConfig:
    config = config_for(path)
    config.retrieval.sentence_pooling = False
    return config


@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_reindex_makes_the_vectors_add_made(tmp_path, batch_size):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        _fill(m)
        made = _vectors(path)
        assert sum(c is not None for _, c in made.values()) == 4  # contexts, so the blend is exercised
        found = _found(m, "where does Tim surf", "alice")
        _scramble(path)
        assert _found(m, "where does Tim surf", "alice") != found
        seen = []
        result = m.reindex(batch_size=batch_size, progress=lambda done, total: seen.append((done, total)))
        assert result["reindexed"] == 6
        assert seen[-1] == (6, 6) and len(seen) == -(-6 // batch_size)
        again = _vectors(path)
        for mid, (vector, context) in made.items():
            np.testing.assert_allclose(again[mid][0], vector, atol=1e-5)
            assert again[mid][1] == context
        assert _found(m, "where does Tim surf", "alice") == found  # so did the float16 copy search scans


def test_update_makes_the_vectors_reindex_makes(tmp_path):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        _fill(m)
        alice = m.get_all(user_id="alice")["results"]
        m.update(alice[0]["id"], "Tim: I took up surfing two summers ago.")  # the next turn's context changes
        m.update(alice[-1]["id"], "Nice, I should learn to surf.")  # the newest turn: no turn after it
        edited = _vectors(path)
        assert edited[alice[1]["id"]][1] == "Tim: I took up surfing two summers ago."
        assert m.reindex()["reindexed"] == 6
        for mid, (vector, context) in _vectors(path).items():
            np.testing.assert_allclose(vector, edited[mid][0], atol=1e-5)
            assert context == edited[mid][1]


def test_a_memory_that_is_not_a_turn_is_embedded_without_speaker_or_context(tmp_path):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        store = m._runtime.store
        fact = new_memory("Likes green tea", np.ones(384, np.float32) / np.sqrt(384),
                          {"user_id": "u", "agent_id": None, "run_id": None}, {}, actor_id="Tim", role="user",
                          event_time=None, sources=["not-a-logged-message"], at="2026-01-01T00:00:00Z")
        store.apply(ChangeSet(inserts=[fact]))
        m.reindex()
        got = store.get([fact.id], with_embeddings=True)[0].embedding
        expected = m._runtime.embedder.embed(["Likes green tea"])[0]  # pooled over its one sentence, no "Tim: "
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_store_moves_to_another_vector_space(tmp_path):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        _fill(m)
    with pytest.raises(DimensionMismatchError, match="reindexed"):
        Memory(_no_pooling(path))
    with Memory.reindexed(_no_pooling(path)) as m:
        moved = _vectors(path)
        found = _found(m, "where does Tim surf", "alice")
    with Memory(_no_pooling(tmp_path / "fresh.db")) as fresh:  # the same conversation added without pooling
        _fill(fresh)
        by_text = {fresh.get(i)["memory"]: v for i, v in _vectors(tmp_path / "fresh.db").items()}
        assert _found(fresh, "where does Tim surf", "alice") == found
    with Memory(_no_pooling(path)) as m:  # opens normally now
        for mid, (vector, context) in moved.items():
            fresh_vector, fresh_context = by_text[m.get(mid)["memory"]]
            np.testing.assert_allclose(vector, fresh_vector, atol=1e-5)
            assert context == fresh_context
    with pytest.raises(DimensionMismatchError):
        Memory(config_for(path))  # the old space is gone


def test_an_interrupted_reindex_blocks_the_file_and_resumes(tmp_path):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        _fill(m)

    class Stop(Exception):
        pass

    def stop_after_two(done, total):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        Memory.reindexed(_no_pooling(path), batch_size=1, progress=stop_after_two)
    for config in (_no_pooling(path), config_for(path)):  # neither space may be searched half-way
        with pytest.raises(DimensionMismatchError, match="has not finished"):
            Memory(config)
    m = Memory(_no_pooling(path), _reindexing=True)
    # the cursor was saved with the second page's request, so only the second memory is done again
    assert m.reindex(batch_size=1)["reindexed"] == 5
    m.close()
    with Memory(_no_pooling(path)) as m:
        assert len(m.get_all(user_id="alice")["results"]) == 4


class TinyEmbedder:
    """A deterministic 16-dimensional bag-of-letters embedder: a second vector space of another size."""

    model_id = "tiny-letters"
    dimension = 16

    def __init__(self, config=None):
        pass

    def embed(self, texts, purpose="add"):
        out = np.zeros((len(texts), 16), np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                out[i, ord(ch) % 16] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_reindex_to_another_dimension(tmp_path):
    register_provider("embedder", "tiny-letters", TinyEmbedder)
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        _fill(m)
    config = config_for(path)
    config.embedder = ProviderConfig(provider="tiny-letters")
    with Memory.reindexed(config) as m:
        assert {v.shape for v, _ in _vectors(path).values()} == {(16,)}
        assert len(m.search("bees", user_id="bob")["results"]) == 2
        with closing(sqlite3.connect(path)) as conn:
            assert {len(b) for (b,) in conn.execute("SELECT embedding FROM memory_vectors")} == {32}


def test_bad_batch_size_changes_nothing(tmp_path):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        _fill(m)
        before = _vectors(path)
        with pytest.raises(ValidationError, match="batch_size"):
            m.reindex(batch_size=0)
        assert {k: v[0].tobytes() for k, v in _vectors(path).items()} == {k: v[0].tobytes() for k, v in before.items()}
    with Memory(config_for(path)):
        pass  # no reindex was left unfinished


async def test_async_reindexed(tmp_path):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        _fill(m)
    am = await AsyncMemory.reindexed(_no_pooling(path))
    try:
        hits = await am.search("bees on the roof", user_id="bob")
        assert "bees" in hits["results"][0]["memory"]
    finally:
        am.close()
