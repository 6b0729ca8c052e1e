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

The plan: the scan runs to the larger of the server's ``totalPages`` and ``ceil(total /
limit)``, growing when a later page says the list grew, and it ends early on a short or empty
page. Once a server's two counts disagree, neither is trusted to end the scan: it goes on past
a full last page until a short or empty one. ``max_pages`` caps it.

Drift: offset pages shift when leads are added or removed during a scan. An insertion ahead of
the scan position shows up as leads repeated across a page boundary; those are dropped by id,
remembering the ids of the last ``2 * window`` pages: every page that can be in flight, plus as
many again for the shift that one window's worth of insertions causes (memory stays flat: at
most ``4 * concurrency * limit`` ids). A removal can make a lead skip past the scan; no offset
pager can see that.

A server that answers with pages made entirely of leads already seen (one that cycles through a
few pages while claiming many) is stopped: after :func:`max_repeated_pages` such pages in a row
(more than any drift within the de-duplication window produces) the scan raises
:class:`PaginationError` instead of requesting pages forever.
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
    "max_repeated_pages",
    "planned_pages",
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


def lookback_for(concurrency: int) -> int:
    """How many pages' ids the de-duplication remembers: see the module docstring."""
    return 2 * window_for(concurrency)


def max_repeated_pages(concurrency: int) -> int:
    """Pages made only of ids already seen, in a row, before a scan is declared cycling."""
    return max(DEDUPE_LOOKBACK_PAGES, window_for(concurrency)) + 1


def planned_pages(page: Page[Any], limit: int) -> tuple[int, bool]:
    """The pages a list has by this page's ``meta`` (the larger of its two counts, at least
    1), and whether the two counts agree."""
    meta = page.meta
    by_total = total_pages_for(meta.total, meta.limit if meta.limit > 0 else limit)
    return max(1, meta.total_pages, by_total), meta.total_pages == by_total


def is_last_page(page: Page[Any], number: int, planned_last: int) -> bool:
    """Whether the scan ends with page ``number``: a short or empty page, or the last page of
    the plan (see :func:`planned_pages`)."""
    size = len(page.data)
    if size == 0 or size < page.meta.limit:
        return True
    return number >= planned_last


class RecentIds:
    """The ids of the last ``lookback`` pages, for dropping items repeated across a boundary.

    One count per id (how many remembered pages hold it) keeps each page's check at one lookup
    per id, however long the look-back.
    """

    def __init__(self, lookback: int = DEDUPE_LOOKBACK_PAGES) -> None:
        self._lookback = lookback
        self._pages: deque[set[Hashable]] = deque()
        self._counts: dict[Hashable, int] = {}

    def filter(self, ids: Iterable[Hashable]) -> list[bool]:
        """For each id, whether to keep it; then remember this page's ids."""
        counts = self._counts
        seen: set[Hashable] = set()
        keep = []
        for item_id in ids:
            keep.append(item_id not in seen and item_id not in counts)
            seen.add(item_id)
        for item_id in seen:
            counts[item_id] = counts.get(item_id, 0) + 1
        self._pages.append(seen)
        if len(self._pages) > self._lookback:
            for item_id in self._pages.popleft():
                left = counts[item_id] - 1
                if left:
                    counts[item_id] = left
                else:
                    del counts[item_id]
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
        max_pages: int | None = None,
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
        self._max_pages = max_pages
        self._method, self._path = describe
        self._tasks: dict[int, asyncio.Task[tuple[Any, int]]] = {}
        self._next_page = 2
        self._last_page = 1
        self._untrusted_counts = False
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

    def _error(self, message: str) -> PaginationError:
        return PaginationError(message, method=self._method, path=self._path)

    async def _page_stream(self) -> AsyncGenerator[Page[T], None]:
        self._start()
        recent = RecentIds(lookback_for(self._concurrency))
        repeated_limit = max_repeated_pages(self._concurrency)
        repeated = 0  # pages in a row made only of ids already seen
        previous_ids: list[Hashable] | None = None
        try:
            number = 1
            raw, attempts = await self._fetch(1)
            page = self._decode(raw, 1)
            self._count(attempts)
            self._plan(page)
            while True:
                ids = [self._key(item) for item in page.data]
                if previous_ids is not None and ids and ids == previous_ids:
                    raise self._error(
                        f"page {number} repeats page {number - 1}: the server seems to ignore "
                        "the page parameter"
                    )
                previous_ids = ids
                # Judged on the page as sent, before duplicates are dropped.
                done = is_last_page(page, number, self._last_page)
                if done and self._untrusted_counts and len(page.data) >= page.meta.limit:
                    done = False
                    self._last_page = number + 1
                keep = recent.filter(ids)
                if ids and not any(keep):
                    repeated += 1
                    if repeated >= repeated_limit:
                        raise self._error(
                            f"{repeated} pages in a row (up to page {number}) held only leads "
                            "already seen: the server seems to cycle through its pages"
                        )
                else:
                    repeated = 0
                if self._dedupe:
                    page = self._drop_duplicates(page, keep)
                if not done:
                    if self._max_pages is not None and number >= self._max_pages:
                        raise self._error(
                            f"the list has more than max_pages={self._max_pages} pages "
                            f"(the server plans {self._last_page})"
                        )
                    self._consumed = number
                    self._fill()
                yield page
                if done:
                    return
                number += 1
                page = await self._take(number)
        finally:
            await self.aclose()

    def _drop_duplicates(self, page: Page[T], keep: list[bool]) -> Page[T]:
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
        self._plan(page)
        return page

    def _plan(self, page: Page[T]) -> None:
        pages, agree = planned_pages(page, page.meta.limit)
        self._last_page = max(self._last_page, pages)
        self._untrusted_counts = self._untrusted_counts or not agree

    def _fetched(self, _: object) -> None:
        self._in_flight -= 1
        self._fill()

    def _fill(self) -> None:
        """Start page requests while there is room: in flight < concurrency, ahead < window."""
        if self._closed:
            return
        last = self._last_page
        if self._max_pages is not None:
            last = min(last, self._max_pages)
        while (
            self._next_page <= last
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
