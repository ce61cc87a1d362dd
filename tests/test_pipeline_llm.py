"""Lifecycle of LLM-driven memory (extract + reconcile in one call) with a scripted LLM: the pipeline's
logic, end to end through Memory / AsyncMemory and the real SQLite store and embedder."""
import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from memlane import AsyncMemory, LLMError, Memory, MemoryConfig, ProviderConfig, ProviderError, register_provider
from memlane.memory import detect_llm

from scripted_llm import ScriptedLLM

register_provider("llm", "scripted", ScriptedLLM)


def llm_config(path, **llm):
    return MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(path)}),
                        llm=ProviderConfig(provider="scripted", config=llm))


@pytest.fixture
def mem(tmp_path):
    m = Memory(llm_config(tmp_path / "llm.db"))
    yield m
    m.close()


def semantic(m, **scope):
    return [r["memory"] for r in m.get_all(**scope)["results"]]


def test_preference_stated_changed_and_retracted(mem):
    first = mem.add("My favourite city is Lisbon", user_id="alice")
    assert [(r["event"], r["memory"]) for r in first["results"]] == [("ADD", "Favourite city is lisbon")]
    mid = first["results"][0]["id"]

    changed = mem.add("My favourite city is Porto", user_id="alice")
    assert changed["results"] == [{"id": mid, "memory": "Favourite city is porto", "event": "UPDATE",
                                   "previous_memory": "Favourite city is lisbon"}]
    history = mem.history(mid)
    assert [(h["event"], h["old_memory"], h["new_memory"]) for h in history] == [
        ("ADD", None, "Favourite city is lisbon"), ("UPDATE", "Favourite city is lisbon", "Favourite city is porto")]
    # provenance: an UPDATE adds its new sources to the old ones
    sources = mem.messages(mem.get(mid)["source_message_ids"])
    assert [s["content"] for s in sources] == ["My favourite city is Lisbon", "My favourite city is Porto"]

    liked = mem.add("I like sushi", user_id="alice")["results"][0]
    retracted = mem.add("I don't like sushi anymore", user_id="alice")
    assert retracted["results"] == [{"id": liked["id"], "memory": "Likes sushi", "event": "DELETE"}]
    assert mem.get(liked["id"]) is None
    assert [h["event"] for h in mem.history(liked["id"])] == ["ADD", "DELETE"]
    assert semantic(mem, user_id="alice") == ["Favourite city is porto"]


@pytest.mark.parametrize("said, then, becomes", [
    ("Favourite city is lisbon", "My favourite city is Porto", "Favourite city is porto"),  # UPDATE
    ("Likes sushi", "I don't like sushi anymore", None),  # DELETE
])
def test_llm_update_or_delete_of_a_turn_retells_the_next_turn(mem, tmp_path, said, then, becomes):
    # turns stored verbatim are memories the LLM can update or delete; the turn after one kept its text as
    # context, which must follow the change like update() and delete() make it follow
    _, nxt = [r["id"] for r in mem.add([{"role": "user", "content": said}, {"role": "user", "content": "brand new"
                                        " start"}], user_id="alice", infer=False)["results"]]
    event = mem.add(then, user_id="alice")["results"][0]["event"]
    assert event == ("UPDATE" if becomes else "DELETE")
    with Memory(MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={
            "path": str(tmp_path / "control.db")}))) as control:  # as if the change had been there at first
        turns = ([becomes] if becomes else []) + ["brand new start"]
        control_next = control.add([{"role": "user", "content": t} for t in turns], user_id="alice",
                                   infer=False)["results"][-1]["id"]
        expected = stored(control, control_next)
    got = stored(mem, nxt)
    assert got[1] == expected[1] == becomes  # its context: the new text, or none after a delete
    np.testing.assert_allclose(got[0], expected[0], atol=1e-6)


def stored(m, mid):
    """(vector, context) of a memory, as the SQLite store holds them."""
    with closing(sqlite3.connect(m.config.database_path())) as conn:
        blob, context = conn.execute("SELECT embedding, context FROM memories WHERE id = ?", (mid,)).fetchone()
    return np.frombuffer(blob, dtype=np.float32), context


def test_duplicate_fact_is_none_and_one_call_per_add(mem):
    mem.add("I like green tea", user_id="bob")
    again = mem.add("I love green tea", user_id="bob")
    assert again["results"] == []
    assert semantic(mem, user_id="bob") == ["Likes green tea"]
    llm = mem._runtime.llm
    assert len(llm.requests) == 2  # one LLM call per add covers extraction and reconciliation
    # the second call was shown the existing memory under a small integer id, not a UUID
    prompt = llm.requests[1].messages[1]["content"]
    assert "0: Likes green tea" in prompt
    assert again["usage"] == {"prompt_tokens": 100, "completion_tokens": 20, "llm_calls": 1}


def test_invented_id_is_rejected_not_applied(tmp_path):
    invented = {"memory": [{"event": "UPDATE", "id": 7, "text": "Hacked", "source_messages": [0],
                            "attributed_to": "user"},
                           {"event": "DELETE", "id": 0, "text": "x", "source_messages": [],
                            "attributed_to": "user"}]}
    with Memory(llm_config(tmp_path / "x.db")) as m:
        m.add("I like chess", user_id="u")  # scripted decision: ADD; the store holds one memory
        m._runtime.llm.answers = [invented]
        result = m.add("I like go", user_id="u")
    # id 0 existed (the chess memory) so its DELETE applies; id 7 was never shown: rejected
    assert [r["event"] for r in result["results"]] == ["DELETE"]
    assert result["rejected"][0]["reason"] == "unknown memory id 7"
    with Memory(llm_config(tmp_path / "x.db")) as m:
        assert all("Hacked" not in t for t in semantic(m, user_id="u"))


def test_agent_prompt_with_agent_id_and_assistant_messages(mem):
    convo = [{"role": "user", "content": "What's your name?"},
             {"role": "assistant", "content": "My name is Orion"}]
    result = mem.add(convo, agent_id="helper-bot")
    system = mem._runtime.llm.requests[-1].messages[0]["content"]
    assert "memory manager of an AI agent" in system
    assert [r["memory"] for r in result["results"]] == ["Name is Orion"]
    item = mem.get(result["results"][0]["id"])
    assert item["role"] == "assistant" and item["agent_id"] == "helper-bot"


def test_user_prompt_keeps_assistant_recommendations(mem):
    convo = [{"role": "user", "content": "I like spicy food", "name": "Alice"},
             {"role": "assistant", "content": "I recommend the Thai place on Rua Augusta"}]
    result = mem.add(convo, user_id="alice")
    system = mem._runtime.llm.requests[-1].messages[0]["content"]
    assert "memory manager of a personal assistant" in system
    items = {r["memory"]: mem.get(r["id"]) for r in result["results"]}
    assert items["Likes spicy food"]["role"] == "user" and items["Likes spicy food"]["actor_id"] == "Alice"
    rec = items["Assistant recommended the thai place on rua augusta"]
    assert rec["role"] == "assistant"
    assert [s["content"] for s in mem.messages(rec["source_message_ids"])] == [convo[1]["content"]]


def test_relative_dates_grounded_to_conversation_timestamp(mem):
    # 2026-03-10 is a Tuesday; "last Saturday" is 2026-03-07, not a date relative to today
    result = mem.add("I love the concert last Saturday", user_id="carol", timestamp="2026-03-10T12:00:00Z")
    assert result["results"][0]["memory"] == "Likes the concert on 2026-03-07"
    assert "Conversation date: 2026-03-10" in mem._runtime.llm.requests[-1].messages[1]["content"]
    assert mem.get(result["results"][0]["id"])["timestamp"] == "2026-03-10T12:00:00+00:00"


def test_malformed_output_gets_one_repair_retry(mem):
    good = {"memory": [{"event": "ADD", "id": None, "text": "Plays cello", "source_messages": [0],
                        "attributed_to": "user"}]}
    mem._runtime.llm.answers = ["Sure! Here are the facts: plays cello", good]
    result = mem.add("I play the cello", user_id="dan")
    assert [r["memory"] for r in result["results"]] == ["Plays cello"]
    assert result["usage"]["llm_calls"] == 2
    repair = mem._runtime.llm.requests[-1].messages
    assert repair[-2] == {"role": "assistant", "content": "Sure! Here are the facts: plays cello"}
    assert "invalid" in repair[-1]["content"]


def test_code_fenced_json_is_accepted(mem):
    fenced = "```json\n" + json.dumps({"memory": [{"event": "ADD", "id": None, "text": "Owns a bike",
                                                    "source_messages": [0], "attributed_to": "user"}]}) + "\n```"
    mem._runtime.llm.answers = [fenced]
    assert mem.add("I own a bike", user_id="eve")["results"][0]["memory"] == "Owns a bike"


@pytest.mark.parametrize("bad", [["not json", "still not json"],
                                 [{"memory": [{"event": "MAYBE", "id": None, "text": "x",
                                               "source_messages": [], "attributed_to": "user"}]}] * 2,
                                 [{"facts": ["x"]}] * 2])
def test_output_that_never_validates_raises_and_keeps_input(mem, bad):
    mem._runtime.llm.answers = list(bad)
    with pytest.raises(LLMError) as info:
        mem.add("I like kayaking", user_id="fay")
    assert info.value.raw_output is not None
    assert mem.get_all(user_id="fay")["total"] == 0
    assert mem.get_all(user_id="fay", filters={"memory_type": "episodic_memory"})["total"] == 0
    log = mem.message_log(user_id="fay")
    assert [m["content"] for m in log["results"]] == ["I like kayaking"]


def test_provider_failure_raises_and_keeps_input(mem):
    mem._runtime.llm.answers = [ProviderError("openai: HTTP 503 after 4 attempt(s)", status=503)]
    with pytest.raises(ProviderError):
        mem.add("I like rowing", user_id="gus")
    assert mem.get_all(user_id="gus")["total"] == 0
    assert mem.message_log(user_id="gus")["total"] == 1


def test_episodic_turns_hidden_unless_asked(mem):
    mem.add([{"role": "user", "content": "I like jazz"}, {"role": "assistant", "content": "Nice!"}],
            user_id="hal")
    assert semantic(mem, user_id="hal") == ["Likes jazz"]
    episodic = mem.get_all(user_id="hal", filters={"memory_type": "episodic_memory"})["results"]
    assert sorted(r["memory"] for r in episodic) == ["I like jazz", "Nice!"]
    hits = mem.search("jazz", user_id="hal", filters={"memory_type": "episodic_memory"})["results"]
    assert hits and all(h["memory_type"] == "episodic_memory" for h in hits)
    assert all(h["memory_type"] != "episodic_memory" for h in mem.search("jazz", user_id="hal")["results"])


def test_procedural_memory_summarises_agent_run(mem):
    steps = [{"role": "user", "content": "Book a flight to Oslo"},
             {"role": "assistant", "content": "Searched flights: SK4035 at 09:10"},
             {"role": "assistant", "content": "Booked SK4035, confirmation ABC123"}]
    result = mem.add(steps, agent_id="travel-agent", memory_type="procedural_memory")
    item = mem.get(result["results"][0]["id"])
    assert item["memory_type"] == "procedural_memory"
    assert "ABC123" in item["memory"]
    assert len(item["source_message_ids"]) == 3
    assert mem._runtime.llm.requests[-1].schema_name == "procedural_memory"


def test_procedural_needs_agent_id(mem):
    from memlane import ValidationError
    with pytest.raises(ValidationError):
        mem.add("did things", user_id="u", memory_type="procedural_memory")


def test_custom_instructions_and_prompt_extend_the_prompt(tmp_path):
    config = llm_config(tmp_path / "c.db")
    config.custom_instructions = "Only keep food preferences."
    with Memory(config) as m:
        m.add("I like ramen", user_id="ivy", prompt="Write facts in English.")
        system = m._runtime.llm.requests[-1].messages[0]["content"]
    assert "Only keep food preferences." in system and "Write facts in English." in system


def test_infer_false_stores_verbatim_even_with_llm(mem):
    result = mem.add("I like tennis", user_id="jon", infer=False)
    assert result["results"][0]["memory"] == "I like tennis"
    assert mem._runtime.llm.requests == []


async def test_async_memory_runs_the_same_pipeline(tmp_path):
    m = AsyncMemory(llm_config(tmp_path / "a.db"))
    try:
        first = await m.add("My favourite color is blue", user_id="kim")
        second = await m.add("My favourite color is green", user_id="kim")
        assert second["results"][0]["event"] == "UPDATE"
        assert second["results"][0]["id"] == first["results"][0]["id"]
        assert [r["memory"] for r in (await m.get_all(user_id="kim"))["results"]] == ["Favourite color is green"]
    finally:
        m.close()


def test_autodetect_order_and_opt_out(monkeypatch):
    assert detect_llm() is None
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    assert detect_llm().provider == "ollama"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    assert detect_llm().provider == "anthropic"
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    assert detect_llm().provider == "openai"
    monkeypatch.setenv("MEMLANE_LLM", "none")
    assert detect_llm() is None


# ------------------------------------------------------------------ background ingestion

def test_background_add_returns_at_once_and_completes(mem):
    queued = mem.add("I like sailing", user_id="lea", background=True)
    assert set(queued) == {"job_id", "status"} and queued["status"] == "queued"
    job = mem.wait(queued["job_id"], timeout=30)
    assert job["status"] == "done" and job["attempts"] == 1
    assert job["result"]["results"][0]["memory"] == "Likes sailing"
    assert semantic(mem, user_id="lea") == ["Likes sailing"]


def test_background_bad_input_fails_before_queueing(mem):
    from memlane import ValidationError
    with pytest.raises(ValidationError):
        mem.add("", user_id="lea", background=True)
    assert mem._queue.pending() == 0


def test_background_job_retried_until_done_and_logs_input_once(tmp_path):
    config = llm_config(tmp_path / "bg.db")
    config.job_retry_base_delay = 0.01
    with Memory(config) as m:
        m._runtime.llm.answers = [ProviderError("HTTP 503", status=503), ProviderError("HTTP 429", status=429)]
        job = m.wait(m.add("I like opera", user_id="max", background=True)["job_id"], timeout=30)
        assert job["status"] == "done" and job["attempts"] == 3
        assert semantic(m, user_id="max") == ["Likes opera"]
        assert m.message_log(user_id="max")["total"] == 1  # three attempts, one logged message


def test_background_job_fails_after_max_attempts_then_retry_job(tmp_path):
    config = llm_config(tmp_path / "bgf.db")
    config.job_retry_base_delay = 0.01
    config.job_max_attempts = 2
    with Memory(config) as m:
        m._runtime.llm.answers = ["garbage"] * 4  # two attempts, each with its one repair retry
        job = m.wait(m.add("I like polo", user_id="ned", background=True)["job_id"], timeout=30)
        assert job["status"] == "failed" and job["attempts"] == 2
        assert "LLMError" in job["last_error"]
        assert m.get_all(user_id="ned")["total"] == 0
        m.retry_job(job["id"])
        assert m.wait(job["id"], timeout=30)["status"] == "done"
        assert semantic(m, user_id="ned") == ["Likes polo"]


def test_background_job_survives_a_crash_before_it_ran(tmp_path, monkeypatch):
    from memlane.jobs import Worker
    path = tmp_path / "crash.db"
    with monkeypatch.context() as patched:
        patched.setattr(Worker, "start", lambda self: None)  # the process "dies" before the worker runs
        m = Memory(llm_config(path))
        job_id = m.add("I like climbing", user_id="oli", background=True)["job_id"]
        assert m.job(job_id)["status"] == "queued"
        m.close()
    with Memory(llm_config(path)) as again:  # a new process finds the queued job and runs it
        assert again.wait(job_id, timeout=30)["status"] == "done"
        assert semantic(again, user_id="oli") == ["Likes climbing"]


async def test_async_background_add(tmp_path):
    m = AsyncMemory(llm_config(tmp_path / "abg.db"))
    try:
        queued = await m.add("I like tango", user_id="pia", background=True)
        job = await m.wait(queued["job_id"], timeout=30)
        assert job["status"] == "done"
    finally:
        m.close()
