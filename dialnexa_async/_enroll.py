"""Running an enrolment: choose the rows to send, upload them concurrently, account for every row.

How a run goes, once its source is checked (``_sources``):

1. **Select.** A person is their phone number (``phone_identity``). Each row is sent, or
   skipped with a reason: a number an earlier run's journal records as enrolled is skipped
   (``already_enrolled``, with the columns that changed since); with ``skip_existing``, a number
   the workflow already holds is skipped (``already_in_workflow``). A number the journal records
   as sent without an answer is *settled* first: once its request can no longer be in progress
   (the run waits for that moment, at most the upload's deadline after it was sent), one scan of
   the workflow says whether it is there (skipped) or not (sent again).
2. **Upload.** The rows to send are cut into chunks and uploaded, at most ``concurrency`` at
   once, under the session's cap. With a journal, each upload is recorded before it is sent and
   its outcome the moment it is known (see ``_journal``).
3. **Account.** Every upload ends accepted, failed (the server refused it, said it did not
   take it on — a 429, a 503 with ``Retry-After`` —, or it was never sent: a limiter that
   could not be reached, a journal that could not be written, an earlier answer that made every
   further upload pointless: 401, 403, 404, a redirect) or unknown (it may have reached the
   server and no answer says what became of it). An accepted upload that enrolled fewer leads
   than its rows is also reported as ``short``. Nothing is dropped.

A failure outside the API (an ``on_progress`` that raises, a journal that cannot be written, the
session closed under the run) stops the sending of further chunks, lets the uploads in flight
finish, and raises :class:`~dialnexa_async.errors.EnrollmentError` carrying the full result, the
failure as its cause: never an ``ExceptionGroup``, never a lost result.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs

from ._concurrency import OrderedTasks
from ._journal import Journal, person_key, row_digest, row_errors_json, upload_key
from ._limiter import RunLock
from ._sources import (
    PHONE_COLUMN,
    Chunk,
    DuplicatePolicy,
    Row,
    Source,
    map_row_errors,
    open_source,
    phone_identity,
    plan_chunks,
)
from ._transport import UploadFile
from ._workbook import WorkbookLimits
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClosedError,
    DialNexaError,
    EnrollmentError,
    InternalServerError,
    LimiterError,
    NotFoundError,
    PermissionDeniedError,
    RedirectError,
    UnprocessableEntityError,
)
from .models import (
    Enrollment,
    EnrollmentResult,
    RowError,
    SkippedRow,
    SkipReason,
    UploadFailure,
)

__all__ = [
    "EnrollmentPlan",
    "ProgressCallback",
    "Selection",
    "Uploader",
    "enroll_source",
    "run_enrollment",
    "select_rows",
]

ProgressCallback = Callable[[int, int | None], object]
# Sends one file and decodes the server's reply (the resource's typed POST), or raises.
Uploader = Callable[[UploadFile], Awaitable[Enrollment]]
# Answers that would fail every further upload the same way: stop sending.
_FATAL = (AuthenticationError, PermissionDeniedError, NotFoundError, RedirectError)


@attrs.frozen(kw_only=True)
class EnrollmentPlan:
    """Everything an ``enroll`` call settled before reading its source (arguments checked)."""

    workflow_id: str
    send: Uploader
    closed: Callable[[], bool]
    # Reads the workflow's phone numbers (as phone_identity gives them), from a complete scan.
    phone_numbers: Callable[[], Awaitable[set[str]]]
    skip_existing: bool
    # The longest one upload call, and one attempt of it, can take: when an upload of unknown
    # outcome can no longer be in progress (see _journal).
    upload_deadline: float
    attempt_deadline: float
    journal: Path | None
    # A fleet-wide lock keyed by workflow and source, held for the run.
    lock: RunLock | None
    encoding: str | None
    workbook_limits: WorkbookLimits | None
    on_duplicate: DuplicatePolicy
    chunk_size: int
    concurrency: int
    on_progress: ProgressCallback | None


async def enroll_source(source: object, plan: EnrollmentPlan) -> EnrollmentResult:
    """Open ``source`` (off the event loop), the journal and the workflow's numbers as the plan
    asks, run the enrolment, and close what was opened, whatever happens."""
    if isinstance(source, AsyncIterable):
        # Rows from an async source are gathered first: the whole source is checked before
        # anything is sent.
        source = [row async for row in source]
    src = await anyio.to_thread.run_sync(
        partial(open_source, source, encoding=plan.encoding, workbook_limits=plan.workbook_limits)
    )
    try:
        if plan.lock is None:
            return await _run_source(src, plan)
        digest = await anyio.to_thread.run_sync(src.digest)
        async with plan.lock.hold(f"enroll:{plan.workflow_id}:{digest}"):
            return await _run_source(src, plan)
    finally:
        src.close()


async def _run_source(src: Source, plan: EnrollmentPlan) -> EnrollmentResult:
    """Open the journal and read the workflow's numbers as the plan asks, and run."""
    opened: Journal | None = None
    try:
        if src.kind == "xls" and (plan.journal is not None or plan.skip_existing):
            raise ValueError(
                "journal and skip_existing need rows the SDK can read: save the .xls as .xlsx "
                "or .csv"
            )
        if plan.journal is not None:
            # Taking the journal's lock comes first: a second run stops here, before it reads
            # the workflow or sends anything.
            opened = await anyio.to_thread.run_sync(
                Journal, plan.journal, plan.workflow_id, src.filename
            )
        existing = None
        if plan.skip_existing or (opened is not None and opened.unknown):
            if opened is not None and opened.unknown:
                await _until_settled(opened)
            existing = await plan.phone_numbers()
        return await run_enrollment(
            plan.send,
            plan.closed,
            src,
            on_duplicate=plan.on_duplicate,
            chunk_size=plan.chunk_size,
            concurrency=plan.concurrency,
            on_progress=plan.on_progress,
            journal=opened,
            existing=existing,
            skip_existing=plan.skip_existing,
            deadlines=(plan.upload_deadline, plan.attempt_deadline),
        )
    finally:
        if opened is not None:
            opened.close()


async def _until_settled(journal: Journal) -> None:
    """Wait until no upload of unknown outcome can still be in progress (each was sent at
    least its deadline ago), so that the scan that settles them sees what they did."""
    wait = max(journal.unknown.values()) - time.time()
    if wait > 0:
        await anyio.sleep(wait)


@attrs.define
class Selection:
    """Which rows of a checked source are not sent, and why."""

    not_sent: set[int] = attrs.field(factory=set)
    skipped: list[SkippedRow] = attrs.field(factory=list)
    # Unknown rows of an earlier run, settled by the scan: found in the workflow, or not.
    settled_found: list[str] = attrs.field(factory=list)
    settled_absent: list[str] = attrs.field(factory=list)
    # Rows the journal holds as enrolled whose other columns changed: their place in
    # ``skipped`` -> (phone, row now).
    changed: dict[int, tuple[str, Row]] = attrs.field(factory=dict)
    to_send: int = 0

    def skip(self, number: int, phone: str, reason: SkipReason) -> None:
        self.not_sent.add(number)
        self.skipped.append(SkippedRow(row_number=number, phone_number=phone, reason=reason))


def select_rows(
    source: Source,
    duplicates: set[int],
    *,
    journal: Journal | None,
    existing: set[str] | None,
    skip_existing: bool = False,
) -> Selection:
    """Step 1 of the module docstring: one pass over the source (run off the event loop)."""
    selection = Selection()
    if journal is None and existing is None and not duplicates:
        selection.to_send = source.total_rows  # nothing to decide: no pass over the rows
        return selection
    enrolled = journal.enrolled if journal is not None else {}
    unknown = journal.unknown if journal is not None else {}
    workflow = existing if existing is not None else set()
    for number, row in source.numbered_rows():
        written = row.get(PHONE_COLUMN, "").strip()
        phone = phone_identity(written)
        if number in duplicates:
            selection.skip(number, written, "duplicate_in_source")
            continue
        key = person_key(phone)
        digest = enrolled.get(key)
        if digest is not None:
            selection.skip(number, written, "already_enrolled")
            if digest and digest != row_digest(row):
                selection.changed[len(selection.skipped) - 1] = (phone, row)
            continue
        if key in unknown:
            if phone in workflow:
                selection.settled_found.append(phone)
                selection.skip(number, written, "already_in_workflow")
                continue
            selection.settled_absent.append(phone)  # not there: sent again below
        elif skip_existing and phone in workflow:
            selection.skip(number, written, "already_in_workflow")
            continue
        selection.to_send += 1
    if journal is not None and selection.changed:
        _name_changes(selection, journal)
    return selection


def _name_changes(selection: Selection, journal: Journal) -> None:
    """Say which columns of each row skipped as already enrolled differ from the row sent."""
    before = journal.rows_sent({phone for phone, _ in selection.changed.values()})
    for index, (phone, now) in selection.changed.items():
        then = before.get(phone)
        if then is None:
            continue
        fields = tuple(
            sorted(
                column
                for column in (now.keys() | then.keys()) - {PHONE_COLUMN}
                if now.get(column) != then.get(column)
            )
        )
        selection.skipped[index] = attrs.evolve(selection.skipped[index], changed_fields=fields)


@attrs.define
class _Run:
    """The state of one ``enroll`` call: outcomes by upload index."""

    send: Uploader
    closed: Callable[[], bool]
    total: int | None
    on_progress: ProgressCallback | None
    journal: Journal | None
    # The longest an upload call, and one attempt of it, can take.
    deadlines: tuple[float, float]
    accepted: dict[int, Enrollment] = attrs.field(factory=dict)
    failed: dict[int, UploadFailure] = attrs.field(factory=dict)
    unknown: dict[int, UploadFailure] = attrs.field(factory=dict)
    short: dict[int, UploadFailure] = attrs.field(factory=dict)
    # Uploads whose request may have left: a failure outside the API is "unknown" only there.
    sent: set[int] = attrs.field(factory=set)
    rows_done: int = 0
    fatal: APIStatusError | None = None
    crash: BaseException | None = None

    @property
    def stopped(self) -> bool:
        return self.fatal is not None or self.crash is not None

    async def upload(self, index: int, chunk: Chunk) -> None:
        try:
            await self._upload(index, chunk)
            self.rows_done += len(chunk.rows)
            if self.on_progress is not None and self.crash is None:
                reported = self.on_progress(self.rows_done, self.total)
                if inspect.isawaitable(reported):
                    await reported
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # Cancelled (a timeout, Ctrl-C): the request in flight is abandoned, and the
                # server may still be applying it for as long as an attempt may take.
                if not self._has_outcome(index):
                    key = upload_key(chunk.data)
                    if index in self.sent:
                        await self._unknown(key, index, chunk, None)
                    else:
                        not_sent = DialNexaError("cancelled before it was sent")
                        await self._fail(key, index, chunk, not_sent)
                raise
            # Never an ExceptionGroup, never a lost result: stop, and say why at the end.
            if self.crash is None:
                self.crash = exc
            if not self._has_outcome(index):
                # It failed somewhere unforeseen: unknown if its request may have left.
                outcome: Literal["failed", "unknown"] = (
                    "unknown" if index in self.sent else "failed"
                )
                target = self.unknown if outcome == "unknown" else self.failed
                target[index] = _failure(outcome, chunk, exc)

    def _has_outcome(self, index: int) -> bool:
        return index in self.accepted or index in self.failed or index in self.unknown

    async def _record(self, event: dict[str, Any]) -> None:
        if self.journal is None:
            return
        if event["event"] == "sending":
            # Cancelled before the write begins, the upload is not sent either; once begun,
            # the write completes (the worker thread is not abandoned).
            await anyio.to_thread.run_sync(self.journal.record, event)
            return
        await _write_through_cancellation(self.journal, event)

    async def _upload(self, index: int, chunk: Chunk) -> None:
        key = upload_key(chunk.data)
        await self._record(
            {
                "event": "sending",
                "upload": key,
                "row_numbers": chunk.row_numbers,
                "rows": chunk.rows,
                "settle_after": time.time() + self.deadlines[0],
            }
        )
        if self.closed():
            # Checked with no await before the request: this upload was certainly not sent.
            closed = ClosedError("this AsyncDialNexa is closed")
            await self._fail(key, index, chunk, closed)
            raise closed
        self.sent.add(index)
        try:
            enrollment = await self.send(UploadFile(chunk.filename, chunk.content_type, chunk.data))
        except (BadRequestError, UnprocessableEntityError) as exc:
            errors = exc.errors if isinstance(exc, BadRequestError) else []
            await self._fail(key, index, chunk, exc, map_row_errors(errors, chunk.row_numbers))
            return
        except _FATAL as exc:
            self.fatal = self.fatal or exc
            await self._fail(key, index, chunk, exc)
            return
        except APIStatusError as exc:
            if _applied_maybe(exc):
                await self._unknown(key, index, chunk, exc)
            else:
                await self._fail(key, index, chunk, exc)
            return
        except APIConnectionError as exc:
            if exc.body_sent:
                await self._unknown(key, index, chunk, exc)
            else:
                await self._fail(key, index, chunk, exc)
            return
        except LimiterError as exc:
            # No slot, so no request: certainly not sent.
            await self._fail(key, index, chunk, exc)
            return
        except APIResponseValidationError as exc:
            # An answer, but unreadable (or too large): how many leads it made is not known.
            await self._unknown(key, index, chunk, exc)
            return
        self.accepted[index] = enrollment
        await self._record(
            {
                "event": "enrolled",
                "upload": key,
                "leads_enrolled": enrollment.leads_enrolled,
                "lead_ids": {phone: list(ids) for phone, ids in enrollment.lead_ids.items()},
            }
        )
        self._check_count(index, chunk, enrollment)

    def _check_count(self, index: int, chunk: Chunk, enrollment: Enrollment) -> None:
        """An accepted upload that enrolled fewer leads than its rows is reported as short,
        with the rows the server named no lead for (all of them, when it named none)."""
        if enrollment.lead is not None or enrollment.leads_enrolled >= len(chunk.rows):
            return  # a reply that is one lead object says nothing about the others
        numbers, rows = chunk.row_numbers, chunk.rows
        if enrollment.lead_ids:
            named = {phone_identity(phone) for phone in enrollment.lead_ids}
            pairs = [
                (n, r)
                for n, r in zip(numbers, rows, strict=True)
                if phone_identity(r.get(PHONE_COLUMN, "")) not in named
            ]
            numbers, rows = [n for n, _ in pairs], [r for _, r in pairs]
        problem = DialNexaError(
            f"the server accepted {len(chunk.rows)} rows but enrolled "
            f"{enrollment.leads_enrolled} leads"
        )
        self.short[index] = UploadFailure(
            outcome="short", row_numbers=numbers, rows=rows, errors=[], error=problem
        )

    async def _fail(
        self,
        key: str,
        index: int,
        chunk: Chunk,
        exc: Exception,
        errors: list[RowError] | None = None,
    ) -> None:
        self.failed[index] = _failure("failed", chunk, exc, errors)
        await self._record(
            {
                "event": "failed",
                "upload": key,
                "reason": str(exc),
                "errors": row_errors_json(errors or []),
            }
        )

    async def _unknown(self, key: str, index: int, chunk: Chunk, exc: Exception | None) -> None:
        """Record an upload whose outcome is unknown (``exc`` ``None``: it was cancelled)."""
        reason = "cancelled while in flight" if exc is None else str(exc)
        self.unknown[index] = _failure("unknown", chunk, exc or DialNexaError(reason))
        await self._record(
            {
                "event": "unknown",
                "upload": key,
                "reason": reason,
                # The client let go now; the server may go on for as long as an attempt may.
                "settle_after": time.time() + self.deadlines[1],
            }
        )

    def not_sent(self, index: int, chunk: Chunk) -> None:
        reason = self.fatal or self.crash
        error = reason if isinstance(reason, Exception) else DialNexaError("upload not sent")
        self.failed[index] = _failure("failed", chunk, error)


async def _write_through_cancellation(journal: Journal, event: dict[str, Any]) -> None:
    """Write an outcome to the journal even when the run is cancelled meanwhile (a lost
    "enrolled" would leave the upload unknown): the write is handed to a worker thread at
    once, with no checkpoint before it where a cancellation could stop it from starting, and
    awaited to the end; a cancellation that came meanwhile is raised after."""
    written = asyncio.get_running_loop().run_in_executor(None, journal.record, event)
    cancelled: asyncio.CancelledError | None = None
    while not written.done():
        try:
            await asyncio.shield(written)
        except asyncio.CancelledError as exc:
            cancelled = exc
    written.result()  # a write that failed (a full disk) raises here
    if cancelled is not None:
        raise cancelled


def _applied_maybe(exc: APIStatusError) -> bool:
    """Whether an error answer leaves open that the upload was applied: a 5xx may come after
    the work was done, except a 503 with ``Retry-After`` (the server saying it did not take
    the request on, as a 429 does); a 4xx was refused."""
    if isinstance(exc, InternalServerError) and exc.status_code == 503:
        return exc.retry_after is None
    return exc.status_code >= 500


def _failure(
    outcome: Literal["failed", "unknown"],
    chunk: Chunk,
    exc: Exception,
    errors: list[RowError] | None = None,
) -> UploadFailure:
    return UploadFailure(
        outcome=outcome,
        row_numbers=chunk.row_numbers,
        rows=chunk.rows,
        errors=errors or [],
        error=exc,
    )


async def run_enrollment(
    send: Uploader,
    closed: Callable[[], bool],
    source: Source,
    *,
    on_duplicate: DuplicatePolicy,
    chunk_size: int,
    concurrency: int,
    on_progress: ProgressCallback | None,
    journal: Journal | None,
    existing: set[str] | None,
    skip_existing: bool = False,
    deadlines: tuple[float, float] = (0.0, 0.0),
) -> EnrollmentResult:
    """Check, select, upload and account for ``source``; see the module docstring."""
    # Reading and checking a big file takes a while: keep it off the event loop.
    duplicates = await anyio.to_thread.run_sync(source.check, on_duplicate)
    selection = await anyio.to_thread.run_sync(
        partial(
            select_rows,
            source,
            duplicates,
            journal=journal,
            existing=existing,
            skip_existing=skip_existing,
        )
    )
    if journal is not None:
        for reason, phones in (
            ("already_in_workflow", selection.settled_found),
            ("not_in_workflow", selection.settled_absent),
        ):
            if phones:
                event = {"event": "settled", "phones": phones, "reason": reason}
                await anyio.to_thread.run_sync(journal.record, event)
    run = _Run(
        send=send,
        closed=closed,
        total=None if source.kind == "xls" else selection.to_send,
        on_progress=on_progress,
        journal=journal,
        deadlines=deadlines,
    )
    chunks = plan_chunks(source, chunk_size, selection.not_sent)
    index = await _upload_all(run, chunks, concurrency)
    if run.stopped:
        # Never lose rows: what was not sent is reported with what stopped the run.
        while (chunk := await _next_chunk(run, chunks)) is not None:
            run.not_sent(index, chunk)
            index += 1
    result = _result(run, selection)
    if run.crash is not None:
        reason = f"{type(run.crash).__name__}: {run.crash}"
        raise EnrollmentError(result, reason=reason) from run.crash
    return result


async def _upload_all(run: _Run, chunks: Iterator[Chunk], concurrency: int) -> int:
    """Upload chunks, ``concurrency`` at a time, until they run out or the run stops; return
    how many were started."""
    uploads: OrderedTasks[None] = OrderedTasks("upload")
    index = 0
    try:
        while True:
            await uploads.room(concurrency)
            chunk = None if run.stopped else await _next_chunk(run, chunks)
            if chunk is None:
                break
            uploads.start(index, run.upload(index, chunk))
            index += 1
        await uploads.join()  # every upload records its own outcome; none raises
    finally:
        await uploads.aclose()  # on cancellation: cancel and await those in flight
    return index


async def _next_chunk(run: _Run, chunks: Iterator[Chunk]) -> Chunk | None:
    """The next chunk, read off the event loop; ``None`` at the end, or when the source
    cannot be read any more (a file changed or removed since it was checked): that stops the
    run like any failure outside the API, rather than escaping as an ``ExceptionGroup``."""
    try:
        return await anyio.to_thread.run_sync(next, chunks, None)
    except (OSError, ValueError) as exc:
        run.crash = run.crash or exc
        return None


def _result(run: _Run, selection: Selection) -> EnrollmentResult:
    uploads = [run.accepted[i] for i in sorted(run.accepted)]
    return EnrollmentResult(
        leads_enrolled=sum(u.leads_enrolled for u in uploads),
        uploads=uploads,
        failed=[run.failed[i] for i in sorted(run.failed)],
        unknown=[run.unknown[i] for i in sorted(run.unknown)],
        skipped=sorted(selection.skipped, key=lambda row: row.row_number),
        short=[run.short[i] for i in sorted(run.short)],
    )
