"""Run by tests/test_import_mem0.py inside a throwaway venv holding the real `mem0ai` package (never imported
by memlane or its tests' own interpreter): writes memories the way a mem0 user would, with infer=False (no
LLM), mem0's OpenAI embedder pointed at a local fake server, and mem0's default local Qdrant collection and
SQLite history database. Prints what mem0 answers afterwards (get_all, history) as JSON on stdout.

usage: python mem0_writer.py EMBED_URL STORE HISTORY_DB DIMS
STORE: a folder (mem0's embedded Qdrant) or a postgresql:// connection string (mem0's pgvector table)
"""
import json
import sys

from mem0 import Memory

url, store, history_db, dims = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if store.startswith("postgresql://"):
    vector_store = {"provider": "pgvector", "config": {"connection_string": store, "collection_name": "mem0",
                                                       "embedding_model_dims": dims}}
else:
    vector_store = {"provider": "qdrant", "config": {"path": store, "collection_name": "mem0",
                                                     "embedding_model_dims": dims, "on_disk": True}}
m = Memory.from_config({
    "embedder": {"provider": "openai", "config": {"openai_base_url": url, "api_key": "k",
                                                  "model": "text-embedding-3-small", "embedding_dims": dims}},
    "vector_store": vector_store,
    "llm": {"provider": "openai", "config": {"openai_base_url": url, "api_key": "k"}},
    "history_db_path": history_db,
})
ids = {}
for text, scope, metadata in [
        ("I like green tea", {"user_id": "alice"}, {"source": "chat", "n": 1}),
        ("My cat is called Miso", {"user_id": "alice"}, None),
        ("Prefers short answers", {"agent_id": "helper"}, {"tags": ["style"]}),
        ("Meeting notes for run 7", {"user_id": "bob", "run_id": "run-7"}, None),
        ("Temporary memory", {"user_id": "bob"}, None)]:
    out = m.add([{"role": "user", "content": text}], infer=False, metadata=metadata, **scope)
    ids[text] = out["results"][0]["id"]
m.update(ids["I like green tea"], "I love jasmine green tea")
m.delete(ids["Temporary memory"])
report = {"ids": ids, "all": {}, "history": {}}
for scope in ({"user_id": "alice"}, {"agent_id": "helper"}, {"user_id": "bob"}):
    report["all"][json.dumps(scope)] = m.get_all(filters=scope)["results"]
for mid in ids.values():
    report["history"][mid] = m.history(mid)
print(json.dumps(report, default=str))
