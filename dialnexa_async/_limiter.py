"""The limiter protocol: what every request attempt takes a slot from, and tells of a 429.

A session always caps its own attempts in flight with a :class:`LocalLimiter` of
``max_concurrency`` slots. ``AsyncDialNexa(limiter=...)`` adds a budget shared beyond the
process (:class:`~dialnexa_async.fleet.RedisLimiter`): each attempt then holds a slot of both,
and a ``429`` with ``Retry-After`` is reported to it so that every process sharing the budget
pauses (:meth:`Limiter.cool_down`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["Lease", "Limiter", "LocalLimiter", "RunLock"]


@runtime_checkable
class Lease(Protocol):
    """One slot, held for one request attempt."""

    async def release(self) -> None:
        """Give the slot back (called once, shielded from cancellation)."""
        ...


@runtime_checkable
class Limiter(Protocol):
    """A budget of request slots; see the module docstring."""

    async def acquire(self) -> Lease:
        """Wait for a slot and return it. Raise :class:`~dialnexa_async.LimiterError` when the
        budget cannot be reached at all (never wait forever for a broken backend)."""
        ...

    async def cool_down(self, seconds: float) -> None:
        """A server answered 429 asking to wait ``seconds``: hold new slots until then."""
        ...

    async def aclose(self) -> None:
        """Release what the limiter holds (connections, background tasks)."""
        ...


@runtime_checkable
class RunLock(Protocol):
    """A lock shared beyond the process, for jobs that must not run twice at once (an
    enrolment: ``enroll(..., lock=...)``); :class:`~dialnexa_async.fleet.RedisLimiter` is one."""

    def hold(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the lock named ``key`` for the ``async with`` block, or raise
        :class:`~dialnexa_async.EnrollmentLockedError` at once when another holder has it."""
        ...


class _LocalLease:
    __slots__ = ("_limiter",)

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self._limiter = limiter

    async def release(self) -> None:
        self._limiter.release_on_behalf_of(self)


class LocalLimiter:
    """At most ``max_concurrency`` attempts in flight in this process: the session's own cap.

    An :class:`anyio.CapacityLimiter` underneath; a 429 does not pause it (each request waits
    out its own ``Retry-After``), as before there were shared budgets.
    """

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency
        self._limiter: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        return f"<LocalLimiter max_concurrency={self.max_concurrency}>"

    @property
    def _capacity(self) -> anyio.CapacityLimiter:
        # Created lazily: anyio primitives need a running event loop.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrency)
        return self._limiter

    async def acquire(self) -> Lease:
        capacity = self._capacity
        lease = _LocalLease(capacity)
        try:
            # A free slot is taken without the two event-loop round trips of anyio's awaiting
            # acquire (it still refuses while others wait, so the queue stays first come,
            # first served); the attempt that follows is the cancellation point.
            capacity.acquire_on_behalf_of_nowait(lease)
        except anyio.WouldBlock:
            await capacity.acquire_on_behalf_of(lease)
        return lease

    async def cool_down(self, seconds: float) -> None:
        """Nothing: in one process each request waits out its own ``Retry-After``."""

    async def aclose(self) -> None:
        """Nothing to release."""
