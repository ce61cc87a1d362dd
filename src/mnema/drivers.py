"""Sync and async drivers over the one pipeline: each runs the pipeline's generator, performing the effects
it yields. This is the only place that knows about blocking vs. awaiting."""
from __future__ import annotations

import asyncio
from typing import Any, Generator

from .drive import adrive, drive
from .effects import Complete, Embed, Rerank, StoreCall
from .errors import ConfigurationError

Op = Generator[Any, Any, Any]


class Runtime:
    def __init__(self, embedder: Any, store: Any, llm: Any = None, reranker: Any = None):
        self.embedder = embedder
        self.store = store
        self.llm = llm
        self.reranker = reranker

    def _reranker(self) -> Any:
        if self.reranker is None:
            raise ConfigurationError("no reranker is configured: set reranker={'provider': 'maxsim'} in the "
                                     "config, or search without rerank=True")
        return self.reranker

    def perform(self, effect: Any) -> Any:
        if isinstance(effect, StoreCall):
            return getattr(self.store, effect.method)(*effect.args)
        if isinstance(effect, Embed):
            return self.embedder.embed(effect.texts, effect.purpose)
        if isinstance(effect, Complete):
            if self.llm is None:
                raise ConfigurationError("no LLM is configured")
            return self.llm.generate(effect.request)
        if isinstance(effect, Rerank):
            return self._reranker().rerank(effect.query, effect.documents)
        raise TypeError(f"unknown effect {effect!r}")

    async def aperform(self, effect: Any) -> Any:
        # Providers may offer native coroutines (a*-methods); otherwise their blocking call runs in a thread.
        if isinstance(effect, StoreCall):
            native = getattr(self.store, "a" + effect.method, None)
            if native is not None:
                return await native(*effect.args)
            return await asyncio.to_thread(getattr(self.store, effect.method), *effect.args)
        if isinstance(effect, Embed):
            native = getattr(self.embedder, "aembed", None)
            if native is not None:
                return await native(effect.texts, effect.purpose)
            return await asyncio.to_thread(self.embedder.embed, effect.texts, effect.purpose)
        if isinstance(effect, Complete):
            if self.llm is None:
                raise ConfigurationError("no LLM is configured")
            native = getattr(self.llm, "agenerate", None)
            if native is not None:
                return await native(effect.request)
            return await asyncio.to_thread(self.llm.generate, effect.request)
        if isinstance(effect, Rerank):
            reranker = self._reranker()
            native = getattr(reranker, "arerank", None)
            if native is not None:
                return await native(effect.query, effect.documents)
            return await asyncio.to_thread(reranker.rerank, effect.query, effect.documents)
        raise TypeError(f"unknown effect {effect!r}")


def run_sync(runtime: Runtime, op: Op) -> Any:
    return drive(op, runtime.perform)


async def run_async(runtime: Runtime, op: Op) -> Any:
    return await adrive(op, runtime.aperform)
