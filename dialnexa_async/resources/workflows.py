"""``/workflows``: create (and, as they land, the rest of the lifecycle)."""

from __future__ import annotations

from .._convert import decode
from .._transport import Transport, encode_path
from .._validate import check_choice, check_optional_str, check_title
from ..models import Workflow, WorkflowStatus
from .workflow_leads import WorkflowLeads

__all__ = ["Workflows"]


class Workflows:
    """``dn.workflows``: multi-step calling workflows.

    Attributes:
        leads: :class:`WorkflowLeads`, the leads of a workflow.
    """

    def __init__(self, transport: Transport, leads: WorkflowLeads) -> None:
        self._transport = transport
        self.leads = leads

    async def create(
        self,
        *,
        title: str,
        description: str | None = None,
        status: WorkflowStatus | str = WorkflowStatus.DRAFT,
        timeout: float | None = None,
    ) -> Workflow:
        """Create a workflow.

        Args:
            title: Its name, 1 to 100 characters.
            description: Free text.
            status: ``draft`` (default), ``active``, ``paused``, ``completed`` or ``cancelled``.
            timeout: Overrides the session's total timeout for this call, in seconds.

        Creation is not idempotent: it is retried only when the server certainly did not take it
        (429, 503 with ``Retry-After``, or a connection that failed before sending).
        """
        body: dict[str, str] = {
            "title": check_title(title),
            "status": check_choice(status, "status", WorkflowStatus),
        }
        if check_optional_str(description, "description") is not None:
            body["description"] = description  # type: ignore[assignment]
        path = encode_path("workflows")
        response = await self._transport.request(
            "POST", path, json=body, idempotent=False, timeout=timeout
        )
        return decode(response.payload, Workflow, method="POST", path=path)
