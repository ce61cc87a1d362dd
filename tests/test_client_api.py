"""One API suite, run against Memory (in-process) and MemoryClient / AsyncMemoryClient (over a real
server): same arguments, same result shapes, same typed errors."""
import uuid

import pytest

from memlane import AsyncMemory, Memory, MemoryConfig, NotFoundError, ProviderConfig, ValidationError
from memlane.client import AsyncMemoryClient, MemoryClient
from memlane.server import ServerSettings
from memlane.server.background import serve_in_thread
from memlane.server.keys import KeyStore

UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("client-home")
    with serve_in_thread(ServerSettings(home=str(home), rate_limit=0)) as url:
        yield url, KeyStore(home / "keys.db")


@pytest.fixture(params=["Memory", "MemoryClient"])
def m(request, tmp_path):
    if request.param == "Memory":
        memory = Memory(MemoryConfig(vector_store=ProviderConfig(provider="sqlite",
                                                                 config={"path": str(tmp_path / "m.db")})))
        yield memory
        memory.close()
        return
    url, keys = request.getfixturevalue("server")
    secret, _ = keys.create("t" + uuid.uuid4().hex[:12], admin=True)  # a fresh tenant: an empty store
    with MemoryClient(url, secret) as client:
        yield client


def remember(m, *texts, user="alice"):
    return [m.add(t, user_id=user, infer=False)["results"][0]["id"] for t in texts]


def test_add_search_get(m):
    result = m.add([{"role": "user", "content": "I love hiking in the Alps"}], user_id="alice", infer=False,
                   metadata={"k": "v"})
    assert [r["event"] for r in result["results"]] == ["ADD"]
    mid = result["results"][0]["id"]
    hits = m.search("hiking", user_id="alice", limit=3)
    assert hits["results"][0]["id"] == mid and 0 <= hits["results"][0]["score"] <= 1
    assert set(hits) >= {"results"}
    item = m.get(mid)
    assert item["memory"] == "I love hiking in the Alps" and item["metadata"] == {"k": "v"}
    assert m.get(UNKNOWN) is None


def test_filters_top_k_threshold(m):
    remember(m, "cats are great", "dogs are loyal", user="bob")
    assert len(m.search("pets", filters={"user_id": "bob"}, top_k=1)["results"]) == 1
    assert m.search("pets", filters={"user_id": "bob"}, threshold=1.0)["results"] == []


def test_get_all_pages(m):
    ids = remember(m, "one", "two", "three")
    page = m.get_all(user_id="alice", limit=2, offset=1)
    assert [r["id"] for r in page["results"]] == ids[1:] and page["total"] == 3


def test_update_metadata_expiration_history(m):
    (mid,) = remember(m, "old text")
    m.update(mid, "new text", metadata={"a": 1})
    m.update(mid, metadata={"a": None, "b": 2})
    assert m.get(mid)["metadata"] == {"b": 2}
    m.update(mid, expiration_date="2000-01-01")
    assert m.get_all(user_id="alice")["total"] == 0
    assert m.get_all(user_id="alice", show_expired=True)["total"] == 1
    m.update(mid, expiration_date=None)
    assert m.get_all(user_id="alice")["total"] == 1
    m.update(mid, data="mem0 1.x name")
    assert m.get(mid)["memory"] == "mem0 1.x name"
    assert [h["event"] for h in m.history(mid)][:2] == ["ADD", "UPDATE"]


def test_delete_and_delete_all(m):
    a, b = remember(m, "a fact", "b fact")
    m.delete(a)
    assert m.get(a) is None
    with pytest.raises(NotFoundError):
        m.delete(a)
    m.delete_all(user_id="alice")
    assert m.get(b) is None


def test_batch_update_delete(m):
    a, b = remember(m, "x", "y")
    m.batch_update([{"memory_id": a, "text": "x2"}, {"memory_id": b, "metadata": {"t": 1}}])
    assert m.get(a)["memory"] == "x2" and m.get(b)["metadata"] == {"t": 1}
    with pytest.raises(NotFoundError):
        m.batch_delete([{"memory_id": a}, {"memory_id": UNKNOWN}])
    assert m.get(a) is not None  # all or nothing
    m.batch_delete([{"memory_id": a}, {"memory_id": b}])
    assert m.get_all(user_id="alice")["total"] == 0


def test_users_and_delete_users(m):
    remember(m, "u1", user="u1")
    remember(m, "u2", user="u2")
    names = {(u["type"], u["name"]): u["total_memories"] for u in m.users()["results"]}
    assert names == {("user", "u1"): 1, ("user", "u2"): 1}
    m.delete_users(user_id="u1")
    assert {u["name"] for u in m.users()["results"]} == {"u2"}
    with pytest.raises(NotFoundError):
        m.delete_users(user_id="u1")


def test_validation_errors_are_typed(m):
    with pytest.raises(ValidationError):
        m.add("no scope", infer=False)
    with pytest.raises(ValidationError):
        m.get("not-a-uuid")
    with pytest.raises(ValidationError):
        m.search("q", user_id="alice", filters={"x": {"bogus_op": 1}})
    with pytest.raises(NotFoundError):
        m.update(UNKNOWN, "x")


def test_background_add_job_wait(m):
    job = m.add("later", user_id="alice", infer=False, background=True)
    assert job["status"] == "queued"
    done = m.wait(job["job_id"], timeout=30)
    assert done["status"] == "done"
    assert m.job(job["job_id"])["status"] == "done"
    assert m.get_all(user_id="alice")["total"] == 1


def test_messages_and_log(m):
    (mid,) = remember(m, "said once")
    ids = m.get(mid).get("source_message_ids") or []
    assert len(m.messages(ids)) == len(ids)
    assert m.message_log(user_id="alice")["total"] >= 1


def test_reset(m):
    remember(m, "gone soon")
    assert m.reset() is None
    assert m.get_all(user_id="alice")["total"] == 0


async def test_async_client_matches_async_memory(tmp_path, server):
    url, keys = server
    secret, _ = keys.create("t" + uuid.uuid4().hex[:12], admin=True)
    local = AsyncMemory(MemoryConfig(vector_store=ProviderConfig(provider="sqlite",
                                                                 config={"path": str(tmp_path / "a.db")})))
    async with AsyncMemoryClient(url, secret) as remote:
        for m in (local, remote):
            added = await m.add("async fact", user_id="alice", infer=False)
            mid = added["results"][0]["id"]
            assert (await m.search("fact", user_id="alice"))["results"][0]["id"] == mid
            assert (await m.get(UNKNOWN)) is None
            with pytest.raises(NotFoundError):
                await m.delete(UNKNOWN)
    local.close()


def test_client_errors_and_retries(server):
    from memlane.client import AuthenticationError, RateLimitError
    from memlane.errors import ConfigurationError, ProviderError
    url, keys = server
    with pytest.raises(AuthenticationError):
        MemoryClient(url, "mlk_nope").users()
    with pytest.raises(ConfigurationError):
        MemoryClient("ftp://x")
    with pytest.raises(ProviderError):  # nothing listens there: transport errors retried, then typed
        MemoryClient("http://127.0.0.1:9", "k", max_retries=1, retry_base_delay=0.01).users()
    assert issubclass(RateLimitError, ProviderError)
