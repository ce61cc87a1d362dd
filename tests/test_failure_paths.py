"""Failure and option paths a mutation run found unguarded: each test here fails when the behaviour it names
breaks (checked by breaking the code by hand; docs/mutation.md). Real parts throughout: the SQLite store,
the packaged local embedder, real local HTTP servers and the scripted LLM."""
from __future__ import annotations

import base64
import dataclasses
import json
import socket
import threading

import httpx
import numpy as np
import pytest

from memlane import Memory, MemoryConfig, ProviderConfig, ProviderError, ValidationError, register_provider
from memlane import extraction as X
from memlane.embeddings.openai import OpenAIEmbedder
from memlane.inputs import Message
from memlane.llms.base import LLMResponse
from memlane.memory import detect_llm

from conftest import seed, snapshot
from fake_embed_servers import FakeEmbedServer, Reply, fake_embed  # noqa: F401
from scripted_llm import ScriptedLLM

register_provider("llm", "scripted", ScriptedLLM)

FAST = {"retry_base_delay": 0, "retry_max_delay": 0, "timeout": 10}


def llm_config(path, **extra) -> MemoryConfig:
    return MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(path)}),
                        llm=ProviderConfig(provider="scripted"), **extra)


@pytest.fixture
def mem(tmp_path):
    m = Memory(llm_config(tmp_path / "fp.db"))
    yield m
    m.close()


def shown(m, request_index=-1) -> dict[int, str]:
    """The existing memories the reconciliation prompt showed, by the integer id it gave them."""
    from scripted_llm import parse_prompt
    prompt = m._runtime.llm.requests[request_index].messages[1]["content"]
    return parse_prompt(prompt)[1]


def decision(event, mid, text="", sources=(0,)):
    return {"event": event, "id": mid, "text": text, "source_messages": list(sources), "attributed_to": "user"}


def facts(m, **scope) -> list[str]:
    return sorted(r["memory"] for r in m.get_all(**scope)["results"])


# ================================================================== reconciliation: ids checked in code

def test_negative_id_is_rejected_not_read_from_the_end(mem):
    # Python would happily index existing[-1] (the last memory shown): the plan must refuse it
    seed(mem, ["Likes sushi", "Favourite city is lisbon"], user_id="u")
    mem._runtime.llm.answers = [{"memory": [decision("UPDATE", -1, "Hacked"), decision("DELETE", -2, "x")]}]
    result = mem.add("I like sushi and Lisbon", user_id="u")
    assert len(shown(mem)) == 2  # ids 0 and 1 were shown, so -1 and -2 would reach real memories
    assert result["results"] == []
    assert [r["reason"] for r in result["rejected"]] == ["unknown memory id -1", "unknown memory id -2"]
    assert facts(mem, user_id="u") == ["Favourite city is lisbon", "Likes sushi"]


@pytest.mark.parametrize("second", ["UPDATE", "DELETE"])
def test_a_memory_decided_twice_keeps_only_the_first_decision(mem, second):
    seed(mem, ["Favourite city is lisbon"], user_id="u")
    mem._runtime.llm.answers = [{"memory": [decision("UPDATE", 0, "Favourite city is porto"),
                                            decision(second, 0, "Favourite city is faro")]}]
    result = mem.add("My favourite city is Porto", user_id="u")
    assert [(r["event"], r["memory"]) for r in result["results"]] == [("UPDATE", "Favourite city is porto")]
    assert [r["reason"] for r in result["rejected"]] == ["memory id 0 decided twice"]
    assert result["rejected"][0]["decision"]["event"] == second
    assert facts(mem, user_id="u") == ["Favourite city is porto"]
    [mid] = [r["id"] for r in result["results"]]
    assert [h["event"] for h in mem.history(mid)] == ["ADD", "UPDATE"]


def test_delete_then_update_of_one_memory_applies_the_delete_only(mem):
    [mid] = seed(mem, ["Likes sushi"], user_id="u")
    mem._runtime.llm.answers = [{"memory": [decision("DELETE", 0, "Likes sushi"),
                                            decision("UPDATE", 0, "Likes sushi a lot")]}]
    result = mem.add("I don't like sushi anymore", user_id="u")
    assert result["results"] == [{"id": mid, "memory": "Likes sushi", "event": "DELETE"}]
    assert [r["reason"] for r in result["rejected"]] == ["memory id 0 decided twice"]
    assert mem.get(mid) is None and facts(mem, user_id="u") == []


def test_an_update_without_text_does_not_use_up_the_memory(mem):
    # the rejected empty UPDATE must not count as the memory's one decision
    seed(mem, ["Favourite city is lisbon"], user_id="u")
    mem._runtime.llm.answers = [{"memory": [decision("UPDATE", 0, "  "),
                                            decision("UPDATE", 0, "Favourite city is porto")]}]
    result = mem.add("My favourite city is Porto", user_id="u")
    assert [r["reason"] for r in result["rejected"]] == ["UPDATE without text"]
    assert [(r["event"], r["memory"]) for r in result["results"]] == [("UPDATE", "Favourite city is porto")]


def test_plan_rejects_negative_and_repeated_ids_directly():
    from memlane.models import MemoryRecord
    existing = [MemoryRecord(id=f"m{i}", memory=t, hash=str(i), metadata={}, user_id="u", agent_id=None,
                             run_id=None, actor_id=None, role="user", memory_type="semantic_memory",
                             created_at="2026-01-01T00:00:00+00:00", updated_at=None, timestamp=None,
                             source_message_ids=[])
                for i, t in enumerate(["A", "B"])]
    ctx = X.Context(messages=[Message(role="user", content="x")], existing=existing, conversation_date="2026-01-01",
                    agent_mode=False)
    answer = X.Answer.model_validate({"memory": [decision("DELETE", -1), decision("UPDATE", 1, "B2"),
                                                 decision("DELETE", 1), decision("UPDATE", 1, "B3"),
                                                 decision("NONE", -1)]})
    plan = X.plan(answer, ctx)
    assert [u.target.id for u in plan.updates] == ["m1"] and plan.updates[0].text == "B2"
    assert plan.deletes == [] and plan.adds == []
    assert [r["reason"] for r in plan.rejected] == ["unknown memory id -1", "memory id 1 decided twice",
                                                    "memory id 1 decided twice"]


def _records(*texts):
    from memlane.models import MemoryRecord, text_hash
    return [MemoryRecord(id=f"m{i}", memory=t, hash=text_hash(t), metadata={}, user_id="u", agent_id=None,
                         run_id=None, actor_id=None, role="user", memory_type="semantic_memory",
                         created_at="2026-01-01T00:00:00+00:00", updated_at=None, timestamp=None,
                         source_message_ids=[])
            for i, t in enumerate(texts)]


def _plan(decisions, existing=("A", "B"), n_messages=2):
    ctx = X.Context(messages=[Message(role="user", content=f"m{i}") for i in range(n_messages)],
                    existing=_records(*existing), conversation_date="2026-01-01", agent_mode=False)
    return X.plan(X.Answer.model_validate({"memory": decisions}), ctx)


def test_plan_rejects_the_id_one_past_the_end():
    plan = _plan([decision("UPDATE", 2, "C"), decision("DELETE", 2)])
    assert plan.updates == [] and plan.deletes == []
    assert plan.rejected == [{"decision": decision("UPDATE", 2, "C"), "reason": "unknown memory id 2"},
                             {"decision": decision("DELETE", 2), "reason": "unknown memory id 2"}]


def test_plan_keeps_only_source_indices_of_real_messages():
    plan = _plan([decision("ADD", None, "New", sources=(-1, 0, 2, 1, 1)),
                  decision("UPDATE", 0, "A2", sources=(2, 0))])
    assert plan.adds[0].sources == [0, 1]  # index 0 kept, 2 (one past the last) and -1 dropped
    assert plan.updates[0].sources == [0]


def test_plan_goes_on_after_an_add_it_rejects_or_skips():
    plan = _plan([decision("ADD", None, "   "),  # no text: rejected
                  decision("ADD", None, "A"),  # the existing memory verbatim: unchanged, not a second copy
                  decision("ADD", None, "Plays chess"),
                  decision("ADD", None, "plays CHESS"),  # the same fact again, other case: skipped
                  decision("ADD", None, "Owns a cat")])
    assert [a.text for a in plan.adds] == ["Plays chess", "Owns a cat"]
    assert [r.id for r in plan.unchanged] == ["m0"]
    assert plan.rejected == [{"decision": decision("ADD", None, "   "), "reason": "ADD without text"}]


def test_plan_none_changes_nothing_and_does_not_use_up_the_memory():
    plan = _plan([decision("NONE", 0, "A, reworded"),  # NONE with other text is still no change
                  decision("NONE", 7),  # NONE of an unknown id: nothing to do, nothing to reject
                  decision("UPDATE", 0, "A2"),  # NONE did not decide memory 0
                  decision("NONE", 1, "B")])
    assert [(u.target.id, u.text) for u in plan.updates] == [("m0", "A2")]
    assert [r.id for r in plan.unchanged] == ["m0", "m1"]
    assert plan.rejected == [] and plan.deletes == [] and plan.adds == []
    empty_update = _plan([decision("UPDATE", 1, "")])
    assert empty_update.rejected == [{"decision": decision("UPDATE", 1, ""), "reason": "UPDATE without text"}]
    same_text = _plan([decision("UPDATE", 1, "B")])
    assert same_text.updates == [] and [r.id for r in same_text.unchanged] == ["m1"]


def test_update_takes_only_the_messages_it_names_as_new_sources(mem):
    [mid] = seed(mem, ["Favourite city is lisbon"], user_id="u")
    old_sources = mem.get(mid)["source_message_ids"]
    mem._runtime.llm.answers = [{"memory": [decision("UPDATE", 0, "Favourite city is porto", sources=[1])]}]
    mem.add([{"role": "user", "content": "Hello there"}, {"role": "user", "content": "My favourite city is Porto"}],
            user_id="u")
    sources = mem.get(mid)["source_message_ids"]
    assert sources[:1] == old_sources
    assert [m["content"] for m in mem.messages(sources[1:])] == ["My favourite city is Porto"]


def test_system_messages_are_neither_shown_to_the_llm_nor_kept_as_turns(mem):
    mem.add([{"role": "system", "content": "You are a helpful assistant"},
             {"role": "user", "content": "I like jazz"}], user_id="u")
    prompt = mem._runtime.llm.requests[-1].messages[1]["content"]
    assert "helpful assistant" not in prompt and "[0] user: I like jazz" in prompt
    episodic = mem.get_all(user_id="u", filters={"memory_type": "episodic_memory"})["results"]
    assert [r["memory"] for r in episodic] == ["I like jazz"]
    assert facts(mem, user_id="u") == ["Likes jazz"]


# ================================================================== parsing: <think> blocks

THINK_ANSWER = ("<think>The user says {\"memory\": []} is wrong? I should add ```a fact```.</think>\n"
                + json.dumps({"memory": [decision("ADD", None, "Plays the oboe")]}))


def test_think_block_is_stripped_before_parsing():
    parsed = X.parse(LLMResponse(content=THINK_ANSWER))
    assert [d.text for d in parsed.memory] == ["Plays the oboe"]
    fenced = "<think>\nreasoning\n</think>\n```json\n" + json.dumps({"memory": []}) + "\n```"
    assert X.parse(LLMResponse(content=fenced)).memory == []
    with pytest.raises(ValueError, match="empty"):
        X.parse(LLMResponse(content="<think>only thoughts</think>"))


def test_structured_data_wins_over_the_text():
    # a provider's tool / JSON-schema answer arrives as data; the text beside it is not parsed
    data = {"memory": [decision("ADD", None, "Keeps bees")]}
    parsed = X.parse(LLMResponse(content="Sure! I called the tool.", data=data))
    assert [d.text for d in parsed.memory] == ["Keeps bees"]
    with pytest.raises(ValueError, match="schema"):
        X.parse(LLMResponse(content=json.dumps(data), data={"facts": []}))


def test_think_block_costs_no_repair_retry(mem):
    mem._runtime.llm.answers = [THINK_ANSWER]
    result = mem.add("I play the oboe", user_id="u")
    assert [r["memory"] for r in result["results"]] == ["Plays the oboe"]
    assert result["usage"]["llm_calls"] == 1 and len(mem._runtime.llm.requests) == 1


# ================================================================== HTTP: connection errors are retried

class DroppingServer:
    """A real HTTP/1.1 server on 127.0.0.1 that reads each of the first `drops` requests and closes the
    connection without answering (the client sees the server disconnect), then answers like OpenAI's
    /embeddings. `requests` counts every request that arrived."""

    def __init__(self, drops: int, dim: int = 8):
        self.drops, self.dim, self.requests = drops, dim, 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/v1" % self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                head = []
                while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                    head.append(line)
                if not head:
                    return
                headers = dict(h.decode().split(":", 1) for h in head[1:])
                length = int({k.strip().lower(): v.strip() for k, v in headers.items()}.get("content-length", 0))
                body = json.loads(reader.read(length)) if length else {}
                with self._lock:
                    self.requests += 1
                    drop = self.requests <= self.drops
                if drop:
                    return  # closed with no response
                rows = [{"object": "embedding", "index": i, "embedding": [1.0] + [0.0] * (self.dim - 1)}
                        for i, _ in enumerate(body["input"])]
                payload = json.dumps({"object": "list", "data": rows}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(payload)).encode() + b"\r\n\r\n" + payload)


@pytest.mark.parametrize("drops", [1, 2])
def test_dropped_connections_are_retried(drops):
    server = DroppingServer(drops)
    try:
        e = OpenAIEmbedder({"api_key": "k", "openai_base_url": server.url, "embedding_dims": 8, "max_retries": 3,
                            **FAST})
        out = e.embed(["hello"])
        assert out.shape == (1, 8) and out[0, 0] == pytest.approx(1.0)
        assert server.requests == drops + 1
    finally:
        server.close()


def test_connections_dropped_past_max_retries_are_a_provider_error():
    server = DroppingServer(drops=10)
    try:
        e = OpenAIEmbedder({"api_key": "k", "openai_base_url": server.url, "embedding_dims": 8, "max_retries": 2,
                            **FAST})
        with pytest.raises(ProviderError, match="failed after 3 attempts"):
            e.embed(["hello"])
        assert server.requests == 3
    finally:
        server.close()


def test_refused_connections_are_retried_then_a_provider_error():
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed again: nothing listens there now

    class Counting(httpx.HTTPTransport):
        calls = 0

        def handle_request(self, request):
            self.calls += 1
            return super().handle_request(request)

    transport = Counting()
    e = OpenAIEmbedder({"api_key": "k", "openai_base_url": f"http://127.0.0.1:{port}/v1", "embedding_dims": 8,
                        "max_retries": 2, **FAST})
    e._client = httpx.Client(transport=transport)
    with pytest.raises(ProviderError, match="failed after 3 attempts") as info:
        e.embed(["hello"])
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert transport.calls == 3


# ================================================================== NaN / inf vectors from a remote embedder

def _row(values) -> str:
    return "[" + ", ".join(values) + "]"


NON_FINITE = {
    "nan": _row(["NaN"] + ["0.5"] * 7),
    "inf": _row(["1e999"] + ["0.5"] * 7),
    "-inf": _row(["-Infinity"] + ["0.5"] * 7),
    "base64 nan": json.dumps(base64.b64encode(np.array([np.nan] + [0.5] * 7, dtype="<f4").tobytes()).decode()),
}


@pytest.mark.parametrize("kind", list(NON_FINITE))
def test_non_finite_vectors_are_refused(fake_embed, kind):
    e = OpenAIEmbedder({"api_key": "k", "openai_base_url": f"{fake_embed.url}/v1", "embedding_dims": 8, **FAST})
    fake_embed.fail(Reply(200, b'{"data": [{"index": 0, "embedding": %s}]}' % NON_FINITE[kind].encode()))
    with pytest.raises((ProviderError, ValidationError), match="non-finite"):
        e.embed(["hello"])
    assert np.isfinite(e.embed(["hello"])).all()  # the next, sound answer is taken


def test_a_nan_vector_writes_nothing_and_fails_search(fake_embed, tmp_path):
    config = MemoryConfig(
        vector_store=ProviderConfig(provider="sqlite", config={"path": str(tmp_path / "nan.db")}),
        embedder=ProviderConfig(provider="openai", config={"api_key": "k", "openai_base_url": f"{fake_embed.url}/v1",
                                                           "embedding_dims": 8, **FAST}))
    nan = Reply(200, b'{"data": [{"index": 0, "embedding": %s}]}' % NON_FINITE["nan"].encode())
    with Memory(config) as m:
        seed(m, ["I like tea"], user_id="u")
        before = snapshot(m)
        fake_embed.fail(nan)
        with pytest.raises(ProviderError):
            m.add("I like coffee", user_id="u", infer=False)
        assert snapshot(m) == before
        fake_embed.fail(nan)
        with pytest.raises(ProviderError):
            m.search("tea", user_id="u")
        assert [r["memory"] for r in m.search("tea", user_id="u")["results"]] == ["I like tea"]


# ================================================================== message_log paging

def test_message_log_pages_with_limit_and_offset(memory):
    texts = [f"message number {i}" for i in range(7)]
    memory.add([{"role": "user", "content": t} for t in texts[:4]], user_id="u", infer=False)
    memory.add([{"role": "user", "content": t} for t in texts[4:]], user_id="u", infer=False)
    memory.add("someone else", user_id="other", infer=False)

    def page(**kw):
        got = memory.message_log(user_id="u", **kw)
        return [r["content"] for r in got["results"]], got["total"]

    assert page() == (texts, 7)
    assert page(limit=3) == (texts[:3], 7)
    assert page(limit=3, offset=2) == (texts[2:5], 7)
    assert page(limit=10, offset=5) == (texts[5:], 7)
    assert page(offset=7) == ([], 7)
    walked = [c for start in range(0, 7, 2) for c in page(limit=2, offset=start)[0]]
    assert walked == texts
    memory.add("in a run", user_id="u", run_id="r1", infer=False)
    assert [r["content"] for r in memory.message_log(user_id="u", run_id="r1")["results"]] == ["in a run"]
    assert [r["content"] for r in memory.message_log(run_id="r1")["results"]] == ["in a run"]
    with pytest.raises(ValidationError):
        memory.message_log(user_id="u", limit=0)
    with pytest.raises(ValidationError):
        memory.message_log(user_id="u", offset=-1)


# ================================================================== keep_episodic

@pytest.mark.parametrize("keep", [True, False])
def test_keep_episodic_on_and_off(tmp_path, keep):
    convo = [{"role": "user", "content": "I like jazz"}, {"role": "assistant", "content": "Nice choice!"}]
    with Memory(llm_config(tmp_path / f"ep{keep}.db", keep_episodic=keep)) as m:
        result = m.add(convo, user_id="u")
        assert [r["memory"] for r in result["results"]] == ["Likes jazz"]
        assert facts(m, user_id="u") == ["Likes jazz"]  # turns never show without the filter
        assert all(h["memory"] != "I like jazz" for h in m.search("jazz", user_id="u")["results"])
        episodic = m.get_all(user_id="u", filters={"memory_type": "episodic_memory"})
        hits = m.search("jazz", user_id="u", filters={"memory_type": "episodic_memory"})["results"]
        if keep:
            assert sorted(r["memory"] for r in episodic["results"]) == ["I like jazz", "Nice choice!"]
            assert all(r["memory_type"] == "episodic_memory" for r in episodic["results"])
            assert hits and hits[0]["memory"] == "I like jazz"
        else:
            assert episodic == {"results": [], "total": 0} and hits == []
        assert m.message_log(user_id="u")["total"] == 2  # the log keeps the input either way


# ================================================================== history_db_path

def test_history_db_path_picks_the_one_database_file(tmp_path):
    path = tmp_path / "data" / "memories.db"
    path.parent.mkdir()
    with Memory.from_config({"history_db_path": str(path)}) as m:
        [mid] = seed(m, ["I keep bees"], user_id="u")
        assert m.config.database_path() == path
    assert path.is_file()
    assert not (tmp_path / "home" / "memlane.db").exists()  # not the $MEMLANE_HOME default
    with Memory.from_config({"vector_store": {"provider": "sqlite", "config": {"path": str(path)}},
                             "history_db_path": str(path)}) as again:
        assert again.get(mid)["memory"] == "I keep bees"
        assert [h["event"] for h in again.history(mid)] == ["ADD"]


# ================================================================== max_related

def test_max_related_caps_the_memories_shown_to_the_llm(mem):
    seed(mem, ["Likes sushi", "Likes sashimi", "Likes ramen", "Likes tempura", "Likes the stock market"],
         user_id="u")
    mem.add("I like sushi", user_id="u")
    assert len(shown(mem)) == 5  # default: up to related_per_message (5) per message, 20 in all
    mem._settings = dataclasses.replace(mem._settings, max_related=2)  # settings are frozen
    mem.add("I like sushi", user_id="u")
    capped = shown(mem)
    assert sorted(capped) == [0, 1] and capped[0] == "Likes sushi"  # the nearest ones are kept
    mem._settings = dataclasses.replace(mem._settings, max_related=0)
    mem.add("I like sushi", user_id="u")
    assert shown(mem) == {}


# ================================================================== LLM auto-detection

def test_gemini_key_selects_gemini_without_openai_or_anthropic(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")
    assert detect_llm().provider == "gemini"
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    assert detect_llm().provider == "gemini"  # gemini comes before ollama
    with Memory.from_config({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "g.db")}}}) as m:
        assert type(m._runtime.llm).__name__ == "GeminiLLM" and m._runtime.llm.api_key == "g-key"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-key")
    assert detect_llm().provider == "anthropic"
    monkeypatch.setenv("GEMINI_API_KEY", "")  # set but empty: not a key
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert detect_llm().provider == "ollama"


# ================================================================== agent prompt rule

@pytest.mark.parametrize("scope, roles, agent", [
    ({"agent_id": "bot"}, ["user", "assistant"], True),
    ({"agent_id": "bot", "user_id": "u"}, ["user", "assistant"], True),
    ({"agent_id": "bot"}, ["user", "user"], False),  # agent_id but no assistant message
    ({"user_id": "u"}, ["user", "assistant"], False),  # assistant messages but no agent_id
    ({"user_id": "u", "run_id": "r"}, ["user"], False),
])
def test_agent_prompt_only_with_agent_id_and_assistant_messages(mem, scope, roles, agent):
    msgs = [{"role": role, "content": f"message {i}"} for i, role in enumerate(roles)]
    assert X.use_agent_prompt([Message(role=r, content="x") for r in roles], scope.get("agent_id")) is agent
    mem.add(msgs, **scope)
    system = mem._runtime.llm.requests[-1].messages[0]["content"]
    assert ("memory manager of an AI agent" in system) is agent
    assert ("memory manager of a personal assistant" in system) is not agent


# ================================================================== custom retrieval weights

def test_custom_weights_keep_every_score_in_unit_range(tmp_path):
    config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(tmp_path / "w.db")}),
                          retrieval={"dense_weight": 5, "keyword_weight": 0.1, "actor_weight": 3, "date_weight": 2})
    said = "I painted a sunrise over the lake"
    with Memory(config) as m:
        m.add([{"role": "user", "content": said, "name": "Melanie"}], user_id="u", infer=False,
              timestamp="2023-07-07T10:00:00Z")
        m.add([{"role": "user", "content": "I went to a support group", "name": "Caroline"},
               {"role": "user", "content": "Melanie painted too", "name": "Caroline"}], user_id="u", infer=False,
              timestamp="2023-07-20T10:00:00Z")
        m.add([{"role": "user", "content": "The lake was cold in winter", "name": "Melanie"}], user_id="u",
              infer=False, timestamp="2023-01-02T10:00:00Z")
        scores = []
        for query in ["Melanie: I painted a sunrise over the lake on 7 July, 2023",  # every kind of evidence
                      "What did Melanie paint in July 2023?", "lake", "support group", "unrelated words entirely"]:
            results = m.search(query, user_id="u")["results"]
            assert results
            scores += [r["score"] for r in results]
        assert all(0.0 <= s <= 1.0 for s in scores)
        best = m.search("Melanie: I painted a sunrise over the lake on 7 July, 2023", user_id="u")["results"][0]
        assert best["memory"] == said and best["score"] > 0.9  # the bound is met, not dodged by tiny scores


# ================================================================== survivors of the mutation run (docs/mutation.md)

@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
@pytest.mark.parametrize("bad", [True, None, ["x"], {"a": 1}, float("nan"), 2**63, -2**63 - 1])
def test_range_operators_refuse_what_cannot_be_ordered(memory, op, bad):
    memory.add("I am 30", user_id="u", metadata={"age": 30}, infer=False)
    with pytest.raises(ValidationError):
        memory.get_all(user_id="u", filters={"age": {op: bad}})
    edge = 2**63 - 1 if op in ("lt", "lte") else -2**63  # the ends of the 64-bit range are fine
    assert memory.get_all(user_id="u", filters={"age": {op: edge}})["total"] == 1


def test_a_turn_takes_the_last_turn_of_an_earlier_add_as_its_context(tmp_path):
    import sqlite3
    from contextlib import closing

    def stored(m, mid):
        with closing(sqlite3.connect(m.config.database_path())) as conn:
            blob, context = conn.execute("SELECT embedding, context FROM memories WHERE id = ?", (mid,)).fetchone()
        return np.frombuffer(blob, dtype=np.float32), context

    turns = [{"role": "user", "content": "We went camping last weekend", "name": "Mel"},
             {"role": "user", "content": "Yes, it was lovely!", "name": "Caroline"}]
    with Memory(MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={
            "path": str(tmp_path / "two.db")}))) as two, Memory(MemoryConfig(vector_store=ProviderConfig(
            provider="sqlite", config={"path": str(tmp_path / "one.db")}))) as one:
        two.add(turns[:1], user_id="u", infer=False)
        two.add("unrelated, other run", user_id="u", run_id="r", infer=False)  # another scope: not the context
        later = two.add(turns[1:], user_id="u", infer=False)["results"][0]["id"]
        together = one.add(turns, user_id="u", infer=False)["results"][1]["id"]
        got, want = stored(two, later), stored(one, together)
    assert got[1] == want[1] == "We went camping last weekend"
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)


def test_delete_all_history_keeps_each_memory_s_role(memory):
    ids = [r["id"] for r in memory.add([{"role": "user", "content": "I swim"},
                                        {"role": "assistant", "content": "Swimming is great"}],
                                       user_id="u", infer=False)["results"]]
    memory.delete_all(user_id="u")
    assert [(h["event"], h["role"]) for i in ids for h in memory.history(i)] == [
        ("ADD", "user"), ("DELETE", "user"), ("ADD", "assistant"), ("DELETE", "assistant")]


def test_every_key_of_a_filter_dict_must_hold(memory):
    memory.add("chat in Portuguese", user_id="u", metadata={"src": "chat", "lang": "pt"}, infer=False)
    memory.add("chat in English", user_id="u", metadata={"src": "chat", "lang": "en"}, infer=False)
    memory.add("mail in Portuguese", user_id="u", metadata={"src": "mail", "lang": "pt"}, infer=False)
    for filters in ({"src": "chat", "lang": "pt"}, {"lang": "pt", "src": "chat"},
                    {"src": "chat", "lang": {"in": ["pt"]}}):
        got = memory.get_all(user_id="u", filters=filters)["results"]
        assert [r["memory"] for r in got] == ["chat in Portuguese"], filters
    hits = memory.search("Portuguese", filters={"user_id": "u", "src": "mail"})["results"]
    assert [h["memory"] for h in hits] == ["mail in Portuguese"]


@pytest.mark.parametrize("key", ["\ud800", "a\udbff", "\udc00b", "\udfff"])
def test_a_filter_key_with_a_lone_surrogate_is_refused(memory, key):
    with pytest.raises(ValidationError):
        memory.get_all(user_id="u", filters={key: "x"})
