"""dialnexa_async: the async Python SDK for the DialNexa voice-calling API.

::

    from dialnexa_async import AsyncDialNexa

    async with AsyncDialNexa() as dn:  # the key from $DIALNEXA_API_KEY
        async for lead in dn.workflows.leads.list("wf_abc123"):
            print(lead.id, lead.status)
"""

from ._dashboard import DashboardStats, StatusCountsMany, WorkflowCounts
from ._journal import JournalSummary, read_journal
from ._limiter import Lease, Limiter, LocalLimiter, RunLock
from ._pagination import ManyPagedIterator, PagedIterator, PaginationStats
from ._session import AsyncDialNexa
from ._stalled import StalledLeads, StalledStats
from ._transport import AsyncTransport, HTTPRequest, HTTPResponse
from ._version import __version__
from ._watch import LeadChange, LeadWatch, WatchStats
from ._workbook import WorkbookLimits
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClosedError,
    ConflictError,
    DialNexaError,
    EnrollmentError,
    EnrollmentLockedError,
    InternalServerError,
    LimiterError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    SourceValidationError,
    UnprocessableEntityError,
)
from .models import (
    CampaignLead,
    Enrollment,
    EnrollmentResult,
    LeadHistory,
    LeadHistoryStep,
    LeadStatus,
    Page,
    PageMeta,
    RowError,
    SkippedRow,
    StatusCounts,
    UploadFailure,
    Workflow,
    WorkflowAction,
    WorkflowLead,
    WorkflowStatus,
)
from .resources._base import RawResponse

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncDialNexa",
    "AsyncTransport",
    "AuthenticationError",
    "BadRequestError",
    "CampaignLead",
    "ClosedError",
    "ConflictError",
    "DashboardStats",
    "DialNexaError",
    "Enrollment",
    "EnrollmentError",
    "EnrollmentLockedError",
    "EnrollmentResult",
    "HTTPRequest",
    "HTTPResponse",
    "InternalServerError",
    "JournalSummary",
    "LeadChange",
    "LeadHistory",
    "LeadHistoryStep",
    "LeadStatus",
    "LeadWatch",
    "Lease",
    "Limiter",
    "LimiterError",
    "LocalLimiter",
    "ManyPagedIterator",
    "NotFoundError",
    "Page",
    "PageMeta",
    "PagedIterator",
    "PaginationError",
    "PaginationStats",
    "PermissionDeniedError",
    "RateLimitError",
    "RawResponse",
    "RedirectError",
    "RowError",
    "RunLock",
    "SkippedRow",
    "SourceValidationError",
    "StalledLeads",
    "StalledStats",
    "StatusCounts",
    "StatusCountsMany",
    "UnprocessableEntityError",
    "UploadFailure",
    "WatchStats",
    "WorkbookLimits",
    "Workflow",
    "WorkflowAction",
    "WorkflowCounts",
    "WorkflowLead",
    "WorkflowStatus",
    "__version__",
    "read_journal",
]
