"""Sentence pooling: the pure splitting/pooling functions, and that stored vectors are made that way."""
from __future__ import annotations

import sqlite3
from contextlib import closing

import numpy as np
import pytest

from memlane import Memory, MemoryConfig, ProviderConfig
from memlane.config import RetrievalConfig
from memlane.embeddings.local import LocalEmbedder
from memlane.pooling import MAX_PIECES, pieces, pool, sentences


def test_sentences_split_at_end_punctuation_and_line_breaks():
    assert sentences("Hey! Long week. I went to a pride parade on Sunday.") == [
        "Hey!", "Long week.", "I went to a pride parade on Sunday."]
    assert sentences('She said "wow!" Then left.\nNew line here') == ['She said "wow!"', "Then left.", "New line here"]
    assert sentences("no boundary at all") == ["no boundary at all"]
    assert sentences("version 2.5 is out") == ["version 2.5 is out"]  # no space after the dot
    assert sentences("   ") == ["   "]  # never empty: a memory always gets a vector


def test_long_texts_are_capped_at_max_pieces():
    text = " ".join(f"Sentence {i}." for i in range(50))
    parts = sentences(text)
    assert len(parts) == MAX_PIECES
    assert parts[0] == "Sentence 0." and parts[-1].endswith("Sentence 49.")
    assert " ".join(parts) == text  # nothing dropped


def test_pieces_prefix_the_speaker_and_record_owners():
    texts = ["Hi there. I paint.", "One sentence"]
    assert pieces(texts, ["Mel", None]) == (["Mel: Hi there.", "Mel: I paint.", "One sentence"], [0, 0, 1])
    assert pieces(texts) == (["Hi there.", "I paint.", "One sentence"], [0, 0, 1])


def test_a_text_that_already_names_its_speaker_is_not_prefixed_twice():
    texts = ["Mel: Hi there. I paint.", "mel: lower case. Melanie: not the same name."]
    assert pieces(texts, ["Mel", "Mel"])[0] == [
        "Mel: Hi there.", "Mel: I paint.", "mel: lower case.", "Mel: Melanie: not the same name."]


def test_pool_is_the_normalised_mean_per_owner():
    v = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 2]], dtype=np.float32)
    out = pool(v, [0, 0, 1], 2)
    assert np.allclose(out[0], np.array([1, 1, 0]) / np.sqrt(2))
    assert np.allclose(out[1], [0, 0, 1])


def stored_vectors(m: Memory) -> dict[str, np.ndarray]:
    with closing(sqlite3.connect(m.config.database_path())) as conn:
        return {row[0]: np.frombuffer(row[1], dtype=np.float32)
                for row in conn.execute("SELECT memory, embedding FROM memories")}


@pytest.mark.parametrize("pooling", [True, False])
def test_stored_vectors_follow_the_setting(tmp_path, pooling):
    config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(tmp_path / "m.db")}),
                          retrieval=RetrievalConfig(context_weight=0, sentence_pooling=pooling))
    text = "Long week at work. I finally went to the pride parade on Sunday!"
    with Memory(config) as m:
        m.add([{"role": "user", "content": text, "name": "Caroline"}], user_id="u", infer=False)
        got = stored_vectors(m)[text]
    e = LocalEmbedder({})
    if pooling:
        parts = e.embed(["Caroline: Long week at work.", "Caroline: I finally went to the pride parade on Sunday!"])
        expected = parts.mean(axis=0) / np.linalg.norm(parts.mean(axis=0))
    else:
        expected = e.embed([text])[0]
    assert np.allclose(got, expected, atol=1e-5)


def test_update_re_embeds_with_pooling_and_without_the_speaker(memory):
    # an edited turn is no longer what was said (its text differs from its source message), so it is
    # embedded like an extracted fact, as add() and reindex() embed one: pooled, without "Mel: "
    mid = memory.add([{"role": "user", "content": "First text.", "name": "Mel"}], user_id="u",
                     infer=False)["results"][0]["id"]
    memory.update(mid, "I adopted a dog. His name is Oscar.")
    got = stored_vectors(memory)["I adopted a dog. His name is Oscar."]
    parts = LocalEmbedder({}).embed(["I adopted a dog.", "His name is Oscar."])
    expected = parts.mean(axis=0) / np.linalg.norm(parts.mean(axis=0))
    assert np.allclose(got, expected, atol=1e-5)


def test_pooling_defaults_to_the_local_embedder_only():
    assert RetrievalConfig().pooling_for("local") is True
    assert RetrievalConfig().pooling_for("openai") is False
    assert RetrievalConfig(sentence_pooling=True).pooling_for("openai") is True
    assert RetrievalConfig(sentence_pooling=False).pooling_for("local") is False
    with Memory(MemoryConfig()) as m:  # the default config: local embedder, pooled
        assert m._settings.sentence_pooling is True


def test_a_store_never_mixes_pooled_and_whole_text_vectors(tmp_path):
    from memlane import DimensionMismatchError
    path = str(tmp_path / "m.db")

    def config(pooling):
        return MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": path}),
                            retrieval=RetrievalConfig(sentence_pooling=pooling))
    with Memory(config(False)) as m:  # a store made before pooling existed, or with it off
        m.add("I like tea.", user_id="u", infer=False)
    with pytest.raises(DimensionMismatchError, match="sentence_pooling=False"):
        Memory(config(None))  # the default (pooled) must not add differently made vectors to it
    with Memory(config(False)) as m:
        assert len(m.get_all(user_id="u")["results"]) == 1
