"""Behaviour of every Memory method through the real local embedder and a real SQLite file."""
import hashlib
import logging
from datetime import datetime, timedelta, timezone

import pytest

from memlane import Memory, NotFoundError, ValidationError
from memlane.pipeline import NO_LLM_WARNING

from conftest import config_for, ids_of, seed

SEARCH_KEYS = {"id", "memory", "score", "hash", "metadata", "user_id", "agent_id", "run_id", "actor_id", "role",
               "created_at", "updated_at", "timestamp", "source_message_ids"}
HISTORY_KEYS = {"id", "memory_id", "event", "old_memory", "new_memory", "actor_id", "role", "created_at",
                "updated_at"}
FACTS = ["I play the violin in a symphony orchestra", "I am allergic to peanuts and shellfish",
         "My car is a red Toyota Corolla", "I work as a nurse at the city hospital",
         "My daughter Emma turns five in June"]


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def recent(iso):
    return abs(datetime.now(timezone.utc) - datetime.fromisoformat(iso)) < timedelta(minutes=5)


# ------------------------------------------------------------------ add

def test_add_string_stores_one_user_memory(memory):
    result = memory.add("I moved to Lisbon", user_id="alice", infer=False)
    assert result["relations"] == []
    [item] = result["results"]
    assert (item["event"], item["memory"], item["role"]) == ("ADD", "I moved to Lisbon", "user")
    stored = memory.get(item["id"])
    assert stored["memory"] == "I moved to Lisbon"
    assert (stored["user_id"], stored["agent_id"], stored["run_id"]) == ("alice", None, None)
    assert stored["role"] == "user" and stored["actor_id"] is None
    assert stored["hash"] == md5("I moved to Lisbon")
    assert stored["metadata"] == {} and stored["updated_at"] is None and stored["timestamp"] is None
    assert recent(stored["created_at"])


def test_add_dict_keeps_name_as_actor_id_and_role(memory):
    [item] = memory.add({"role": "assistant", "content": "Lisbon is lovely in spring", "name": "Guide"},
                        user_id="alice", infer=False)["results"]
    stored = memory.get(item["id"])
    assert (stored["role"], stored["actor_id"]) == ("assistant", "Guide")
    assert (item["role"], item["actor_id"]) == ("assistant", "Guide")


def test_add_list_skips_system_messages_and_keeps_each_turn(memory):
    result = memory.add([{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "I adopted a cat named Pixel", "name": "Alice"},
                         {"role": "assistant", "content": "Pixel is a great name!"}], user_id="alice", infer=False)
    assert [(r["memory"], r["role"], r["actor_id"]) for r in result["results"]] == [
        ("I adopted a cat named Pixel", "user", "Alice"), ("Pixel is a great name!", "assistant", None)]
    listed = memory.get_all(user_id="alice")
    assert listed["total"] == 2
    assert "You are a helpful assistant." not in [r["memory"] for r in listed["results"]]


def test_add_stores_a_detached_copy_of_metadata(memory):
    meta = {"source": "chat", "tags": ("pets", "home"), "nested": {"score": 1.5, "ok": True}, "none": None}
    [item] = memory.add("I adopted a cat", user_id="alice", metadata=meta, infer=False)["results"]
    meta["source"] = "changed after the call"
    assert memory.get(item["id"])["metadata"] == {"source": "chat", "tags": ["pets", "home"],
                                                  "nested": {"score": 1.5, "ok": True}, "none": None}


@pytest.mark.parametrize("given, stored", [
    ("2026-03-02T09:00:00Z", "2026-03-02T09:00:00+00:00"),
    ("2026-03-02T11:00:00+02:00", "2026-03-02T11:00:00+02:00"),
    (datetime(2020, 1, 1, 12, 30), "2020-01-01T12:30:00+00:00"),  # naive is taken as UTC
    (datetime(2020, 1, 1, 12, 30, tzinfo=timezone(timedelta(hours=-5))), "2020-01-01T12:30:00-05:00"),
    (1_700_000_000, "2023-11-14T22:13:20+00:00"),
    (0.5, "1970-01-01T00:00:00.500000+00:00"),
])
def test_timestamp_is_event_time_kept_apart_from_created_at(memory, given, stored):
    [item] = memory.add("It happened then", user_id="alice", timestamp=given, infer=False)["results"]
    got = memory.get(item["id"])
    assert got["timestamp"] == stored
    assert got["created_at"] != got["timestamp"] and recent(got["created_at"])
    # the logged source message carries the same event time
    [message] = memory.messages(got["source_message_ids"])
    assert message["timestamp"] == stored


# ------------------------------------------------------------------ search

def test_search_result_shape_scores_and_order(memory):
    seed(memory, FACTS, user_id="alice")
    result = memory.search("What car do I drive?", user_id="alice")
    assert result["relations"] == []
    hits = result["results"]
    assert len(hits) == len(FACTS)
    for hit in hits:
        assert SEARCH_KEYS <= set(hit), SEARCH_KEYS - set(hit)
        assert "embedding" not in hit and "context" not in hit
        assert isinstance(hit["score"], float) and 0.0 <= hit["score"] <= 1.0
        assert hit["user_id"] == "alice" and len(hit["source_message_ids"]) == 1
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("query, expected", [
    ("What car do I drive?", "My car is a red Toyota Corolla"),
    ("food allergies", "I am allergic to peanuts and shellfish"),
    ("what is my job", "I work as a nurse at the city hospital"),
    ("which musical instrument do I play", "I play the violin in a symphony orchestra"),
    ("when is my kid's birthday", "My daughter Emma turns five in June"),
])
def test_relevant_memory_ranks_first(memory, query, expected):
    seed(memory, FACTS, user_id="alice")
    hits = memory.search(query, user_id="alice")["results"]
    assert hits[0]["memory"] == expected
    assert hits[0]["score"] > hits[1]["score"]


def test_threshold_cuts_on_score(memory):
    seed(memory, FACTS, user_id="alice")
    everything = memory.search("food allergies", user_id="alice")["results"]
    cut = (everything[0]["score"] + everything[1]["score"]) / 2
    kept = memory.search("food allergies", user_id="alice", threshold=cut)["results"]
    assert ids_of({"results": kept}) == [everything[0]["id"]]
    assert memory.search("food allergies", user_id="alice", threshold=1.0)["results"] == []
    assert len(memory.search("food allergies", user_id="alice", threshold=0)["results"]) == len(FACTS)


def test_limit_is_respected_and_keeps_the_best(memory):
    seed(memory, [f"note number {i} about gardening" for i in range(20)], user_id="alice")
    full = memory.search("gardening notes", user_id="alice", limit=20)["results"]
    top = memory.search("gardening notes", user_id="alice", limit=5)["results"]
    assert len(full) == 20 and len(top) == 5
    assert ids_of({"results": top}) == ids_of({"results": full})[:5]
    assert len(memory.search("gardening notes", user_id="alice")["results"]) == 10  # the default


# ------------------------------------------------------------------ get / get_all

def test_get_returns_the_item_and_none_for_an_unknown_uuid(memory):
    [mid] = seed(memory, ["I like tea"], user_id="alice")
    item = memory.get(mid)
    assert item["id"] == mid and item["memory"] == "I like tea" and "score" not in item
    assert memory.get("00000000-0000-4000-8000-000000000000") is None
    assert memory.get(mid.upper()) == item  # any spelling of the same UUID


def test_get_all_pages_reach_every_memory_once(memory):
    ids = seed(memory, [f"memory number {i}" for i in range(150)], user_id="alice")
    ids += seed(memory, [f"memory number {i}" for i in range(150, 250)], user_id="alice")
    seen = []
    for offset in (0, 100, 200):
        page = memory.get_all(user_id="alice", limit=100, offset=offset)
        assert page["total"] == 250
        seen += ids_of(page)
    assert len(seen) == 250 and len(set(seen)) == 250
    assert seen == ids  # oldest first, in insertion order
    past_the_end = memory.get_all(user_id="alice", limit=100, offset=250)
    assert past_the_end == {"results": [], "total": 250}
    assert memory.get_all(user_id="alice")["total"] == 250 and len(memory.get_all(user_id="alice")["results"]) == 100


# ------------------------------------------------------------------ update

def test_update_text_is_reembedded_and_reindexed(memory):
    ids = seed(memory, FACTS, user_id="alice")
    violin = ids[0]
    before = memory.search("violin orchestra", user_id="alice", threshold=0.3)["results"]
    assert ids_of({"results": before}) == [violin]
    old = memory.get(violin)

    result = memory.update(violin, "I go rock climbing on weekends")
    assert result == {"message": "Memory updated successfully!", "id": violin,
                      "memory": "I go rock climbing on weekends"}
    new = memory.get(violin)
    assert new["memory"] == "I go rock climbing on weekends"
    assert new["hash"] == md5("I go rock climbing on weekends") != old["hash"]
    assert new["created_at"] == old["created_at"] and new["updated_at"] is not None and recent(new["updated_at"])
    assert new["source_message_ids"] == old["source_message_ids"]
    # the new text is found, by meaning and by keyword; the old text no longer finds it
    assert memory.search("rock climbing", user_id="alice")["results"][0]["id"] == violin
    assert memory.search("bouldering sport", user_id="alice")["results"][0]["id"] == violin
    assert violin not in ids_of(memory.search("violin orchestra", user_id="alice", threshold=0.3))
    after = {h["id"]: h["score"] for h in memory.search("violin orchestra", user_id="alice")["results"]}
    assert after[violin] < before[0]["score"] - 0.3


def test_update_metadata_only_keeps_text_hash_and_vector(memory):
    [mid] = seed(memory, ["I like green tea"], user_id="alice")
    seed(memory, ["My car is red"], user_id="alice")
    score_before = memory.search("tea", user_id="alice")["results"][0]
    memory.update(mid, metadata={"source": "edited"})
    item = memory.get(mid)
    assert item["memory"] == "I like green tea" and item["hash"] == md5("I like green tea")
    assert item["metadata"] == {"source": "edited"} and item["updated_at"] is not None
    score_after = memory.search("tea", user_id="alice")["results"][0]
    assert (score_after["id"], score_after["score"]) == (score_before["id"], score_before["score"])
    memory.update(mid, metadata={"more": 1})  # merged into it, as mem0 does
    assert memory.get(mid)["metadata"] == {"source": "edited", "more": 1}
    memory.update(mid, metadata={}, replace_metadata=True)  # replaced
    assert memory.get(mid)["metadata"] == {}
    assert [h["event"] for h in memory.history(mid)] == ["ADD", "UPDATE", "UPDATE", "UPDATE"]


def test_update_text_and_metadata_together(memory):
    [added] = memory.add("I like tea", user_id="alice", metadata={"v": 1}, infer=False)["results"]
    memory.update(added["id"], "I like coffee", metadata={"v": 2})
    item = memory.get(added["id"])
    assert (item["memory"], item["metadata"]) == ("I like coffee", {"v": 2})


# ------------------------------------------------------------------ delete / delete_all / history

def test_delete_removes_from_every_read(memory):
    keep, gone = seed(memory, ["I like tea", "I like coffee"], user_id="alice")
    assert memory.delete(gone) == {"message": "Memory deleted successfully!", "id": gone}
    assert memory.get(gone) is None
    assert ids_of(memory.get_all(user_id="alice")) == [keep]
    assert gone not in ids_of(memory.search("coffee", user_id="alice"))
    with pytest.raises(NotFoundError):
        memory.delete(gone)


def test_delete_all_refuses_without_scope_and_deletes_only_its_scope(memory):
    alice = seed(memory, ["alice likes tea", "alice likes jazz"], user_id="alice")
    bob = seed(memory, ["bob likes tea"], user_id="bob")
    alice_run = seed(memory, ["alice in run r1"], user_id="alice", run_id="r1")
    with pytest.raises(ValidationError):
        memory.delete_all()
    with pytest.raises(ValidationError):
        memory.delete_all(filters={"memory_type": "semantic_memory"})  # a filter is not a scope
    assert memory.get_all(user_id="alice")["total"] == 3

    assert memory.delete_all(user_id="alice", run_id="r1")["deleted"] == 1
    assert ids_of(memory.get_all(user_id="alice")) == alice
    result = memory.delete_all(user_id="alice")
    assert result["deleted"] == 2
    assert memory.get_all(user_id="alice")["total"] == 0
    assert ids_of(memory.get_all(user_id="bob")) == bob
    for mid in alice + alice_run:
        assert [h["event"] for h in memory.history(mid)] == ["ADD", "DELETE"]


def test_history_add_update_delete_oldest_first(memory):
    [item] = memory.add({"role": "user", "content": "I live in Lisbon", "name": "Alice"}, user_id="alice",
                        infer=False)["results"]
    mid = item["id"]
    memory.update(mid, "I live in Porto")
    memory.delete(mid)
    history = memory.history(mid)
    assert [(h["event"], h["old_memory"], h["new_memory"]) for h in history] == [
        ("ADD", None, "I live in Lisbon"), ("UPDATE", "I live in Lisbon", "I live in Porto"),
        ("DELETE", "I live in Porto", None)]
    for h in history:
        assert HISTORY_KEYS <= set(h), HISTORY_KEYS - set(h)
        assert h["memory_id"] == mid and (h["actor_id"], h["role"]) == ("Alice", "user")
    assert len({h["id"] for h in history}) == 3
    created = [h["created_at"] for h in history]
    assert created == sorted(created)
    assert history[0]["updated_at"] is None and history[1]["updated_at"] is not None
    assert memory.history("00000000-0000-4000-8000-000000000000") == []


def test_reset_empties_everything_and_the_store_stays_usable(memory):
    [mid] = seed(memory, ["I like tea"], user_id="alice")
    sources = memory.get(mid)["source_message_ids"]
    assert memory.reset() is None
    assert memory.get(mid) is None
    assert memory.get_all(user_id="alice")["total"] == 0
    assert memory.history(mid) == [] and memory.messages(sources) == []
    assert memory.message_log(user_id="alice")["total"] == 0
    [again] = seed(memory, ["I like coffee"], user_id="alice")
    assert memory.search("coffee", user_id="alice")["results"][0]["id"] == again


# ------------------------------------------------------------------ provenance

def test_source_message_ids_resolve_to_the_original_messages(memory):
    result = memory.add([{"role": "system", "content": "be brief"},
                         {"role": "user", "content": "I'm training for a marathon", "name": "Alice"},
                         {"role": "assistant", "content": "Remember to taper before race day"}],
                        user_id="alice", run_id="s1", timestamp="2026-03-02T09:00:00Z", infer=False)
    for item in result["results"]:
        stored = memory.get(item["id"])
        [message] = memory.messages(stored["source_message_ids"])
        assert message["content"] == stored["memory"]
        assert message["role"] == stored["role"]
        assert message["actor_id"] == stored["actor_id"]
        assert (message["user_id"], message["run_id"]) == ("alice", "s1")
    # all three messages are in the log, the system one included, oldest first
    log = memory.message_log(user_id="alice")
    assert [m["role"] for m in log["results"]] == ["system", "user", "assistant"] and log["total"] == 3
    assert memory.messages(["00000000-0000-4000-8000-000000000000"]) == []


# ------------------------------------------------------------------ scoping

def test_scope_given_as_kwargs_or_in_filters_is_the_same(memory):
    seed(memory, ["alice likes tea"], user_id="alice")
    seed(memory, ["bob likes tea"], user_id="bob")
    by_kwargs = memory.get_all(user_id="alice")
    assert by_kwargs == memory.get_all(filters={"user_id": "alice"})
    assert by_kwargs == memory.get_all(filters={"user_id": {"eq": "alice"}})
    assert by_kwargs == memory.get_all(filters={"AND": [{"user_id": "alice"}]})
    assert memory.search("tea", user_id="alice") == memory.search("tea", filters={"user_id": "alice"})
    assert memory.delete_all(filters={"user_id": "alice"})["deleted"] == 1
    assert memory.get_all(user_id="bob")["total"] == 1


@pytest.mark.parametrize("call", [
    lambda m: m.search("tea", user_id="alice", filters={"user_id": "bob"}),
    lambda m: m.get_all(user_id="alice", filters={"user_id": "bob"}),
    lambda m: m.get_all(agent_id="a1", filters={"AND": [{"agent_id": {"eq": "a2"}}]}),
    lambda m: m.delete_all(run_id="r1", filters={"run_id": "r2"}),
])
def test_conflicting_scope_in_kwargs_and_filters_raises(memory, call):
    seed(memory, ["alice likes tea"], user_id="alice", agent_id="a1", run_id="r1")
    with pytest.raises(ValidationError, match="conflicts"):
        call(memory)
    assert memory.get_all(user_id="alice")["total"] == 1


@pytest.mark.parametrize("key", ["user_id", "agent_id", "run_id"])
def test_scopes_are_isolated(memory, key):
    mine = seed(memory, ["I keep my spare key under the blue flowerpot"], **{key: "alice"})
    theirs = seed(memory, ["I keep my spare key under the blue flowerpot", "bob's bank PIN is 4321"],
                  **{key: "bob"})
    # the same text and the exact query words: only the caller's scope is ever seen
    hits = memory.search("spare key blue flowerpot", **{key: "alice"})["results"]
    assert ids_of({"results": hits}) == mine
    assert memory.search("bank PIN", **{key: "alice"})["results"][0]["id"] not in theirs
    assert ids_of(memory.get_all(**{key: "alice"})) == mine
    assert memory.search("anything", **{key: "carol"})["results"] == []
    with pytest.raises(ValidationError):  # a null id selects every row without one: not a scope
        memory.get_all(filters={key: None})
    assert memory.delete_all(**{key: "alice"})["deleted"] == 1
    assert ids_of(memory.get_all(**{key: "bob"})) == theirs


def test_combined_scopes_narrow(memory):
    both = seed(memory, ["alice talking to the travel agent"], user_id="alice", agent_id="travel")
    only_user = seed(memory, ["alice on her own"], user_id="alice")
    other_user = seed(memory, ["bob talking to the travel agent"], user_id="bob", agent_id="travel")
    assert set(ids_of(memory.get_all(user_id="alice"))) == set(both + only_user)
    assert ids_of(memory.get_all(user_id="alice", agent_id="travel")) == both
    assert set(ids_of(memory.get_all(agent_id="travel"))) == set(both + other_user)
    assert ids_of(memory.search("travel agent", user_id="alice", agent_id="travel")) == both


# ------------------------------------------------------------------ the no-LLM warning

def test_no_llm_warning_is_logged_once_per_instance(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="memlane")

    def warnings():
        return [r for r in caplog.records if r.name == "memlane" and r.getMessage() == NO_LLM_WARNING]

    with Memory(config_for(tmp_path / "w.db")) as m:
        m.add("stored verbatim on purpose", user_id="alice", infer=False)
        assert warnings() == []
        m.add("first inferred add", user_id="alice")
        m.add("second inferred add", user_id="alice")
        assert len(warnings()) == 1
        assert warnings()[0].levelno == logging.WARNING
        assert m.get_all(user_id="alice")["total"] == 3  # still stored, verbatim
    with Memory(config_for(tmp_path / "w.db")) as other:
        other.add("another instance warns again", user_id="alice")
    assert len(warnings()) == 2


# ------------------------------------------------------------------ known bugs in files this suite does not own

def test_deleted_text_does_not_steer_search_after_delete_all(memory, tmp_path):
    seed(memory, ["My passport number is X1234567"], user_id="alice")
    memory.delete_all(user_id="alice")
    seed(memory, ["brand new start"], user_id="alice")
    after = memory.search("passport number X1234567", user_id="alice")["results"][0]["score"]
    with Memory(config_for(tmp_path / "control.db")) as control:  # the same memory, never preceded by it
        seed(control, ["brand new start"], user_id="alice")
        clean = control.search("passport number X1234567", user_id="alice")["results"][0]["score"]
    assert after == pytest.approx(clean, abs=1e-6)


def test_deleted_turn_is_scrubbed_from_the_next_turns_context(memory, tmp_path):
    seed(memory, ["My passport number is X1234567", "brand new start"], user_id="alice")
    passport, nxt = memory.get_all(user_id="alice")["results"]
    memory.delete(passport["id"])
    after = memory.search("passport number X1234567", user_id="alice")["results"][0]
    assert after["id"] == nxt["id"]
    with Memory(config_for(tmp_path / "control.db")) as control:  # the same memory, never preceded by it
        seed(control, ["brand new start"], user_id="alice")
        clean = control.search("passport number X1234567", user_id="alice")["results"][0]["score"]
    assert after["score"] == pytest.approx(clean, abs=1e-6)
    assert [h["event"] for h in memory.history(nxt["id"])] == ["ADD"]  # a re-index is not an edit


def test_edited_turn_becomes_the_next_turns_context(memory, tmp_path):
    passport, nxt = seed(memory, ["My passport number is X1234567", "brand new start"], user_id="alice")
    before = {h["id"]: h["score"] for h in memory.search("passport number X1234567", user_id="alice")["results"]}
    memory.update(passport, "I renewed my passport")
    after = {h["id"]: h["score"] for h in memory.search("passport number X1234567", user_id="alice")["results"]}
    with Memory(config_for(tmp_path / "control.db")) as control:  # the edited text added in the first place
        _, control_next = seed(control, ["I renewed my passport", "brand new start"], user_id="alice")
        clean = {h["id"]: h["score"] for h in control.search("passport number X1234567", user_id="alice")["results"]}
    assert after[nxt] == pytest.approx(clean[control_next], abs=1e-6)
    assert abs(after[nxt] - before[nxt]) > 1e-3  # the old text no longer counts for it
    assert [h["event"] for h in memory.history(nxt)] == ["ADD"]  # a re-index is not an edit


def test_context_comes_from_exactly_the_same_scope(memory, tmp_path):
    seed(memory, ["My passport number is X1234567"], user_id="alice", agent_id="travel-bot")
    seed(memory, ["brand new start"], user_id="alice")  # another scope: no context from the agent chat
    score = memory.search("passport number X1234567", user_id="alice",
                          filters={"agent_id": {"eq": None}})["results"][0]["score"]
    with Memory(config_for(tmp_path / "control.db")) as control:
        seed(control, ["brand new start"], user_id="alice")
        clean = control.search("passport number X1234567", user_id="alice")["results"][0]["score"]
    assert score == pytest.approx(clean, abs=1e-6)
