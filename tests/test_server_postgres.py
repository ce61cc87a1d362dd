"""memlane serve on PostgreSQL: each tenant is its own schema (collection_name memlane_<tenant>); the
mem0 routes and MemoryClient work on it as on the embedded file."""
import uuid

import httpx

from memlane.client import MemoryClient
from memlane.server import ServerSettings
from memlane.server.background import serve_in_thread
from memlane.server.keys import KeyStore


def test_tenants_are_schemas_and_do_not_cross(tmp_path, pg_url):
    import psycopg

    keys = KeyStore(tmp_path / "keys.db")
    acme, globex = keys.create("acme")[0], keys.create("globex")[0]
    config = {"vector_store": {"provider": "pgvector", "config": {"connection_string": pg_url}}}
    with serve_in_thread(ServerSettings(home=str(tmp_path), config=config, rate_limit=0)) as url:
        with MemoryClient(url, acme) as a, MemoryClient(url, globex) as g:
            mid = a.add("acme's plan", user_id="u", infer=False)["results"][0]["id"]
            g.add("globex's plan", user_id="u", infer=False)
            assert a.search("plan", user_id="u")["results"][0]["memory"] == "acme's plan"
            assert [r["memory"] for r in g.get_all(user_id="u")["results"]] == ["globex's plan"]
            assert g.get(mid) is None
            r = httpx.delete(f"{url}/v1/memories/{mid}/", headers={"Authorization": f"Token {globex}"})
            assert r.status_code == 404
            assert a.get(mid)["memory"] == "acme's plan"
            assert g.get(str(uuid.uuid4())) is None
    with psycopg.connect(pg_url) as conn:
        schemas = {row[0] for row in conn.execute("SELECT schema_name FROM information_schema.schemata")}
    assert {"memlane_acme", "memlane_globex"} <= schemas
