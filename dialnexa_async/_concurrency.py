"""Concurrent sub-requests of one public call, raised as one error, never an ExceptionGroup.

A public call that fans out (``status_counts`` asks once per status) must fail the way a single
request fails: ``except NotFoundError`` has to catch it. anyio's task groups report every
failure of their children as an ``ExceptionGroup``; :func:`gather` runs the same task group,
but each child catches its own failure, the first one cancels the rest, and that first error is
raised alone, with the others named in its notes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

__all__ = ["gather"]

T = TypeVar("T")


async def gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run every call concurrently and return their results in order, or raise the first
    error (after cancelling and awaiting the others)."""
    results: list[Any] = [None] * len(calls)
    errors: list[Exception] = []

    async def run(index: int, call: Callable[[], Awaitable[T]], scope: anyio.CancelScope) -> None:
        try:
            results[index] = await call()
        except Exception as exc:
            errors.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(calls):
            tg.start_soon(run, index, call, tg.cancel_scope)
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"also failed: {type(other).__name__}: {other}")
        raise first
    return results
