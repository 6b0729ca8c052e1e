"""The enrolment journal: an append-only record that makes re-running an enrolment safe.

DialNexa documents no idempotency key, so an upload whose answer was lost (a timeout, a
cancellation, Ctrl-C, a crash) may or may not have enrolled its leads, and sending it again may
phone the same people twice. The journal is how a re-run knows. It is a JSON-lines file, one
event per line, each written, flushed and fsynced before the SDK goes on:

``{"event": "run", "version": 1, "workflow_id": ..., "source": ..., "at": ...}``
    a run began;
``{"event": "sending", "upload": H, "row_numbers": [...], "rows": [...]}``
    upload ``H`` (the SHA-256 of the bytes sent) is about to be sent, with its rows: written
    *before* the request leaves, so a crash after it leaves is never forgotten;
``{"event": "enrolled", "upload": H, "leads_enrolled": n, "lead_ids": {...}}``,
``{"event": "failed", "upload": H, "reason": ..., "errors": [...]}``,
``{"event": "unknown", "upload": H, "reason": ...}``
    what became of it, the moment it is known.

``{"event": "settled", "row_keys": [...], "reason": "already_in_workflow"}``
    rows of unknown uploads that a later run (``skip_existing=True``) found among the
    workflow's leads: they count as enrolled from then on.

An upload's last event decides its state; ``sending`` with nothing after it is ``unknown``. On a
re-run, rows are matched by content (a hash of the row as sent), not by position, so a re-run
with another ``chunk_size`` or a file with rows added still skips every row already enrolled and
holds back every row whose upload is unknown. The file holds the rows (names, phone numbers): it
is created readable by its owner only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from .models import RowError

__all__ = ["Journal", "JournalSummary", "read_journal", "row_key", "upload_key"]

VERSION = 1
_FINAL = ("enrolled", "failed", "unknown")


def row_key(row: Mapping[str, str]) -> str:
    """A row's identity across runs: a hash of its columns and values as sent."""
    text = json.dumps(sorted(row.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def upload_key(data: bytes) -> str:
    """An upload's identity: the SHA-256 of the bytes sent."""
    return hashlib.sha256(data).hexdigest()


@attrs.frozen(kw_only=True)
class JournalSummary:
    """What a journal records, upload by upload, as of its last line.

    Attributes:
        path: The journal file.
        workflow_id: The workflow its runs enrolled into.
        runs: How many runs wrote to it.
        rows_enrolled: Rows of uploads the server accepted, and rows of unknown uploads a later
            run found in the workflow (``skip_existing=True``).
        rows_failed: Rows of uploads the server refused (a re-run sends them again).
        rows_unknown: Rows of uploads sent without a known outcome (a re-run holds them back;
            ``skip_existing=True`` resolves them against the workflow's leads).
        leads_enrolled: Leads the accepted uploads enrolled, as the server counted them.
    """

    path: Path
    workflow_id: str | None
    runs: int
    rows_enrolled: int
    rows_failed: int
    rows_unknown: int
    leads_enrolled: int


@attrs.define
class _Upload:
    rows: list[dict[str, str]]
    state: str = "unknown"  # "sending" with no outcome after it is unknown
    leads_enrolled: int = 0


def _read(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The events of a journal file, and whether it exists."""
    if not path.exists():
        return [], False
    events = []
    lines = path.read_bytes().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if number == len(lines):
                break  # a line torn by a crash mid-write: its event never happened
            raise ValueError(f"journal {path} is damaged: line {number} is not JSON") from None
        if not isinstance(event, dict) or "event" not in event:
            raise ValueError(f"journal {path} is damaged: line {number} is not an event")
        events.append(event)
    return events, True


@attrs.define
class _Record:
    """What a journal's events add up to."""

    uploads: dict[str, _Upload] = attrs.field(factory=dict)
    workflow_id: str | None = None
    runs: int = 0
    settled: Counter[str] = attrs.field(factory=Counter)

    def rows(self) -> tuple[Counter[str], Counter[str]]:
        """Row keys (with multiplicity) enrolled, and of unknown outcome; settled unknown rows
        count as enrolled."""
        enrolled, unknown = Counter[str](), Counter[str]()
        for upload in self.uploads.values():
            target = {"enrolled": enrolled, "unknown": unknown}.get(upload.state)
            if target is not None:
                target.update(row_key(row) for row in upload.rows)
        settled = self.settled & unknown
        return enrolled + settled, unknown - settled


def _record(events: Iterable[dict[str, Any]]) -> _Record:
    record = _Record()
    for event in events:
        kind = event["event"]
        if kind == "run":
            record.runs += 1
            record.workflow_id = event.get("workflow_id", record.workflow_id)
        elif kind == "sending":
            record.uploads[event["upload"]] = _Upload(rows=list(event.get("rows", [])))
        elif kind in _FINAL and event.get("upload") in record.uploads:
            upload = record.uploads[event["upload"]]
            upload.state = kind
            upload.leads_enrolled = int(event.get("leads_enrolled", 0) or 0)
        elif kind == "settled":
            record.settled.update(event.get("row_keys", []))
    return record


def read_journal(path: str | os.PathLike[str]) -> JournalSummary:
    """Summarise an enrolment journal (see ``enroll(..., journal=...)``).

    Raises:
        FileNotFoundError: There is no such journal.
        ValueError: The file is not a journal (a line other than the last is not an event).
    """
    file = Path(path)
    events, exists = _read(file)
    if not exists:
        raise FileNotFoundError(f"no journal at {file}")
    record = _record(events)
    enrolled, unknown = record.rows()
    failed = sum(len(u.rows) for u in record.uploads.values() if u.state == "failed")
    return JournalSummary(
        path=file,
        workflow_id=record.workflow_id,
        runs=record.runs,
        rows_enrolled=enrolled.total(),
        rows_failed=failed,
        rows_unknown=unknown.total(),
        leads_enrolled=sum(
            u.leads_enrolled for u in record.uploads.values() if u.state == "enrolled"
        ),
    )


class Journal:
    """An open journal for one enrolment run: what earlier runs did, and a file to append to.

    Attributes:
        enrolled: Row keys (with multiplicity) of rows already enrolled.
        unknown: Row keys of rows sent with no known outcome.
    """

    def __init__(self, path: Path, workflow_id: str, source: str) -> None:
        events, _ = _read(path)
        record = _record(events)
        if record.workflow_id is not None and record.workflow_id != workflow_id:
            raise ValueError(
                f"journal {path} records an enrolment into workflow {record.workflow_id!r}, "
                f"not {workflow_id!r}: use another journal file"
            )
        self.path = path
        self.enrolled, self.unknown = record.rows()
        self._lock = threading.Lock()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
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
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


def row_errors_json(errors: Iterable[RowError]) -> list[dict[str, Any]]:
    """Row errors as journal data."""
    return [attrs.asdict(error) for error in errors]
