"""mem0 code runs unchanged (issue 14): snippets written the way mem0 users write them, against mem0 1.x call
shapes (scope as keyword arguments, `limit`, `update(memory_id, data=...)`) and mem0 2.x call shapes (scope
in `filters`, `top_k`, `threshold`, `rerank`, `expiration_date`, `show_expired`), plus the platform client's
entity and batch calls (`users`, `delete_users`, `batch_update`, `batch_delete`). The only line that changes
from a mem0 program is the import (`from memlane import Memory` for `from mem0 import Memory`).

The default embedder is the packaged local one; no LLM is configured unless a test registers the scripted
one (tests/scripted_llm.py), so adds that would need one pass infer=False as mem0 users do for raw storage."""
import logging
from datetime import date, datetime, timedelta, timezone

import pytest

from memlane import AsyncMemory, Memory, NotFoundError, ValidationError, register_provider

from conftest import snapshot
from scripted_llm import ScriptedLLM

UNKNOWN = "00000000-0000-4000-8000-000000000000"
PAST = "2000-01-01"
FUTURE = "2999-12-31"
ITEM_KEYS = {"id", "memory", "hash", "metadata", "created_at", "updated_at", "user_id", "agent_id", "run_id"}
HISTORY_KEYS = {"id", "memory_id", "old_memory", "new_memory", "event", "created_at", "updated_at",
                "is_deleted", "actor_id", "role"}


class VisionLLM(ScriptedLLM):
    """The scripted LLM, which also describes images when asked (what a vision model does)."""

    described: list = []

    def generate(self, request):
        parts = [p for m in request.messages if isinstance(m.get("content"), list) for p in m["content"]]
        images = [p for p in parts if p.get("type") == "image_url"]
        if images:
            VisionLLM.described.append(images[0]["image_url"]["url"])
            from memlane.llms.base import LLMResponse
            return LLMResponse(content="A red bicycle leaning on a blue door", model="scripted-vision")
        return super().generate(request)


register_provider("llm", "scripted", ScriptedLLM)
register_provider("llm", "scripted-vision", VisionLLM)


@pytest.fixture
def m():
    # mem0: `m = Memory()`; the conftest points MEMLANE_HOME at a temporary directory.
    memory = Memory()
    yield memory
    memory.close()


def remember(m, *texts, **scope):
    """Raw memories (mem0: add(..., infer=False)), one per text; their ids in order."""
    return [m.add(t, infer=False, **scope)["results"][0]["id"] for t in texts]


def memories(result):
    return [r["memory"] for r in result["results"]]


# ------------------------------------------------------------------ the basics, as mem0 1.x code writes them

def test_mem0_1x_quickstart_runs_as_written(m):
    messages = [
        {"role": "user", "content": "I'm planning to watch a movie tonight. Any recommendations?"},
        {"role": "assistant", "content": "How about thriller movies? They can be quite engaging."},
        {"role": "user", "content": "I'm not a big fan of thriller movies but I love sci-fi movies."},
    ]
    result = m.add(messages, user_id="alice", metadata={"category": "movies"}, infer=False)
    assert [r["event"] for r in result["results"]] == ["ADD"] * 3
    assert all({"id", "memory", "event"} <= set(r) for r in result["results"])

    related = m.search("What movies does alice like?", user_id="alice", limit=3)
    assert set(related) >= {"results"} and 1 <= len(related["results"]) <= 3
    for hit in related["results"]:
        assert ITEM_KEYS | {"score"} <= set(hit)
        assert 0 <= hit["score"] <= 1 and hit["user_id"] == "alice"
        assert hit["metadata"] == {"category": "movies"}
    assert any("sci-fi" in hit["memory"] for hit in related["results"])

    all_memories = m.get_all(user_id="alice")
    assert len(all_memories["results"]) == 3 and all(ITEM_KEYS <= set(r) for r in all_memories["results"])
    memory_id = all_memories["results"][0]["id"]
    specific = m.get(memory_id)
    assert specific["id"] == memory_id and ITEM_KEYS <= set(specific)

    m.update(memory_id=memory_id, data="Likes to watch sci-fi movies on weekends")  # mem0 1.x: data=
    assert m.get(memory_id)["memory"] == "Likes to watch sci-fi movies on weekends"
    history = m.history(memory_id=memory_id)
    assert [h["event"] for h in history] == ["ADD", "UPDATE"]
    assert all(HISTORY_KEYS <= set(h) for h in history)
    assert history[1]["new_memory"] == "Likes to watch sci-fi movies on weekends"

    m.delete(memory_id=memory_id)
    assert m.get(memory_id) is None and len(m.get_all(user_id="alice")["results"]) == 2
    m.delete_all(user_id="alice")
    assert m.get_all(user_id="alice")["results"] == []
    m.add("I like tea", user_id="bob", infer=False)
    m.reset()
    assert m.get_all(user_id="bob")["results"] == []


def test_add_takes_a_string_a_message_dict_and_a_list(m):
    assert memories(m.add("Likes tea", user_id="u", infer=False)) == ["Likes tea"]
    assert memories(m.add({"role": "user", "content": "Likes cake"}, user_id="u", infer=False)) == ["Likes cake"]
    assert memories(m.add([{"role": "user", "content": "Likes jam"}], user_id="u", infer=False)) == ["Likes jam"]
    assert sorted(memories(m.get_all(user_id="u"))) == ["Likes cake", "Likes jam", "Likes tea"]


def test_search_with_scope_and_metadata_filters_1x(m):
    m.add("I love Italian food", user_id="alice", agent_id="chef", metadata={"category": "food"}, infer=False)
    m.add("I play tennis on Sundays", user_id="alice", metadata={"category": "sport"}, infer=False)
    m.add("I love Thai food", user_id="bob", metadata={"category": "food"}, infer=False)
    found = m.search("food", user_id="alice", filters={"category": "food"})
    assert memories(found) == ["I love Italian food"]
    assert memories(m.search("food", user_id="alice", agent_id="chef")) == ["I love Italian food"]
    assert memories(m.get_all(user_id="alice", filters={"category": "sport"})) == ["I play tennis on Sundays"]


def test_inferred_add_with_an_llm_from_a_mem0_config_dict(tmp_path):
    config = {"llm": {"provider": "scripted", "config": {"temperature": 0.1}},
              "history_db_path": str(tmp_path / "history.db"), "version": "v1.1"}
    m = Memory.from_config(config)
    try:
        result = m.add([{"role": "user", "content": "I like chess"}], user_id="alice")
        assert [(r["memory"], r["event"]) for r in result["results"]] == [("Likes chess", "ADD")]
        assert memories(m.search("chess", filters={"user_id": "alice"}, top_k=5)) == ["Likes chess"]
    finally:
        m.close()


# ------------------------------------------------------------------ mem0 2.x call shapes

def test_mem0_2x_search_and_get_all_with_filters_top_k_threshold_rerank(m):
    remember(m, "I play the violin", "I play the piano", "I play the drums", "My car is red", user_id="alex")
    hits = m.search("What instruments do I play?", filters={"user_id": "alex"}, top_k=2, threshold=0.1,
                    rerank=True)
    assert len(hits["results"]) <= 2 and all(h["score"] >= 0.1 for h in hits["results"])
    assert len(m.search("instruments", filters={"user_id": "alex"}, top_k=2)["results"]) == 2
    assert len(m.get_all(filters={"user_id": "alex"}, top_k=3)["results"]) == 3
    assert len(m.get_all(filters={"user_id": "alex"})["results"]) == 4


def test_top_k_is_limit_by_another_name(m):
    remember(m, "one", "two", "three", user_id="u")
    assert len(m.search("number", user_id="u", top_k=2, limit=2)["results"]) == 2
    assert len(m.get_all(user_id="u", top_k=1, limit=1)["results"]) == 1
    with pytest.raises(ValidationError, match="top_k"):
        m.search("number", user_id="u", top_k=2, limit=3)
    with pytest.raises(ValidationError, match="top_k"):
        m.get_all(user_id="u", top_k=5, limit=1)
    with pytest.raises(ValueError):
        m.search("number", user_id="u", top_k=0)


def test_threshold_is_accepted_with_mem0s_meaning(m):
    remember(m, "I play the violin", "My car is red", user_id="u")
    everything = m.search("violin", user_id="u", threshold=0.0)["results"]
    for cut in (0.1, 0.5):
        kept = m.search("violin", user_id="u", threshold=cut)["results"]
        assert [h["id"] for h in kept] == [h["id"] for h in everything if h["score"] >= cut]
    assert m.search("violin", user_id="u", threshold=1.0)["results"] == []


def test_rerank_true_without_a_reranker_searches_and_says_so_at_debug(m, caplog):
    remember(m, "I play the violin", "My car is red", user_id="u")
    with caplog.at_level(logging.DEBUG, logger="memlane"):
        reranked = m.search("violin", user_id="u", rerank=True)
    assert reranked == m.search("violin", user_id="u", rerank=False)
    notes = [r for r in caplog.records if "rerank" in r.getMessage()]
    assert notes and all(r.levelno == logging.DEBUG for r in notes)
    with pytest.raises(ValidationError, match="rerank"):
        m.search("violin", user_id="u", rerank="yes")


def test_update_text_metadata_and_data_alias(m):
    [mid] = remember(m, "Likes tea", user_id="u")
    assert m.update(mid, "Likes green tea")["message"] == "Memory updated successfully!"
    m.update(memory_id=mid, text="Likes jasmine tea")
    assert m.get(mid)["memory"] == "Likes jasmine tea"
    m.update(mid, data="Likes oolong tea")
    assert m.get(mid)["memory"] == "Likes oolong tea"
    m.update(mid, text="Likes black tea", data="Likes black tea")  # the same value twice is fine
    with pytest.raises(ValidationError, match="data"):
        m.update(mid, text="Likes coffee", data="Likes cocoa")
    with pytest.raises(ValueError):
        m.update(mid)
    assert m.get(mid)["memory"] == "Likes black tea"


# ------------------------------------------------------------------ scope inside any filter form

def test_a_scope_inside_or_and_in_is_a_scope(m):
    [a] = remember(m, "alice likes tea", user_id="a")
    [b] = remember(m, "bob the agent likes coffee", agent_id="b")
    [c] = remember(m, "carol likes juice", user_id="c")
    either = {"OR": [{"user_id": "a"}, {"agent_id": "b"}]}
    assert {r["id"] for r in m.get_all(filters=either)["results"]} == {a, b}
    assert {r["id"] for r in m.search("likes", filters=either)["results"]} == {a, b}
    assert {r["id"] for r in m.get_all(filters={"user_id": {"in": ["a", "c"]}})["results"]} == {a, c}
    assert {r["id"] for r in m.get_all(filters={"AND": [{"user_id": "a"}, {"k": {"ne": 1}}]})["results"]} == {a}
    nested = {"OR": [{"AND": [{"user_id": "a"}, {"k": {"ne": 1}}]}, {"run_id": {"eq": "r"}}]}
    assert {r["id"] for r in m.get_all(filters=nested)["results"]} == {a}
    m.delete_all(filters=either)
    assert {r["id"] for r in m.get_all(filters={"user_id": {"in": ["a", "c"]}})["results"]} == {c}


@pytest.mark.parametrize("filters", [
    {"OR": [{"user_id": "a"}, {"category": "x"}]},  # one branch is not scoped: it reaches every tenant
    {"NOT": {"user_id": "a"}},
    {"user_id": {"ne": "a"}},
    {"user_id": None},
    {"category": "x"},
])
def test_a_filter_that_does_not_pin_a_scope_is_refused(m, filters):
    remember(m, "alice likes tea", user_id="a")
    with pytest.raises(ValidationError, match="user_id, agent_id, run_id"):
        m.get_all(filters=filters)
    with pytest.raises(ValidationError, match="user_id, agent_id, run_id"):
        m.search("tea", filters=filters)
    with pytest.raises(ValidationError, match="user_id, agent_id, run_id"):
        m.delete_all(filters=filters)


# ------------------------------------------------------------------ update(metadata=...) merges

def test_update_metadata_merges_none_removes_and_replace_metadata_replaces(m):
    [mid] = [m.add("Likes tea", user_id="u", metadata={"a": 1, "b": 2}, infer=False)["results"][0]["id"]]
    m.update(mid, metadata={"b": 3, "c": 4})
    assert m.get(mid)["metadata"] == {"a": 1, "b": 3, "c": 4}
    m.update(mid, metadata={"a": None})
    assert m.get(mid)["metadata"] == {"b": 3, "c": 4}
    m.update(mid, metadata={"z": 1}, replace_metadata=True)
    assert m.get(mid)["metadata"] == {"z": 1}
    m.update(mid, metadata={}, replace_metadata=True)
    assert m.get(mid)["metadata"] == {}
    history = m.history(mid)
    assert [(h["old_metadata"], h["new_metadata"]) for h in history[1:]] == [
        ({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}), ({"a": 1, "b": 3, "c": 4}, {"b": 3, "c": 4}),
        ({"b": 3, "c": 4}, {"z": 1}), ({"z": 1}, {})]
    with pytest.raises(ValidationError, match="replace_metadata"):
        m.update(mid, text="Likes coffee", replace_metadata=True)  # replace with what?


# ------------------------------------------------------------------ expiration_date

def test_expired_memories_are_hidden_unless_show_expired(m):
    [old] = [m.add("Has a cold", user_id="u", expiration_date=PAST, infer=False)["results"][0]["id"]]
    [new] = [m.add("Is on holiday in Rome", user_id="u", expiration_date=FUTURE, infer=False)["results"][0]["id"]]
    [today] = [m.add("Is at the dentist today", user_id="u", infer=False,
                     expiration_date=datetime.now(timezone.utc).date())["results"][0]["id"]]
    [plain] = remember(m, "Likes tea", user_id="u")
    visible = {r["id"] for r in m.get_all(filters={"user_id": "u"})["results"]}
    assert visible == {new, today, plain}
    assert old not in {r["id"] for r in m.search("cold", filters={"user_id": "u"})["results"]}
    assert old in {r["id"] for r in m.get_all(filters={"user_id": "u"}, show_expired=True)["results"]}
    assert old in {r["id"] for r in m.search("cold", user_id="u", show_expired=True)["results"]}
    # get() by id still answers, with the date (as mem0 does)
    assert m.get(old)["expiration_date"] == PAST and m.get(new)["expiration_date"] == FUTURE
    assert "expiration_date" not in m.get(plain)


def test_update_sets_and_clears_expiration_date(m):
    [mid] = remember(m, "Is in Paris this week", user_id="u")
    m.update(mid, expiration_date=PAST)
    assert m.get_all(user_id="u")["results"] == []
    m.update(mid, expiration_date=None)  # mem0: None clears it
    assert [r["id"] for r in m.get_all(user_id="u")["results"]] == [mid]
    assert "expiration_date" not in m.get(mid)
    m.update(mid, expiration_date=date(2999, 1, 1))
    assert m.get(mid)["expiration_date"] == "2999-01-01"
    m.update(mid, "Is in Lyon this week", {"city": "Lyon"}, FUTURE)  # mem0 2.x's positional order
    assert (m.get(mid)["memory"], m.get(mid)["metadata"], m.get(mid)["expiration_date"]) == (
        "Is in Lyon this week", {"city": "Lyon"}, FUTURE)


def test_a_datetime_expires_with_its_date_as_in_mem0(m):
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    in_an_hour = datetime.now(timezone.utc) + timedelta(hours=1)
    [gone] = [m.add("Was in a meeting", user_id="u", expiration_date=yesterday, infer=False)["results"][0]["id"]]
    [kept] = [m.add("Is in a meeting", user_id="u", expiration_date=in_an_hour.isoformat(),
                    infer=False)["results"][0]["id"]]
    assert [r["id"] for r in m.get_all(user_id="u")["results"]] == [kept]
    assert {r["id"] for r in m.get_all(user_id="u", show_expired=True)["results"]} == {gone, kept}
    assert m.get(kept)["expiration_date"] == in_an_hour.date().isoformat()


@pytest.mark.parametrize("bad", ["next tuesday", "2024-13-01", 20240101, True])
def test_an_unreadable_expiration_date_is_refused(m, bad):
    before = snapshot(m)
    with pytest.raises(ValidationError, match="expiration_date"):
        m.add("Likes tea", user_id="u", expiration_date=bad, infer=False)
    assert snapshot(m) == before


def test_an_inferred_add_carries_its_expiration_and_expired_facts_are_not_known_to_the_llm(tmp_path):
    with Memory.from_config({"llm": {"provider": "scripted"}, "history_db_path": str(tmp_path / "x.db")}) as m:
        [old] = m.add("I like chess", user_id="u", expiration_date=PAST)["results"]
        assert (old["event"], m.get(old["id"])["expiration_date"]) == ("ADD", PAST)
        # the expired fact is not shown to the LLM, so telling it again adds it again (not "already known")
        [new] = m.add("I like chess", user_id="u")["results"]
        assert new["event"] == "ADD" and new["id"] != old["id"]
        assert [r["id"] for r in m.get_all(user_id="u")["results"]] == [new["id"]]


def test_a_background_add_keeps_content_parts_and_expiration(m):
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
    job = m.add([{"role": "user", "content": [{"type": "text", "text": "My cat Tom"}, image]}], user_id="u",
                infer=False, expiration_date=FUTURE, background=True)
    done = m.wait(job["job_id"], timeout=60)
    assert done["status"] == "done"
    [item] = m.get_all(user_id="u")["results"]
    assert (item["memory"], item["expiration_date"]) == ("My cat Tom", FUTURE)
    assert m.message_log(user_id="u")["results"][0]["content_parts"][1] == image


# ------------------------------------------------------------------ users(), delete_users()

def entities(m):
    return {(e["type"], e["name"]): e["total_memories"] for e in m.users()["results"]}


def test_users_lists_every_user_agent_and_run_with_counts(m):
    remember(m, "alice likes tea", "alice likes cake", user_id="alice")
    remember(m, "alice asked the planner", user_id="alice", agent_id="planner")
    remember(m, "bob in a session", user_id="bob", run_id="s1")
    assert entities(m) == {("user", "alice"): 3, ("user", "bob"): 1, ("agent", "planner"): 1,
                           ("run", "s1"): 1}
    for entity in m.users()["results"]:
        assert {"id", "name", "type", "total_memories", "created_at", "updated_at"} <= set(entity)


def test_delete_users_deletes_one_entitys_memories(m):
    remember(m, "alice likes tea", user_id="alice")
    remember(m, "alice asked the planner", user_id="alice", agent_id="planner")
    [bob] = remember(m, "bob likes jam", user_id="bob")
    result = m.delete_users(agent_id="planner")
    assert "message" in result
    assert entities(m) == {("user", "alice"): 1, ("user", "bob"): 1}
    m.delete_users(user_id="alice")
    assert entities(m) == {("user", "bob"): 1}
    assert [h["event"] for h in m.history(bob)] == ["ADD"]
    with pytest.raises(ValueError):  # mem0: an entity that does not exist is an error
        m.delete_users(user_id="alice")


def test_delete_users_without_arguments_deletes_every_entity_as_mem0_does(m):
    [a] = remember(m, "alice likes tea", user_id="alice")
    remember(m, "bob in a session", user_id="bob", run_id="s1")
    m.delete_users()
    assert m.users()["results"] == []
    assert [h["event"] for h in m.history(a)] == ["ADD", "DELETE"]
    m.delete_users()  # nothing left: nothing to do


# ------------------------------------------------------------------ batch_update, batch_delete

def test_batch_update_and_batch_delete_in_mem0s_shapes(m):
    ids = remember(m, "Likes tea", "Likes cake", "Likes jam", user_id="u")
    result = m.batch_update([{"memory_id": ids[0], "text": "Likes green tea"},
                             {"memory_id": ids[1], "text": "Likes cheesecake", "metadata": {"k": 1}}])
    assert "message" in result
    assert (m.get(ids[0])["memory"], m.get(ids[1])["memory"]) == ("Likes green tea", "Likes cheesecake")
    assert m.get(ids[1])["metadata"] == {"k": 1}
    assert [h["event"] for h in m.history(ids[0])] == ["ADD", "UPDATE"]
    m.batch_delete([{"memory_id": ids[0]}, {"memory_id": ids[2]}])
    assert memories(m.get_all(user_id="u")) == ["Likes cheesecake"]
    assert [h["event"] for h in m.history(ids[2])] == ["ADD", "DELETE"]


@pytest.mark.parametrize("call", [
    lambda m, ids: m.batch_update([{"memory_id": ids[0], "text": "changed"}, {"memory_id": UNKNOWN, "text": "x"}]),
    lambda m, ids: m.batch_delete([{"memory_id": ids[0]}, {"memory_id": UNKNOWN}]),
    lambda m, ids: m.batch_update([{"memory_id": ids[0], "text": "a"}, {"memory_id": ids[0], "text": "b"}]),
    lambda m, ids: m.batch_update([{"memory_id": ids[0]}]),
    lambda m, ids: m.batch_update([{"id": ids[0], "text": "a"}]),
    lambda m, ids: m.batch_delete([{"memory_id": "not-a-uuid"}]),
    lambda m, ids: m.batch_delete([{"memory_id": ids[0]}] * 1001),
    lambda m, ids: m.batch_update({"memory_id": ids[0], "text": "a"}),
])
def test_a_batch_is_all_or_nothing(m, call):
    ids = remember(m, "Likes tea", "Likes cake", user_id="u")
    before = snapshot(m)
    with pytest.raises(ValueError):
        call(m, ids)
    assert snapshot(m) == before


def test_a_batch_is_one_transaction(m):
    ids = remember(m, *[f"fact {i}" for i in range(5)], user_id="u")
    applied = []
    apply = m._runtime.store.apply
    m._runtime.store.apply = lambda changes: (applied.append(changes), apply(changes))[1]
    m.batch_update([{"memory_id": i, "text": f"edited {n}"} for n, i in enumerate(ids)])
    m.batch_delete([{"memory_id": i} for i in ids])
    assert len(applied) == 2


def test_a_batch_edit_retells_the_turns_after_the_edited_ones_as_update_does(m):
    first, second, third = [r["id"] for r in m.add([{"role": "user", "content": "I moved to Porto"},
                                                    {"role": "assistant", "content": "Porto is lovely"},
                                                    {"role": "user", "content": "It is"}],
                                                   user_id="u", infer=False)["results"]]
    store = m._runtime.store
    assert [r.context for r in sorted(store.get([second, third]), key=lambda r: r.id == third)] == [
        "I moved to Porto", "Porto is lovely"]
    m.batch_update([{"memory_id": first, "text": "I moved to Braga"},
                    {"memory_id": second, "text": "Braga is lovely"}])
    assert store.get([third])[0].context == "Braga is lovely"
    assert store.get([second])[0].context is None  # an edited memory is no longer a verbatim turn


def test_batches_race_as_single_calls_do(m):
    from memlane import pipeline
    from test_races import first_read, run_with
    ids = remember(m, "one", "two", "three", user_id="u")
    # a metadata edit committed between the batch's read and its write: the batch re-reads, and keeps it
    run_with(m, pipeline.batch_update(m._settings, [{"memory_id": i, "text": f"{i} edited"} for i in ids[:2]]),
             first_read, lambda: m.update(ids[0], metadata={"kept": True}))
    assert (m.get(ids[0])["memory"], m.get(ids[0])["metadata"]) == (f"{ids[0]} edited", {"kept": True})
    # one of a batch's memories deleted meanwhile: the batch is a NotFoundError and deletes none
    before = snapshot(m)
    with pytest.raises(NotFoundError):
        run_with(m, pipeline.batch_delete(m._settings, [{"memory_id": i} for i in ids]), first_read,
                 lambda: m.delete(ids[2]))
    assert [m.get(i) is not None for i in ids] == [True, True, False]
    assert snapshot(m)["memories"] == [r for r in before["memories"] if ids[2] not in r]


# ------------------------------------------------------------------ content parts

def test_openai_content_parts_store_the_text_and_log_the_image(m):
    image = {"type": "image_url", "image_url": {"url": "https://example.com/bike.jpg"}}
    result = m.add([{"role": "user", "content": [{"type": "text", "text": "This is my new bike."}, image,
                                                 {"type": "text", "text": "I ride it to work."}]}],
                   user_id="u", infer=False)
    assert memories(result) == ["This is my new bike. I ride it to work."]
    [logged] = m.message_log(user_id="u")["results"]
    assert logged["content"] == "This is my new bike. I ride it to work."
    assert image in logged["content_parts"]
    assert m.messages(m.get(result["results"][0]["id"])["source_message_ids"])[0]["content_parts"] == \
        logged["content_parts"]


def test_an_image_only_message_is_logged_without_a_memory_when_no_llm_can_see_it(m):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    result = m.add([{"role": "user", "content": [image]}, {"role": "user", "content": "I like red"}],
                   user_id="u", infer=False)
    assert memories(result) == ["I like red"]
    log = m.message_log(user_id="u")["results"]
    assert [e["content"] for e in log] == ["", "I like red"] and log[0]["content_parts"] == [image]


def test_images_are_described_by_an_llm_with_vision(tmp_path):
    VisionLLM.described.clear()
    config = {"llm": {"provider": "scripted-vision", "config": {"enable_vision": True}},
              "history_db_path": str(tmp_path / "v.db")}
    with Memory.from_config(config) as m:
        image = {"type": "image_url", "image_url": {"url": "https://example.com/bike.jpg"}}
        result = m.add([{"role": "user", "content": [{"type": "text", "text": "Look:"}, image]}],
                       user_id="u", infer=False)
        assert VisionLLM.described == ["https://example.com/bike.jpg"]
        assert "red bicycle" in memories(result)[0] and memories(result)[0].startswith("Look:")
        [logged] = m.message_log(user_id="u")["results"]
        assert logged["content"] == "Look:" and image in logged["content_parts"]


@pytest.mark.parametrize("content", [
    [{"type": "audio", "data": "..."}],
    [{"type": "text"}],
    [{"type": "image_url", "image_url": {}}],
    [{"type": "image_url", "image_url": {"url": 3}}],
    [],
    ["plain string part"],
])
def test_malformed_content_parts_are_refused(m, content):
    with pytest.raises(ValidationError):
        m.add([{"role": "user", "content": content}], user_id="u", infer=False)


# ------------------------------------------------------------------ errors as mem0 code catches them

@pytest.mark.parametrize("call", [
    lambda m: m.delete(UNKNOWN),
    lambda m: m.update(UNKNOWN, text="x"),
    lambda m: m.update(UNKNOWN, data="x"),
])
def test_an_unknown_id_is_a_value_error_as_in_mem0(m, call):
    try:
        call(m)
    except ValueError as exc:  # mem0: "Memory with id ... not found"
        assert isinstance(exc, NotFoundError) and isinstance(exc, KeyError)
        assert "not found" in str(exc)
    else:
        pytest.fail("no error")


@pytest.mark.parametrize("call", [
    lambda m: m.add("Likes tea", user_id=" alice ", infer=False),
    lambda m: m.add("Likes tea", agent_id="bot\n", infer=False),
    lambda m: m.get_all(user_id="alice "),
    lambda m: m.search("tea", run_id=" r1"),
    lambda m: m.search("tea", filters={"user_id": " alice"}),
    lambda m: m.get_all(filters={"OR": [{"user_id": "alice"}, {"agent_id": " bot"}]}),
    lambda m: m.delete_all(user_id="alice\t"),
    lambda m: m.delete_users(user_id=" alice "),
])
def test_a_scope_id_with_surrounding_whitespace_is_an_error(m, call):
    remember(m, "Likes tea", user_id="alice")
    before = snapshot(m)
    with pytest.raises(ValidationError, match="whitespace"):
        call(m)
    assert snapshot(m) == before


# ------------------------------------------------------------------ AsyncMemory, the same calls awaited

async def test_async_memory_takes_the_same_calls():
    m = AsyncMemory()
    try:
        ids = [(await m.add(t, user_id="alex", infer=False))["results"][0]["id"]
               for t in ("I play the violin", "I play the piano", "My car is red")]
        assert len((await m.search("instrument", filters={"user_id": "alex"}, top_k=2, rerank=True,
                                   threshold=0.0))["results"]) == 2
        assert len((await m.get_all(filters={"user_id": "alex"}, top_k=1))["results"]) == 1
        await m.update(ids[0], data="I play the cello", metadata={"k": 1})
        await m.update(ids[0], metadata={"j": 2})
        assert (await m.get(ids[0]))["metadata"] == {"k": 1, "j": 2}
        await m.add("Has a cold", user_id="alex", expiration_date=PAST, infer=False)
        assert len((await m.get_all(user_id="alex"))["results"]) == 3
        assert len((await m.get_all(user_id="alex", show_expired=True))["results"]) == 4
        assert {(e["type"], e["name"], e["total_memories"]) for e in (await m.users())["results"]} == {
            ("user", "alex", 4)}
        await m.batch_update([{"memory_id": ids[1], "text": "I play the organ"}])
        await m.batch_delete([{"memory_id": ids[2]}])
        assert sorted(memories(await m.get_all(user_id="alex"))) == ["I play the cello", "I play the organ"]
        with pytest.raises(ValueError):
            await m.delete(UNKNOWN)
        await m.delete_users(user_id="alex")
        assert (await m.users())["results"] == []
    finally:
        m.close()
