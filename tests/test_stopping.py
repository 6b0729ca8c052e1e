"""Stopping means stopped: every iterator and call stops promptly and completely on
``aclose()`` from another task, on ``break``, on cancellation, and on the session's close —
no request after, no task left behind, no hang, no warning (warnings are errors here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest

from dialnexa_async import AsyncDialNexa, ClosedError
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY

# Every iterator the SDK returns, opened on a workflow of 2,000 leads, and what a loop runs
# over (the iterator itself, or its pages).
Opener = Callable[[AsyncDialNexa, str], Any]
ITERATORS: dict[str, Opener] = {
    "list": lambda dn, wf: dn.workflows.leads.list(wf, page_size=20, max_concurrency=4),
    "list().pages()": lambda dn, wf: dn.workflows.leads.list(wf, page_size=20),
    "list_many": lambda dn, wf: dn.workflows.leads.list_many([wf, wf, wf], page_size=20),
    "status_counts_many": lambda dn, wf: dn.workflows.leads.status_counts_many([wf] * 40),
    "stalled": lambda dn, wf: dn.workflows.leads.stalled(wf, older_than=timedelta(seconds=0)),
    "watch": lambda dn, wf: dn.workflows.leads.watch(
        wf, every=0.05, include_initial=True, page_size=20
    ),
}


def _loop_over(kind: str, iterator: Any) -> Any:
    return iterator.pages() if kind.endswith(".pages()") else iterator


def _sdk_tasks() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("dialnexa-") and not task.done()
    ]


@pytest.fixture
async def slow() -> AsyncIterator[FakeDialNexa]:
    async with FakeDialNexa(leads=2000, api_key=API_KEY, latency=0.01) as fake:
        yield fake


async def _quiet_after(fake: FakeDialNexa) -> int:
    """Requests the server receives once the stop is through: requests already on the wire
    when it stopped land in the first 50 ms; anything in the next 100 ms was sent after."""
    await asyncio.sleep(0.05)
    before = fake.stats.requests
    await asyncio.sleep(0.1)
    return fake.stats.requests - before


@pytest.mark.parametrize("kind", list(ITERATORS))
async def test_aclose_from_another_task_stops_a_waiting_consumer(
    kind: str, slow: FakeDialNexa
) -> None:
    async with AsyncDialNexa(API_KEY, base_url=slow.url, max_concurrency=8) as dn:
        opened = ITERATORS[kind](dn, slow.workflow_id or "")
        stream = _loop_over(kind, opened).__aiter__()
        await stream.__anext__()  # running

        async def consume() -> None:
            while True:
                await stream.__anext__()

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.03)  # the consumer is waiting on a request now
        with anyio.fail_after(5):
            await opened.aclose()
            with pytest.raises((ClosedError, StopAsyncIteration)):
                await consumer
        assert _sdk_tasks() == []
        assert await _quiet_after(slow) == 0


@pytest.mark.parametrize("kind", list(ITERATORS))
async def test_break_stops_every_request(kind: str, slow: FakeDialNexa) -> None:
    async with AsyncDialNexa(API_KEY, base_url=slow.url, max_concurrency=8) as dn:
        opened = ITERATORS[kind](dn, slow.workflow_id or "")
        async for _ in _loop_over(kind, opened):
            break
        await asyncio.sleep(0)  # the loop finalises the abandoned generator
        await asyncio.sleep(0.02)
        assert _sdk_tasks() == []
        assert await _quiet_after(slow) == 0
        # The iterator object is still held here: that must not keep its work alive.
        assert opened is not None


@pytest.mark.parametrize("kind", list(ITERATORS))
async def test_a_cancel_scope_leaves_no_task_behind(kind: str, slow: FakeDialNexa) -> None:
    async with AsyncDialNexa(API_KEY, base_url=slow.url, max_concurrency=8) as dn:
        with anyio.move_on_after(0.05) as scope:
            async for _ in _loop_over(kind, ITERATORS[kind](dn, slow.workflow_id or "")):
                pass
        assert scope.cancelled_caught
        assert _sdk_tasks() == []
        assert await _quiet_after(slow) == 0


@pytest.mark.parametrize("kind", list(ITERATORS))
async def test_closing_the_session_stops_its_iterators(kind: str, slow: FakeDialNexa) -> None:
    dn = AsyncDialNexa(API_KEY, base_url=slow.url, max_concurrency=8)
    stream = _loop_over(kind, ITERATORS[kind](dn, slow.workflow_id or "")).__aiter__()
    await stream.__anext__()

    async def consume() -> None:
        while True:
            await stream.__anext__()

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.03)
    with anyio.fail_after(5):
        await dn.aclose()
        with pytest.raises((ClosedError, StopAsyncIteration)):
            await consumer
    assert _sdk_tasks() == []
    assert await _quiet_after(slow) == 0


async def test_a_call_in_flight_when_the_session_closes_fails_and_sends_nothing_more(
    slow: FakeDialNexa,
) -> None:
    slow.latency = 0.2
    dn = AsyncDialNexa(API_KEY, base_url=slow.url, max_retries=3, backoff=0.01)
    call = asyncio.create_task(dn.workflows.get(slow.workflow_id or ""))
    await asyncio.sleep(0.05)
    await dn.aclose()
    with anyio.fail_after(5), pytest.raises(ClosedError):
        await call
    assert await _quiet_after(slow) == 0
    with pytest.raises(ClosedError):
        await dn.workflows.get(slow.workflow_id or "")


async def test_an_enrolment_under_a_closing_session_sends_nothing_more(
    slow: FakeDialNexa,
) -> None:
    from dialnexa_async import EnrollmentError

    rows = [{"phone_number": f"+9198{i:08d}"} for i in range(2000)]
    workflow = slow.store.create_workflow("closing")
    dn = AsyncDialNexa(API_KEY, base_url=slow.url, max_concurrency=2)
    run = asyncio.create_task(dn.workflows.leads.enroll(workflow.id, rows, chunk_size=50))
    await asyncio.sleep(0.05)
    await dn.aclose()
    with anyio.fail_after(5), pytest.raises(EnrollmentError) as caught:
        await run
    result = caught.value.result
    accounted = sum(u.leads_enrolled for u in result.uploads) + sum(
        len(f.row_numbers) for f in [*result.failed, *result.unknown]
    )
    assert accounted == 2000
    assert await _quiet_after(slow) == 0
