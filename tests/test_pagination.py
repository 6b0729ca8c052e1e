"""The ordered, bounded, concurrent pager: pure rules, then real scans of the fake server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from dialnexa_async import (
    AsyncDialNexa,
    InternalServerError,
    NotFoundError,
    PaginationError,
)
from dialnexa_async._pagination import RecentIds
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY

C = 4  # the session cap used by these tests


@given(st.lists(st.lists(st.integers(0, 30), max_size=10), max_size=10))
def test_recent_ids_never_keeps_an_id_twice_within_the_lookback(pages: list[list[int]]) -> None:
    recent = RecentIds(lookback=len(pages) + 1)
    kept: list[int] = []
    for ids in pages:
        kept += [i for i, keep in zip(ids, recent.filter(ids), strict=True) if keep]
    assert sorted(kept) == sorted(set(kept))
    assert set(kept) == {i for ids in pages for i in ids}


@given(
    st.integers(1, 4),
    st.lists(st.lists(st.integers(0, 12), max_size=6), max_size=12),
)
def test_recent_ids_agrees_with_the_plain_definition(lookback: int, pages: list[list[int]]) -> None:
    """Keep an id unless this page already kept it or one of the last ``lookback`` pages did."""
    recent = RecentIds(lookback=lookback)
    remembered: list[set[int]] = []
    for ids in pages:
        expected: list[bool] = []
        kept: set[int] = set()
        for item_id in ids:
            keep = item_id not in kept and not any(item_id in page for page in remembered)
            expected.append(keep)
            if keep:
                kept.add(item_id)
        remembered = [*remembered, kept][-lookback:]
        assert recent.filter(ids) == expected


def test_recent_ids_forgets_beyond_the_lookback() -> None:
    recent = RecentIds(lookback=1)
    recent.filter([1])
    recent.filter([2])
    assert recent.filter([1, 2]) == [True, False]


async def _scan(
    leads: int, *, page_size: int = 10, latency: float = 0.0
) -> tuple[list[str], FakeDialNexa]:
    async with FakeDialNexa(leads=leads, api_key=API_KEY, latency=latency) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=C) as dn:
            leads_seen = [
                lead.id
                async for lead in dn.workflows.leads.list(
                    fake.workflow_id or "", page_size=page_size
                )
            ]
        expected = [lead["id"] for lead in fake.store.workflows[fake.workflow_id or ""].leads]
        assert leads_seen == expected
        return leads_seen, fake


@pytest.mark.parametrize("pages", [1, 2, C, C + 1, 3 * C + 2, 40])
async def test_every_lead_once_in_order(pages: int) -> None:
    for extra in (0, -3):  # full last page, and a short one
        count = max(1, pages * 10 + extra)
        seen, fake = await _scan(count)
        assert len(seen) == count
        assert fake.stats.max_in_flight <= C


async def test_empty_workflow_yields_nothing(fake: FakeDialNexa, client: AsyncDialNexa) -> None:
    wf = await client.workflows.create(title="empty")
    iterator = client.workflows.leads.list(wf.id)
    assert await iterator.collect() == []
    # An empty first page is read twice: a lagging replica's empty page with a total of 0
    # looks the same as an empty list.
    assert iterator.stats.pages_fetched == 2
    assert iterator.stats.rereads == 1


async def test_pages_and_stats(fake: FakeDialNexa) -> None:
    async with FakeDialNexa(leads=95, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=C) as dn:
            iterator = dn.workflows.leads.list(fake.workflow_id or "", page_size=10)
            pages = [page async for page in iterator.pages()]
            assert [p.meta.page for p in pages] == list(range(1, 11))
            assert [len(p.data) for p in pages] == [10] * 9 + [5]
            assert iterator.stats.pages_fetched == 10
            assert 1 <= iterator.stats.max_in_flight <= C
            with pytest.raises(RuntimeError, match="once"):
                await iterator.collect()


async def test_the_session_cap_holds_across_iterators_and_calls() -> None:
    async with FakeDialNexa(leads=400, api_key=API_KEY, latency=0.005) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=3) as dn:
            wf = fake.workflow_id or ""
            results = await asyncio.gather(
                dn.workflows.leads.list(wf, page_size=10).collect(),
                dn.workflows.leads.list(wf, page_size=10, max_concurrency=8).collect(),
                *[dn.campaign_leads.get(fake.campaign_lead_id or "") for _ in range(10)],
            )
        assert len(results[0]) == len(results[1]) == 400  # type: ignore[arg-type]
        assert fake.stats.max_in_flight <= 3


async def test_an_iterator_may_ask_for_less_than_the_cap() -> None:
    async with FakeDialNexa(leads=300, api_key=API_KEY, latency=0.005) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=8) as dn:
            iterator = dn.workflows.leads.list(
                fake.workflow_id or "", page_size=10, max_concurrency=2
            )
            assert len(await iterator.collect()) == 300
        assert iterator.stats.max_in_flight <= 2
        assert fake.stats.max_in_flight <= 2


def _page_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("dialnexa-page-")]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
async def slow_fake() -> AsyncIterator[FakeDialNexa]:
    async with FakeDialNexa(leads=1000, api_key=API_KEY, latency=0.01) as fake:
        yield fake


async def test_break_leaves_no_task_or_connection(slow_fake: FakeDialNexa) -> None:
    connector = aiohttp.TCPConnector()
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        AsyncDialNexa(API_KEY, base_url=slow_fake.url, session=session, max_concurrency=C) as dn,
    ):
        async for lead in dn.workflows.leads.list(slow_fake.workflow_id or "", page_size=10):
            assert lead.id
            break
        await _settle()
        assert _page_tasks() == []
        assert len(connector._acquired) == 0  # every in-flight request was cancelled


async def test_exception_in_the_loop_body_cancels_fetches(slow_fake: FakeDialNexa) -> None:
    async with AsyncDialNexa(API_KEY, base_url=slow_fake.url, max_concurrency=C) as dn:
        with pytest.raises(ZeroDivisionError):
            async for _ in dn.workflows.leads.list(slow_fake.workflow_id or "", page_size=10):
                1 / 0  # noqa: B018
        await _settle()
        assert _page_tasks() == []


async def test_cancelling_the_consumer_cancels_fetches(slow_fake: FakeDialNexa) -> None:
    async with AsyncDialNexa(API_KEY, base_url=slow_fake.url, max_concurrency=C) as dn:
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in dn.workflows.leads.list(slow_fake.workflow_id or "", page_size=10):
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _settle()
        assert _page_tasks() == []


async def test_aclose_and_async_with_stop_the_scan(slow_fake: FakeDialNexa) -> None:
    async with AsyncDialNexa(API_KEY, base_url=slow_fake.url, max_concurrency=C) as dn:
        async with dn.workflows.leads.list(slow_fake.workflow_id or "", page_size=10) as leads:
            async for _ in leads:
                break
        assert _page_tasks() == []


async def test_closing_the_session_stops_running_iterators(slow_fake: FakeDialNexa) -> None:
    dn = AsyncDialNexa(API_KEY, base_url=slow_fake.url, max_concurrency=C)
    iterator = dn.workflows.leads.list(slow_fake.workflow_id or "", page_size=10)
    stream = aiter(iterator)
    await anext(stream)
    await dn.aclose()
    assert _page_tasks() == []
    await stream.aclose()  # type: ignore[attr-defined]


async def test_an_error_on_page_k_surfaces_after_pages_before_it() -> None:
    def fail_page_5(request: web.Request) -> web.Response | None:
        if request.query.get("page") == "5":
            return web.json_response({"statusCode": 500, "message": "boom"}, status=500)
        return None

    async with FakeDialNexa(leads=200, api_key=API_KEY, interceptor=fail_page_5) as fake:
        async with AsyncDialNexa(
            API_KEY, base_url=fake.url, max_concurrency=C, max_retries=0
        ) as dn:
            seen: list[str] = []
            with pytest.raises(InternalServerError):
                async for lead in dn.workflows.leads.list(fake.workflow_id or "", page_size=10):
                    seen.append(lead.id)
            assert len(seen) == 40
            await _settle()
            assert _page_tasks() == []


async def test_a_server_that_ignores_page_is_an_error_not_a_hang() -> None:
    async def always_page_one(request: web.Request) -> web.Response | None:
        if request.method == "GET" and request.query.get("page") not in (None, "1"):
            leads = fake.store.workflows[fake.workflow_id or ""].leads
            data, total = leads.page(0, 10, None)
            meta = {"page": 1, "limit": 10, "total": total, "totalPages": 5}
            return web.json_response({"data": data, "meta": meta})
        return None

    async with FakeDialNexa(leads=50, api_key=API_KEY, interceptor=always_page_one) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=C) as dn:
            with pytest.raises(PaginationError, match="ignore"):
                await dn.workflows.leads.list(fake.workflow_id or "", page_size=10).collect()


async def test_leads_added_mid_scan_are_not_yielded_twice() -> None:
    inserted = False

    def insert_before_page_3(request: web.Request) -> None:
        nonlocal inserted
        if request.query.get("page") == "3" and not inserted:
            inserted = True
            workflow = fake.store.workflows[fake.workflow_id or ""]
            fake.store.add_lead(workflow, "+919000000000", front=True)  # everything shifts by one

    async with FakeDialNexa(leads=50, api_key=API_KEY, interceptor=insert_before_page_3) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=1) as dn:
            iterator = dn.workflows.leads.list(fake.workflow_id or "", page_size=10)
            ids = [lead.id for lead in await iterator.collect()]
    assert len(ids) == len(set(ids))
    assert iterator.stats.duplicates_dropped == 1


async def test_list_many_yields_each_workflow_in_order_and_tags_leads() -> None:
    async with FakeDialNexa(api_key=API_KEY, latency=0.002) as fake:
        sizes = [0, 1, 250, 37, 100]
        ids = []
        for size in sizes:
            workflow = fake.store.create_workflow(f"wf {size}")
            fake.store.seed_leads(workflow, size)
            ids.append(workflow.id)
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=C) as dn:
            leads = await dn.workflows.leads.list_many(ids, page_size=10).collect()
            pages = [
                (key, page.meta.page)
                async for key, page in dn.workflows.leads.list_many(ids[:3], page_size=100).pages()
            ]
        expected = [(wf, lead["id"]) for wf in ids for lead in fake.store.workflows[wf].leads]
        assert [(lead.workflow_id, lead.id) for lead in leads] == expected
        assert pages == [(ids[0], 1), (ids[1], 1), (ids[2], 1), (ids[2], 2), (ids[2], 3)]
        assert fake.stats.max_in_flight <= C


async def test_list_many_raises_a_workflows_error_in_its_place_and_cleans_up() -> None:
    async with FakeDialNexa(leads=30, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=C) as dn:
            seen: list[str] = []
            with pytest.raises(NotFoundError):
                async for lead in dn.workflows.leads.list_many(
                    [fake.workflow_id or "", "wf_missing"], page_size=10
                ):
                    seen.append(lead.id)
            assert len(seen) == 30
            async for _ in dn.workflows.leads.list_many([fake.workflow_id or ""] * 5, page_size=10):
                break
            await _settle()
            assert [t for t in asyncio.all_tasks() if t.get_name().startswith("dialnexa-")] == []


def test_list_many_refuses_bad_input() -> None:
    dn = AsyncDialNexa(API_KEY)
    with pytest.raises(TypeError, match="workflow_ids"):
        dn.workflows.leads.list_many("wf_1")
    with pytest.raises(ValueError, match="workflow_ids"):
        dn.workflows.leads.list_many(["wf_1", ""])
    with pytest.raises(ValueError, match="page_size"):
        dn.workflows.leads.list_many(["wf_1"], page_size=101)


async def test_a_slow_consumer_does_not_make_the_scan_read_ahead_unbounded() -> None:
    async with FakeDialNexa(leads=2000, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=C) as dn:
            iterator = dn.workflows.leads.list(fake.workflow_id or "", page_size=10)
            async with iterator:
                async for _ in iterator:
                    # Stop reading after the first lead and give the fetches every chance.
                    for _ in range(50):
                        await asyncio.sleep(0.002)
                    break
        # page 1, then at most the window (2 * C pages) ahead of the consumer
        assert fake.stats.by_route["GET /v1/workflows/{workflow_id}/leads"] <= 1 + 2 * C + 1


async def test_reading_on_after_the_session_closed_is_a_clear_error(
    slow_fake: FakeDialNexa,
) -> None:
    dn = AsyncDialNexa(API_KEY, base_url=slow_fake.url, max_concurrency=C)
    stream = aiter(dn.workflows.leads.list(slow_fake.workflow_id or "", page_size=10))
    for _ in range(10):  # all of page 1
        await anext(stream)
    await dn.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await anext(stream)
    assert _page_tasks() == []


# -- split scans -------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=500), st.integers(min_value=1, max_value=40))
def test_a_plan_covers_every_page_once_in_order(pages: int, shards: int) -> None:
    from dialnexa_async._pagination import OPEN_END, split_pages

    ranges = split_pages(pages, shards)
    assert 1 <= len(ranges) <= shards
    assert ranges[0].start == 1
    assert ranges[-1].stop == OPEN_END
    for before, after in itertools.pairwise(ranges):
        assert before.stop == after.start  # contiguous: no gap, no overlap
    sizes = [len(r) for r in ranges[:-1]]
    if sizes:
        assert max(sizes) - min(sizes) <= 1


async def test_shards_of_a_plan_read_every_lead_once_in_order() -> None:
    async with FakeDialNexa(leads=1234, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            wf = fake.workflow_id or ""
            shards = await dn.workflows.leads.plan(wf, shards=5, page_size=50)
            assert len(shards) == 5
            parts = [
                [lead.id async for lead in dn.workflows.leads.list(wf, page_size=50, pages=shard)]
                for shard in shards
            ]
            whole = [lead.id async for lead in dn.workflows.leads.list(wf)]
    assert [lead_id for part in parts for lead_id in part] == whole
    assert all(parts)


async def test_a_shard_reads_only_its_pages() -> None:
    async with FakeDialNexa(leads=1000, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            wf = fake.workflow_id or ""
            it = dn.workflows.leads.list(wf, page_size=10, pages=range(3, 6))
            ids = [lead.id async for lead in it]
            whole = await dn.workflows.leads.list(wf, page_size=10).collect()
            with pytest.raises(ValueError, match="pages"):
                dn.workflows.leads.list(wf, pages=range(3))
            with pytest.raises(ValueError, match="pages"):
                dn.workflows.leads.list(wf, pages=range(5, 5))
            with pytest.raises(TypeError, match="range"):
                dn.workflows.leads.list(wf, pages=[1, 2])  # type: ignore[arg-type]
    assert ids == [lead.id for lead in whole[20:50]]
    assert it.stats.pages_fetched == 3
