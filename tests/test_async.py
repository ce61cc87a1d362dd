"""AsyncMemory drives the same pipeline as Memory: the same operations give the same results."""
import asyncio
import inspect

import pytest

from memlane import AsyncMemory, Memory, NotFoundError, ValidationError

from conftest import config_for

VOLATILE = {"id", "memory_id", "created_at", "updated_at", "source_message_ids"}


async def outcome(value):
    return await value if inspect.isawaitable(value) else value


def normalise(value, ids):
    """Replace memory ids by their order of appearance and drop wall-clock times, so two runs compare."""
    if isinstance(value, dict):
        out = {k: normalise(v, ids) for k, v in value.items() if k not in VOLATILE}
        for key in ("id", "memory_id"):
            if key in value:
                out[key] = ids.setdefault(value[key], len(ids))
        return out
    if isinstance(value, list):
        return [normalise(v, ids) for v in value]
    return value


async def scenario(m):
    """Every public operation once; works on Memory and AsyncMemory alike."""
    log = []
    added = await outcome(m.add([{"role": "user", "content": "I moved to Lisbon last year", "name": "Alice"},
                                 {"role": "assistant", "content": "Lisbon has great food"}],
                                user_id="alice", metadata={"src": "chat"}, timestamp="2026-03-02T09:00:00Z",
                                infer=False))
    log.append(added)
    first = added["results"][0]["id"]
    log.append(await outcome(m.add("I am vegetarian", user_id="alice", agent_id="chef", infer=False)))
    log.append(await outcome(m.add("bob likes surfing", user_id="bob", infer=False)))
    log.append(await outcome(m.search("where do I live", user_id="alice")))
    log.append(await outcome(m.search("food", user_id="alice", filters={"src": "chat"}, threshold=0.05)))
    log.append(await outcome(m.get(first)))
    log.append(await outcome(m.get("00000000-0000-4000-8000-000000000000")))
    log.append(await outcome(m.get_all(user_id="alice", limit=2, offset=1)))
    log.append(await outcome(m.update(first, "I live in Porto now")))
    log.append(await outcome(m.search("Porto", user_id="alice")))
    log.append(await outcome(m.history(first)))
    log.append(await outcome(m.messages((await outcome(m.get(first)))["source_message_ids"])))
    log.append(await outcome(m.delete(first)))
    log.append(await outcome(m.history(first)))
    log.append(await outcome(m.delete_all(user_id="alice")))
    log.append(await outcome(m.get_all(user_id="alice")))
    log.append(await outcome(m.get_all(user_id="bob")))
    log.append(await outcome(m.reset()))
    log.append(await outcome(m.get_all(user_id="bob")))
    return log


async def test_async_gives_the_same_results_as_sync(amemory, tmp_path):
    with Memory(config_for(tmp_path / "sync.db")) as sync:
        expected = await scenario(sync)
    got = await scenario(amemory)
    assert normalise(got, {}) == normalise(expected, {})
    # and the transcript is not vacuous
    assert got[3]["results"][0]["memory"] == "I moved to Lisbon last year"
    assert [h["event"] for h in got[13]] == ["ADD", "UPDATE", "DELETE"]
    assert got[14]["deleted"] == 2 and got[16]["total"] == 1 and got[18]["total"] == 0


async def test_async_errors_are_the_same_types(amemory):
    with pytest.raises(ValidationError):
        await amemory.add("x")
    with pytest.raises(ValidationError):
        await amemory.search("x", user_id="alice", filters={"a": {"between": 1}})
    with pytest.raises(ValidationError):
        await amemory.get("not-a-uuid")
    with pytest.raises(NotFoundError):
        await amemory.delete("00000000-0000-4000-8000-000000000000")
    with pytest.raises(ValidationError):
        await amemory.delete_all()
    assert (await amemory.get_all(user_id="alice"))["total"] == 0


async def test_concurrent_adds_all_land(amemory):
    texts = [f"fact number {i}: the sky has {i} clouds" for i in range(40)]
    results = await asyncio.gather(*(amemory.add(t, user_id="alice", infer=False) for t in texts))
    ids = [r["results"][0]["id"] for r in results]
    assert len(set(ids)) == 40
    listed = await amemory.get_all(user_id="alice")
    assert listed["total"] == 40
    assert sorted(r["memory"] for r in listed["results"]) == sorted(texts)
    # every add also logged its message, and each memory has its ADD history row
    assert (await amemory.message_log(user_id="alice"))["total"] == 40
    histories = await asyncio.gather(*(amemory.history(i) for i in ids))
    assert all([h["event"] for h in hist] == ["ADD"] for hist in histories)


async def test_concurrent_mixed_operations(amemory):
    ids = [r["id"] for r in (await amemory.add([{"role": "user", "content": f"item {i}"} for i in range(10)],
                                                user_id="alice", infer=False))["results"]]
    await asyncio.gather(
        *(amemory.update(i, f"updated item {n}") for n, i in enumerate(ids[:5])),
        *(amemory.delete(i) for i in ids[5:]),
        *(amemory.search("item", user_id="alice") for _ in range(5)),
        *(amemory.add(f"new item {n}", user_id="alice", infer=False) for n in range(5)),
    )
    memories = sorted(r["memory"] for r in (await amemory.get_all(user_id="alice"))["results"])
    assert memories == sorted([f"updated item {n}" for n in range(5)] + [f"new item {n}" for n in range(5)])


def test_async_memory_is_usable_from_several_event_loops(tmp_path):
    m = AsyncMemory(config_for(tmp_path / "loops.db"))
    try:
        asyncio.run(m.add("first loop", user_id="alice", infer=False))
        asyncio.run(m.add("second loop", user_id="alice", infer=False))
        assert asyncio.run(m.get_all(user_id="alice"))["total"] == 2
    finally:
        m.close()
