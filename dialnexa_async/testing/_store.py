"""The fake server's state and rules, without HTTP: workflows, their leads, campaign leads.

Kept apart from the aiohttp handlers so the rules read in one place. Generated leads are made
on demand from their index (a million of them cost nothing until read), and stored only once
something changes them.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

__all__ = [
    "FakeStore",
    "FakeWorkflow",
    "InvalidTransition",
    "LeadTable",
    "RowProblem",
    "UploadRejected",
    "parse_upload",
]

WORKFLOW_STATUSES = ("draft", "active", "paused", "completed", "cancelled")
LEAD_STATUS_CYCLE = ("pending", "in_progress", "in_progress", "completed", "failed")
# action -> (statuses it applies to, the status it leads to, the past tense for the message)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "activate": (("draft",), "active", "activated"),
    "pause": (("active",), "paused", "paused"),
    "resume": (("paused",), "active", "resumed"),
    "deactivate": (("active", "paused"), "draft", "deactivated"),
}
NODES = ("node_call_1", "node_wait", "node_call_2")
NODE_TYPES = {"node_call_1": "VOICE_CALL", "node_wait": "DELAY", "node_call_2": "VOICE_CALL"}
NODE_LABELS = {
    "node_call_1": "First call",
    "node_wait": "Wait 2 days",
    "node_call_2": "Second call",
}
_PHONE = re.compile(r"^\+?[0-9]{8,15}$")
# Numbers under this prefix are "not enabled for any voice call number", as the seeds describe.
BLOCKED_PREFIX = "+999"
EPOCH = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
STEP_SECONDS = 3600


def iso(moment: datetime) -> str:
    """``2024-05-01T09:00:00.000Z``, as the API writes time stamps."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=64)
def _epoch_day(day: int) -> str:
    return (EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


def epoch_iso(seconds: int) -> str:
    """``iso(EPOCH + seconds)``, several times faster: every generated lead needs one."""
    day, rest = divmod(seconds + EPOCH.hour * 3600, 86400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return f"{_epoch_day(day)}T{hour:02d}:{minute:02d}:{second:02d}.000Z"


@attrs.define
class RowProblem:
    code: str
    field: str
    message: str
    rows: list[int]


class UploadRejected(Exception):
    """An upload the server refuses: message and grouped row problems."""

    def __init__(self, message: str, problems: list[RowProblem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class InvalidTransition(Exception):
    """A status action that does not apply to the workflow's current status."""


def _cell(value: object) -> str:
    """A spreadsheet cell as the server reads it: the text a person sees in it (a phone number
    stored as the float 9876543210.0 reads "9876543210")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _decode_rows(
    filename: str, content_type: str, data: bytes
) -> tuple[list[str], list[list[str]]]:
    name = filename.lower()
    if name.endswith(".xlsx") or data.startswith(b"PK\x03\x04"):
        try:
            import openpyxl  # noqa: PLC0415 - optional
        except ModuleNotFoundError as exc:  # pragma: no cover - the dev extra installs it
            raise UploadRejected("this fake server cannot read .xlsx without openpyxl") from exc
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            records = [
                [_cell(value) for value in row]
                for row in book.worksheets[0].iter_rows(values_only=True)
            ]
        finally:
            book.close()
    elif name.endswith(".csv") or content_type.startswith("text/"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UploadRejected("CSV file must be UTF-8") from exc
        records = list(csv.reader(io.StringIO(text, newline="")))
    else:
        raise UploadRejected("File must be a CSV or Excel file (.csv, .xlsx, .xls)")
    if not records:
        raise UploadRejected("File is empty")
    header = [cell.strip() for cell in records[0]]
    return header, records[1:]


def parse_upload(filename: str, content_type: str, data: bytes) -> list[tuple[int, dict[str, str]]]:
    """Rows of an upload as ``(row number, row)``; raise :class:`UploadRejected` if any is bad."""
    header, records = _decode_rows(filename, content_type, data)
    if "phone_number" not in header:
        raise UploadRejected("File must include a phone_number column")
    rows: list[tuple[int, dict[str, str]]] = []
    invalid: list[int] = []
    blocked: list[int] = []
    for number, record in enumerate(records, start=2):
        if not any(cell.strip() for cell in record):
            continue
        row = {column: (record[i] if i < len(record) else "") for i, column in enumerate(header)}
        phone = row["phone_number"].strip()
        if not _PHONE.match(phone):
            invalid.append(number)
        elif phone.startswith(BLOCKED_PREFIX):
            blocked.append(number)
        rows.append((number, row))
    problems = []
    if invalid:
        problems.append(
            RowProblem("invalid_phone_number", "phone_number", "not a valid phone number", invalid)
        )
    if blocked:
        problems.append(
            RowProblem(
                "destination_not_allowed",
                "phone_number",
                "country or prefix not enabled for any voice call number",
                blocked,
            )
        )
    if problems:
        count = len(invalid) + len(blocked)
        raise UploadRejected(f"{count} rows failed validation", problems)
    return rows


class LeadTable:
    """A workflow's leads in list order: leads inserted at the front (newest first), then the
    generated ones (made from their index on demand), then the enrolled ones.

    A lead's record is a JSON-ready dict; its ``history`` (steps) is kept beside it.
    """

    def __init__(self, workflow_id: str) -> None:
        self._workflow_id = workflow_id
        self._generated = 0
        self._overrides: dict[int, dict[str, Any]] = {}
        self._front: list[dict[str, Any]] = []
        self._added: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self._histories: dict[str, list[dict[str, Any]]] = {}
        self._prefix = f"wlead_{workflow_id.removeprefix('wf_')}_g"
        self._version = 0
        self._status_index: dict[str, tuple[int, list[int]]] = {}

    # -- generated leads -------------------------------------------------------------------

    def generate(self, count: int) -> None:
        if self._added or self._front:
            raise RuntimeError("generate leads before adding others")
        self._generated += count
        self._changed()

    def _generated_status(self, g: int) -> str:
        return LEAD_STATUS_CYCLE[g % len(LEAD_STATUS_CYCLE)]

    def _make(self, g: int) -> dict[str, Any]:
        status = self._generated_status(g)
        steps = {"pending": 0, "in_progress": 1 + g % 2, "completed": 3, "failed": 1}[status]
        node = None if steps == 0 or status in ("completed", "failed") else NODES[steps - 1]
        return {
            "id": f"{self._prefix}{g:08d}",
            "workflow_id": self._workflow_id,
            "phone_number": f"+9198{g:08d}",
            "status": status,
            "current_node_id": node,
            "enrolled_at": epoch_iso(g),
            "metadata": {"customer_name": f"Customer {g}"},
        }

    def _generated_history(self, g: int, lead: dict[str, Any]) -> list[dict[str, Any]]:
        status = self._generated_status(g)
        count = {"pending": 0, "in_progress": 1 + g % 2, "completed": 3, "failed": 1}[status]
        start = EPOCH + timedelta(seconds=g)
        steps = []
        for k in range(count):
            node = NODES[k]
            begun = start + timedelta(seconds=k * STEP_SECONDS)
            last = k == count - 1
            open_step = last and status == "in_progress"
            steps.append(
                {
                    "node_id": node,
                    "node_type": NODE_TYPES[node],
                    "label": NODE_LABELS[node],
                    "status": "in_progress"
                    if open_step
                    else ("failed" if last and status == "failed" else "completed"),
                    "call_id": f"call_{lead['id']}_{k}"
                    if NODE_TYPES[node] == "VOICE_CALL"
                    else None,
                    "started_at": iso(begun),
                    "ended_at": None if open_step else iso(begun + timedelta(seconds=STEP_SECONDS)),
                }
            )
        return steps

    # -- reading ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes whenever the list or a lead's status changes."""
        return self._version

    def __len__(self) -> int:
        return len(self._front) + self._generated + len(self._added)

    def _at(self, index: int) -> dict[str, Any]:
        front = len(self._front)
        if index < front:
            return self._front[front - 1 - index]
        g = index - front
        if g < self._generated:
            found = self._overrides.get(g)
            return found if found is not None else self._make(g)
        return self._added[g - self._generated]

    def _status_at(self, index: int) -> str:
        g = index - len(self._front)
        if 0 <= g < self._generated and g not in self._overrides:
            return self._generated_status(g)
        return str(self._at(index)["status"])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(len(self)):
            yield self._at(index)

    def page(self, start: int, stop: int, status: str | None) -> tuple[list[dict[str, Any]], int]:
        """The leads at positions ``start:stop`` of the (filtered) list, and its length."""
        if status is None:
            return [self._at(i) for i in range(start, min(stop, len(self)))], len(self)
        cached = self._status_index.get(status)
        if cached is None or cached[0] != self._version:
            positions = [i for i in range(len(self)) if self._status_at(i) == status]
            cached = (self._version, positions)
            self._status_index[status] = cached
        positions = cached[1]
        return [self._at(i) for i in positions[start:stop]], len(positions)

    def find(self, lead_id: str) -> dict[str, Any] | None:
        """The lead's record, stored so that changes to it stick."""
        found = self._by_id.get(lead_id)
        if found is not None:
            return found
        if lead_id.startswith(self._prefix):
            suffix = lead_id[len(self._prefix) :]
            if suffix.isdigit() and len(suffix) == 8 and int(suffix) < self._generated:
                g = int(suffix)
                lead = self._overrides.get(g) or self._make(g)
                self._overrides[g] = lead
                self._by_id[lead_id] = lead
                return lead
        return None

    def waiting(self) -> list[dict[str, Any]]:
        """Enrolled (not generated) leads that have not started yet."""
        return [lead for lead in (*self._front, *self._added) if lead["status"] == "pending"]

    def distinct_shapes(self) -> Iterator[dict[str, Any]]:
        """Every stored lead, and one generated lead standing for the rest."""
        yield from self._front
        if self._generated:
            yield self._at(len(self._front))
        yield from self._added

    def history(self, lead: dict[str, Any]) -> list[dict[str, Any]]:
        """The lead's steps, oldest first (stored, so that changes stick)."""
        steps = self._histories.get(lead["id"])
        if steps is None:
            suffix = lead["id"][len(self._prefix) :] if lead["id"].startswith(self._prefix) else ""
            steps = self._generated_history(int(suffix), lead) if suffix.isdigit() else []
            self._histories[lead["id"]] = steps
        return steps

    # -- writing ---------------------------------------------------------------------------

    def _changed(self) -> None:
        self._version += 1

    def append(self, lead: dict[str, Any]) -> None:
        self._added.append(lead)
        self._by_id[lead["id"]] = lead
        self._changed()

    def insert_front(self, lead: dict[str, Any]) -> None:
        self._front.append(lead)
        self._by_id[lead["id"]] = lead
        self._changed()

    def set_status(self, lead: dict[str, Any], status: str, node: str | None) -> None:
        lead["status"] = status
        lead["current_node_id"] = node
        self._changed()


@attrs.define
class FakeWorkflow:
    id: str
    title: str
    description: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    leads: LeadTable

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organization_id": "org_fake",
            "title": self.title,
            "description": self.description,
            "status": self.status,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    def as_observed_json(self) -> dict[str, Any]:
        """The camelCase shape of the observed live service (list/get/status routes)."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "description": self.description,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


class FakeStore:
    """Everything the fake server knows. Safe to inspect from tests (single event loop).

    Args:
        clock: What "now" is, for time stamps and lead movement (tests pass a fixed clock).
    """

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.workflows: dict[str, FakeWorkflow] = {}
        self.campaign_leads: dict[str, dict[str, Any]] = {}
        self.uploads_applied = 0
        self._ids = itertools.count(1)

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):010d}"

    # -- workflows --------------------------------------------------------------------------

    def create_workflow(
        self, title: str, description: str | None = None, status: str = "draft"
    ) -> FakeWorkflow:
        now = self.clock()
        workflow_id = self._next_id("wf")
        workflow = FakeWorkflow(
            id=workflow_id,
            title=title,
            description=description,
            status=status,
            created_at=now,
            updated_at=now,
            leads=LeadTable(workflow_id),
        )
        self.workflows[workflow.id] = workflow
        return workflow

    def transition(self, workflow: FakeWorkflow, action: str) -> str:
        """Apply a status action; return its past tense. ``KeyError`` for an unknown action,
        :class:`InvalidTransition` when it does not apply to the current status."""
        sources, target, done = TRANSITIONS[action]
        if workflow.status not in sources:
            raise InvalidTransition(f"cannot {action} a workflow that is {workflow.status}")
        workflow.status = target
        workflow.updated_at = self.clock()
        if target == "active":
            # "Leads begin processing immediately once the workflow is active."
            for lead in workflow.leads.waiting():
                self.move_lead(workflow, lead, NODES[0])
        return done

    # -- leads ------------------------------------------------------------------------------

    def add_lead(
        self,
        workflow: FakeWorkflow,
        phone_number: str,
        *,
        variables: dict[str, str] | None = None,
        status: str = "pending",
        current_node_id: str | None = None,
        enrolled_at: datetime | str | None = None,
        front: bool = False,
    ) -> dict[str, Any]:
        lead: dict[str, Any] = {
            "id": self._next_id("wlead"),
            "workflow_id": workflow.id,
            "phone_number": phone_number,
            "status": status,
            "current_node_id": current_node_id,
            "enrolled_at": enrolled_at
            if isinstance(enrolled_at, str)
            else iso(enrolled_at or self.clock()),
            "metadata": variables if variables is not None else {},
        }
        if front:
            workflow.leads.insert_front(lead)
        else:
            workflow.leads.append(lead)
        return lead

    def seed_leads(self, workflow: FakeWorkflow, count: int) -> None:
        """Add ``count`` generated leads with a spread of statuses and histories."""
        workflow.leads.generate(count)

    def enroll(self, workflow: FakeWorkflow, rows: list[tuple[int, dict[str, str]]]) -> int:
        enrolled_at = iso(self.clock())  # one upload, one moment
        for _, row in rows:
            phone = row.pop("phone_number").strip()
            self.add_lead(workflow, phone, variables=row, enrolled_at=enrolled_at)
        self.uploads_applied += 1
        return len(rows)

    def remove_lead(self, workflow: FakeWorkflow, lead: dict[str, Any]) -> None:
        """Detach a lead: it stops where it is; its history stays."""
        steps = workflow.leads.history(lead)
        if steps and steps[-1]["ended_at"] is None:
            steps[-1]["ended_at"] = iso(self.clock())
            steps[-1]["status"] = "cancelled"
        workflow.leads.set_status(lead, "removed", None)

    def move_lead(self, workflow: FakeWorkflow, lead: dict[str, Any], node_id: str) -> None:
        """The lead finishes its current step and starts ``node_id`` now."""
        now = iso(self.clock())
        steps = workflow.leads.history(lead)
        if steps and steps[-1]["ended_at"] is None:
            steps[-1]["ended_at"] = now
            steps[-1]["status"] = "completed"
        steps.append(
            {
                "node_id": node_id,
                "node_type": NODE_TYPES.get(node_id, "VOICE_CALL"),
                "label": NODE_LABELS.get(node_id, node_id),
                "status": "in_progress",
                "call_id": None,
                "started_at": now,
                "ended_at": None,
            }
        )
        workflow.leads.set_status(lead, "in_progress", node_id)

    def variable_keys(self, workflow: FakeWorkflow) -> list[str]:
        keys: dict[str, None] = {}
        for lead in workflow.leads.distinct_shapes():
            keys.update(dict.fromkeys(lead["metadata"]))
        return list(keys)

    # -- campaign leads -----------------------------------------------------------------------

    def add_campaign_lead(
        self,
        phone_number: str,
        *,
        campaign_id: str = "cmp_fake",
        status: str = "pending",
        metadata: dict[str, str] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        lead: dict[str, Any] = {
            "id": self._next_id("lead"),
            "campaign_id": campaign_id,
            "phone_number": phone_number,
            "name": name,
            "metadata": dict(metadata or {}),
            "status": status,
            "call_log_id": None,
            "created_at": iso(self.clock()),
        }
        self.campaign_leads[lead["id"]] = lead
        return lead
