"""memlane serve: a real uvicorn on a loopback port, real httpx requests. Auth, tenancy (one store per
tenant), user-bound keys, errors, limits, metrics, health, and two tenants' isolation on every route."""
import uuid

import httpx
import pytest

from fakeservers import fake_server  # noqa: F401  (fixture)

from memlane.server import ServerSettings
from memlane.server.background import serve_in_thread
from memlane.server.keys import KeyStore
from memlane.server.routes_mem0 import parse_filters
from memlane.errors import ValidationError


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-home")
    keys = KeyStore(home / "keys.db")
    made = {name: keys.create(*args, **kw)[0] for name, args, kw in [
        ("acme", ("acme",), {"admin": True}), ("globex", ("globex",), {"admin": True}),
        ("acme_alice", ("acme",), {"user_ids": ["alice"]}), ("acme_plain", ("acme",), {})]}
    keys.close()
    with serve_in_thread(ServerSettings(home=str(home), rate_limit=0, max_body_bytes=50_000)) as url:
        yield url, made, home


def client(server, who):
    url, made, _ = server
    return httpx.Client(base_url=url, headers={"Authorization": f"Token {made[who]}"}, timeout=30)


def add(c, text, user="alice"):
    r = c.post("/api/memories", json={"messages": text, "user_id": user, "infer": False})
    assert r.status_code == 200, r.text
    return r.json()["results"][0]["id"]


def test_health_docs_and_spec_need_no_key(server):
    url = server[0]
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(url + "/readyz").json()["status"] == "ready"
    assert httpx.get(url + "/docs").status_code == 200
    spec = httpx.get(url + "/openapi.json").json()
    assert "/api/memories/search" in spec["paths"] and "/v3/memories/add/" in spec["paths"]


@pytest.mark.parametrize("header", [None, "Token nope", "Token mlk_wrong", "Bearer x"])
def test_no_or_bad_key_is_401(server, header):
    headers = {"Authorization": header} if header else {}
    r = httpx.get(server[0] + "/api/users", headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"


def test_bearer_and_bare_key_accepted(server):
    url, made, _ = server
    for value in (f"Bearer {made['acme']}", made["acme"]):
        assert httpx.get(url + "/api/users", headers={"Authorization": value}).status_code == 200


def test_native_round_trip(server):
    with client(server, "acme") as c:
        mid = add(c, "I drink green tea every morning")
        hit = c.post("/api/memories/search", json={"query": "tea", "user_id": "alice"}).json()["results"][0]
        assert hit["id"] == mid and 0 <= hit["score"] <= 1
        assert c.get(f"/api/memories/{mid}").json()["memory"] == "I drink green tea every morning"
        assert c.patch(f"/api/memories/{mid}", json={"text": "I drink black tea"}).status_code == 200
        assert [h["event"] for h in c.get(f"/api/memories/{mid}/history").json()] == ["ADD", "UPDATE"]
        page = c.get("/api/memories", params={"user_id": "alice", "limit": 1}).json()
        assert len(page["results"]) == 1 and page["total"] >= 1
        assert c.post("/api/export", json={"user_id": "alice"}).json()["total"] == page["total"]
        assert c.post("/api/relations", json={"user_id": "alice"}).json() == {"relations": []}
        assert any(u["name"] == "alice" for u in c.get("/api/users").json()["results"])
        assert c.delete(f"/api/memories/{mid}").status_code == 200
        r = c.get(f"/api/memories/{mid}")
        assert r.status_code == 404 and r.json()["error"] == "NotFoundError"


def test_background_add_and_job_status(server):
    with client(server, "acme") as c:
        job = c.post("/api/memories", json={"messages": "queued fact", "user_id": "bg", "infer": False,
                                            "background": True}).json()
        assert job["status"] == "queued"
        import time
        for _ in range(200):
            state = c.get(f"/api/jobs/{job['job_id']}").json()
            if state["status"] == "done":
                break
            time.sleep(0.05)
        assert state["status"] == "done"
        assert c.get("/api/memories", params={"user_id": "bg"}).json()["total"] == 1


def test_errors_are_typed_and_documented(server):
    with client(server, "acme") as c:
        r = c.post("/api/memories", json={"messages": "x"})  # no scope: memlane's ValidationError
        assert r.status_code == 400 and r.json()["error"] == "ValidationError"
        r = c.post("/api/memories", json={"messages": "x", "user_id": "a", "bogus": 1})
        assert r.status_code == 422
        r = c.post("/api/memories", content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 422
        r = c.post("/api/memories", json={"messages": "x" * 60_000, "user_id": "a"})
        assert r.status_code == 413


def test_tenants_are_separate_files(server):
    _, _, home = server
    with client(server, "acme") as a, client(server, "globex") as g:
        add(a, "acme fact")
        add(g, "globex fact")
    assert (home / "tenants" / "acme.db").exists() and (home / "tenants" / "globex.db").exists()


def test_isolation_every_route_other_tenant_is_404(server):
    with client(server, "acme") as a, client(server, "globex") as g:
        theirs = add(a, "acme secret: the launch code is 1234", user="bob")
        add(g, "globex note", user="bob")
        assert g.get(f"/api/memories/{theirs}").status_code == 404
        assert g.patch(f"/api/memories/{theirs}", json={"text": "pwned"}).status_code == 404
        assert g.delete(f"/api/memories/{theirs}").status_code == 404
        assert g.get(f"/api/memories/{theirs}/history").json() == []
        assert g.put("/api/batch", json={"memories": [{"memory_id": theirs, "text": "x"}]}).status_code == 404
        assert g.post("/api/batch/delete", json={"memories": [{"memory_id": theirs}]}).status_code == 404
        assert g.get(f"/v1/memories/{theirs}/").status_code == 404
        assert g.put(f"/v1/memories/{theirs}/", json={"text": "x"}).status_code == 404
        assert g.delete(f"/v1/memories/{theirs}/").status_code == 404
        assert g.request("DELETE", "/v1/batch/", json={"memories": [{"memory_id": theirs}]}).status_code == 404
        for filters in ({"user_id": "bob"}, {"user_id": {"in": ["bob", "alice"]}}, {"OR": [{"user_id": "bob"}]},
                        {"user_id": "*"}, {"NOT": {"user_id": "nobody"}, "user_id": "bob"}):
            for path in ("/api/memories/search", "/v3/memories/search/"):
                r = g.post(path, json={"query": "launch code", "filters": filters})
                assert r.status_code in (200, 400), r.text
                assert all("acme" not in h["memory"] for h in r.json().get("results", []))
            r = g.post("/api/memories/list", json={"filters": filters})
            assert all("acme" not in h["memory"] for h in r.json().get("results", []))
        g.post("/api/memories/delete_all", json={"user_id": "bob"})
        g.post("/api/users/delete", json={"user_id": "bob"})
        assert a.get(f"/api/memories/{theirs}").status_code == 200  # untouched


def test_user_bound_key(server):
    with client(server, "acme") as admin, client(server, "acme_alice") as k:
        carol = add(admin, "carol's memory", user="carol")
        mine = add(k, "alice via bound key", user="alice")
        assert k.get(f"/api/memories/{carol}").status_code == 404
        assert k.delete(f"/api/memories/{carol}").status_code == 404
        assert k.post("/api/memories", json={"messages": "x", "user_id": "carol", "infer": False}).status_code == 403
        assert k.post("/api/memories/search", json={"query": "memory", "user_id": "carol"}).status_code == 403
        assert k.post("/api/memories/search", json={"query": "memory", "filters": {"agent_id": "x"}}).status_code == 403
        r = k.post("/api/memories/search", json={"query": "memory", "user_id": "alice",
                                                 "filters": {"OR": [{"user_id": "carol"}]}})
        assert all(h["user_id"] == "alice" for h in r.json().get("results", []))
        assert {u["name"] for u in k.get("/api/users").json()["results"]} <= {"alice"}
        assert k.get(f"/api/memories/{mine}").status_code == 200
        job = admin.post("/api/memories", json={"messages": "carol's queued", "user_id": "carol", "infer": False,
                                                "background": True}).json()["job_id"]
        import time
        for _ in range(200):
            if admin.get(f"/api/jobs/{job}").json()["status"] == "done":
                break
            time.sleep(0.05)
        assert admin.get(f"/api/jobs/{job}").json()["result"]["results"]
        assert k.get(f"/api/jobs/{job}").json()["result"]["results"] == []  # carol's memory is not the key's
        assert k.post("/api/keys", json={"tenant": "acme"}).status_code == 403
        assert k.post("/api/reset").status_code == 403


def test_admin_keys_manage_own_tenant_keys(server):
    url = server[0]
    with client(server, "acme") as a:
        assert a.post("/api/keys", json={"tenant": "globex"}).status_code == 403
        made = a.post("/api/keys", json={"user_ids": ["dora"]}).json()
        assert made["tenant"] == "acme" and made["key"].startswith("mlk_")
        assert made["id"] in {k["id"] for k in a.get("/api/keys").json()["results"]}
        assert all("key" not in k and "hash" not in k for k in a.get("/api/keys").json()["results"])
        headers = {"Authorization": f"Token {made['key']}"}
        assert httpx.get(url + "/api/users", headers=headers).status_code == 200
        assert a.delete(f"/api/keys/{made['id']}").json()["revoked_at"]
        assert httpx.get(url + "/api/users", headers=headers).status_code == 401


def test_metrics_prometheus_text(server):
    with client(server, "acme") as a:
        a.get("/api/users")
    text = httpx.get(server[0] + "/metrics").text
    assert 'memlane_http_requests_total{method="GET",route="/api/users",status="200"}' in text
    assert 'memlane_http_request_duration_seconds_bucket{method="GET",route="/api/users",le="+Inf"}' in text


def test_rate_limit_429_with_retry_after(tmp_path):
    keys = KeyStore(tmp_path / "keys.db")
    secret, _ = keys.create("t")
    with serve_in_thread(ServerSettings(home=str(tmp_path), rate_limit=1)) as url:
        codes = [httpx.get(url + "/api/users", headers={"Authorization": f"Token {secret}"}) for _ in range(5)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1


def test_no_auth_only_on_loopback(tmp_path):
    from memlane.errors import ConfigurationError
    from memlane.server import create_app
    with pytest.raises(ConfigurationError):
        create_app(ServerSettings(home=str(tmp_path), no_auth=True, host="0.0.0.0"))


def test_delete_all_filters_python_repr_parsed_safely():
    assert parse_filters("{'user_id': 'alice'}") == {"user_id": "alice"}
    assert parse_filters('{"user_id": "alice"}') == {"user_id": "alice"}
    for bad in ("__import__('os').system('true')", "[1]", "{" * 5000, "x" * 20_000):
        with pytest.raises(ValidationError):
            parse_filters(bad)


def test_unknown_ids_everywhere_are_404(server):
    unknown = str(uuid.uuid4())
    with client(server, "acme") as a:
        assert a.get(f"/api/memories/{unknown}").status_code == 404
        assert a.delete(f"/api/memories/{unknown}").status_code == 404
        assert a.get(f"/api/jobs/{unknown}").status_code == 404


def test_client_retries_429_after_retry_after(tmp_path):
    from memlane.client import MemoryClient, RateLimitError
    secret, _ = KeyStore(tmp_path / "keys.db").create("t")
    with serve_in_thread(ServerSettings(home=str(tmp_path), rate_limit=1)) as url:
        patient = MemoryClient(url, secret, max_retries=3)
        assert all(patient.users()["results"] == [] for _ in range(4))  # the 3rd and 4th wait for Retry-After
        impatient = MemoryClient(url, secret, max_retries=0)
        with pytest.raises(RateLimitError) as info:
            for _ in range(3):
                impatient.users()
        assert info.value.status == 429


def test_cors_configurable(tmp_path):
    with serve_in_thread(ServerSettings(home=str(tmp_path), cors_origins=["https://app.example"])) as url:
        r = httpx.options(url + "/api/users", headers={"Origin": "https://app.example",
                                                       "Access-Control-Request-Method": "GET"})
        assert r.headers.get("access-control-allow-origin") == "https://app.example"
        r = httpx.options(url + "/api/users", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "GET"})
        assert r.headers.get("access-control-allow-origin") is None


def test_keys_are_stored_hashed(server):
    import sqlite3
    url, made, home = server
    dump = "\n".join(sqlite3.connect(home / "keys.db").iterdump())
    assert all(secret not in dump for secret in made.values())


def test_metrics_count_llm_tokens_and_pending_jobs(tmp_path, fake_server):
    from test_graph import reply
    secret, _ = KeyStore(tmp_path / "keys.db").create("t")
    config = {"llm": {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{fake_server.url}/v1"}}}
    fake_server.script(reply([("ADD", None, "Alice works at Acme")]))
    with serve_in_thread(ServerSettings(home=str(tmp_path), config=config, rate_limit=0)) as url:
        added = httpx.post(url + "/api/memories", headers={"Authorization": f"Token {secret}"},
                           json={"messages": "Alice works at Acme", "user_id": "u1"}, timeout=60).json()
        text = httpx.get(url + "/metrics").text
    usage = added["usage"]
    assert f'memlane_llm_tokens_total{{kind="prompt"}} {usage["prompt_tokens"]}' in text
    assert f'memlane_llm_tokens_total{{kind="completion"}} {usage["completion_tokens"]}' in text
    assert "memlane_jobs_pending 0" in text.splitlines()


@pytest.mark.parametrize("name", ["Acme", "1acme", "acme\n", "a/b", "", "a" * 41])
def test_a_tenant_name_that_is_not_a_safe_file_and_schema_name_is_refused(name):
    from memlane.server.keys import check_tenant
    with pytest.raises(ValidationError, match="tenant"):
        check_tenant(name)
    assert check_tenant("acme_2") == "acme_2"
