"""Run a sans-I/O generator: it yields steps, `perform` does each one, and the answer is sent back (or the
exception thrown in, for the generator to handle or let through). The one place where sync and async
differ; the pipeline and the HTTP exchange both run on it."""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Generator


def drive(op: Generator[Any, Any, Any], perform: Callable[[Any], Any]) -> Any:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = op.throw(error) if error is not None else op.send(value)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        try:
            value = perform(step)
        except Exception as exc:
            error = exc


async def adrive(op: Generator[Any, Any, Any], perform: Callable[[Any], Awaitable[Any]]) -> Any:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = op.throw(error) if error is not None else op.send(value)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        try:
            value = await perform(step)
        except Exception as exc:
            error = exc
