"""The whole add() lifecycle over a real HTTP server speaking OpenAI's chat-completions protocol: the real
client code, json_schema structured output, the integer-id mapping and the transaction, end to end."""
import json

import pytest

from fakeservers import Answer, Reply, fake_server  # noqa: F401  (fixture)

from memlane import Memory, ProviderError


def decision(event, text, mid=None):
    return {"memory": [{"event": event, "id": mid, "text": text, "source_messages": [0],
                        "attributed_to": "user"}]}


def test_add_update_delete_over_openai_protocol(fake_server, tmp_path, monkeypatch):
    # Auto-detection: OPENAI_API_KEY (+ OPENAI_BASE_URL) is enough to get extraction.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake_server.url}/v1")
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "e2e.db")}}}) as m:
        fake_server.script(Answer(data=decision("ADD", "Favourite city is Lisbon")))
        mid = m.add("My favourite city is Lisbon", user_id="alice")["results"][0]["id"]

        fake_server.script(Reply(status=429, headers={"retry-after": "0"}, body={"error": {"message": "slow"}}),
                           Answer(data=decision("UPDATE", "Favourite city is Porto", 0)))
        updated = m.add("My favourite city is Porto now", user_id="alice")
        sent = fake_server.last()
        assert sent.headers["authorization"] == "Bearer sk-test"
        body = sent.json
        assert body["response_format"]["type"] == "json_schema"
        assert "0: Favourite city is Lisbon" in body["messages"][1]["content"]  # an integer id, not the UUID
        assert mid not in json.dumps(body)
        assert updated["results"] == [{"id": mid, "memory": "Favourite city is Porto", "event": "UPDATE",
                                       "previous_memory": "Favourite city is Lisbon"}]
        assert updated["usage"]["llm_calls"] == 1  # the 429 was retried by the HTTP layer, not re-asked

        fake_server.script(Answer(data=decision("DELETE", "Favourite city is Porto", 0)))
        deleted = m.add("I don't have a favourite city anymore", user_id="alice")
        assert deleted["results"][0]["event"] == "DELETE"
        assert m.get(mid) is None
        assert [h["event"] for h in m.history(mid)] == ["ADD", "UPDATE", "DELETE"]
        assert m.message_log(user_id="alice")["total"] == 3


def test_server_errors_exhaust_retries_and_keep_the_input(fake_server, tmp_path):
    config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "fail.db")}},
              "llm": {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{fake_server.url}/v1",
                                                       "max_retries": 2, "retry_base_delay": 0.01}}}
    with Memory(config) as m:
        fake_server.script(*[Reply(status=503, body={"error": {"message": "overloaded"}})] * 3)
        with pytest.raises(ProviderError) as info:
            m.add("I like kayaking", user_id="bob")
        assert info.value.status == 503
        assert len(fake_server.requests) == 3
        assert m.get_all(user_id="bob")["total"] == 0
        assert [r["content"] for r in m.message_log(user_id="bob")["results"]] == ["I like kayaking"]
