"""The fake server's state and rules, without HTTP: workflows, their leads, campaign leads.

Kept apart from the aiohttp handlers so the rules read in one place.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from .._upload import cell_text as _cell_text

__all__ = ["FakeStore", "RowProblem", "UploadRejected", "parse_upload"]

WORKFLOW_STATUSES = ("draft", "active", "paused", "completed", "cancelled")
LEAD_STATUS_CYCLE = ("pending", "in_progress", "in_progress", "completed", "failed")
_PHONE = re.compile(r"^\+?[0-9]{8,15}$")
# Numbers under this prefix are "not enabled for any voice call number", as the seeds describe.
BLOCKED_PREFIX = "+999"
_EPOCH = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
                [_cell_text(value) for value in row]
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


@attrs.define
class FakeWorkflow:
    id: str
    title: str
    description: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    leads: list[dict[str, Any]] = attrs.field(factory=list)
    by_id: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organization_id": "org_fake",
            "title": self.title,
            "description": self.description,
            "status": self.status,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


class FakeStore:
    """Everything the fake server knows. Safe to inspect from tests (single event loop)."""

    def __init__(self) -> None:
        self.workflows: dict[str, FakeWorkflow] = {}
        self.campaign_leads: dict[str, dict[str, Any]] = {}
        self.uploads_applied = 0
        self._ids = itertools.count(1)

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):010d}"

    # -- workflows ----------------------------------------------------------------------------

    def create_workflow(
        self, title: str, description: str | None = None, status: str = "draft"
    ) -> FakeWorkflow:
        now = datetime.now(UTC)
        workflow = FakeWorkflow(
            id=self._next_id("wf"),
            title=title,
            description=description,
            status=status,
            created_at=now,
            updated_at=now,
        )
        self.workflows[workflow.id] = workflow
        return workflow

    def add_lead(
        self,
        workflow: FakeWorkflow,
        phone_number: str,
        *,
        variables: dict[str, str] | None = None,
        status: str = "pending",
        current_node_id: str | None = "node_start",
        enrolled_at: datetime | None = None,
    ) -> dict[str, Any]:
        lead: dict[str, Any] = {
            "id": self._next_id("wlead"),
            "workflow_id": workflow.id,
            "phone_number": phone_number,
            "status": status,
            "current_node_id": current_node_id,
            "enrolled_at": _iso(enrolled_at or datetime.now(UTC)),
            "metadata": dict(variables or {}),
        }
        workflow.leads.append(lead)
        workflow.by_id[lead["id"]] = lead
        return lead

    def seed_leads(self, workflow: FakeWorkflow, count: int) -> None:
        """Add ``count`` generated leads with a spread of statuses."""
        for index in range(count):
            status = LEAD_STATUS_CYCLE[index % len(LEAD_STATUS_CYCLE)]
            self.add_lead(
                workflow,
                f"+9198{index:08d}",
                variables={"customer_name": f"Customer {index}"},
                status=status,
                current_node_id=None if status in ("completed", "failed") else f"node_{index % 3}",
                enrolled_at=_EPOCH + timedelta(seconds=index),
            )

    def list_leads(self, workflow: FakeWorkflow, status: str | None) -> list[dict[str, Any]]:
        if status is None:
            return workflow.leads
        return [lead for lead in workflow.leads if lead["status"] == status]

    def enroll(self, workflow: FakeWorkflow, rows: list[tuple[int, dict[str, str]]]) -> int:
        for _, row in rows:
            variables = {k: v for k, v in row.items() if k != "phone_number"}
            self.add_lead(workflow, row["phone_number"].strip(), variables=variables)
        self.uploads_applied += 1
        return len(rows)

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
            "created_at": _iso(datetime.now(UTC)),
        }
        self.campaign_leads[lead["id"]] = lead
        return lead

    def iter_leads(self) -> Iterator[dict[str, Any]]:
        for workflow in self.workflows.values():
            yield from workflow.leads
