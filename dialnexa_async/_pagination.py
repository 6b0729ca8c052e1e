"""Ordered, bounded, concurrent pagination, and the pure rules it follows.

How a scan runs: page 1 is fetched alone, to learn ``totalPages``. Then up to ``concurrency``
page requests are kept in flight at every moment (a finished request immediately makes room for
the next, rather than waiting for a whole batch), while pages are handed to the consumer strictly
in page order. At most ``window`` pages (``2 * concurrency`` by default) are held ahead of the
consumer, fetched or in flight, so memory stays flat however long the list is and a slow
consumer never makes the scan read the whole list into memory.

The page fetches are an :class:`~dialnexa_async._concurrency.OrderedTasks` owned by the
iterator (its docstring says why plain tasks, not a task group, and when they are cancelled and
awaited). The session-wide cap on concurrent requests is an :class:`anyio.CapacityLimiter` in
the client.

The plan: every page is judged by :class:`~dialnexa_async._page_rules.PageRules` before
the consumer sees it. It learns the server's real page size from the first page, checks each page
against the total, reads a page that contradicts the plan once more, and ends the scan only on a
page the plan (or, when the counts are false, a short page seen twice) says is the last; a page
that contradicts the plan twice is a :class:`PaginationError`, never a quiet end. ``max_pages``
caps a scan. A slice (``pages=range(a, b)``, a shard of a split scan) starts at page ``a``,
learns the plan from it, and ends at page ``b - 1`` at the latest.

Drift: offset pages shift when leads are added or removed during a scan. An insertion behind
the scan position shows up as a lead repeated across a page boundary; repeats are dropped by
id, remembering the ids of the last ``2 * window`` pages (every page that can be in flight, plus
as many again) and, when the list grows during the scan, as many pages more as the growth fills,
so memory stays flat for a list that does not grow. More repeats than the list grew by (a lead
re-sorted behind the scan), or a list that shrinks (a removal can shift a lead past the scan),
or one that grows faster than the scan reads it, stop the scan with a :class:`PaginationError`:
reading it again is the only way to see every lead.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Hashable, Sequence
from contextlib import aclosing
from typing import Any, Generic, Self, TypeVar

import attrs

from ._concurrency import OrderedTasks, TasksClosed, close_generator
from ._page_rules import END, REREAD, PageRules, PlanViolation, pages_for
from ._tracing import Operation
from .errors import ClosedError, PaginationError
from .models import Page

__all__ = [
    "DEDUPE_LOOKBACK_PAGES",
    "OPEN_END",
    "ManyPagedIterator",
    "PageDecode",
    "PageFetch",
    "PagedIterator",
    "PaginationStats",
    "RecentIds",
    "split_pages",
    "window_for",
]

T = TypeVar("T")

DEDUPE_LOOKBACK_PAGES = 3

# Fetches one page by number: returns its parsed JSON and how many attempts it took.
PageFetch = Callable[[int], Coroutine[Any, Any, tuple[Any, int]]]
# Turns a page's parsed JSON into a Page, given its number.
PageDecode = Callable[[Any, int], Page[T]]


# The last shard of a plan reads to the end of the list, however long it has grown.
OPEN_END = 2**31


def split_pages(pages: int, shards: int) -> list[range]:
    """``pages`` pages cut into at most ``shards`` contiguous ranges, as even as can be (pure);
    the last range is open-ended (it stops at :data:`OPEN_END`)."""
    count = max(1, min(shards, pages))
    size, extra = divmod(max(pages, 1), count)
    ranges, start = [], 1
    for index in range(count):
        stop = start + size + (1 if index < extra else 0)
        ranges.append(range(start, stop))
        start = stop
    ranges[-1] = range(ranges[-1].start, OPEN_END)
    return ranges


def window_for(concurrency: int) -> int:
    """How many pages may be held ahead of the consumer, fetched or in flight."""
    return 2 * concurrency


def lookback_for(concurrency: int) -> int:
    """How many pages' ids the de-duplication remembers: see the module docstring."""
    return 2 * window_for(concurrency)


class RecentIds:
    """The ids of the last ``lookback`` pages, for dropping items repeated across a boundary.

    Each remembered page keeps only the ids it yielded, so the remembered pages are disjoint and
    their union can be kept up to date with set operations (at C speed): a page with no repeat,
    the usual case, costs a look-up and an insertion per id and the removal of the oldest
    page's ids, all inside ``set`` methods, not a Python step per id.
    """

    def __init__(self, lookback: int = DEDUPE_LOOKBACK_PAGES) -> None:
        self.lookback = lookback  # may grow, never shrink
        self.forgotten = 0  # pages whose ids are no longer remembered
        self._pages: deque[Sequence[Hashable]] = deque()
        self._union: set[Hashable] = set()

    def filter(self, ids: Sequence[Hashable]) -> list[bool]:
        """For each id, whether to keep it; then remember the ids kept."""
        union = self._union
        before = len(union)
        if union.isdisjoint(ids):
            union.update(ids)
            if len(union) - before == len(ids):
                # The usual page: no id seen before, none twice.
                self._remember(ids)
                return [True] * len(ids)
            union.difference_update(ids)  # all of them were new: back to as it was
        seen: set[Hashable] = set()
        keep = []
        for item_id in ids:
            keep.append(item_id not in seen and item_id not in union)
            seen.add(item_id)
        kept = [item_id for item_id, kept in zip(ids, keep, strict=True) if kept]
        union.update(kept)
        self._remember(kept)
        return keep

    def _remember(self, kept: Sequence[Hashable]) -> None:
        """Remember a page's kept ids (already in the union); forget the oldest page's."""
        self._pages.append(kept)
        if len(self._pages) > self.lookback:
            self._union.difference_update(self._pages.popleft())
            self.forgotten += 1


@attrs.define
class PaginationStats:
    """What a scan did so far.

    Attributes:
        pages_fetched: Pages received from the server.
        retries: Requests re-sent after a retryable failure.
        duplicates_dropped: Items dropped because a recent page already yielded their id.
        max_in_flight: The most page requests this iterator had in flight at once.
        rereads: Pages read a second time because they contradicted the scan's plan.
    """

    pages_fetched: int = 0
    retries: int = 0
    duplicates_dropped: int = 0
    max_in_flight: int = 0
    rereads: int = 0


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
        limit: int,
        concurrency: int,
        key: Callable[[T], Hashable],
        dedupe: bool = True,
        max_pages: int | None = None,
        pages: range | None = None,
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
        # A slice of the list (a shard): its first page and the last it may read.
        self._first = 1 if pages is None else pages.start
        self._stop_at = None if pages is None else pages.stop - 1
        self._method, self._path = describe
        self._tasks: OrderedTasks[tuple[Any, int]] = OrderedTasks("page", on_done=self._fill)
        self._next_page = self._first + 1
        self._rules = PageRules(limit, self._first)
        self._consumed = self._first  # the highest page number handed to the consumer
        self._started = False
        self._closed = False
        self._first_fetched: tuple[Page[T], str] | None = None  # the page and its verdict
        self._span = Operation("dialnexa.scan", {"dialnexa.path": self._path})
        self._span_context = self._span.context()
        self.stats = PaginationStats()
        if registry is not None:
            registry.add(self)  # type: ignore[arg-type]

    @property
    def concurrency(self) -> int:
        """How many page requests this iterator keeps in flight at most."""
        return self._concurrency

    async def first_page(self) -> Page[T]:
        """Fetch the scan's first page now, before iterating (which then starts from it).

        For a web endpoint that streams a scan: a missing workflow raises
        :class:`~dialnexa_async.NotFoundError` here, before the response starts, and
        :attr:`total` is known. Calling it again returns the same page.
        """
        if self._first_fetched is None:
            if self._started:
                raise RuntimeError("first_page() must come before the scan starts")
            raw, attempts = await self._fetch_in_span(self._first)
            self._first_fetched = await self._judged(self._first, raw, attempts)
        return self._first_fetched[0]

    async def _fetch_in_span(self, number: int) -> tuple[Any, int]:
        if self._span_context is None:
            return await self._fetch(number)
        return await asyncio.create_task(self._fetch(number), context=self._span_context.copy())

    @property
    def total(self) -> int | None:
        """How many items the server counted, once the first page is in (else ``None``)."""
        return None if self._first_fetched is None else self._first_fetched[0].meta.total

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
        await self._tasks.aclose()

    def _cancel_now(self) -> None:
        """Cancel in-flight requests without waiting (used when the session closes)."""
        self._closed = True
        self._tasks.cancel_now()

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
        """The scan, inside its tracing span (which ends with it)."""
        try:
            async with aclosing(self._scan()) as pages:
                async for page in pages:
                    yield page
        except BaseException as exc:
            self._span.fail(exc)
            raise
        finally:
            stats = self.stats
            self._span.set(
                pages_fetched=stats.pages_fetched,
                retries=stats.retries,
                duplicates_dropped=stats.duplicates_dropped,
                max_in_flight=stats.max_in_flight,
            )
            self._span.end()

    async def _scan(self) -> AsyncGenerator[Page[T], None]:
        self._start()
        recent = RecentIds(lookback_for(self._concurrency))
        previous_ids: list[Hashable] | None = None
        try:
            number = self._first
            if self._first_fetched is None:
                raw, attempts = await self._fetch_in_span(number)
                self._first_fetched = await self._judged(number, raw, attempts)
            page, verdict = self._first_fetched
            while True:
                ids = list(map(self._key, page.data))
                same = bool(ids) and ids == previous_ids
                previous_ids = ids
                done = verdict == END
                if self._stop_at is not None and number >= self._stop_at:
                    done = True  # the end of this slice
                # Insertions behind the scan shift a lead read earlier by at most the pages
                # the list grew by: remember that many pages more.
                shift = pages_for(self._rules.growth, self._rules.size or 1)
                recent.lookback = max(recent.lookback, lookback_for(self._concurrency) + shift)
                keep = recent.filter(ids)
                self._check_repeats(number, keep, same_as_previous=same)
                forgotten_up_to = self._first + recent.forgotten - 1
                if recent.forgotten and number - forgotten_up_to <= shift:
                    # A page already forgotten is within the reach of the shift: a lead read
                    # there could come back as new.
                    raise self._error(
                        f"the list grew by {self._rules.growth} leads during the scan, faster "
                        f"than it was read (page {number}): leads may come back; read it again"
                    )
                if self._dedupe:
                    page = self._drop_duplicates(page, keep)
                if not done:
                    if self._max_pages is not None and number - self._first + 1 >= self._max_pages:
                        raise self._error(
                            f"the list has more than max_pages={self._max_pages} pages "
                            f"(the server plans {self._rules.last})"
                        )
                    self._consumed = number
                    self._fill()
                yield page
                if done:
                    return
                number += 1
                page, verdict = await self._take(number)
        finally:
            await self.aclose()

    def _check_repeats(self, number: int, keep: list[bool], *, same_as_previous: bool) -> None:
        """Account for the leads of page ``number`` already read (see the module docstring):
        more than the list grew by means a lead may have been missed."""
        try:
            self._rules.count_repeats(number, keep.count(False))
        except PlanViolation as exc:
            message = str(exc)
            if same_as_previous:
                message = (
                    f"page {number} repeats page {number - 1}: the server seems to ignore the "
                    "page parameter"
                )
            raise self._error(message) from None

    async def _judged(self, number: int, raw: Any, attempts: int) -> tuple[Page[T], str]:
        """Page ``number`` decoded and judged against the plan (read once more if it
        contradicts it): the page to hand on, and whether the scan goes on after it."""
        page = self._decode(raw, number)
        self._count(attempts)
        try:
            verdict = self._rules.judge(number, len(page.data), page.meta, second_look=False)
            if verdict == REREAD:
                raw, attempts = await self._fetch_in_span(number)
                page = self._decode(raw, number)
                self._count(attempts)
                self.stats.rereads += 1
                verdict = self._rules.judge(number, len(page.data), page.meta, second_look=True)
        except PlanViolation as exc:
            raise self._error(str(exc)) from None
        return page, verdict

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

    async def _take(self, number: int) -> tuple[Page[T], str]:
        requested = number in self._tasks
        if requested:
            try:
                await self._tasks.wait(number)
            except TasksClosed:
                raise _closed_error() from None
        if self._closed:
            # The session (or aclose() from elsewhere) stopped the scan under the consumer:
            # say so, rather than surface the fetch's cancellation as the consumer's own.
            raise _closed_error()
        if not requested:  # pragma: no cover - _fill schedules every page before it is taken
            raise RuntimeError(f"page {number} was never requested")
        try:
            raw, attempts = await self._tasks.take(number)  # raises the page's error, in order
        except TasksClosed:
            raise _closed_error() from None
        # Decoded here, as the consumer reaches it, not in the fetch task: the next request
        # goes out as soon as a response is read, and decoding overlaps the network wait.
        return await self._judged(number, raw, attempts)

    def _fill(self) -> None:
        """Start page requests while there is room: in flight < concurrency, ahead < window."""
        if self._closed:
            return
        last = self._rules.last
        if self._max_pages is not None:
            last = min(last, self._first + self._max_pages - 1)
        if self._stop_at is not None:
            last = min(last, self._stop_at)
        while (
            self._next_page <= last
            and self._tasks.running < self._concurrency
            and self._next_page - self._consumed <= self._window
        ):
            number = self._next_page
            self._next_page += 1
            self._tasks.start(number, self._fetch(number), self._span_context)
        self.stats.max_in_flight = self._tasks.max_running


def _closed_error() -> ClosedError:
    return ClosedError("the scan was closed (by aclose() from another task, or its session)")


def close_all(registry: weakref.WeakSet[Any]) -> None:
    """Cancel the work in flight of every iterator in ``registry`` (the session is closing)."""
    for iterator in list(registry):
        iterator._cancel_now()


_DONE = object()
_CLOSED = object()


def _add(total: PaginationStats, stats: PaginationStats) -> None:
    total.pages_fetched += stats.pages_fetched
    total.retries += stats.retries
    total.duplicates_dropped += stats.duplicates_dropped
    total.max_in_flight = max(total.max_in_flight, stats.max_in_flight)
    total.rereads += stats.rereads


class ManyPagedIterator(Generic[T]):
    """Several paged lists as one async iterator: list after list, each in its own order.

    While one list is being read, the next ``ahead`` lists are already being fetched (each
    holding at most its own window of pages), so many small lists cost a few round trips, not
    one each. All their requests share the session's cap. Each open list is pumped by a task of
    an :class:`~dialnexa_async._concurrency.OrderedTasks` into a queue of two pages.

    ``async for item in it``, ``async for key, page in it.pages()``, ``await it.collect()``;
    ``async with it``, ``await it.aclose()`` (cancels and awaits every list being fetched) and
    ``it.stats`` (the lists' :class:`PaginationStats`, added up) as every iterator of the SDK.
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
        self._pumps: OrderedTasks[None] = OrderedTasks("list")
        self._lists: deque[PagedIterator[T]] = deque()  # the open ones
        self._finished = PaginationStats()  # the closed ones, added up
        # Weak: after a break nothing but the loop holds the generator, which it finalises.
        self._stream_ref: weakref.ref[AsyncGenerator[tuple[str, Page[T]], None]] | None = None
        self._queues: list[asyncio.Queue[object]] = []  # of the lists being read
        self._closed = False

    @property
    def stats(self) -> PaginationStats:
        """What the lists opened so far did, added up (``max_in_flight``: the largest one)."""
        total = attrs.evolve(self._finished)
        for iterator in self._lists:
            _add(total, iterator.stats)
        return total

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    def pages(self) -> AsyncGenerator[tuple[str, Page[T]], None]:
        """``(key, page)`` pairs, list after list."""
        if self._stream_ref is not None:
            raise RuntimeError("a paged iterator can be iterated only once; call again")
        stream = self._stream()
        self._stream_ref = weakref.ref(stream)
        return stream

    async def collect(self) -> list[T]:
        """Every item of every list, as one list."""
        return [item async for item in self._items()]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop: cancel and await every list being fetched (a consumer waiting in another
        task gets :class:`~dialnexa_async.ClosedError`)."""
        self._cancel_now()
        await self._pumps.aclose()
        await close_generator(None if self._stream_ref is None else self._stream_ref())

    def _cancel_now(self) -> None:
        """Cancel the lists being read and wake a consumer waiting for their pages."""
        self._closed = True
        self._pumps.cancel_now()
        for queue in self._queues:
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(_CLOSED)

    def _fold(self, done: PagedIterator[T]) -> None:
        _add(self._finished, done.stats)

    async def _items(self) -> AsyncIterator[T]:
        async with aclosing(self.pages()) as stream:
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
        pending = iter(enumerate(self._keys))
        open_lists: deque[tuple[str, asyncio.Queue[object]]] = deque()

        def open_next() -> None:
            number, key = next(pending, (-1, None))
            if key is not None:
                queue: asyncio.Queue[object] = asyncio.Queue(maxsize=2)
                self._queues.append(queue)
                iterator = self._open(key)
                self._lists.append(iterator)
                self._pumps.start(number, self._pump(iterator, queue))
                open_lists.append((key, queue))

        try:
            for _ in range(self._ahead):
                open_next()
            while open_lists:
                key, queue = open_lists[0]
                if self._closed:
                    raise ClosedError("the lists were closed")
                item = await queue.get()
                if item is _CLOSED:
                    raise ClosedError("the lists were closed (by aclose() from another task)")
                if item is _DONE:
                    self._queues.remove(queue)
                    open_lists.popleft()
                    self._fold(self._lists.popleft())
                    open_next()
                    continue
                if isinstance(item, Exception):
                    raise item
                page: Page[T] = item  # type: ignore[assignment]
                if self._tag is not None:
                    page = Page(data=self._tag(key, page.data), meta=page.meta)
                yield key, page
        finally:
            await self._pumps.aclose()
