"""Stall detection: a scan of in-progress leads with their histories fetched alongside it.

The scan (a :class:`~dialnexa_async.PagedIterator` of the workflow's ``in_progress`` leads) and
the history requests overlap: each lead the scan yields starts its history request at once, up
to a window of ``2 * concurrency`` requests ahead of the consumer, all under the session's cap,
and the verdicts come back in the scan's order. A lead whose history is gone (404: removed
between the scan and the request) or whose current step ended meanwhile is not reported.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine
from datetime import datetime
from typing import Any

import attrs

from ._concurrency import OrderedTasks, StreamIterator, TasksClosed
from ._pagination import PagedIterator, PaginationStats
from .errors import ClosedError
from .models import LeadHistory, LeadStatus, WorkflowLead

__all__ = ["StalledLeads", "StalledStats"]

HistoryFetch = Callable[[str], Coroutine[Any, Any, LeadHistory | None]]


@attrs.define
class StalledStats:
    """What a stall scan did so far.

    Attributes:
        scan: The lead scan's :class:`~dialnexa_async.PaginationStats`.
        histories_fetched: Lead histories received.
        histories_missing: Leads whose history was gone (removed meanwhile): skipped.
        stalled: Leads reported as stalled.
        max_in_flight: The most history requests in flight at once.
    """

    scan: PaginationStats
    histories_fetched: int = 0
    histories_missing: int = 0
    stalled: int = 0
    max_in_flight: int = 0


def stalled_since(lead: WorkflowLead, history: LeadHistory, cutoff: datetime) -> datetime | None:
    """When ``lead``'s current step started, if before ``cutoff`` and still running (pure)."""
    current = history.steps[-1] if history.steps else None
    if current is not None and current.ended_at is not None:
        return None  # it finished its step after the scan saw it
    since = current.started_at if current is not None else lead.enrolled_at
    return since if since is not None and since < cutoff else None


class StalledLeads(StreamIterator[tuple[WorkflowLead, datetime]]):
    """``(lead, since)`` for every stalled lead, in the scan's order; see the module docstring.

    ``async for lead, since in it``, ``async with it``, ``await it.aclose()``, ``it.stats``.
    ``aclose()`` (and leaving ``async with``, ``break``, an error) cancels and awaits the scan and
    every history request in flight.
    """

    def __init__(
        self,
        leads: PagedIterator[WorkflowLead],
        history: HistoryFetch,
        *,
        cutoff: datetime,
        concurrency: int,
    ) -> None:
        self._leads = leads
        self._history = history
        self._cutoff = cutoff
        self._window = 2 * concurrency
        self._tasks: OrderedTasks[LeadHistory | None] = OrderedTasks("history")
        self.stats = StalledStats(scan=leads.stats)

    async def _shut(self) -> None:
        await self._tasks.aclose()
        await self._leads.aclose()

    def _cancel_now(self) -> None:
        self._tasks.cancel_now()
        self._leads._cancel_now()

    async def _stream(self) -> AsyncGenerator[tuple[WorkflowLead, datetime], None]:
        pending: deque[tuple[int, WorkflowLead]] = deque()
        number = 0
        try:
            async with self._leads as leads:
                async for lead in leads:
                    if lead.status != LeadStatus.IN_PROGRESS:
                        continue
                    self._tasks.start(number, self._history(lead.id))
                    self.stats.max_in_flight = self._tasks.max_running
                    pending.append((number, lead))
                    number += 1
                    while len(pending) >= self._window or (
                        pending and self._tasks.done(pending[0][0])
                    ):
                        found = await self._verdict(*pending.popleft())
                        if found is not None:
                            yield found
            while pending:
                found = await self._verdict(*pending.popleft())
                if found is not None:
                    yield found
        except TasksClosed:
            raise ClosedError("stalled() was closed (by aclose() or the session)") from None
        finally:
            await self._shut()

    async def _verdict(
        self, number: int, lead: WorkflowLead
    ) -> tuple[WorkflowLead, datetime] | None:
        history = await self._tasks.take(number)
        if history is None:
            self.stats.histories_missing += 1
            return None
        self.stats.histories_fetched += 1
        since = stalled_since(lead, history, self._cutoff)
        if since is None:
            return None
        self.stats.stalled += 1
        return lead, since
