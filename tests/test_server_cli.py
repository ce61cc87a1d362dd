"""`memlane keys` and `memlane serve` (a real process, two workers, on a free loopback port)."""
import json
import os
import socket
import subprocess
import sys
import time

import httpx

from memlane.cli import main


def test_keys_create_list_revoke(capsys):
    assert main(["keys", "create", "--tenant", "acme", "--admin", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["key"].startswith("mlk_") and made["admin"] and made["tenant"] == "acme"
    assert main(["keys", "create", "--tenant", "acme", "--user", "alice"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("mlk_")
    assert main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 2 and all("key" not in k for k in listed)
    assert secret not in json.dumps(listed) and made["key"] not in json.dumps(listed)
    assert main(["keys", "revoke", made["id"]]) == 0
    assert main(["keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "revoke", "nope"]) == 1
    assert main(["keys", "create", "--tenant", "Bad Name"]) == 2


def test_no_auth_refused_off_loopback(capsys):
    assert main(["serve", "--no-auth", "--host", "0.0.0.0"]) == 2
    assert "127.0.0.1" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_two_workers_shares_one_tenant_file(tmp_path):
    env = {**os.environ, "MEMLANE_HOME": str(tmp_path), "MEMLANE_LLM": "none"}
    cli = [sys.executable, "-m", "memlane.cli"]
    key = subprocess.run(cli + ["keys", "create", "--tenant", "acme"], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    port = _free_port()
    proc = subprocess.Popen(cli + ["serve", "--port", str(port), "--workers", "2", "--rate-limit", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"Authorization": f"Token {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            for i in range(20):  # new connections: both workers write to the same file
                with httpx.Client(base_url=url, headers=headers, timeout=60) as one:
                    r = one.post("/api/memories", json={"messages": f"fact {i}", "user_id": "u", "infer": False})
                    assert r.status_code == 200, r.text
            assert c.get("/api/memories", params={"user_id": "u"}).json()["total"] == 20
    finally:
        proc.terminate()
        proc.wait(30)
