"""Watching a workflow: rescan on an interval, yield only what changed.

Each scan is the ordinary concurrent, ordered scan. What the watcher keeps between scans is one
entry per lead: its id and a small integer, the lead's fingerprint (its status and node, as an
index into a table of the pairs seen so far) with one bit for the scan that last saw it. Such
integers are Python's cached small ints while fewer than 128 (status, node) pairs exist, so a
lead costs its id string and one dict slot (``python -m benchmarks.watch`` measures it on
1,000,000 leads). A lead whose entry was not refreshed by a scan is gone.

Drift: a lead removed during a scan shifts the pages after it, so a lead can slip past that scan
(reported gone, then added again by the next); a lead added during a scan can be read twice
(the scan drops the repeat).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Hashable
from typing import Literal

import anyio
import attrs

from ._concurrency import StreamIterator
from ._pagination import PagedIterator
from .errors import ClosedError
from .models import WorkflowLead

__all__ = ["LeadChange", "LeadWatch", "WatchStats"]

ChangeKind = Literal["added", "changed", "gone"]


@attrs.frozen(kw_only=True)
class LeadChange:
    """One lead that changed between two scans.

    Attributes:
        kind: ``"added"`` (not in the previous scan), ``"changed"`` (its status or node
            changed) or ``"gone"`` (in the previous scan, not in this one).
        lead_id: The lead.
        lead: The lead as this scan read it (``None`` when gone).
        scan: The scan that saw the change (the first is 1).
    """

    kind: ChangeKind
    lead_id: str
    lead: WorkflowLead | None
    scan: int


@attrs.define
class WatchStats:
    """What a watch did so far.

    Attributes:
        scans: Scans completed.
        leads: Leads the last completed scan held.
        added, changed, gone: Changes reported.
    """

    scans: int = 0
    leads: int = 0
    added: int = 0
    changed: int = 0
    gone: int = 0


class LeadWatch(StreamIterator[LeadChange]):
    """``async for change in it`` (a :class:`LeadChange` each), ``async with it``,
    ``await it.aclose()`` (stops the scan and the wait in progress), ``it.stats``; see the
    module docstring."""

    def __init__(
        self,
        scan: Callable[[], PagedIterator[WorkflowLead]],
        *,
        every: float,
        include_initial: bool,
        max_scans: int | None,
    ) -> None:
        self._scan = scan
        self._every = every
        self._include_initial = include_initial
        self._max_scans = max_scans
        self._current: PagedIterator[WorkflowLead] | None = None
        # Lead id -> (fingerprint << 1) | the parity of the scan that last saw it; kept until
        # aclose(), so that the state of a finished watch can still be measured or resumed.
        self._seen: dict[str, int] = {}
        self._stop = asyncio.Event()  # set by aclose() or the session: no wait, no scan more
        self.stats = WatchStats()

    async def aclose(self) -> None:
        await super().aclose()
        self._seen = {}

    async def _shut(self) -> None:
        self._stop.set()
        if self._current is not None:
            await self._current.aclose()

    def _cancel_now(self) -> None:
        self._stop.set()
        if self._current is not None:
            self._current._cancel_now()

    async def _pause(self) -> None:
        """Wait ``every`` seconds between scans, or until the watch is closed (then raise)."""
        with anyio.move_on_after(self._every):
            await self._stop.wait()
        if self._stop.is_set():
            raise ClosedError("the watch was closed (by aclose() from another task or the session)")

    async def _stream(self) -> AsyncGenerator[LeadChange, None]:
        seen = self._seen
        codes: dict[Hashable, int] = {}  # (status, node) -> fingerprint
        number = 0
        try:
            while self._max_scans is None or number < self._max_scans:
                if number:
                    await self._pause()
                elif self._stop.is_set():
                    raise ClosedError("the watch was closed")
                number += 1
                parity = number & 1
                report = number > 1 or self._include_initial
                count = 0
                self._current = self._scan()
                async with self._current as leads:
                    async for lead in leads:
                        count += 1
                        fingerprint = codes.setdefault(
                            (lead.status, lead.current_node_id), len(codes)
                        )
                        before = seen.get(lead.id)
                        seen[lead.id] = (fingerprint << 1) | parity
                        if before is None:
                            if report:
                                self.stats.added += 1
                                yield LeadChange(
                                    kind="added", lead_id=lead.id, lead=lead, scan=number
                                )
                        elif before >> 1 != fingerprint and report:
                            self.stats.changed += 1
                            yield LeadChange(
                                kind="changed", lead_id=lead.id, lead=lead, scan=number
                            )
                self._current = None
                stale = [lead_id for lead_id, entry in seen.items() if entry & 1 != parity]
                for lead_id in stale:
                    del seen[lead_id]
                    self.stats.gone += 1
                    yield LeadChange(kind="gone", lead_id=lead_id, lead=None, scan=number)
                self.stats.scans = number
                self.stats.leads = count
        finally:
            if self._current is not None:
                await self._current.aclose()
