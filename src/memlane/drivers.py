"""Sync and async drivers over the one pipeline: each runs the pipeline's generator, performing the effects
it yields. This is the only place that knows about blocking vs. awaiting."""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from typing import Any, Callable, TypeVar

from .drive import adrive, drive
from .effects import Complete, Embed, Rerank, StoreCall, WarnOnce
from .errors import ConfigurationError, InternalError, MemlaneError
from .settings import Op

log = logging.getLogger("memlane")

F = TypeVar("F", bound=Callable[..., Any])


class Runtime:
    """The providers one Memory performs effects with, and the little state that belongs to that Memory
    rather than to its (read-only) settings: which warnings it has given."""

    def __init__(self, embedder: Any, store: Any, llm: Any = None, reranker: Any = None):
        self.embedder = embedder
        self.store = store
        self.llm = llm
        self.reranker = reranker
        self._warned: set[str] = set()
        self._warned_lock = threading.Lock()

    def warn_once(self, message: str) -> None:
        with self._warned_lock:  # the job worker's thread and the caller's may add at the same time
            if message in self._warned:
                return
            self._warned.add(message)
        log.warning(message)

    def _reranker(self) -> Any:
        if self.reranker is None:
            raise ConfigurationError("no reranker is configured: set reranker={'provider': 'maxsim'} in the "
                                     "config, or search without rerank=True")
        return self.reranker

    def perform(self, effect: Any) -> Any:
        if isinstance(effect, StoreCall):
            return getattr(self.store, effect.method)(*effect.args)
        if isinstance(effect, WarnOnce):
            return self.warn_once(effect.message)
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
        if isinstance(effect, WarnOnce):
            return self.warn_once(effect.message)
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
    """The last-resort wrapping of an exception that is not a MemlaneError: a bug (in memlane or a dependency)
    that validation should have turned into a typed error. Logged with its traceback, kept as __cause__.
    Each of the store's writes is one transaction, so one that raised wrote nothing."""
    name = operation(op)
    detail = str(exc)
    detail = detail if len(detail) <= 300 else detail[:300] + "..."
    log.error("memlane: %s() failed with an unexpected %s: %s", name, type(exc).__name__, detail, exc_info=exc)
    error = InternalError(f"{name}() failed with an unexpected {type(exc).__name__}: {detail} (a bug in memlane "
                          "or a dependency; please report it)")
    error.__cause__ = exc  # as `raise error from exc` would
    return error


class CallerRaised(Exception):
    """Carries what a callback the caller passed in (reindex's progress) raised out of the pipeline, so the
    driver hands it back unchanged instead of taking it for a bug of memlane's."""

    def __init__(self, original: Exception):
        super().__init__(original)
        self.original = original


def callers(callback: Callable[..., Any]) -> Callable[..., Any]:
    """`callback`, with whatever it raises marked as the caller's own (CallerRaised)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except Exception as exc:
            raise CallerRaised(exc) from exc
    return call


def surfaced(op: Any, exc: Exception) -> Exception:
    """What a public call raises for an exception that left it: a MemlaneError, or what a callback of the
    caller's raised, as it is; anything else as InternalError."""
    if isinstance(exc, CallerRaised):
        return exc.original
    if isinstance(exc, MemlaneError):
        return exc
    return internal(op, exc)


# Each raises `error` after its except block, so the exception it raises carries no extra context.

def run_sync(runtime: Runtime, op: Op) -> Any:
    """Run a pipeline op blocking. Only MemlaneError subclasses leave it: anything else (an Exception, not
    KeyboardInterrupt / SystemExit) becomes InternalError with the original as __cause__, except what a
    callback the caller passed in raised, which passes unchanged."""
    try:
        return drive(op, runtime.perform)
    except Exception as exc:
        error = surfaced(op, exc)
    raise error


async def run_async(runtime: Runtime, op: Op) -> Any:
    """run_sync awaited; asyncio.CancelledError (a BaseException) passes through untouched."""
    try:
        return await adrive(op, runtime.aperform)
    except Exception as exc:
        error = surfaced(op, exc)
    raise error


def safe(method: F) -> F:
    """The same last resort for a public method that does not run through run_sync / run_async (job(),
    wait(), retry_job(), add(background=True)): sync or async, only MemlaneError subclasses leave it."""
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except Exception as exc:
                error = surfaced(method, exc)
            raise error
        return guarded_async  # type: ignore[return-value]

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            error = surfaced(method, exc)
        raise error
    return guarded  # type: ignore[return-value]
