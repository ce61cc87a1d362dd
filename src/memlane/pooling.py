"""Sentence pooling: how a memory's text becomes the pieces that are embedded, and how their vectors become
the memory's one vector. Pure functions; the pipeline yields the embedding between them.

A conversation turn often holds several sentences ("Hey! Long week. I went to a pride parade on Sunday.").
Embedded whole, the one sentence a question is about is diluted by the rest; embedded per sentence and
averaged, each sentence counts equally. Each sentence is prefixed with the speaker's name when it is known,
so "What did Caroline ..." finds Caroline's turns by meaning as well as by keyword. It lifts recall on
LOCOMO (docs/benchmarks.md, bench/ablation.py).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

# A sentence ends at . ! ? (or a run of them, with closing quotes/brackets) followed by white space; line
# breaks end one too. Abbreviations ("Dr. Smith") split wrongly, which only costs a little averaging.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\n+")
# Past this many sentences the rest are embedded as one piece: a pasted document must not become
# hundreds of embedding calls.
MAX_PIECES = 16
# Added to the embedding model's name in the store's record of its vector space when memories are pooled,
# so one store is never filled with vectors made two ways.
POOLED_SUFFIX = "+sentence-pooled"


def sentences(text: str) -> list[str]:
    """The non-empty sentences of `text`, in order; the whole stripped text if it has no boundary."""
    parts = [p.strip() for p in _BOUNDARY.split(text) if p and p.strip()]
    if len(parts) > MAX_PIECES:
        parts = parts[:MAX_PIECES - 1] + [" ".join(parts[MAX_PIECES - 1:])]
    return parts or [text.strip() or text]


def pieces(texts: Sequence[str], speakers: Optional[Sequence[Optional[str]]] = None) -> tuple[list[str], list[int]]:
    """What to embed for these memories, and for each piece the index of the memory it belongs to."""
    out: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(texts):
        name = speakers[i] if speakers is not None else None
        for sentence in sentences(text):
            out.append(f"{name}: {sentence}" if name and not _leads_with(sentence, name) else sentence)
            owners.append(i)
    return out, owners


def _leads_with(sentence: str, name: str) -> bool:
    """Whether the sentence already opens with "<name>:" (transcripts often store "Tim: ..." with name="Tim");
    repeating it adds tokens and, on LOCOMO, cost a little recall (docs/benchmarks.md)."""
    head = sentence[:len(name) + 1]
    return head[:-1].casefold() == name.casefold() and head.endswith(":")


def pool(vectors: np.ndarray, owners: Sequence[int], count: int) -> np.ndarray:
    """One unit vector per memory: the mean of its pieces' vectors, re-normalised."""
    vectors = np.asarray(vectors, dtype=np.float32)
    out = np.zeros((count, vectors.shape[1] if vectors.ndim == 2 else 0), dtype=np.float32)
    np.add.at(out, np.asarray(owners, dtype=np.int64), vectors)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)
