"""The SDK's data: frozen, slotted attrs classes, decoded from the wire by ``_convert``.

Statuses are :class:`enum.StrEnum` members when the SDK knows them, so ``lead.status ==
"completed"`` works either way; a status the SDK does not know is kept as the plain string the
server sent. Timestamps are timezone-aware :class:`~datetime.datetime` objects.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Generic, Literal, TypeVar

import attrs

__all__ = [
    "CampaignLead",
    "Enrollment",
    "EnrollmentResult",
    "LeadHistory",
    "LeadHistoryStep",
    "LeadStatus",
    "Page",
    "PageMeta",
    "RowError",
    "SkippedRow",
    "StatusCounts",
    "UploadFailure",
    "Workflow",
    "WorkflowAction",
    "WorkflowLead",
    "WorkflowStatus",
]

T = TypeVar("T")


class WorkflowStatus(enum.StrEnum):
    """A workflow's lifecycle status. ``running`` (older records) decodes as ``ACTIVE``."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class LeadStatus(enum.StrEnum):
    """Where a lead stands in a workflow or campaign."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REMOVED = "removed"
    FAILED = "failed"


@attrs.frozen
class StatusCounts(Mapping[str, int]):
    """How many of a workflow's leads are in each status, accounting for every lead.

    A mapping from each :class:`LeadStatus` (its value, so ``counts["pending"]`` and
    ``counts[LeadStatus.PENDING]`` are the same) to its count, then ``"other"``: the leads in a
    status the SDK does not know (the reference pages' own example shows ``"active"``). The
    values add up to :attr:`total`.

    Attributes:
        total: Every lead of the workflow (from a request without a status filter). Counts are
            taken concurrently, each at its own instant: on a list that changes meanwhile, the
            known statuses can add up to more than the total, and then ``other`` is 0 and
            ``total`` their sum, so that the numbers still add up.
    """

    known: Mapping[str, int]
    total: int

    @property
    def other(self) -> int:
        """Leads in a status outside :class:`LeadStatus`."""
        return self.total - sum(self.known.values())

    def __getitem__(self, status: str) -> int:
        if status == "other":
            return self.other
        return self.known[status]

    def __iter__(self) -> Iterator[str]:
        yield from self.known
        yield "other"

    def __len__(self) -> int:
        return len(self.known) + 1


class WorkflowAction(enum.StrEnum):
    """A status transition sent to ``PATCH /workflows/{id}/status``."""

    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    PAUSE = "pause"
    RESUME = "resume"


@attrs.frozen(kw_only=True)
class Workflow:
    """A multi-step calling workflow.

    Attributes:
        id: The workflow id (``wf_…``, ``wfl_…``; treat as opaque).
        title: Its name (the wire sends ``title`` or ``name``).
        status: A :class:`WorkflowStatus`, or the server's string when unknown.
        description: Free text, if any.
        organization_id: The owning organisation, when sent.
        node_count: Number of nodes, when sent.
        edge_count: Number of edges, when sent.
        enrolled_leads: Number of enrolled leads, when sent.
        created_at: When it was created.
        updated_at: When it last changed.
    """

    id: str
    title: str | None = None
    status: WorkflowStatus | str | None = None
    description: str | None = None
    organization_id: str | None = None
    node_count: int | None = None
    edge_count: int | None = None
    enrolled_leads: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


# No weak-reference slot: a scan builds leads by the million, and without it each is a pointer
# smaller and the decoder can fill one in as a plain object before it becomes a WorkflowLead
# (see the hot path in _convert).
@attrs.frozen(kw_only=True, weakref_slot=False)
class WorkflowLead:
    """One lead's enrolment in a workflow.

    Attributes:
        id: The enrolment id (``wflead_…``, ``wlead_…``, ``lead_…``).
        phone_number: The contact's number.
        status: A :class:`LeadStatus`, or the server's string when unknown.
        current_node_id: The node the lead sits on (``None`` when finished).
        enrolled_at: When it was enrolled (wire: ``enrolled_at``, ``created_at`` or ``createdAt``).
        workflow_id: The workflow, when the server sends it (always set by ``list_many``).
        metadata: Its dynamic variables (wire: ``metadata`` or ``dynamic_variables``).
    """

    id: str
    phone_number: str | None = None
    status: LeadStatus | str | None = None
    current_node_id: str | None = None
    enrolled_at: datetime | None = None
    workflow_id: str | None = None
    metadata: Mapping[str, object] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class CampaignLead:
    """One lead of a (flat) calling campaign.

    Attributes:
        id: The campaign-lead id.
        phone_number: The contact's number.
        status: A :class:`LeadStatus`, or the server's string when unknown.
        campaign_id: The campaign.
        name: The contact's name, when sent.
        metadata: Dynamic variables for the agent (wire: ``metadata`` or ``notes``).
        call_log_id: The call log, once a call was placed.
        created_at: When it was added.
    """

    id: str
    phone_number: str | None = None
    status: LeadStatus | str | None = None
    campaign_id: str | None = None
    name: str | None = None
    metadata: Mapping[str, object] = attrs.field(factory=dict)
    call_log_id: str | None = None
    created_at: datetime | None = None


@attrs.frozen(kw_only=True)
class PageMeta:
    """Where a page sits in the whole list.

    Attributes:
        page: This page's number, from 1.
        limit: The page size asked for.
        total: How many items the whole list has (as the server counted when answering).
        total_pages: ``ceil(total / limit)`` when the server did not send it.
    """

    page: int
    limit: int
    total: int
    total_pages: int


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a list.

    Attributes:
        data: The items, in the server's order.
        meta: Its :class:`PageMeta`.
    """

    data: list[T]
    meta: PageMeta


@attrs.frozen(kw_only=True)
class RowError:
    """A group of enrolment rows that failed for one reason.

    Attributes:
        message: What is wrong.
        rows: The row numbers as a spreadsheet shows them (the header is row 1). When the SDK
            split an enrolment into chunks, they are the caller's own row numbers.
        code: A machine-readable code, when sent.
        field: The column at fault, when sent.
        unmapped_rows: Row numbers the server named that are not in the upload they answer
            (as the server sent them): a server bug to report, not rows of yours.
    """

    message: str
    rows: list[int] = attrs.field(factory=list)
    code: str | None = None
    field: str | None = None
    unmapped_rows: list[int] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class Enrollment:
    """The server's reply to one accepted upload.

    Attributes:
        leads_enrolled: How many leads this upload enrolled.
        workflow_id: The workflow, when sent.
        message: The server's message, when sent.
        lead_ids: Phone number → the lead ids created for it, when the server sends that map.
        lead: The lead, when the server answers with a single lead object.
    """

    leads_enrolled: int
    workflow_id: str | None = None
    message: str | None = None
    lead_ids: Mapping[str, list[str]] = attrs.field(factory=dict)
    lead: WorkflowLead | None = None


@attrs.frozen(kw_only=True)
class UploadFailure:
    """An upload that failed, or whose outcome is unknown, with everything needed to re-send it.

    Attributes:
        outcome: ``"failed"`` (the server refused it, or it was never sent), ``"unknown"``
            (it may have reached the server and no answer says what became of it: it was not
            re-sent) or ``"short"`` (the server accepted it but enrolled fewer leads than it
            had rows: ``rows`` are the ones it named no lead for, or all of them).
        row_numbers: The caller's row numbers of ``rows`` (header = row 1).
        rows: The rows of this upload, as column → text, exactly as they were to be sent.
        errors: The server's row errors, mapped to the caller's row numbers.
        error: The exception behind the failure.
    """

    outcome: Literal["failed", "unknown", "short"]
    row_numbers: list[int]
    rows: list[dict[str, str]]
    errors: list[RowError]
    error: Exception


SkipReason = Literal["already_enrolled", "already_in_workflow", "duplicate_in_source"]


@attrs.frozen(kw_only=True)
class SkippedRow:
    """A row of the source that was deliberately not sent.

    Attributes:
        row_number: Its number in the caller's source (header = row 1).
        phone_number: Its phone number.
        reason: ``"already_enrolled"`` (the journal records it as enrolled by an earlier run),
            ``"already_in_workflow"`` (``skip_existing=True`` found the number among the
            workflow's leads) or ``"duplicate_in_source"`` (``on_duplicate="skip"``: an earlier
            row has the same number).
        changed_fields: For ``"already_enrolled"``: the columns whose values differ from the
            row the journal records as enrolled for this number (the person is the number: a
            corrected name does not enrol them again).
    """

    row_number: int
    phone_number: str
    reason: SkipReason
    changed_fields: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class EnrollmentResult:
    """What an enrolment did, upload by upload; every row of the source is in exactly one of
    ``uploads``, ``failed``, ``unknown`` or ``skipped``.

    Attributes:
        leads_enrolled: The total enrolled across all accepted uploads.
        uploads: One :class:`Enrollment` per accepted upload, in source order.
        failed: Uploads refused by the server (or not sent), with their rows and row errors.
        unknown: Uploads that may have reached the server with no answer saying what became
            of them, with their rows (not re-sent: a re-run with the journal settles them).
        skipped: Rows deliberately not sent, each with its reason.
        short: Accepted uploads that enrolled fewer leads than they had rows (their rows are
            counted in ``uploads`` too).
    """

    leads_enrolled: int
    uploads: list[Enrollment]
    failed: list[UploadFailure] = attrs.field(factory=list)
    unknown: list[UploadFailure] = attrs.field(factory=list)
    skipped: list[SkippedRow] = attrs.field(factory=list)
    short: list[UploadFailure] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        """``True`` when every upload was accepted and enrolled every row it carried."""
        return not self.failed and not self.unknown and not self.short

    @property
    def rows_skipped(self) -> int:
        """How many rows were not sent (see ``skipped`` for each reason)."""
        return len(self.skipped)

    @property
    def rows_already_enrolled(self) -> int:
        """How many rows were skipped as already enrolled (by the journal or in the workflow)."""
        return sum(1 for row in self.skipped if row.reason != "duplicate_in_source")


@attrs.frozen(kw_only=True)
class LeadHistoryStep:
    """One step a lead went through.

    Attributes:
        node_id: The node.
        node_type: Its kind (e.g. ``VOICE_CALL``).
        label: Its label.
        status: The step's status.
        call_id: The call placed by the step, if any.
        started_at: When the lead entered the step.
        ended_at: When it left (``None`` while in the step).
    """

    node_id: str
    node_type: str | None = None
    label: str | None = None
    status: LeadStatus | str | None = None
    call_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


@attrs.frozen(kw_only=True)
class LeadHistory:
    """A lead and the steps it went through, oldest first.

    Attributes:
        lead: The lead.
        steps: Its steps, ordered by ``started_at``.
    """

    lead: WorkflowLead
    steps: list[LeadHistoryStep]
