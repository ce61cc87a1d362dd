"""LOCOMO retrieval ablation: which parts of memlane's search earn their keep.

    python bench/ablation.py --data ../shared/datasets/locomo [--out bench/results/ablation.json]

Every row stores the raw turns (or, for the last row, the dataset's gold observations) through the public
Memory API with the packaged local embedder, and measures evidence recall@k exactly as bench/locomo.py does
(its loader, evidence normalisation and metric are reused). Rows differ only in RetrievalConfig, so the
table shows what each idea adds on top of the previous one.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import locomo  # noqa: E402  (bench/locomo.py: loader, metric, machine info)

from memlane import Memory  # noqa: E402
from memlane.config import MemoryConfig, ProviderConfig, RetrievalConfig  # noqa: E402

# (label, retrieval settings). Search-only settings reuse the database ingested with the same indexing
# settings (context_weight, sentence_pooling).
NO_POOL = dict(sentence_pooling=False)
NO_DATE = dict(date_weight=0)  # every row before the date row leaves it out
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("dense only", dict(dense_weight=1, keyword_weight=0, actor_weight=0, context_weight=0, **NO_POOL, **NO_DATE)),
    ("dense only, sentence-pooled", dict(dense_weight=1, keyword_weight=0, actor_weight=0, context_weight=0,
                                         **NO_DATE)),
    ("keyword only (FTS5 BM25)", dict(dense_weight=0, keyword_weight=1, actor_weight=0, context_weight=0,
                                      **NO_POOL, **NO_DATE)),
    ("hybrid 0.7/0.3, bm25_half 6 (first default)", dict(dense_weight=0.7, keyword_weight=0.3, actor_weight=0,
                                                         bm25_half=6, context_weight=0, **NO_POOL, **NO_DATE)),
    ("hybrid 0.5/0.5, bm25_half 12", dict(dense_weight=0.5, keyword_weight=0.5, actor_weight=0, context_weight=0,
                                          **NO_POOL, **NO_DATE)),
    ("+ contextual indexing (previous turn)", dict(dense_weight=0.5, keyword_weight=0.5, actor_weight=0,
                                                   **NO_POOL, **NO_DATE)),
    ("+ actor named in the query", dict(**NO_POOL, **NO_DATE)),
    ("+ sentence pooling", dict(NO_DATE)),
    ("+ dates named in the query (default)", {}),
    ("default, wider candidate pool (100)", dict(min_candidates=100)),
]


def recall_rows(memory: Memory, convs: list, dia_of: dict[str, list[str]], ks: list[int]) -> dict[str, Any]:
    hits: dict[int, list[float]] = {k: [] for k in ks}
    per_cat: dict[int, list[float]] = {}
    latencies = []
    for conv in convs:
        for q in conv.questions:
            t0 = time.perf_counter()
            results = memory.search(q.question, user_id=conv.id, limit=max(ks))["results"]
            latencies.append((time.perf_counter() - t0) * 1000)
            gold = set(q.evidence)
            for k in ks:
                found = {d for r in results[:k] for d in dia_of.get(r["id"], [])}
                hits[k].append(len(gold & found) / len(gold))
            per_cat.setdefault(q.category, []).append(hits[10][-1] if 10 in hits else hits[ks[0]][-1])
    out = {f"recall@{k}": round(float(np.mean(v)), 4) for k, v in hits.items()}
    out["recall@10_by_category"] = {locomo.CATEGORIES[c]: round(float(np.mean(v)), 4)
                                    for c, v in sorted(per_cat.items())}
    out["search_ms_p50"] = round(float(np.percentile(latencies, 50)), 2)
    return out


def open_memory(path: str, retrieval: dict[str, Any]) -> Memory:
    return Memory(MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": path}),
                               llm=ProviderConfig(provider="none"), retrieval=RetrievalConfig(**retrieval)))


def ingest_turns(memory: Memory, convs: list) -> tuple[dict[str, list[str]], float]:
    dia_of: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    for conv in convs:
        for turns in conv.sessions.values():
            messages = [{"role": "user", "content": t.text, "name": t.speaker} for t in turns]
            res = memory.add(messages, user_id=conv.id, infer=False, timestamp=turns[0].timestamp)["results"]
            for r, t in zip(res, turns, strict=True):
                dia_of[r["id"]] = [t.dia_id]
    return dia_of, time.perf_counter() - t0


def ingest_observations(memory: Memory, data_dir: Path, convs: list) -> dict[str, list[str]]:
    """The dataset's human-written facts per session ("ideal extraction"), each with its source turns."""
    dia_of: dict[str, list[str]] = {}
    for conv in convs:
        raw = json.loads((data_dir / f"{conv.id}.json").read_text())
        known = {t.dia_id for t in conv.turns}
        for key, value in raw.items():
            if not re.fullmatch(r"session_\d+_observation", key) or not isinstance(value, dict):
                continue
            session = int(key.split("_")[1])
            turns = conv.sessions.get(session) or [None]
            when = turns[0].timestamp if turns[0] else None  # the session's date, as for raw turns
            for speaker, facts in value.items():
                messages, sources = [], []
                for fact, evidence in facts:
                    ids = evidence if isinstance(evidence, list) else [evidence]
                    dias = [d for e in ids for d in locomo.normalise_evidence(str(e), known)[0]]
                    messages.append({"role": "user", "content": fact, "name": speaker})
                    sources.append(dias)
                if messages:
                    res = memory.add(messages, user_id=conv.id, infer=False, timestamp=when)["results"]
                    for r, dias in zip(res, sources, strict=True):
                        dia_of[r["id"]] = dias
    return dia_of


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--k", default="5,10,20")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    report = locomo.DataReport()
    convs = locomo.load(Path(args.data), None, report)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memlane-ablation-") as tmp:
        databases: dict[tuple[float, bool], tuple[str, dict[str, list[str]]]] = {}
        default = RetrievalConfig()
        for label, settings in ROWS:
            key = (settings.get("context_weight", default.context_weight),
                   settings.get("sentence_pooling", default.pooling_for("local")))
            if key not in databases:
                path = f"{tmp}/ctx{key[0]}-pool{int(key[1])}.db"
                with open_memory(path, settings) as m:
                    dia_of, seconds = ingest_turns(m, convs)
                print(f"ingested with context_weight={key[0]}, sentence_pooling={key[1]} in {seconds:.1f} s",
                      file=sys.stderr)
                databases[key] = (path, dia_of)
            path, dia_of = databases[key]
            with open_memory(path, settings) as m:
                row = {"method": label, "retrieval": settings, **recall_rows(m, convs, dia_of, ks)}
            rows.append(row)
            print(f"{label:42s} R@5 {row['recall@5']:.3f}  R@10 {row['recall@10']:.3f}  "
                  f"R@20 {row['recall@20']:.3f}", file=sys.stderr)
        with open_memory(f"{tmp}/gold.db", {"context_weight": 0}) as m:
            dia_of = ingest_observations(m, Path(args.data), convs)
            row = {"method": "gold observations as memories (ideal extraction)", "retrieval": {"context_weight": 0},
                   "memories": len(dia_of), **recall_rows(m, convs, dia_of, ks)}
        rows.append(row)
    result = {"benchmark": "locomo-ablation", "questions": sum(len(c.questions) for c in convs),
              "conversations": [c.id for c in convs], "rows": rows, "machine": locomo.machine(),
              **{"memlane_" + k: v for k, v in locomo.git_commit().items()}}
    print(f"\n{'method':52s} {'R@5':>6s} {'R@10':>6s} {'R@20':>6s}")
    for r in rows:
        print(f"{r['method']:52s} {r['recall@5']:6.3f} {r['recall@10']:6.3f} {r['recall@20']:6.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
