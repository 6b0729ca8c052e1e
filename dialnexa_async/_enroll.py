"""Running an enrolment: choose the rows to send, upload them concurrently, account for every row.

How a run goes, once its source is checked (``_sources``):

1. **Select.** Each row is sent, or skipped with a reason, or held back: a row an earlier run's
   journal records as enrolled is skipped (``already_enrolled``); with ``skip_existing``, a row
   whose phone number the workflow already holds is skipped (``already_in_workflow``); a row the
   journal records as sent without an answer is held back as unknown (it may have been enrolled;
   guessing either way could phone someone twice or never) unless ``skip_existing`` settled it.
2. **Upload.** The rows to send are cut into chunks and uploaded, at most ``concurrency`` at
   once, under the session's cap. With a journal, each upload is recorded before it is sent and
   its outcome the moment it is known (see ``_journal``).
3. **Account.** Every upload ends accepted, failed (the server refused it, or it was never sent
   because an earlier answer made every further one pointless: 401, 403, 404, a redirect) or
   unknown (sent, and the answer lost or a 5xx). Nothing is dropped.

A failure outside the API (an ``on_progress`` that raises, a journal that cannot be written, the
session closed under the run) stops the sending of further chunks, lets the uploads in flight
finish, and raises :class:`~dialnexa_async.errors.EnrollmentError` carrying the full result, the
failure as its cause: never an ``ExceptionGroup``, never a lost result.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs

from ._concurrency import OrderedTasks
from ._journal import Journal, row_errors_json, row_key, upload_key
from ._sources import (
    PHONE_COLUMN,
    Chunk,
    DuplicatePolicy,
    Row,
    Source,
    map_row_errors,
    open_source,
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
    DialNexaError,
    EnrollmentError,
    NotFoundError,
    PermissionDeniedError,
    RedirectError,
    UnprocessableEntityError,
)
from .models import Enrollment, EnrollmentResult, RowError, SkippedRow, UploadFailure

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
    # Reads the workflow's phone numbers, when skip_existing asked for it.
    phone_numbers: Callable[[], Awaitable[set[str]]] | None
    journal: Path | None
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
    opened: Journal | None = None
    try:
        if src.kind == "xls" and (plan.journal is not None or plan.phone_numbers is not None):
            raise ValueError(
                "journal and skip_existing need rows the SDK can read: save the .xls as .xlsx "
                "or .csv"
            )
        existing = await plan.phone_numbers() if plan.phone_numbers is not None else None
        if plan.journal is not None:
            opened = await anyio.to_thread.run_sync(
                Journal, plan.journal, plan.workflow_id, src.filename
            )
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
        )
    finally:
        if opened is not None:
            opened.close()
        src.close()


@attrs.define
class Selection:
    """Which rows of a checked source are not sent, and why."""

    not_sent: set[int] = attrs.field(factory=set)
    skipped: list[SkippedRow] = attrs.field(factory=list)
    held_numbers: list[int] = attrs.field(factory=list)
    held_rows: list[Row] = attrs.field(factory=list)
    # Rows the journal held as unknown that the workflow turned out to hold: settled.
    settled_keys: list[str] = attrs.field(factory=list)
    to_send: int = 0


def select_rows(
    source: Source,
    duplicates: set[int],
    *,
    journal: Journal | None,
    existing: set[str] | None,
) -> Selection:
    """Step 1 of the module docstring: one pass over the source (run off the event loop)."""
    selection = Selection()
    if journal is None and existing is None and not duplicates:
        selection.to_send = source.total_rows  # nothing to decide: no pass over the rows
        return selection
    enrolled = journal.enrolled.copy() if journal is not None else None
    unknown = journal.unknown.copy() if journal is not None else None
    for number, row in source.numbered_rows():
        phone = row.get(PHONE_COLUMN, "").strip()
        if number in duplicates:
            selection.not_sent.add(number)
            selection.skipped.append(
                SkippedRow(row_number=number, phone_number=phone, reason="duplicate_in_source")
            )
            continue
        key = row_key(row) if journal is not None else ""
        if enrolled is not None and enrolled[key] > 0:
            enrolled[key] -= 1
            selection.not_sent.add(number)
            selection.skipped.append(
                SkippedRow(row_number=number, phone_number=phone, reason="already_enrolled")
            )
            continue
        if existing is not None and phone in existing:
            if unknown is not None and unknown[key] > 0:
                unknown[key] -= 1
                selection.settled_keys.append(key)
            selection.not_sent.add(number)
            selection.skipped.append(
                SkippedRow(row_number=number, phone_number=phone, reason="already_in_workflow")
            )
            continue
        if existing is None and unknown is not None and unknown[key] > 0:
            unknown[key] -= 1
            selection.not_sent.add(number)
            selection.held_numbers.append(number)
            selection.held_rows.append(row)
            continue
        selection.to_send += 1
    return selection


@attrs.define
class _Run:
    """The state of one ``enroll`` call: outcomes by upload index."""

    send: Uploader
    closed: Callable[[], bool]
    total: int | None
    on_progress: ProgressCallback | None
    journal: Journal | None
    accepted: dict[int, Enrollment] = attrs.field(factory=dict)
    failed: dict[int, UploadFailure] = attrs.field(factory=dict)
    unknown: dict[int, UploadFailure] = attrs.field(factory=dict)
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
                self.on_progress(self.rows_done, self.total)
        except Exception as exc:
            # Never an ExceptionGroup, never a lost result: stop, and say why at the end.
            if self.crash is None:
                self.crash = exc
            if not self._has_outcome(index):
                # It failed somewhere unforeseen, perhaps after it was sent.
                self.unknown[index] = _failure("unknown", chunk, exc)

    def _has_outcome(self, index: int) -> bool:
        return index in self.accepted or index in self.failed or index in self.unknown

    async def _record(self, event: dict[str, Any]) -> None:
        if self.journal is not None:
            # A worker thread that is not abandoned on cancellation: once begun, the write
            # completes, so what the journal was told stays told.
            await anyio.to_thread.run_sync(self.journal.record, event)

    async def _upload(self, index: int, chunk: Chunk) -> None:
        key = upload_key(chunk.data)
        await self._record(
            {
                "event": "sending",
                "upload": key,
                "row_numbers": chunk.row_numbers,
                "rows": chunk.rows,
            }
        )
        if self.closed():
            # Checked with no await before the request: this upload was certainly not sent.
            closed = RuntimeError("this AsyncDialNexa is closed")
            await self._fail(key, index, chunk, closed)
            raise closed
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
            # A 5xx may have been applied before the server failed; a 4xx was refused.
            if exc.status_code >= 500:
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

    async def _unknown(self, key: str, index: int, chunk: Chunk, exc: Exception) -> None:
        self.unknown[index] = _failure("unknown", chunk, exc)
        await self._record({"event": "unknown", "upload": key, "reason": str(exc)})

    def not_sent(self, index: int, chunk: Chunk) -> None:
        reason = self.fatal or self.crash
        error = reason if isinstance(reason, Exception) else DialNexaError("upload not sent")
        self.failed[index] = _failure("failed", chunk, error)


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
) -> EnrollmentResult:
    """Check, select, upload and account for ``source``; see the module docstring."""
    # Reading and checking a big file takes a while: keep it off the event loop.
    duplicates = await anyio.to_thread.run_sync(source.check, on_duplicate)
    selection = await anyio.to_thread.run_sync(
        lambda: select_rows(source, duplicates, journal=journal, existing=existing)
    )
    if journal is not None and selection.settled_keys:
        settled = {
            "event": "settled",
            "row_keys": selection.settled_keys,
            "reason": "already_in_workflow",
        }
        await anyio.to_thread.run_sync(journal.record, settled)
    run = _Run(
        send=send,
        closed=closed,
        total=None if source.kind == "xls" else selection.to_send,
        on_progress=on_progress,
        journal=journal,
    )
    chunks = plan_chunks(source, chunk_size, selection.not_sent)
    index = await _upload_all(run, chunks, concurrency)
    if run.stopped:
        # Never lose rows: what was not sent is reported with what stopped the run.
        while (chunk := await _next_chunk(run, chunks)) is not None:
            run.not_sent(index, chunk)
            index += 1
    result = _result(run, selection, journal)
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


def _result(run: _Run, selection: Selection, journal: Journal | None) -> EnrollmentResult:
    unknown = [run.unknown[i] for i in sorted(run.unknown)]
    if selection.held_numbers:
        held = DialNexaError(
            f"the journal {journal.path if journal else ''} records these rows as sent without "
            "a known outcome; they were not sent again. Re-run with skip_existing=True to check "
            "them against the workflow's leads"
        )
        unknown.insert(
            0,
            UploadFailure(
                outcome="unknown",
                row_numbers=selection.held_numbers,
                rows=selection.held_rows,
                errors=[],
                error=held,
            ),
        )
    uploads = [run.accepted[i] for i in sorted(run.accepted)]
    return EnrollmentResult(
        leads_enrolled=sum(u.leads_enrolled for u in uploads),
        uploads=uploads,
        failed=[run.failed[i] for i in sorted(run.failed)],
        unknown=unknown,
        skipped=sorted(selection.skipped, key=lambda row: row.row_number),
    )
