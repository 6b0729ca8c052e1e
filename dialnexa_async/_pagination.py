"""Ordered, bounded, concurrent pagination, and the pure rules it follows.

How a scan runs: page 1 is fetched alone, to learn ``totalPages``. Then up to ``concurrency``
page requests are kept in flight at every moment (a finished request immediately makes room for
the next, rather than waiting for a whole batch), while pages are handed to the consumer strictly
in page order. At most ``window`` pages (``2 * concurrency`` by default) are held ahead of the
consumer, fetched or in flight, so memory stays flat however long the list is and a slow
consumer never makes the scan read the whole list into memory.

The page fetches are plain asyncio tasks owned by the iterator object, not an anyio task group.
A task group's cancel scope cannot be held across the ``yield`` of an async generator that a
caller may abandon with ``break`` (Python then closes it from another task, which a cancel scope
forbids); the tasks here are instead cancelled, and awaited, by :meth:`PagedIterator.aclose`,
which runs on ``break`` (when the abandoned generator is finalised), on an exception or
cancellation in the caller's loop, on ``async with`` exit and when the session closes. The
session-wide cap on concurrent requests is an :class:`anyio.CapacityLimiter` in the transport.

Drift: offset pages shift when leads are added or removed during a scan. An insertion ahead of
the scan position shows up as leads repeated across a page boundary; those are dropped by id,
remembering only the ids of the last :data:`DEDUPE_LOOKBACK_PAGES` pages (so memory stays flat).
A removal can make a lead skip past the scan; no offset pager can see that.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Hashable, Iterable
from contextlib import aclosing
from typing import Any, Generic, Self, TypeVar

import attrs

from .errors import PaginationError
from .models import Page

__all__ = [
    "DEDUPE_LOOKBACK_PAGES",
    "ManyPagedIterator",
    "PageDecode",
    "PageFetch",
    "PagedIterator",
    "PaginationStats",
    "RecentIds",
    "is_last_page",
    "total_pages_for",
    "window_for",
]

T = TypeVar("T")

DEDUPE_LOOKBACK_PAGES = 3

# Fetches one page by number: returns its parsed JSON and how many attempts it took.
PageFetch = Callable[[int], Coroutine[Any, Any, tuple[Any, int]]]
# Turns a page's parsed JSON into a Page, given its number.
PageDecode = Callable[[Any, int], Page[T]]


def total_pages_for(total: int, limit: int) -> int:
    """``ceil(total / limit)``; 0 for an empty list."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    return math.ceil(max(total, 0) / limit)


def window_for(concurrency: int) -> int:
    """How many pages may be held ahead of the consumer, fetched or in flight."""
    return 2 * concurrency


def is_last_page(page: Page[Any], number: int, planned_last: int) -> bool:
    """Whether the scan ends with page ``number``.

    It ends on a short or empty page, when the counted items reach the server's ``total``, or
    when the page is the last one the plan knows of.
    """
    size = len(page.data)
    limit = page.meta.limit
    if size == 0 or size < limit:
        return True
    if page.meta.total <= (number - 1) * limit + size:
        return True
    return number >= planned_last


class RecentIds:
    """The ids of the last ``lookback`` pages, for dropping items repeated across a boundary."""

    def __init__(self, lookback: int = DEDUPE_LOOKBACK_PAGES) -> None:
        self._pages: deque[set[Hashable]] = deque(maxlen=lookback)

    def filter(self, ids: Iterable[Hashable]) -> list[bool]:
        """For each id, whether to keep it; then remember this page's ids."""
        recent = set().union(*self._pages)
        seen: set[Hashable] = set()
        keep = []
        for item_id in ids:
            keep.append(item_id not in seen and item_id not in recent)
            seen.add(item_id)
        self._pages.append(seen)
        return keep


@attrs.define
class PaginationStats:
    """What a scan did so far.

    Attributes:
        pages_fetched: Pages received from the server.
        retries: Requests re-sent after a retryable failure.
        duplicates_dropped: Items dropped because a recent page already yielded their id.
        max_in_flight: The most page requests this iterator had in flight at once.
    """

    pages_fetched: int = 0
    retries: int = 0
    duplicates_dropped: int = 0
    max_in_flight: int = 0


class PagedIterator(Generic[T]):
    """An async iterator over every item of a paged list, in order; see the module docstring.

    Iterate it once: ``async for item in it``, ``async for page in it.pages()`` or
    ``await it.collect()``. Use ``async with`` (or call :meth:`aclose`) to end a scan early and
    deterministically; ``break`` also ends it, as soon as the event loop finalises the loop.

    Attributes:
        stats: A live :class:`PaginationStats`.
    """

    def __init__(
        self,
        fetch: PageFetch,
        decode: PageDecode[T],
        *,
        concurrency: int,
        key: Callable[[T], Hashable],
        dedupe: bool = True,
        describe: tuple[str, str] = ("GET", ""),
        registry: weakref.WeakSet[PagedIterator[object]] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._fetch = fetch
        self._decode = decode
        self._concurrency = concurrency
        self._window = window_for(concurrency)
        self._key = key
        self._dedupe = dedupe
        self._method, self._path = describe
        self._tasks: dict[int, asyncio.Task[tuple[Any, int]]] = {}
        self._next_page = 2
        self._last_page = 1
        self._consumed = 1  # the highest page number handed to the consumer
        self._in_flight = 0
        self._started = False
        self._closed = False
        self.stats = PaginationStats()
        if registry is not None:
            registry.add(self)  # type: ignore[arg-type]

    @property
    def concurrency(self) -> int:
        """How many page requests this iterator keeps in flight at most."""
        return self._concurrency

    # -- the consumer's faces ----------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    def pages(self) -> AsyncGenerator[Page[T], None]:
        """The pages themselves (``Page[T]``), in order, duplicates already dropped."""
        return self._page_stream()

    async def collect(self) -> list[T]:
        """Every item, in order, as a list (memory grows with the list: prefer ``async for``)."""
        return [item async for item in self._items()]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the scan: cancel and await every page request still in flight."""
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            # Retrieve every outcome so that none is reported as "never retrieved".
            await asyncio.gather(*tasks, return_exceptions=True)

    def _cancel_now(self) -> None:
        """Cancel in-flight requests without waiting (used when the session closes)."""
        self._closed = True
        for task in self._tasks.values():
            task.cancel()

    # -- the machinery -----------------------------------------------------------------------

    async def _items(self) -> AsyncIterator[T]:
        async with aclosing(self._page_stream()) as stream:
            async for page in stream:
                for item in page.data:
                    yield item

    def _start(self) -> None:
        if self._started:
            raise RuntimeError("a paged iterator can be iterated only once; call list() again")
        if self._closed:
            raise RuntimeError("this paged iterator is closed")
        self._started = True

    async def _page_stream(self) -> AsyncGenerator[Page[T], None]:
        self._start()
        recent = RecentIds() if self._dedupe else None
        previous_ids: list[Hashable] | None = None
        try:
            number = 1
            raw, attempts = await self._fetch(1)
            page = self._decode(raw, 1)
            self._count(attempts)
            self._last_page = max(1, page.meta.total_pages)
            while True:
                ids = [self._key(item) for item in page.data]
                if previous_ids is not None and ids and ids == previous_ids:
                    raise PaginationError(
                        f"page {number} repeats page {number - 1}: the server seems to ignore "
                        "the page parameter",
                        method=self._method,
                        path=self._path,
                    )
                previous_ids = ids
                # Judged on the page as sent, before duplicates are dropped.
                done = is_last_page(page, number, self._last_page)
                if recent is not None:
                    page = self._drop_duplicates(page, ids, recent)
                if not done:
                    self._consumed = number
                    self._fill()
                yield page
                if done:
                    return
                number += 1
                page = await self._take(number)
        finally:
            await self.aclose()

    def _drop_duplicates(self, page: Page[T], ids: list[Hashable], recent: RecentIds) -> Page[T]:
        keep = recent.filter(ids)
        dropped = keep.count(False)
        if not dropped:
            return page
        self.stats.duplicates_dropped += dropped
        data = [item for item, kept in zip(page.data, keep, strict=True) if kept]
        return Page(data=data, meta=page.meta)

    def _count(self, attempts: int) -> None:
        self.stats.pages_fetched += 1
        self.stats.retries += attempts - 1

    async def _take(self, number: int) -> Page[T]:
        task = self._tasks.get(number)
        if task is not None:
            await asyncio.wait([task])
        if self._closed:
            # The session (or aclose() from elsewhere) stopped the scan under the consumer:
            # say so, rather than surface the fetch's cancellation as the consumer's own.
            raise RuntimeError("the scan was closed (was its AsyncDialNexa closed?)")
        if task is None:  # pragma: no cover - _fill schedules every page before it is taken
            raise RuntimeError(f"page {number} was never requested")
        del self._tasks[number]
        raw, attempts = task.result()  # raises the page's error, in page order
        # Decoded here, as the consumer reaches it, not in the fetch task: the next request
        # goes out as soon as a response is read, and decoding overlaps the network wait.
        page = self._decode(raw, number)
        self._count(attempts)
        self._last_page = max(self._last_page, page.meta.total_pages)
        return page

    def _fetched(self, _: object) -> None:
        self._in_flight -= 1
        self._fill()

    def _fill(self) -> None:
        """Start page requests while there is room: in flight < concurrency, ahead < window."""
        if self._closed:
            return
        while (
            self._next_page <= self._last_page
            and self._in_flight < self._concurrency
            and self._next_page - self._consumed <= self._window
        ):
            number = self._next_page
            self._next_page += 1
            task = asyncio.create_task(self._fetch(number), name=f"dialnexa-page-{number}")
            task.add_done_callback(self._fetched)
            self._tasks[number] = task
            self._in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)


def close_all(registry: weakref.WeakSet[PagedIterator[object]]) -> None:
    """Cancel the in-flight requests of every iterator in ``registry``."""
    for iterator in list(registry):
        iterator._cancel_now()


_DONE = object()


class ManyPagedIterator(Generic[T]):
    """Several paged lists as one async iterator: list after list, each in its own order.

    While one list is being read, the next ``ahead`` lists are already being fetched (each
    holding at most its own window of pages), so many small lists cost a few round trips, not
    one each. All their requests share the session's cap.

    ``async for item in it``, ``async for key, page in it.pages()``, ``await it.collect()``.
    """

    def __init__(
        self,
        keys: list[str],
        open_list: Callable[[str], PagedIterator[T]],
        *,
        ahead: int,
        tag: Callable[[str, list[T]], list[T]] | None = None,
    ) -> None:
        self._keys = keys
        self._open = open_list
        self._ahead = max(1, ahead)
        self._tag = tag
        self._started = False

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    def pages(self) -> AsyncGenerator[tuple[str, Page[T]], None]:
        """``(key, page)`` pairs, list after list."""
        return self._stream()

    async def collect(self) -> list[T]:
        """Every item of every list, as one list."""
        return [item async for item in self._items()]

    async def _items(self) -> AsyncIterator[T]:
        async with aclosing(self._stream()) as stream:
            async for _, page in stream:
                for item in page.data:
                    yield item

    async def _pump(self, iterator: PagedIterator[T], queue: asyncio.Queue[object]) -> None:
        try:
            async with aclosing(iterator.pages()) as pages:
                async for page in pages:
                    await queue.put(page)
        except Exception as exc:
            await queue.put(exc)
        else:
            await queue.put(_DONE)

    async def _stream(self) -> AsyncGenerator[tuple[str, Page[T]], None]:
        if self._started:
            raise RuntimeError("a paged iterator can be iterated only once; call again")
        self._started = True
        pending = iter(self._keys)
        open_lists: deque[tuple[str, asyncio.Queue[object], asyncio.Task[None]]] = deque()

        def open_next() -> None:
            key = next(pending, None)
            if key is not None:
                queue: asyncio.Queue[object] = asyncio.Queue(maxsize=2)
                task = asyncio.create_task(
                    self._pump(self._open(key), queue), name=f"dialnexa-list-{key}"
                )
                open_lists.append((key, queue, task))

        try:
            for _ in range(self._ahead):
                open_next()
            while open_lists:
                key, queue, _task = open_lists[0]
                item = await queue.get()
                if item is _DONE:
                    open_lists.popleft()
                    open_next()
                    continue
                if isinstance(item, Exception):
                    raise item
                page: Page[T] = item  # type: ignore[assignment]
                if self._tag is not None:
                    page = Page(data=self._tag(key, page.data), meta=page.meta)
                yield key, page
        finally:
            tasks = [task for _, _, task in open_lists]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
