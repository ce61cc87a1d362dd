"""mem0's own platform client (mem0ai 2.2.1's MemoryClient, from a throwaway venv) against memlane serve:
an application written for mem0's platform moves to a self-hosted memlane by changing `host`."""
import json
import os
import subprocess
import textwrap


from mem0_venv import mem0_python

from memlane.server import ServerSettings
from memlane.server.background import serve_in_thread
from memlane.server.keys import KeyStore


SCRIPT = textwrap.dedent("""
    import json, sys
    from mem0 import MemoryClient
    host, key = sys.argv[1], sys.argv[2]
    out = {}
    c = MemoryClient(api_key=key, host=host)  # GET /v1/ping/
    a = c.add([{"role": "user", "content": "I am vegetarian and allergic to nuts"}], user_id="alice",
              metadata={"src": "mem0"}, infer=False)
    b = c.add("I live in Lisbon", user_id="alice", infer=False)
    out["add"] = a
    ida, idb = a["results"][0]["id"], b["results"][0]["id"]
    out["search"] = c.search("what does alice eat", filters={"user_id": "alice"}, top_k=1)
    out["page1"] = c.get_all(filters={"user_id": "alice"}, page=1, page_size=1)
    out["page2"] = c.get_all(filters={"user_id": "alice"}, page=2, page_size=1)
    out["get"] = c.get(ida)
    out["update"] = c.update(ida, text="I am vegan")
    out["after_update"] = c.get(ida)["memory"]
    out["history"] = c.history(ida)
    out["users"] = c.users()
    out["batch_update"] = c.batch_update([{"memory_id": idb, "text": "I live in Porto"}])
    out["after_batch"] = c.get(idb)["memory"]
    out["delete"] = c.delete(ida)
    try:
        c.get(ida)
        out["get_deleted"] = "found"
    except Exception as exc:
        out["get_deleted"] = type(exc).__name__
    c.add("bob's fact", user_id="bob", infer=False)
    out["delete_all"] = c.delete_all(filters={"user_id": "alice"})
    out["alice_left"] = c.get_all(filters={"user_id": "alice"})["results"]
    x = c.add("to batch delete", user_id="carol", infer=False)["results"][0]["id"]
    out["batch_delete"] = c.batch_delete([{"memory_id": x}])
    out["delete_users"] = c.delete_users(user_id="bob")
    out["users_after"] = c.users()
    try:
        MemoryClient(api_key="mlk_wrong", host=host)
        out["bad_key"] = "accepted"
    except Exception as exc:
        out["bad_key"] = type(exc).__name__
    print("RESULT" + json.dumps(out))
""")


def test_mem0_platform_client_against_memlane(tmp_path):
    python = mem0_python()
    secret, _ = KeyStore(tmp_path / "keys.db").create("app", admin=True)
    env = {**os.environ, "MEM0_TELEMETRY": "false", "MEM0_DIR": str(tmp_path / "mem0dir"),
           "HOME": str(tmp_path)}
    with serve_in_thread(ServerSettings(home=str(tmp_path), rate_limit=0)) as url:
        run = subprocess.run([str(python), "-c", SCRIPT, url, secret], capture_output=True, text=True, env=env,
                             timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.split("RESULT", 1)[1])
    assert out["add"]["results"][0]["event"] == "ADD"
    assert len(out["search"]["results"]) == 1 and "vegetarian" in out["search"]["results"][0]["memory"]
    assert out["page1"]["count"] == 2 and len(out["page1"]["results"]) == 1 and out["page1"]["next"]
    assert out["page2"]["previous"] and out["page2"]["next"] is None
    assert out["page1"]["results"][0]["id"] != out["page2"]["results"][0]["id"]
    assert out["get"]["metadata"] == {"src": "mem0"}
    assert out["after_update"] == "I am vegan"
    assert [h["event"] for h in out["history"]] == ["ADD", "UPDATE"]
    assert {u["name"] for u in out["users"]["results"]} == {"alice"}
    assert out["after_batch"] == "I live in Porto"
    assert out["get_deleted"] != "found"
    assert out["alice_left"] == []
    assert {u["name"] for u in out["users_after"]["results"]} == {"carol"} or out["users_after"]["results"] == []
    assert out["bad_key"] == "ValueError"
