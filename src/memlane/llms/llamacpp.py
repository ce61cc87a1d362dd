"""A GGUF model run in-process by llama.cpp, through the prebuilt `xllamacpp` binding (pip install
'memlane[llamacpp]'; nothing to compile, nothing downloaded: the config points at a .gguf file).

A schema is sent as response_format {"type": "json_schema"}: llama.cpp turns it into a grammar that constrains
decoding, so the answer parses (a small local model otherwise loses adds to malformed JSON) unless it is cut
off at max_tokens. Against that, the provider's copy of the schema bounds what the pipeline's leaves open:
arrays get maxItems (`max_items`, default 20) and free strings maxLength (`max_length`, default 500
characters), since under greedy decoding a small model can repeat items, or a phrase inside a string, until
max_tokens.

The model is loaded on the first call and kept for the provider's life; calls are serialised by a lock (one
llama.cpp slot), and agenerate runs generate in a worker thread. xllamacpp's Server also opens an HTTP listener
on a random 127.0.0.1 port; memlane never uses it and protects it with a random API key.

Config keys: `model` (path to the .gguf file; required), `n_ctx` (context length in tokens, default 4096),
`n_threads` (CPU threads; default llama.cpp's choice), `n_gpu_layers` (layers to offload where the wheel has
a GPU backend), `temperature` (default 0), `max_tokens` (default 2000), `top_p`, `top_k`, `seed`,
`max_items`, `max_length`. mem0's other LLM keys are accepted and ignored.
"""
from __future__ import annotations

import asyncio
import copy
import os
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import LLMError, missing_extra
from ..provider_config import MEM0_LLM_KEYS, ProviderConfig
from .base import LLMRequest, LLMResponse

DEFAULT_N_CTX = 4096
DEFAULT_MAX_ITEMS = 20
DEFAULT_MAX_LENGTH = 500
IGNORED_MEM0_KEYS = MEM0_LLM_KEYS + ("api_key", "reasoning_effort")


def bound_schema(schema: Any, max_items: int, max_length: int) -> Any:
    """A copy of `schema` in which every array holds at most `max_items` (a larger maxItems is lowered: a small
    model under greedy decoding fills an array to its bound), and every free string (no maxLength, enum,
    const or pattern) gets maxLength `max_length`."""
    schema = copy.deepcopy(schema)

    def has(node: dict[str, Any], kind: str) -> bool:
        types = node.get("type")
        return types == kind or (isinstance(types, list) and kind in types)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if has(node, "array") or "items" in node:
                node["maxItems"] = min(int(node.get("maxItems", max_items)), max_items)
            if has(node, "string") and not {"maxLength", "enum", "const", "pattern"} & set(node):
                node["maxLength"] = max_length
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


class LlamaCppLLM:
    name = "llamacpp"

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "llm", ignored=IGNORED_MEM0_KEYS)
        model = cfg.take("model")
        if not model or not isinstance(model, (str, os.PathLike)):
            raise cfg.error("model must be the path of a .gguf file (nothing is downloaded)")
        path = os.path.expanduser(os.fspath(model))
        if not os.path.isfile(path):
            raise cfg.error(f"model file not found: {path!r} (model must be the path of a .gguf file)")
        self.model = path
        self.n_ctx = cfg.positive_int("n_ctx") or DEFAULT_N_CTX
        self.n_threads = cfg.positive_int("n_threads")
        self.n_gpu_layers = cfg.number("n_gpu_layers", None, int)
        self.temperature = cfg.take("temperature", 0.0)
        self.max_tokens = cfg.positive_int("max_tokens") or 2000
        self.top_p = cfg.take("top_p")
        self.top_k = cfg.take("top_k")
        self.seed = cfg.number("seed", None, int)
        self.max_items = cfg.positive_int("max_items") or DEFAULT_MAX_ITEMS
        self.max_length = cfg.positive_int("max_length") or DEFAULT_MAX_LENGTH
        cfg.done()
        try:
            import xllamacpp
        except ImportError:
            raise missing_extra("xllamacpp", "llamacpp") from None
        self._xllamacpp = xllamacpp
        self._server: Any = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- pure

    def build(self, request: LLMRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [{"role": m.get("role", "user"), "content": m["content"]} for m in request.messages],
            "max_tokens": request.max_tokens or self.max_tokens,
            "stream": False,
        }
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            body["temperature"] = temperature
        for key, value in (("top_p", self.top_p), ("top_k", self.top_k), ("seed", self.seed)):
            if value is not None:
                body[key] = value
        if request.schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.schema_name, "schema": bound_schema(request.schema, self.max_items, self.max_length)}}
        return body

    def parse(self, payload: Any) -> LLMResponse:
        if not isinstance(payload, dict):
            raise LLMError("llamacpp: unexpected response shape", raw_output=payload, provider=self.name)
        if payload.get("error"):
            raise LLMError(f"llamacpp: {payload['error']}", raw_output=payload, provider=self.name)
        try:
            message = payload["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise LLMError("llamacpp: unexpected response shape: no choices[0].message", raw_output=payload,
                           provider=self.name) from None
        usage = payload.get("usage") or {}
        return LLMResponse(content=message.get("content") or "", data=None,
                           prompt_tokens=int(usage.get("prompt_tokens") or 0),
                           completion_tokens=int(usage.get("completion_tokens") or 0),
                           model=os.path.basename(self.model), raw=payload)

    # ---------------------------------------------------------------- I/O

    def _load(self) -> Any:
        """The llama.cpp server for this model, loaded once (call with the lock held)."""
        if self._server is None:
            x = self._xllamacpp
            params = x.CommonParams()
            params.model.path = self.model
            params.n_ctx = self.n_ctx
            params.n_parallel = 1
            params.warmup = False
            params.verbosity = -1  # llama.cpp's log lines otherwise go to stderr
            params.api_keys = [secrets.token_urlsafe(32)]  # the unused HTTP listener refuses everyone
            if self.n_threads:
                params.cpuparams.n_threads = self.n_threads
                params.cpuparams_batch.n_threads = self.n_threads
            if self.n_gpu_layers is not None:
                params.n_gpu_layers = self.n_gpu_layers
            try:
                self._server = x.Server(params)
            except Exception as exc:
                raise LLMError(f"llamacpp: cannot load {self.model!r}: {exc}", provider=self.name) from exc
        return self._server

    def generate(self, request: LLMRequest) -> LLMResponse:
        body = self.build(request)
        with self._lock:
            server = self._load()
            try:
                payload = server.handle_chat_completions(body)
            except Exception as exc:  # llama.cpp reports a bad request or schema as ValueError
                raise LLMError(f"llamacpp: {exc}", provider=self.name) from exc
        return self.parse(payload)

    async def agenerate(self, request: LLMRequest) -> LLMResponse:
        return await asyncio.to_thread(self.generate, request)

    def close(self) -> None:
        """Free the model (the next call loads it again)."""
        with self._lock:
            self._server = None
