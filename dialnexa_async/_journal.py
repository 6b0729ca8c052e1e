"""The enrolment journal: an append-only record that makes re-running an enrolment safe.

DialNexa documents no idempotency key, so an upload whose answer was lost (a timeout, a
cancellation, Ctrl-C, a crash) may or may not have enrolled its leads, and sending it again may
phone the same people twice. The journal is how a re-run knows. It is a JSON-lines file, one
event per line, each written, flushed and fsynced before the SDK goes on:

``{"event": "run", "version": 2, "workflow_id": ..., "source": ..., "at": ...}``
    a run began;
``{"event": "sending", "upload": H, "row_numbers": [...], "rows": [...], "settle_after": T}``
    upload ``H`` (the SHA-256 of the bytes sent) is about to be sent, with its rows: written
    *before* the request leaves, so a crash after it leaves is never forgotten. ``settle_after``
    (seconds since the epoch) is when the request can no longer be in progress: its sending
    time plus the whole deadline of the upload call;
``{"event": "enrolled", "upload": H, "leads_enrolled": n, "lead_ids": {...}}``,
``{"event": "failed", "upload": H, "reason": ..., "errors": [...]}``,
``{"event": "unknown", "upload": H, "reason": ..., "settle_after": T}``
    what became of it, the moment it is known. An unknown upload (the answer lost, a 5xx, the
    run cancelled under it) carries its own ``settle_after``: the client let go of it then, and
    the server may go on applying it for as long as one attempt may take;
``{"event": "settled", "phones": [...], "reason": "already_in_workflow" | "not_in_workflow"}``
    a later run looked up the phone numbers of unknown rows among the workflow's leads: found,
    they count as enrolled; not found, they are no longer unknown and are sent again.

**A person is their phone number** (:func:`~dialnexa_async._sources.phone_identity`): a number
the journal holds as enrolled is skipped however the rest of its row changed since, and a row
whose number is unknown is not sent again until it is settled. A ``sending`` with no outcome
after it, in a run that ended, is unknown.

**One run at a time**: an open journal holds an exclusive lock on its file (``flock``, released
by the kernel when the process dies), so a second run with the same journal, in this process or
another, is refused before it sends anything.

Reading a journal streams it, keeping per phone number only its state and a 64-bit digest of
its row, so resuming a large enrolment costs memory of the order of checking its file. A last
line torn by a crash is cut off when the journal is next opened; any other line that is not an
event is a ``ValueError`` naming it. The file holds the rows (names, phone numbers): it is
created readable by its owner only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import attrs

from ._sources import PHONE_COLUMN, phone_identity
from .errors import EnrollmentLockedError
from .models import RowError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Journal",
    "JournalSummary",
    "person_key",
    "read_journal",
    "row_digest",
    "upload_key",
]

VERSION = 2
_FINAL = ("enrolled", "failed", "unknown")


def row_digest(row: Mapping[str, str]) -> int:
    """A 64-bit digest of a row's columns and values as sent (to tell a changed row)."""
    text = json.dumps(sorted(row.items()), ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def upload_key(data: bytes) -> str:
    """An upload's identity: the SHA-256 of the bytes sent."""
    return hashlib.sha256(data).hexdigest()


@attrs.frozen(kw_only=True)
class JournalSummary:
    """What a journal records, as of its last line, person by person (phone number).

    Attributes:
        path: The journal file.
        workflow_id: The workflow its runs enrolled into.
        runs: How many runs wrote to it.
        rows_enrolled: Phone numbers of uploads the server accepted, and of unknown uploads a
            later run found in the workflow.
        rows_failed: Phone numbers of uploads the server refused and not enrolled since (a
            re-run sends them again).
        rows_unknown: Phone numbers sent without a known outcome (a re-run settles them
            against the workflow's leads before sending any again).
        leads_enrolled: Leads the accepted uploads enrolled, as the server counted them.
    """

    path: Path
    workflow_id: str | None
    runs: int
    rows_enrolled: int
    rows_failed: int
    rows_unknown: int
    leads_enrolled: int


def person_key(phone: str) -> int:
    """What the journal's tables are keyed by: the hash of a phone number's identity (as
    ``phone_identity`` gives it). An int takes half the memory of the string, and the tables
    live only in the process that read the journal, so Python's own string hash serves."""
    return hash(phone)


@attrs.define
class _Upload:
    keys: list[int]  # person_key of each row's phone number
    digests: list[int]
    settle_after: float


class _Damaged(ValueError):
    pass


@attrs.define
class _Record:
    """What a journal's events add up to, phone number by phone number."""

    workflow_id: str | None = None
    runs: int = 0
    leads_enrolled: int = 0
    # The rows enrolled: person key -> digest of the row as sent.
    enrolled: dict[int, int] = attrs.field(factory=dict)
    # The rows of unknown outcome: person key -> when its request can no longer be in progress.
    unknown: dict[int, float] = attrs.field(factory=dict)
    failed: set[int] = attrs.field(factory=set)
    _pending: dict[str, _Upload] = attrs.field(factory=dict)

    def add(self, event: Mapping[str, Any]) -> None:
        kind = event["event"]
        if kind == "run":
            self._close_run()
            self.runs += 1
            workflow_id = event.get("workflow_id", self.workflow_id)
            if not isinstance(workflow_id, str | None):
                raise _Damaged("workflow_id is not a string")
            self.workflow_id = workflow_id
        elif kind == "sending":
            rows = event.get("rows", [])
            if not isinstance(rows, list):
                raise _Damaged("rows is not a list")
            self._pending[str(event["upload"])] = _Upload(
                keys=[person_key(phone_identity(str(row.get(PHONE_COLUMN, "")))) for row in rows],
                digests=[row_digest(row) for row in rows],
                settle_after=float(event.get("settle_after", 0.0)),
            )
        elif kind in _FINAL:
            upload = self._pending.pop(str(event.get("upload")), None)
            if upload is not None:
                if kind == "unknown" and "settle_after" in event:
                    upload.settle_after = float(event["settle_after"])
                self._outcome(kind, upload, int(event.get("leads_enrolled", 0) or 0))
        elif kind == "settled":
            phones = event.get("phones", [])
            if not isinstance(phones, list):
                raise _Damaged("phones is not a list")
            found = event.get("reason") == "already_in_workflow"
            for phone in phones:
                key = person_key(phone_identity(str(phone)))
                if self.unknown.pop(key, None) is not None and found:
                    self.enrolled.setdefault(key, 0)

    def _outcome(self, kind: str, upload: _Upload, leads: int) -> None:
        if kind == "enrolled":
            self.leads_enrolled += leads
        for key, digest in zip(upload.keys, upload.digests, strict=True):
            if kind == "enrolled":
                self.enrolled[key] = digest
                self.unknown.pop(key, None)
                self.failed.discard(key)
            elif key in self.enrolled:
                continue
            elif kind == "unknown":
                self.unknown[key] = max(self.unknown.get(key, 0.0), upload.settle_after)
                self.failed.discard(key)
            elif key not in self.unknown:
                self.failed.add(key)

    def _close_run(self) -> None:
        """Uploads of an ended run with no outcome may have reached the server: unknown."""
        for upload in self._pending.values():
            self._outcome("unknown", upload, 0)
        self._pending.clear()

    def finish(self) -> _Record:
        self._close_run()
        return self


def _events(lines: Iterable[bytes], path: Path) -> Iterator[dict[str, Any]]:
    """The events of a journal's lines; a torn last line (no newline) is not an event."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if not line.endswith(b"\n"):
                return  # a line torn by a crash mid-write: its event never happened
            raise ValueError(f"journal {path} is damaged: line {number} is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise ValueError(  # noqa: TRY004 - a damaged file, as the line above
                f"journal {path} is damaged: line {number} is not an event"
            )
        event["_line"] = number
        yield event


def _record(lines: Iterable[bytes], path: Path) -> _Record:
    record = _Record()
    for event in _events(lines, path):
        try:
            record.add(event)
        except (_Damaged, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"journal {path} is damaged: line {event['_line']} is not a valid "
                f"{event['event']!r} event ({type(exc).__name__}: {exc})"
            ) from None
    return record.finish()


def read_journal(path: str | os.PathLike[str]) -> JournalSummary:
    """Summarise an enrolment journal (see ``enroll(..., journal=...)``).

    Raises:
        FileNotFoundError: There is no such journal.
        ValueError: The file is not a journal (a line other than a torn last one is not an
            event), naming the line.
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"no journal at {file}")
    with file.open("rb") as handle:
        record = _record(handle, file)
    return JournalSummary(
        path=file,
        workflow_id=record.workflow_id,
        runs=record.runs,
        rows_enrolled=len(record.enrolled),
        rows_failed=len(record.failed),
        rows_unknown=len(record.unknown),
        leads_enrolled=record.leads_enrolled,
    )


def _repair_torn_end(handle: IO[bytes]) -> None:
    """Cut off a last line torn by a crash (one with no newline), so that the next event
    starts on a line of its own and later runs read the journal as this one does."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        return
    # Find the start of the last line.
    position = size
    while position > 0:
        step = min(4096, position)
        handle.seek(position - step)
        block = handle.read(step)
        newline = block.rfind(b"\n")
        if newline >= 0:
            position = position - step + newline + 1
            break
        position -= step
    handle.seek(position)
    try:
        complete = isinstance(json.loads(handle.read()), dict)
    except ValueError:
        complete = False
    if complete:
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n")  # a whole event whose newline was lost: keep it
    else:
        handle.truncate(position)
    handle.flush()
    os.fsync(handle.fileno())


def _lock_and_read(handle: IO[bytes], path: Path, workflow_id: str) -> _Record:
    """Take the journal's lock (or raise :class:`EnrollmentLockedError`), read what it
    records, check it is this workflow's, and mend a torn last line."""
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EnrollmentLockedError(
                f"journal {path} is in use by another enrolment run (in this process or "
                "another): one run per journal at a time",
                resource=str(path),
            ) from None
    handle.seek(0)
    record = _record(handle, path)
    if record.workflow_id is not None and record.workflow_id != workflow_id:
        raise ValueError(
            f"journal {path} records an enrolment into workflow {record.workflow_id!r}, "
            f"not {workflow_id!r}: use another journal file"
        )
    _repair_torn_end(handle)
    return record


class Journal:
    """An open journal for one enrolment run: what earlier runs did, and a file to append to.

    Opening it takes the journal's lock (see the module docstring) and keeps it until
    :meth:`close`.

    Attributes:
        enrolled: Phone numbers already enrolled (by :func:`person_key`), each with the digest
            of its row as sent.
        unknown: Phone numbers sent with no known outcome (by :func:`person_key`), each with
            the time (seconds since the epoch) after which its request can no longer be in
            progress.
    """

    def __init__(self, path: Path, workflow_id: str, source: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+b")
        try:
            record = _lock_and_read(handle, path, workflow_id)
        except BaseException:
            handle.close()
            raise
        self.path = path
        self.enrolled = record.enrolled
        self.unknown = record.unknown
        self._lock = threading.Lock()
        self._file = handle
        self.record(
            {
                "event": "run",
                "version": VERSION,
                "workflow_id": workflow_id,
                "source": source,
                "at": datetime.now(UTC).isoformat(),
            }
        )

    def __repr__(self) -> str:
        return f"<Journal {str(self.path)!r}>"

    def record(self, event: Mapping[str, Any]) -> None:
        """Append one event and make it durable (flushed and fsynced) before returning."""
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.seek(0, os.SEEK_END)
            self._file.write(line.encode())
            self._file.flush()
            os.fsync(self._file.fileno())

    def rows_sent(self, phones: set[str]) -> dict[str, dict[str, str]]:
        """The rows last sent for these phone numbers (a second pass over the file, for the
        few rows that changed since they were enrolled)."""
        found: dict[str, dict[str, str]] = {}
        if not phones:
            return found
        with self._lock, self.path.open("rb") as handle:
            for event in _events(handle, self.path):
                if event["event"] != "sending":
                    continue
                for row in event.get("rows", []):
                    phone = phone_identity(str(row.get(PHONE_COLUMN, "")))
                    if phone in phones:
                        found[phone] = row
        return found

    def close(self) -> None:
        """Release the lock and close the file."""
        with self._lock:
            self._file.close()


def row_errors_json(errors: Iterable[RowError]) -> list[dict[str, Any]]:
    """Row errors as journal data."""
    return [attrs.asdict(error) for error in errors]
