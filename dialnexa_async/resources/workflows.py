"""``/workflows``: create, list, get, and the status lifecycle."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from functools import partial
from operator import attrgetter
from typing import Any, Literal

from .._client import Client
from .._convert import decode, decode_page
from .._pagination import PagedIterator
from .._tracing import operation
from .._transport import encode_path
from .._validate import (
    MAX_PAGE_SIZE,
    check_choice,
    check_id,
    check_int_range,
    check_optional_str,
    check_title,
)
from ..errors import ConflictError
from ..models import Page, Workflow, WorkflowAction, WorkflowStatus
from ._base import APIResource
from .workflow_leads import WorkflowLeads

__all__ = ["Workflows"]

SortOrder = Literal["ASC", "DESC"]
# The status an action leaves a workflow in (as the fake server documents the transitions).
_ACTION_RESULTS = {
    WorkflowAction.ACTIVATE: WorkflowStatus.ACTIVE,
    WorkflowAction.RESUME: WorkflowStatus.ACTIVE,
    WorkflowAction.PAUSE: WorkflowStatus.PAUSED,
}


def _decode_workflows(payload: Any, number: int, *, limit: int, path: str) -> Page[Workflow]:
    return decode_page(payload, Workflow, page=number, limit=limit, method="GET", path=path)


class Workflows(APIResource):
    """``dn.workflows``: multi-step calling workflows.

    Attributes:
        leads: :class:`WorkflowLeads`, the leads of a workflow.
    """

    def __init__(
        self,
        client: Client,
        leads: WorkflowLeads,
        iterators: weakref.WeakSet[PagedIterator[Any]],
    ) -> None:
        super().__init__(client)
        self._iterators = iterators
        self.leads = leads

    async def create(
        self,
        *,
        title: str,
        description: str | None = None,
        status: WorkflowStatus | str = WorkflowStatus.DRAFT,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> Workflow:
        """Create a workflow.

        Args:
            title: Its name, 1 to 100 characters.
            description: Free text.
            status: ``draft`` (default), ``active``, ``paused``, ``completed`` or ``cancelled``.
            timeout: Overrides the session's total timeout for this call, in seconds.
            extra_headers: Headers added to this call's requests.
            extra_query: Query parameters added to this call's requests.

        Creation is not idempotent: it is retried only when the server certainly did not take it
        (429, 503 with ``Retry-After``, or a connection that failed before sending).
        """
        api = self._with_extras(extra_headers, extra_query)
        body: dict[str, str] = {
            "title": check_title(title),
            "status": check_choice(status, "status", WorkflowStatus),
        }
        if check_optional_str(description, "description") is not None:
            body["description"] = description  # type: ignore[assignment]
        return await api._post(
            encode_path("workflows"), cast_to=Workflow, body=body, timeout=timeout
        )

    def list(
        self,
        *,
        sort_by: str | None = None,
        sort_order: SortOrder | None = None,
        page_size: int = 20,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> PagedIterator[Workflow]:
        """Every workflow of the workspace, fetched concurrently and yielded in order.

        The same pager as ``leads.list``: page 1 first, then up to ``max_concurrency`` pages in
        flight (never more than the session's cap), at most ``2 * max_concurrency`` held ahead.

        Args:
            sort_by: A field to sort by, e.g. ``"createdAt"``.
            sort_order: ``"ASC"`` or ``"DESC"``.
            page_size: Workflows per request, 1..100.
            max_concurrency: Page requests in flight at once; at most the session's cap.
            timeout: Per-request total timeout, in seconds.
            extra_headers: Headers added to this call's requests.
            extra_query: Query parameters added to this call's requests.

        Returns:
            A :class:`PagedIterator` of :class:`Workflow`.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_int_range(page_size, "page_size", 1, MAX_PAGE_SIZE)
        params: dict[str, str] = {}
        if sort_by is not None:
            params["sortBy"] = check_id(sort_by, "sort_by")
        if sort_order is not None:
            if sort_order not in ("ASC", "DESC"):
                raise ValueError(f"sort_order must be 'ASC' or 'DESC', got {sort_order!r}")
            params["sortOrder"] = sort_order
        concurrency = api._concurrency(max_concurrency)
        path = encode_path("workflows")
        return PagedIterator(
            api._page_fetcher(path, limit=page_size, params=params, timeout=timeout),
            partial(_decode_workflows, limit=page_size, path=path),
            limit=page_size,
            concurrency=concurrency,
            key=attrgetter("id"),
            describe=("GET", path),
            registry=api._iterators,
        )

    async def get(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> Workflow:
        """One workflow by id.

        Raises:
            NotFoundError: No such workflow.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        path = encode_path("workflows", workflow_id)
        return await api._get(path, cast_to=Workflow, timeout=timeout)

    async def set_status(
        self,
        workflow_id: str,
        action: WorkflowAction | str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> Workflow:
        """Apply a status action (``PATCH /workflows/{id}/status``); returns the workflow.

        Args:
            workflow_id: The workflow.
            action: ``activate``, ``pause``, ``resume`` or ``deactivate``.
            extra_headers: Headers added to this call's requests.
            extra_query: Query parameters added to this call's requests.

        A transition sets a state, so it is retried like a read. When a retried action is
        answered 409 (the lost first attempt already applied it), the workflow is read back and
        returned if it is in the state the action leads to.

        Raises:
            ValueError: An unknown action (nothing is sent).
            ConflictError: The action does not apply to the workflow's current status.
            NotFoundError: No such workflow.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(workflow_id, "workflow_id")
        chosen = WorkflowAction(check_choice(action, "action", WorkflowAction))
        path = encode_path("workflows", workflow_id, "status")
        with operation("dialnexa.set_status", workflow_id=workflow_id, action=chosen.value):
            response = await api._patch(
                path,
                body={"action": chosen.value},
                timeout=timeout,
                ok_after_retry=frozenset({409}),
            )
        if response.status == 409:
            workflow = await api.get(workflow_id, timeout=timeout)
            expected = _ACTION_RESULTS.get(chosen)
            if expected is not None and workflow.status != expected:
                raise ConflictError(
                    f"{chosen.value} was refused and the workflow is {workflow.status}",
                    method="PATCH",
                    path=path,
                    status_code=409,
                    body=response.payload,
                )
            return workflow
        return decode(
            response.payload, Workflow, method="PATCH", path=path, status_code=response.status
        )

    async def activate(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> Workflow:
        """Start a draft workflow: its leads begin moving through the nodes."""
        return await self.set_status(
            workflow_id,
            WorkflowAction.ACTIVATE,
            timeout=timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )

    async def pause(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> Workflow:
        """Pause an active workflow: no further steps start until it is resumed."""
        return await self.set_status(
            workflow_id,
            WorkflowAction.PAUSE,
            timeout=timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )

    async def resume(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> Workflow:
        """Resume a paused workflow."""
        return await self.set_status(
            workflow_id,
            WorkflowAction.RESUME,
            timeout=timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )

    async def deactivate(
        self,
        workflow_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> Workflow:
        """Deactivate an active or paused workflow."""
        return await self.set_status(
            workflow_id,
            WorkflowAction.DEACTIVATE,
            timeout=timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
