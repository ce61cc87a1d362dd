"""Sync and async drivers over the one pipeline: each runs the pipeline's generator, performing the effects
it yields. This is the only place that knows about blocking vs. awaiting."""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import types
from typing import Any, Callable, Generator, TypeVar

from .drive import adrive, drive
from .effects import Complete, Embed, Rerank, StoreCall
from .errors import ConfigurationError, InternalError, MnemaError

log = logging.getLogger("mnema")

Op = Generator[Any, Any, Any]
F = TypeVar("F", bound=Callable[..., Any])


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


def operation(op: Any) -> str:
    """The public operation an op runs, for messages: the pipeline function's name (add, search, ...)."""
    return getattr(op, "__name__", None) or type(op).__name__


def internal(op: Any, exc: Exception) -> InternalError:
    """The last-resort wrapping of an exception that is not a MnemaError: a bug (in mnema or a dependency)
    that validation should have turned into a typed error. Logged with its traceback, kept as __cause__.
    Each of the store's writes is one transaction, so one that raised wrote nothing."""
    name = operation(op)
    detail = str(exc)
    detail = detail if len(detail) <= 300 else detail[:300] + "..."
    log.error("mnema: %s() failed with an unexpected %s: %s", name, type(exc).__name__, detail, exc_info=exc)
    return InternalError(f"{name}() failed with an unexpected {type(exc).__name__}: {detail} (a bug in mnema or "
                         "a dependency; please report it)")


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _codes(value: Any, depth: int = 0) -> set[Any]:
    """Code objects of a callable the caller passed in (a function, bound method, partial or object with
    __call__), unless it is mnema's own (progress=True gives mnema's ProgressBar)."""
    if depth > 3 or value is None or isinstance(value, (str, bytes, int, float, bool, dict, list, tuple)):
        return set()
    if isinstance(value, functools.partial):
        return _codes(value.func, depth + 1)
    func = getattr(value, "__func__", value)
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType):
        code = getattr(getattr(type(value), "__call__", None), "__code__", None)
    if not isinstance(code, types.CodeType) or os.path.abspath(code.co_filename).startswith(_PACKAGE + os.sep):
        return set()
    return {code}


def _callbacks(op: Any) -> set[Any]:
    """The callables among an op's arguments (read before it starts, while its frame holds just them)."""
    try:
        frame = getattr(op, "gi_frame", None)
        if frame is None:
            return set()
        return set().union(set(), *(_codes(v) for v in frame.f_locals.values() if callable(v)))
    except Exception:  # an argument that answers getattr strangely: then no callback is the caller's
        return set()


def _raised_in(exc: BaseException, codes: set[Any]) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False


def _escaped(op: Op, exc: Exception, callbacks: set[Any]) -> Exception:
    """What a run raises for an exception that left the pipeline: a MnemaError, or one a callback of the
    caller's raised, as it is; anything else as InternalError."""
    if isinstance(exc, MnemaError) or (callbacks and _raised_in(exc, callbacks)):
        return exc
    return internal(op, exc)


def run_sync(runtime: Runtime, op: Op) -> Any:
    """Run a pipeline op blocking. Only MnemaError subclasses leave it: anything else (an Exception, not
    KeyboardInterrupt / SystemExit) becomes InternalError with the original as __cause__, except what a
    callback the caller passed in raised (reindex's progress), which is the caller's and passes unchanged."""
    callbacks = _callbacks(op)
    try:
        return drive(op, runtime.perform)
    except Exception as exc:
        escaped = _escaped(op, exc, callbacks)
        if escaped is exc:
            raise
        raise escaped from exc


async def run_async(runtime: Runtime, op: Op) -> Any:
    """run_sync awaited; asyncio.CancelledError (a BaseException) passes through untouched."""
    callbacks = _callbacks(op)
    try:
        return await adrive(op, runtime.aperform)
    except Exception as exc:
        escaped = _escaped(op, exc, callbacks)
        if escaped is exc:
            raise
        raise escaped from exc


def safe(method: F) -> F:
    """The same last resort for a public method that does not run through run_sync / run_async (job(),
    wait(), retry_job(), add(background=True)): sync or async, only MnemaError subclasses leave it."""
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except MnemaError:
                raise
            except Exception as exc:
                raise internal(method, exc) from exc
        return guarded_async  # type: ignore[return-value]

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except MnemaError:
            raise
        except Exception as exc:
            raise internal(method, exc) from exc
    return guarded  # type: ignore[return-value]
