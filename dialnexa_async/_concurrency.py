"""The SDK's two shapes of concurrent work, and why each is what it is.

**Fan-out inside one call** (:func:`gather`: ``status_counts`` asks once per status) is an anyio
task group: structured, nothing outlives the call. A public call must fail the way a single
request fails (``except NotFoundError`` has to catch it), so each child catches its own failure,
and the first error is raised alone, the others named in its notes: never an
``ExceptionGroup``. A failure does not cancel the siblings: their requests are already at the
server, and a request abandoned there would give back its slot of the session's cap while the
server still works on it (the cap holds where it is counted: at the server). Each is bounded by
its own deadline.

**Bounded, ordered, cancel-on-exit work behind an iterator** (:class:`OrderedTasks`: the pager's
page fetches, ``list_many``'s lists, ``stalled``'s history requests, an enrolment's uploads)
is plain asyncio tasks owned by an object. Not a task group, because such work is consumed
across the ``yield`` of an async generator that the caller may abandon with ``break``: Python
then finalises the generator from another task, and a cancel scope entered in one task cannot be
left in another. So the object owns its tasks, and its :meth:`OrderedTasks.aclose` cancels and
awaits every one; each iterator calls it from its own ``aclose()``, from ``async with`` exit, from
the ``finally`` of its generator (``break``, an error, a cancellation) and when the session
closes. Tasks are started in order, at most a given number at once, and their results are taken
back in the same order (so a slow early task holds back nothing but its own result), or as they
finish (:meth:`OrderedTasks.next_done`: ``status_counts_many``).
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any, Generic, Self, TypeVar

import anyio

__all__ = [
    "OrderedTasks",
    "StreamIterator",
    "TasksClosed",
    "close_generator",
    "gather",
    "same_loop",
]

T = TypeVar("T")
Y = TypeVar("Y")


def same_loop(
    bound: asyncio.AbstractEventLoop | None, owner: str, kind: str, holds: str
) -> asyncio.AbstractEventLoop:
    """The running loop, which must be ``bound`` when ``owner`` was used before: what it
    ``holds`` (connections, lease renewals) belongs to the loop that first used it. The Celery
    pattern (``asyncio.run`` per task) is the usual way to break that; the error says so."""
    loop = asyncio.get_running_loop()
    if bound is not None and bound is not loop:
        raise RuntimeError(
            f"{owner} was first used on another event loop, and {holds} belong to that loop: "
            f"create one {kind} per event loop (with asyncio.run per task, as in Celery, "
            "create it inside the coroutine asyncio.run runs, and close it there)"
        )
    return loop


async def gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run every call concurrently and return their results in order, or raise the first
    error once every call has ended (none is abandoned; see the module docstring)."""
    results: list[Any] = [None] * len(calls)
    errors: list[Exception] = []

    async def run(index: int, call: Callable[[], Awaitable[T]]) -> None:
        try:
            results[index] = await call()
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(calls):
            tg.start_soon(run, index, call)
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"also failed: {type(other).__name__}: {other}")
        raise first
    return results


class TasksClosed(Exception):
    """An :class:`OrderedTasks` was closed while its owner waited on it (from another task,
    or because the session closed): the owner stops, and says so in its own terms."""


class OrderedTasks(Generic[T]):
    """Tasks keyed by their place in a sequence; see the module docstring.

    ``on_done`` is called (synchronously) each time a task finishes, so its owner can start the
    next ones at once rather than when the consumer next asks.
    """

    def __init__(self, name: str, on_done: Callable[[], None] | None = None) -> None:
        self._name = name
        self._on_done = on_done
        self._tasks: dict[int, asyncio.Task[T]] = {}
        self._running = 0
        self._room = asyncio.Event()
        self._finished_keys: deque[int] = deque()
        self.closed = False
        self.max_running = 0

    @property
    def running(self) -> int:
        """How many tasks have not finished."""
        return self._running

    def __len__(self) -> int:
        """How many tasks were started and not yet taken back."""
        return len(self._tasks)

    def __contains__(self, key: int) -> bool:
        return key in self._tasks

    def start(
        self, key: int, work: Coroutine[Any, Any, T], context: contextvars.Context | None = None
    ) -> None:
        """Start ``work`` as the task for ``key`` (in ``context``, when given: the one in
        which the operation's tracing span is current)."""
        if self.closed:
            work.close()
            raise TasksClosed(self._name)
        # A copy for each task: a task that makes its own span current must not make it the
        # parent of its siblings' spans.
        task = asyncio.create_task(
            work,
            name=f"dialnexa-{self._name}-{key}",
            context=None if context is None else context.copy(),
        )
        task.add_done_callback(partial(self._finished, key))
        self._tasks[key] = task
        self._running += 1
        self.max_running = max(self.max_running, self._running)

    def _finished(self, key: int, _: object) -> None:
        self._finished_keys.append(key)
        self._running -= 1
        self._room.set()
        if self._on_done is not None and not self.closed:
            self._on_done()

    def done(self, key: int) -> bool:
        """Whether the task for ``key`` has finished."""
        self._check_open()
        return self._tasks[key].done()

    def _check_open(self) -> None:
        if self.closed:
            raise TasksClosed(self._name)

    async def wait(self, key: int) -> None:
        """Wait until the task for ``key`` has finished, without taking its result."""
        self._check_open()
        task = self._tasks[key]
        if task.done():
            # Still one pass of the event loop, so the tasks just started send their requests
            # (asyncio.wait would take two, and build a future for a task already done).
            await asyncio.sleep(0)
        else:
            await asyncio.wait([task])

    async def take(self, key: int) -> T:
        """The result of the task for ``key`` (waiting for it), which is then forgotten; its
        error, if it failed."""
        self._check_open()
        task = self._tasks[key]
        if not task.done():
            await asyncio.wait([task])
        self._check_open()
        del self._tasks[key]
        return task.result()

    async def next_done(self) -> int:
        """The key of a task that has finished and was not taken yet, in the order they
        finished (waiting for one if need be): for work consumed as it completes."""
        while True:
            self._check_open()
            while self._finished_keys:
                key = self._finished_keys.popleft()
                if key in self._tasks:
                    return key
            self._room.clear()
            await self._room.wait()

    async def room(self, limit: int) -> None:
        """Wait until fewer than ``limit`` tasks are running."""
        while self._running >= limit:
            self._check_open()
            self._room.clear()
            await self._room.wait()
        self._check_open()

    def cancel_now(self) -> None:
        """Cancel every task without waiting (when the session closes under its owner)."""
        self.closed = True
        self._room.set()  # an owner waiting for room or a result hears of it
        for task in self._tasks.values():
            task.cancel()

    async def aclose(self) -> None:
        """Cancel and await every task not yet taken back; retrieve every outcome, so that none
        is reported as never retrieved. Shielded: inside a cancelled cancel scope (anyio's
        ``move_on_after`` around a scan), the wait is not cut short, so no task outlives it."""
        self.closed = True
        self._room.set()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def join(self) -> None:
        """Wait for every task to finish (their results stay to be taken)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()))


async def close_generator(stream: AsyncGenerator[Any, None] | None) -> None:
    """Close an iterator's generator from its ``aclose()`` (not when it is the generator's own
    ``finally`` that called, which would be closing a running generator)."""
    if stream is not None and not getattr(stream, "ag_running", False):
        await stream.aclose()


class StreamIterator(Generic[Y]):
    """The shape the SDK's iterators share: ``async for`` over :meth:`_stream` (once),
    ``async with``, and an ``aclose()`` that stops the work in flight (:meth:`_shut`) and then
    closes the generator, from wherever it is called.

    The generator is held by a weak reference: after a ``break`` nothing but the loop holds it,
    so the event loop finalises it at once (its ``finally`` stops the work), even while the
    caller keeps the iterator object.
    """

    _stream_ref: weakref.ref[AsyncGenerator[Y, None]] | None = None
    _iterated = False

    def __aiter__(self) -> AsyncGenerator[Y, None]:
        if self._iterated:
            raise RuntimeError(f"a {type(self).__name__} can be iterated only once; ask again")
        self._iterated = True
        stream = self._stream()
        self._stream_ref = weakref.ref(stream)
        return stream

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop: cancel and await the work in flight."""
        await self._shut()
        stream = None if self._stream_ref is None else self._stream_ref()
        await close_generator(stream)

    def _cancel_now(self) -> None:
        """Stop the work in flight without waiting (the session is closing)."""
        raise NotImplementedError

    def _stream(self) -> AsyncGenerator[Y, None]:
        raise NotImplementedError

    async def _shut(self) -> None:
        raise NotImplementedError
