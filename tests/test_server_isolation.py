"""Fuzzed filters cannot cross a tenant (one store each) nor a user-bound key's user_ids."""
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlane.server import ServerSettings
from memlane.server.background import serve_in_thread
from memlane.server.keys import KeyStore

USERS = ["alice", "bob", "carol"]
scalar = st.sampled_from(USERS + ["*", "", "x"]) | st.integers(-2, 2) | st.none()
condition = st.one_of(
    scalar,
    st.dictionaries(st.sampled_from(["eq", "ne", "in", "nin", "contains", "gt"]),
                    scalar | st.lists(scalar, max_size=3), min_size=1, max_size=2))
leaf = st.dictionaries(st.sampled_from(["user_id", "agent_id", "run_id", "tag"]), condition, min_size=1, max_size=3)
filters = st.recursive(leaf, lambda inner: st.one_of(
    st.builds(lambda xs: {"AND": xs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda xs: {"OR": xs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda x: {"NOT": x}, inner),
    st.builds(lambda a, b: {**a, **b}, leaf, inner)), max_leaves=6)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    home = tmp_path_factory.mktemp("iso-home")
    keys = KeyStore(home / "keys.db")
    made = {"acme": keys.create("acme")[0], "globex": keys.create("globex")[0],
            "alice": keys.create("globex", user_ids=["alice"])[0]}
    with serve_in_thread(ServerSettings(home=str(home), rate_limit=0)) as url:
        for tenant in ("acme", "globex"):
            with httpx.Client(base_url=url, headers={"Authorization": f"Token {made[tenant]}"}) as c:
                for user in USERS:
                    r = c.post("/api/memories", json={"messages": f"{tenant} secret of {user}", "user_id": user,
                                                      "agent_id": "bot", "metadata": {"tag": user}, "infer": False})
                    assert r.status_code == 200
        yield url, made


def _call(url, key, path, body):
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=30) as c:
        r = c.post(path, json=body)
    assert r.status_code in (200, 400, 403), r.text
    return r.json().get("results", []) if r.status_code == 200 else []


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(f=filters, user=st.sampled_from(USERS + [None]), path=st.sampled_from(
    ["/api/memories/search", "/api/memories/list", "/v3/memories/search/", "/v3/memories/"]))
def test_fuzzed_filters_stay_in_tenant_and_user(live, f, user, path):
    url, made = live
    body = {"filters": f}
    if "search" in path:
        body["query"] = "secret"
    if user is not None and path.startswith("/api"):
        body["user_id"] = user
    for row in _call(url, made["globex"], path, body):
        assert row["memory"].startswith("globex ")
    for row in _call(url, made["alice"], path, body):
        assert row["memory"] == "globex secret of alice" and row["user_id"] == "alice"
