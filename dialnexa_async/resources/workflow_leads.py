"""``/workflows/{workflowId}/leads``: list (concurrent, ordered), page, enrol, remove."""

from __future__ import annotations

import builtins
import os
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

import attrs

from .._client import Client
from .._concurrency import gather
from .._convert import VariableKeys, decode_page
from .._dashboard import StatusCountsMany
from .._enroll import EnrollmentPlan, ProgressCallback, enroll_source
from .._limiter import RunLock
from .._page_rules import pages_for
from .._pagination import ManyPagedIterator, PagedIterator, split_pages
from .._sources import DuplicatePolicy, phone_identity
from .._stalled import StalledLeads
from .._tracing import operation
from .._transport import encode_path
from .._validate import MAX_PAGE_SIZE, check_id, check_int_range, check_seconds, check_timeout
from .._watch import LeadWatch
from .._workbook import WorkbookLimits
from ..errors import ClosedError, EnrollmentError, NotFoundError, PaginationError
from ..models import (
    Enrollment,
    EnrollmentResult,
    LeadHistory,
    LeadStatus,
    Page,
    StatusCounts,
    WorkflowLead,
)
from ._base import APIResource

__all__ = ["DEFAULT_CHUNK_SIZE", "WorkflowLeads"]

_It = TypeVar("_It")

DEFAULT_CHUNK_SIZE = 1000
MAX_CHUNK_SIZE = 1_000_000


def _status_param(status: LeadStatus | str | None) -> dict[str, str]:
    if status is None:
        return {}
    if not isinstance(status, str):
        raise TypeError(f"status must be a str, got {type(status).__name__}")
    if not status or any(ch.isspace() for ch in status):
        raise ValueError(f"status must be a non-empty word, got {status!r}")
    return {"status": str(status)}


def _tag_workflow(workflow_id: str, leads: list[WorkflowLead]) -> list[WorkflowLead]:
    return [
        lead if lead.workflow_id == workflow_id else attrs.evolve(lead, workflow_id=workflow_id)
        for lead in leads
    ]


def _decode_leads(payload: Any, number: int, *, limit: int, path: str) -> Page[WorkflowLead]:
    return decode_page(payload, WorkflowLead, page=number, limit=limit, method="GET", path=path)


class WorkflowLeads(APIResource):
    """``dn.workflows.leads``: the leads enrolled in a workflow."""

    def __init__(self, client: Client, iterators: weakref.WeakSet[Any]) -> None:
        super().__init__(client)
        self._iterators = iterators

    def _registered(self, iterator: _It) -> _It:
        """``iterator``, known to the session: closing the session stops it."""
        self._iterators.add(iterator)
        return iterator

    # -- reading ----------------------------------------------------------------------------

    async def page(
        self,
        workflow_id: str,
        *,
        page: int = 1,
        limit: int = 20,
        status: LeadStatus | str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> Page[WorkflowLead]:
        """One page of a workflow's leads: ``page.data`` and ``page.meta``.

        Raises:
            ValueError: ``page`` < 1 or ``limit`` outside 1..100 (nothing is sent).
            NotFoundError: The workflow does not exist.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        check_int_range(page, "page", 1)
        check_int_range(limit, "limit", 1, MAX_PAGE_SIZE)
        params = _status_param(status)
        path = encode_path("workflows", workflow_id, "leads")
        fetch = api._page_fetcher(path, limit=limit, params=params, timeout=timeout)
        payload, _ = await fetch(page)
        return _decode_leads(payload, page, limit=limit, path=path)

    def list(
        self,
        workflow_id: str,
        *,
        status: LeadStatus | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_concurrency: int | None = None,
        dedupe: bool = True,
        timeout: float | None = None,
        max_pages: int | None = None,
        pages: range | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> PagedIterator[WorkflowLead]:
        """Every lead of a workflow, in the server's order, fetched concurrently.

        Page 1 is fetched first to learn how many pages there are; the rest are fetched up to
        ``max_concurrency`` at a time (never more than the session's cap) and yielded in order,
        holding at most ``2 * max_concurrency`` pages ahead of the loop.

        Args:
            workflow_id: The workflow.
            status: Only leads in this status.
            page_size: Leads per request, 1..100 (the API's cap).
            max_concurrency: Page requests in flight at once; at most the session's cap.
            dedupe: Drop leads repeated across page boundaries when the list shifts mid-scan.
            timeout: A deadline for each page's fetch, retries included, in seconds.
            max_pages: Refuse to read more than this many pages: the scan raises
                :class:`PaginationError` when the list has more.
            pages: Scan only these pages (``range(a, b)``: pages ``a`` to ``b - 1``), in order,
                with the same guarantees: a shard of a split scan (see :meth:`plan`).
            extra_headers: Headers added to this call's requests.
            extra_query: Query parameters added to this call's requests.

        Returns:
            A :class:`PagedIterator`: ``async for lead in it``, ``it.pages()``,
            ``await it.collect()``, ``it.stats``.

        Raises:
            ValueError: ``page_size`` or ``max_concurrency`` out of range (nothing is sent).
            PaginationError: While iterating: the server pages inconsistently (ignores
                ``page``, cycles through pages), or the list passes ``max_pages``.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        check_int_range(page_size, "page_size", 1, MAX_PAGE_SIZE)
        if max_pages is not None:
            check_int_range(max_pages, "max_pages", 1)
        _check_pages(pages)
        concurrency = api._concurrency(max_concurrency)
        path = encode_path("workflows", workflow_id, "leads")
        params = _status_param(status)
        return PagedIterator(
            api._page_fetcher(path, limit=page_size, params=params, timeout=timeout),
            partial(_decode_leads, limit=page_size, path=path),
            limit=page_size,
            concurrency=concurrency,
            key=attrgetter("id"),
            dedupe=dedupe,
            max_pages=max_pages,
            pages=pages,
            describe=("GET", path),
            registry=api._iterators,
        )

    async def plan(
        self,
        workflow_id: str,
        *,
        shards: int,
        page_size: int = MAX_PAGE_SIZE,
        status: LeadStatus | str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> builtins.list[range]:
        """Page ranges that cover a workflow's leads, for a scan split across workers.

        One ``limit=1`` request counts the leads; the ``ceil(total / page_size)`` pages are cut
        into at most ``shards`` contiguous ranges, as even as can be, to hand to
        ``list(workflow_id, page_size=page_size, pages=shard)`` in as many workers. The last
        range ends at page ``2**31 - 1``: it reads to the end of the list, however long the
        list has grown since it was planned.

        Drift: shards are offsets fixed when planned. A lead added or removed ahead of a shard
        while the shards run shifts the leads after it: a lead near a boundary can then be read
        by two shards (each shard drops repeats only among its own pages) or by none. Plan and
        scan close together, or de-duplicate by ``lead.id`` where the shards' results meet.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_int_range(shards, "shards", 1)
        check_int_range(page_size, "page_size", 1, MAX_PAGE_SIZE)
        total = await api.count(workflow_id, status=status, timeout=timeout)
        return split_pages(pages_for(total, page_size), shards)

    async def count(
        self,
        workflow_id: str,
        *,
        status: LeadStatus | str | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> int:
        """How many leads a workflow has (in ``status``, if given), from one ``limit=1`` request.

        The answer is checked as a scan checks its pages: a count its own page contradicts (a
        lead on the page of an empty list, no lead on the page of a list that has some) is read
        once more, then raises :class:`PaginationError` rather than give a wrong number.
        """
        api = self._with_extras(extra_headers, extra_query)
        for second_look in (False, True):
            page = await api.page(workflow_id, page=1, limit=1, status=status, timeout=timeout)
            total, count = page.meta.total, len(page.data)
            if count > 1:  # a server that ignores ``limit`` and sends the whole list
                if total >= count:
                    return total
            elif count == min(1, total):
                return total
            if second_look:
                break
        path = encode_path("workflows", workflow_id, "leads")
        raise PaginationError(
            f"the count of {total} leads contradicts its own page, which holds {count}, "
            "the second time it was read too",
            method="GET",
            path=path,
        )

    async def status_counts(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> StatusCounts:
        """The number of leads in each :class:`LeadStatus`, and in none of them, adding up to
        the total: a dashboard tile without scanning the leads.

        One ``limit=1`` request per status and one without a filter (the total), run
        concurrently under the session's cap. See :class:`~dialnexa_async.StatusCounts`.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        check_timeout(timeout)
        statuses = list(LeadStatus)
        calls = [
            partial(api.count, workflow_id, status=status, timeout=timeout) for status in statuses
        ]
        *per_status, total = await gather(
            [*calls, partial(api.count, workflow_id, timeout=timeout)]
        )
        by_status = {
            status.value: count for status, count in zip(statuses, per_status, strict=True)
        }
        return StatusCounts(known=by_status, total=max(total, sum(by_status.values())))

    def watch(
        self,
        workflow_id: str,
        *,
        every: float = 30.0,
        status: LeadStatus | str | None = None,
        include_initial: bool = False,
        max_scans: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> LeadWatch:
        """Rescan a workflow every ``every`` seconds and yield only what changed: leads added,
        leads whose status or node changed, leads gone.

        The first scan is the baseline: it yields nothing unless ``include_initial`` (then
        every lead as added). Between scans it keeps one compact entry per lead (see
        :class:`~dialnexa_async.LeadWatch`).

        Args:
            workflow_id: The workflow.
            every: Seconds between the end of one scan and the start of the next.
            status: Watch only the leads in this status.
            include_initial: Report the first scan's leads as added.
            max_scans: Stop after this many scans (default: until closed).
            page_size: Leads per request, 1..100.
            extra_headers: Headers added to this call's requests.
            extra_query: Query parameters added to this call's requests.

        Returns:
            A :class:`~dialnexa_async.LeadWatch`: ``async for change in it``, ``async with``,
            ``aclose()``, ``.stats``.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        check_seconds(every, "every")
        check_int_range(page_size, "page_size", 1, MAX_PAGE_SIZE)
        if max_scans is not None:
            check_int_range(max_scans, "max_scans", 1)
        _status_param(status)
        return self._registered(
            LeadWatch(
                partial(api.list, workflow_id, status=status, page_size=page_size),
                every=every,
                include_initial=include_initial,
                max_scans=max_scans,
            )
        )

    def status_counts_many(
        self,
        workflow_ids: Iterable[str],
        *,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> StatusCountsMany:
        """:meth:`status_counts` of many workflows at once, each yielded as soon as it is
        ready; one workflow's error (a 404, a 403) is that workflow's result, not the end.

        Args:
            workflow_ids: The workflows (hundreds are fine).
            max_concurrency: Workflows counted at once (each is six ``limit=1`` requests, all
                under the session's cap); default the session's cap.
            timeout: A deadline for each request, retries included.
            extra_headers: Headers added to this call's requests.
            extra_query: Query parameters added to this call's requests.

        Returns:
            A :class:`~dialnexa_async.StatusCountsMany`: ``async for result in it`` (a
            :class:`~dialnexa_async.WorkflowCounts`), ``await it.collect()``, ``async with``,
            ``aclose()``, ``.stats``.
        """
        api = self._with_extras(extra_headers, extra_query)
        if isinstance(workflow_ids, str):
            raise TypeError("workflow_ids must be an iterable of ids, not one string")
        ids = [check_id(workflow_id, "workflow_ids[]") for workflow_id in workflow_ids]
        check_timeout(timeout)
        return self._registered(
            StatusCountsMany(
                ids,
                partial(api.status_counts, timeout=timeout),
                concurrency=api._concurrency(max_concurrency),
            )
        )

    def list_many(
        self,
        workflow_ids: Iterable[str],
        *,
        status: LeadStatus | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        dedupe: bool = True,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> ManyPagedIterator[WorkflowLead]:
        """Every lead of several workflows as one iterator: workflow after workflow (in the
        order given), each workflow's leads in the server's order.

        While one workflow is read, the next ones (up to the session's ``max_concurrency``) are
        already being fetched; all requests share the session's cap. Every lead's
        ``workflow_id`` is set, whether or not the server sent it.

        Returns:
            A :class:`ManyPagedIterator`: ``async for lead in it``, ``it.pages()`` (``(workflow
            id, page)`` pairs), ``await it.collect()``.

        Raises:
            ValueError, TypeError: A bad id or ``page_size`` (nothing is sent).
        """
        api = self._with_extras(extra_headers, extra_query)
        if isinstance(workflow_ids, str):
            raise TypeError("workflow_ids must be an iterable of ids, not one string")
        ids = [check_id(workflow_id, "workflow_ids[]") for workflow_id in workflow_ids]
        check_int_range(page_size, "page_size", 1, MAX_PAGE_SIZE)
        _status_param(status)

        def open_list(workflow_id: str) -> PagedIterator[WorkflowLead]:
            return api.list(
                workflow_id, status=status, page_size=page_size, dedupe=dedupe, timeout=timeout
            )

        return self._registered(
            ManyPagedIterator(ids, open_list, ahead=api._client.max_concurrency, tag=_tag_workflow)
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def history(
        self,
        workflow_id: str,
        lead_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> LeadHistory:
        """A lead and the steps it went through, oldest first.

        Raises:
            NotFoundError: The workflow or lead does not exist.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        check_id(lead_id, "lead_id")
        path = encode_path("workflows", workflow_id, "leads", lead_id, "history")
        return await api._get(path, cast_to=LeadHistory, timeout=timeout)

    async def variable_keys(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> builtins.list[str]:
        """The dynamic-variable keys the workflow's leads carry (the non-phone columns)."""
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        path = encode_path("workflows", workflow_id, "leads", "variable-keys")
        return (await api._get(path, cast_to=VariableKeys, timeout=timeout)).keys

    def stalled(
        self,
        workflow_id: str,
        *,
        older_than: timedelta,
        now: datetime | None = None,
        max_concurrency: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> StalledLeads:
        """In-progress leads whose current step started longer ago than ``older_than``.

        Scans the workflow's ``in_progress`` leads and fetches their histories concurrently
        (the scan and the history requests overlap; all share the session's cap), yielding
        ``(lead, since)`` in the scan's order, where ``since`` is when the lead's current step
        started (its enrolment time if it has no step yet). A lead that moved on between the
        scan and its history request is judged by its history, so it is not reported; one whose
        history is gone (removed meanwhile) is skipped.

        Args:
            workflow_id: The workflow.
            older_than: How long a step may run before the lead counts as stalled.
            now: The reference time (default: the current time, UTC).
            max_concurrency: History requests in flight at once; at most the session's cap.
            extra_headers: Headers added to this call's requests.
            extra_query: Query parameters added to this call's requests.

        Returns:
            A :class:`~dialnexa_async.StalledLeads`: ``async for lead, since in it``,
            ``async with``, ``aclose()``, ``.stats``.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        if not isinstance(older_than, timedelta):
            raise TypeError(f"older_than must be a timedelta, got {type(older_than).__name__}")
        if older_than < timedelta(0):
            raise ValueError("older_than must not be negative")
        if now is not None and (not isinstance(now, datetime) or now.tzinfo is None):
            raise ValueError("now must be a timezone-aware datetime")
        try:
            cutoff = (now or datetime.now(UTC)) - older_than
        except OverflowError:
            raise ValueError(f"older_than reaches before year 1: {older_than}") from None
        concurrency = api._concurrency(max_concurrency)
        leads = api.list(workflow_id, status=LeadStatus.IN_PROGRESS, max_concurrency=concurrency)
        return self._registered(
            StalledLeads(
                leads,
                partial(api._history_if_any, workflow_id),
                cutoff=cutoff,
                concurrency=concurrency,
            )
        )

    async def _history_if_any(self, workflow_id: str, lead_id: str) -> LeadHistory | None:
        try:
            return await self.history(workflow_id, lead_id)
        except NotFoundError:
            return None

    # -- removing ---------------------------------------------------------------------------

    async def remove(
        self,
        workflow_id: str,
        lead_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> None:
        """Remove one lead from a workflow; in-flight steps finish, later steps are cancelled.

        A removal that had to be re-sent (its first answer was lost) and is then answered
        404 or 409 counts as done: the first attempt removed the lead.

        Raises:
            NotFoundError: The workflow or lead does not exist, or the lead is not in it.
            ConflictError: The lead is already completed or removed.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        check_id(lead_id, "lead_id")
        path = encode_path("workflows", workflow_id, "leads", lead_id)
        await api._delete(path, timeout=timeout, ok_after_retry=frozenset({404, 409}))

    # -- enrolling --------------------------------------------------------------------------

    async def enroll(
        self,
        workflow_id: str,
        source: object,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_concurrency: int | None = None,
        on_progress: ProgressCallback | None = None,
        on_duplicate: DuplicatePolicy = "error",
        raise_on_error: bool = False,
        timeout: float | None = None,
        journal: str | os.PathLike[str] | None = None,
        skip_existing: bool = False,
        lock: RunLock | None = None,
        encoding: str | None = None,
        workbook_limits: WorkbookLimits | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> EnrollmentResult:
        """Enrol leads from a file or from rows; every row is accounted for.

        Args:
            workflow_id: The workflow.
            source: A path to a ``.csv``/``.xlsx``/``.xls`` file, ``bytes``, a binary file
                object, or an iterable or async iterable of rows (mappings, attrs instances,
                dataclasses). It needs a ``phone_number`` column; every other column becomes a
                dynamic variable. Files are read row by row; rows given as Python objects are
                held in memory while they are checked and sent.
            chunk_size: Rows per upload. A file of at most this many rows is sent as it is.
            max_concurrency: Uploads in flight at once; at most the session's cap.
            on_progress: Called as ``on_progress(rows_done, rows_to_send)`` after each upload.
                If it raises, no further upload starts and :class:`EnrollmentError` (with the
                result, the callback's exception as its cause) is raised once the uploads in
                flight end.
            on_duplicate: A phone number seen on an earlier row: ``"error"`` (refuse the source),
                ``"skip"`` (send the first only) or ``"keep"`` (send all).
            raise_on_error: Raise :class:`EnrollmentError` (carrying this result) when any
                upload failed or has an unknown outcome.
            timeout: A deadline for each upload, retries included, in seconds.
            journal: A file (created if missing, locked for the run) that records each upload
                before it is sent and its outcome as soon as it is known, flushed to disk each
                time. Run the same enrolment again with the same journal and every person (phone
                number) is enrolled exactly once: numbers already enrolled are skipped, failed
                ones sent again, and unknown ones settled against the workflow's leads once
                their requests can no longer be in progress (see the README's "Limits and
                safety"). A second run with the same journal at the same time raises
                :class:`EnrollmentLockedError` before sending anything.
            skip_existing: First read the workflow's leads (one complete scan) and skip rows
                whose phone number is already there: a re-run enrols nobody twice even without
                a journal.
            lock: A lock shared by a fleet (a :class:`~dialnexa_async.fleet.RedisLimiter`),
                taken for the run under a key made of the workflow and a digest of the
                source: a second machine running the same enrolment at the same time raises
                :class:`EnrollmentLockedError` before sending anything.
            encoding: A CSV file's text encoding (default UTF-8, with or without a BOM).
            workbook_limits: Bounds an .xlsx must stay within (default
                :class:`~dialnexa_async.WorkbookLimits`).
            extra_headers: Headers added to this call's requests.
            extra_query: Query parameters added to this call's requests.

        Returns:
            An :class:`EnrollmentResult`; ``result.failed`` and ``result.unknown`` hold every
            upload that did not go through, with its rows and row errors in your row numbers,
            and ``result.skipped`` every row deliberately not sent.

        Raises:
            SourceValidationError: A source that cannot be read or rows that cannot be sent
                (nothing is sent).
            ValueError, TypeError: A bad argument or source (nothing is sent).
            EnrollmentError: The run stopped early for a reason outside the API (see
                ``on_progress``), or ``raise_on_error`` and an upload did not go through.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        check_int_range(chunk_size, "chunk_size", 1, MAX_CHUNK_SIZE)
        check_timeout(timeout)
        if on_duplicate not in ("error", "skip", "keep"):
            raise ValueError(
                f"on_duplicate must be 'error', 'skip' or 'keep', not {on_duplicate!r}"
            )
        if lock is not None and not isinstance(lock, RunLock):
            raise TypeError(f"lock must be a RunLock (e.g. a RedisLimiter), got {lock!r}")
        if not isinstance(skip_existing, bool):
            raise TypeError(f"skip_existing must be a bool, got {type(skip_existing).__name__}")
        journal_path = _journal_path(journal)
        concurrency = api._concurrency(max_concurrency)
        if api._client.closed:
            raise ClosedError("this AsyncDialNexa is closed")
        path = encode_path("workflows", workflow_id, "leads")
        plan = EnrollmentPlan(
            workflow_id=workflow_id,
            send=lambda file: api._post(path, cast_to=Enrollment, file=file, timeout=timeout),
            closed=lambda: api._client.closed,
            phone_numbers=partial(api._phone_numbers, workflow_id),
            skip_existing=skip_existing,
            upload_deadline=api._client.call_deadline(timeout),
            attempt_deadline=api._client.attempt_deadline(timeout),
            journal=journal_path,
            lock=lock,
            encoding=encoding,
            workbook_limits=workbook_limits,
            on_duplicate=on_duplicate,
            chunk_size=chunk_size,
            concurrency=concurrency,
            on_progress=on_progress,
        )
        with operation("dialnexa.enroll", workflow_id=workflow_id) as span:
            result = await enroll_source(source, plan)
            span.set(
                uploads=len(result.uploads),
                leads_enrolled=result.leads_enrolled,
                rows_failed=sum(len(f.row_numbers) for f in result.failed),
                rows_unknown=sum(len(f.row_numbers) for f in result.unknown),
                rows_skipped=result.rows_skipped,
            )
        if raise_on_error and not result.ok:
            raise EnrollmentError(result)
        return result

    async def _phone_numbers(self, workflow_id: str) -> set[str]:
        """The phone numbers of the workflow's leads (removed ones aside), as
        ``phone_identity`` gives them, from one complete scan (an incomplete one raises)."""
        numbers: set[str] = set()
        async with self.list(workflow_id) as leads:
            async for lead in leads:
                if lead.phone_number and lead.status != LeadStatus.REMOVED:
                    numbers.add(phone_identity(lead.phone_number))
        return numbers


def _check_pages(pages: object) -> None:
    if pages is None:
        return
    if not isinstance(pages, range):
        raise TypeError(f"pages must be a range, got {type(pages).__name__}")
    if pages.step != 1 or pages.start < 1 or len(pages) == 0:
        raise ValueError(f"pages must be a non-empty range(a, b) with 1 <= a < b, got {pages!r}")


def _journal_path(journal: object) -> Path | None:
    if journal is None:
        return None
    if not isinstance(journal, str | os.PathLike):
        raise TypeError(f"journal must be a path, got {type(journal).__name__}")
    path = Path(journal)
    if path.is_dir():
        raise ValueError(f"journal must be a file, not a directory: {path}")
    return path
