"""Dashboards: status counts of many workflows at once, each delivered as it is ready.

``status_counts_many`` runs ``status_counts`` for up to ``concurrency`` workflows at a time
(their requests share the session's cap like every other), yields each workflow's
:class:`WorkflowCounts` as soon as its counts are in, and never lets one workflow's error (a
404 for a deleted workflow, a 403) fail the others: the error is that workflow's result.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import attrs

from ._concurrency import OrderedTasks, StreamIterator, TasksClosed
from .errors import ClosedError, DialNexaError
from .models import StatusCounts

__all__ = ["DashboardStats", "StatusCountsMany", "WorkflowCounts"]

CountOne = Callable[[str], Coroutine[Any, Any, StatusCounts]]


@attrs.frozen(kw_only=True)
class WorkflowCounts:
    """One workflow's counts, or why there are none.

    Attributes:
        workflow_id: The workflow.
        counts: Its :class:`~dialnexa_async.StatusCounts`, or ``None`` when ``error`` is set.
        error: The :class:`~dialnexa_async.DialNexaError` that its counting raised (e.g. a
            :class:`~dialnexa_async.NotFoundError` for a workflow deleted meanwhile).
    """

    workflow_id: str
    counts: StatusCounts | None = None
    error: DialNexaError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.define
class DashboardStats:
    """What a refresh did so far.

    Attributes:
        workflows: Workflows whose result was yielded.
        errors: Of them, those that failed.
        max_in_flight: The most workflows counted at once.
    """

    workflows: int = 0
    errors: int = 0
    max_in_flight: int = 0


class StatusCountsMany(StreamIterator[WorkflowCounts]):
    """``async for result in it`` (each a :class:`WorkflowCounts`, as soon as it is ready),
    ``async with it``, ``await it.aclose()`` (cancels and awaits the counts in flight), and
    ``it.stats``; see the module docstring."""

    def __init__(self, workflow_ids: list[str], count_one: CountOne, *, concurrency: int) -> None:
        self._ids = workflow_ids
        self._count_one = count_one
        self._concurrency = concurrency
        self._tasks: OrderedTasks[WorkflowCounts] = OrderedTasks("counts")
        self.stats = DashboardStats()

    async def collect(self) -> dict[str, WorkflowCounts]:
        """Every workflow's result, by workflow id, in the order given."""
        results = {result.workflow_id: result async for result in self}
        return {workflow_id: results[workflow_id] for workflow_id in self._ids}

    async def _shut(self) -> None:
        await self._tasks.aclose()

    def _cancel_now(self) -> None:
        self._tasks.cancel_now()

    async def _one(self, workflow_id: str) -> WorkflowCounts:
        try:
            return WorkflowCounts(
                workflow_id=workflow_id, counts=await self._count_one(workflow_id)
            )
        except DialNexaError as exc:
            return WorkflowCounts(workflow_id=workflow_id, error=exc)

    async def _stream(self) -> AsyncGenerator[WorkflowCounts, None]:
        pending = iter(enumerate(self._ids))
        try:
            while True:
                while self._tasks.running < self._concurrency:
                    number, workflow_id = next(pending, (-1, ""))
                    if number < 0:
                        break
                    self._tasks.start(number, self._one(workflow_id))
                    self.stats.max_in_flight = self._tasks.max_running
                if not len(self._tasks):
                    return
                try:
                    result = await self._tasks.take(await self._tasks.next_done())
                except TasksClosed:
                    raise ClosedError(
                        "the counts were closed (by aclose() or the session)"
                    ) from None
                self.stats.workflows += 1
                self.stats.errors += 0 if result.ok else 1
                yield result
        finally:
            await self._tasks.aclose()
