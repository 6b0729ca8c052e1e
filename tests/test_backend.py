"""What a backend expects of the SDK: an escape hatch, a first page before streaming,
a clear error on a second event loop, logging switched on from the environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from dialnexa_async import (
    AsyncDialNexa,
    HTTPRequest,
    HTTPResponse,
    InternalServerError,
    NotFoundError,
    RateLimitError,
)
from dialnexa_async.testing import FakeDialNexa, MockTransport

from .conftest import API_KEY, InFlight


async def test_request_reaches_endpoints_the_sdk_does_not_wrap() -> None:
    async with FakeDialNexa(leads=20, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            wf = fake.workflow_id or ""
            keys = await dn.request("GET", f"/workflows/{wf}/leads/variable-keys")
            page = await dn.request("get", f"/workflows/{wf}/leads", params={"limit": 5})
            with pytest.raises(NotFoundError):
                await dn.request("GET", "/workflows/wf_missing")
    assert keys["data"]["keys"] == ["customer_name"]
    assert len(page["data"]) == 5


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "https://evil.example/x", ValueError),
        ("GET", "//evil.example/x", ValueError),
        ("GET", "/workflows?page=2", ValueError),
        ("GET", "workflows", ValueError),
        ("TRACE", "/workflows", ValueError),
        ("GET", 42, TypeError),
    ],
)
async def test_request_refuses_what_would_leave_the_base_url(
    method: str, path: object, error: type[Exception]
) -> None:
    transport = MockTransport(lambda request: HTTPResponse.json({}))
    async with AsyncDialNexa(API_KEY, transport=transport) as dn:
        with pytest.raises(error):
            await dn.request(method, path)  # type: ignore[arg-type]
    assert transport.requests == []


async def test_request_retries_and_deadlines_like_every_call() -> None:
    answers = [HTTPResponse.json({}, status=503), HTTPResponse.json({"ok": True})]
    transport = MockTransport(lambda request: answers.pop(0))
    async with AsyncDialNexa(API_KEY, transport=transport, backoff=0.001) as dn:
        assert await dn.request("DELETE", "/things/1") == {"ok": True}
        limited = MockTransport(
            lambda r: HTTPResponse.json({}, status=429, headers={"Retry-After": "3600"})
        )
    async with AsyncDialNexa(API_KEY, transport=limited) as dn:
        with pytest.raises(RateLimitError):
            await dn.request("POST", "/things", json={"a": 1}, timeout=5)
    sent: HTTPRequest = limited.requests[0]
    assert sent.json == {"a": 1}
    assert len(limited.requests) == 1


async def test_first_page_lets_an_endpoint_answer_404_before_streaming() -> None:
    async with FakeDialNexa(leads=250, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            missing = dn.workflows.leads.list("wf_missing")
            with pytest.raises(NotFoundError):
                await missing.first_page()
            scan = dn.workflows.leads.list(fake.workflow_id or "")
            assert scan.total is None
            first = await scan.first_page()
            assert scan.total == 250
            assert await scan.first_page() is first
            ids = [lead.id async for lead in scan]
    assert len(ids) == 250
    assert ids[: len(first.data)] == [lead.id for lead in first.data]
    assert scan.stats.pages_fetched == 3  # page 1 was not fetched twice


def test_a_client_reused_on_a_second_event_loop_says_what_to_do() -> None:
    transport = MockTransport(lambda request: HTTPResponse.json({"id": "lead_1"}))
    dn = AsyncDialNexa(API_KEY, transport=transport)
    asyncio.run(dn.campaign_leads.get("lead_1"))
    with pytest.raises(RuntimeError, match="one AsyncDialNexa per event loop"):
        asyncio.run(dn.campaign_leads.get("lead_1"))


def test_dialnexa_log_turns_the_sdk_logs_on() -> None:
    code = (
        "import asyncio\n"
        "from dialnexa_async import AsyncDialNexa, HTTPResponse\n"
        "from dialnexa_async.testing import MockTransport\n"
        "answers = [HTTPResponse.json({}, status=503), HTTPResponse.json({'id': 'l'})]\n"
        "async def main():\n"
        "    t = MockTransport(lambda r: answers.pop(0))\n"
        "    async with AsyncDialNexa('dnx_secret_in_env', transport=t, backoff=0.001) as dn:\n"
        "        await dn.campaign_leads.get('l')\n"
        "asyncio.run(main())\n"
    )
    outputs = {}
    for level in ("info", "debug"):
        env = {**os.environ, "DIALNEXA_LOG": level}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs[level] = done.stderr
    assert "retrying in" in outputs["info"]
    assert "-> 503" not in outputs["info"]  # attempts are debug lines
    assert "GET /campaigns-leads/l -> 503" in outputs["debug"]
    assert "dnx_secret_in_env" not in outputs["debug"]


def test_dialnexa_log_under_an_application_that_configured_logging_prints_each_line_once() -> None:
    code = (
        "import asyncio, logging, sys\n"
        "logging.basicConfig(stream=sys.stderr, format='app: %(message)s')\n"
        "from dialnexa_async import AsyncDialNexa, HTTPResponse\n"
        "from dialnexa_async.testing import MockTransport\n"
        "async def main():\n"
        "    t = MockTransport(lambda r: HTTPResponse.json({'id': 'l'}))\n"
        "    async with AsyncDialNexa('dnx_key', transport=t) as dn:\n"
        "        await dn.campaign_leads.get('l')\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "DIALNEXA_LOG": "debug"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    lines = [line for line in done.stderr.splitlines() if "GET /campaigns-leads/l -> 200" in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("app: ")  # through the application's own handler


# -- dashboards --------------------------------------------------------------------------------


async def test_status_counts_of_many_workflows_with_errors_as_values() -> None:
    async with FakeDialNexa(api_key=API_KEY, latency=0.005) as fake:
        ids = []
        for n in range(30):
            workflow = fake.store.create_workflow(f"wf {n}", status="active")
            fake.store.seed_leads(workflow, n * 7)
            ids.append(workflow.id)
        ids[5:5] = ["wf_deleted"]
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=8) as dn:
            many = dn.workflows.leads.status_counts_many(ids)
            results = await many.collect()
    assert list(results) == ids
    assert isinstance(results["wf_deleted"].error, NotFoundError)
    assert results["wf_deleted"].counts is None
    for n, workflow_id in enumerate(i for i in ids if i != "wf_deleted"):
        counts = results[workflow_id].counts
        assert counts is not None
        assert counts.total == n * 7
        assert sum(counts.values()) == n * 7
    assert many.stats.workflows == 31
    assert many.stats.errors == 1
    assert many.stats.max_in_flight == 8  # workflows counted at once: the session's cap


async def test_status_counts_many_yields_each_as_it_is_ready_and_closes_cleanly() -> None:
    async with FakeDialNexa(api_key=API_KEY) as fake:
        ids = [fake.store.create_workflow(f"wf {n}").id for n in range(5)]

        async def slow_first(request: web.Request) -> None:
            if request.match_info.get("workflow_id") == ids[0]:
                await asyncio.sleep(0.3)

        fake.interceptor = slow_first
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            order = [
                result.workflow_id async for result in dn.workflows.leads.status_counts_many(ids)
            ]
            assert order[-1] == ids[0]  # the slow one came last, not first
            assert sorted(order) == sorted(ids)
            async with dn.workflows.leads.status_counts_many(ids) as many:
                async for _ in many:
                    break
            await asyncio.sleep(0)
            assert [t for t in asyncio.all_tasks() if t.get_name().startswith("dialnexa-")] == []


# -- options -----------------------------------------------------------------------------------


async def test_with_options_shares_the_pool_cap_and_lifecycle() -> None:
    in_flight = InFlight()

    async def slow(request: HTTPRequest) -> HTTPResponse:
        await in_flight.hold(0.01)
        if request.path.endswith("/busy"):
            return HTTPResponse.json({}, status=503)
        return HTTPResponse.json({"id": "lead_1"})

    transport = MockTransport(slow)
    dn = AsyncDialNexa(
        API_KEY,
        transport=transport,
        max_concurrency=3,
        max_retries=5,
        backoff=0.001,
        default_headers={"X-Team": "growth"},
    )
    fast = dn.with_options(max_retries=0, extra_headers={"X-Trace": "t-1"}, extra_query={"v": "2"})
    assert fast.workflows.leads is not dn.workflows.leads
    with pytest.raises(InternalServerError):
        await fast.campaign_leads.get("busy")
    assert len(transport.requests) == 1  # no retries on the copy
    await asyncio.gather(
        *(dn.campaign_leads.get(f"l{i}") for i in range(10)),
        *(fast.campaign_leads.get(f"l{i}") for i in range(10)),
    )
    assert in_flight.peak == 3  # one cap for both
    sent_by_copy = transport.requests[0]
    assert sent_by_copy.headers["X-Team"] == "growth"
    assert sent_by_copy.headers["X-Trace"] == "t-1"
    assert sent_by_copy.url.endswith("/campaigns-leads/busy?v=2")
    assert sent_by_copy.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent_by_copy.headers["User-Agent"].startswith("dialnexa-async/")
    plain = [r for r in transport.requests if "X-Trace" not in r.headers]
    assert plain
    assert all(r.headers["X-Team"] == "growth" for r in plain)
    await fast.aclose()
    assert dn.closed  # closing one closes both


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Authorization": "Bearer other"}, ValueError),
        ({"X-A": "1\r\nInjected: 2"}, ValueError),
        ({"X-A": 1}, TypeError),
        ("X-A: 1", TypeError),
    ],
)
def test_headers_that_would_override_or_inject_are_refused(
    headers: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        AsyncDialNexa(API_KEY, default_headers=headers)  # type: ignore[arg-type]
    with pytest.raises(error):
        AsyncDialNexa(API_KEY).with_options(extra_headers=headers)  # type: ignore[arg-type]


async def all_of(iterator: AsyncIterable[Any]) -> list[Any]:
    return [item async for item in iterator]


async def test_per_call_extras_reach_every_request_of_that_call_and_no_other() -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    def record(request: web.Request) -> None:
        seen.append((request.path, request.headers.get("X-Trace"), request.query.get("tenant")))

    extras: dict[str, Any] = {"extra_headers": {"X-Trace": "t-9"}, "extra_query": {"tenant": 7}}
    async with FakeDialNexa(leads=250, api_key=API_KEY, interceptor=record) as fake:
        wf = fake.workflow_id or ""
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "get": lambda: dn.workflows.get(wf, **extras),
                "scan": lambda: dn.workflows.leads.list(wf, page_size=100, **extras).collect(),
                "counts": lambda: dn.workflows.leads.status_counts(wf, **extras),
                "enroll": lambda: dn.workflows.leads.enroll(
                    wf, [{"phone_number": "+919811111111"}], **extras
                ),
                "stalled": lambda: all_of(
                    dn.workflows.leads.stalled(wf, older_than=timedelta(0), **extras)
                ),
                "pause": lambda: dn.workflows.pause(wf, **extras),
                "request": lambda: dn.request(
                    "GET",
                    f"/workflows/{wf}",
                    params={"tenant": 7},
                    extra_headers={"X-Trace": "t-9"},
                ),
            }
            for name, call in calls.items():
                seen.clear()
                await call()
                assert len(seen) >= (3 if name in ("scan", "counts") else 1), name
                assert {(trace, tenant) for _, trace, tenant in seen} == {("t-9", "7")}, name
            seen.clear()
            await dn.workflows.get(wf)
            await dn.workflows.leads.list(wf, page_size=100).collect()
    assert seen
    assert {(trace, tenant) for _, trace, tenant in seen} == {(None, None)}  # nothing stuck


@pytest.mark.parametrize(
    ("extras", "error"),
    [
        ({"extra_headers": {"User-Agent": "mine/1"}}, ValueError),
        ({"extra_headers": {"accept-encoding": "br"}}, ValueError),
        ({"extra_headers": {"X-A": "1\nInjected: 2"}}, ValueError),
        ({"extra_headers": {"Bad Name": "1"}}, ValueError),
        ({"extra_headers": {"X-A": 1}}, TypeError),
        ({"extra_query": {"page": 3}}, ValueError),
        ({"extra_query": {"limit": 500}}, ValueError),
        ({"extra_query": {"flag": True}}, TypeError),
        ({"extra_query": {"": "x"}}, TypeError),
        ({"extra_query": "tenant=7"}, TypeError),
    ],
)
async def test_bad_per_call_extras_are_refused_before_sending(
    extras: dict[str, Any], error: type[Exception]
) -> None:
    transport = MockTransport(lambda request: HTTPResponse.json({"id": "wf_1"}))
    async with AsyncDialNexa(API_KEY, transport=transport) as dn:
        with pytest.raises(error):
            await dn.workflows.get("wf_1", **extras)
        with pytest.raises(error):
            dn.workflows.leads.list("wf_1", **extras)  # refused by the call, not mid-scan
        with pytest.raises(error):
            dn.with_options(**extras)
    assert transport.requests == []


async def test_extra_query_never_silently_overrides_a_calls_own_parameter() -> None:
    transport = MockTransport(lambda request: HTTPResponse.json({}))
    async with AsyncDialNexa(API_KEY, transport=transport) as dn:
        tuned = dn.with_options(extra_query={"view": "full"})
        with pytest.raises(ValueError, match="'view'"):
            await tuned.request("GET", "/workflows", params={"view": "short"})
    assert transport.requests == []


async def test_extra_query_takes_numbers_and_any_name_the_sdk_does_not_use() -> None:
    transport = MockTransport(lambda request: HTTPResponse.json({"id": "wf_1"}))
    async with AsyncDialNexa(API_KEY, transport=transport) as dn:
        tuned = dn.with_options(extra_query={"version": 2, "authorization": "not-a-header"})
        await tuned.workflows.get("wf_1", extra_query={"tenant": "a b"})
    (request,) = transport.requests
    assert request.url.endswith("/workflows/wf_1?version=2&authorization=not-a-header&tenant=a%20b")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"


# -- watch -------------------------------------------------------------------------------------


async def test_watch_reports_added_changed_and_gone_and_nothing_else() -> None:
    async with FakeDialNexa(leads=500, api_key=API_KEY) as fake:
        workflow = fake.store.workflows[fake.workflow_id or ""]
        ids = [lead["id"] for lead in workflow.leads]
        # Both in progress (the generator's cycle); find() gives the records changes stick to.
        moved, stopped = workflow.leads.find(ids[1]), workflow.leads.find(ids[6])
        assert moved is not None
        assert stopped is not None
        assert moved["status"] == stopped["status"] == "in_progress"
        scans = 0

        def between_scans(request: web.Request) -> None:
            nonlocal scans
            if request.query.get("page") == "1":
                scans += 1
                if scans == 2:  # the second scan finds the workflow changed
                    fake.store.move_lead(workflow, moved, "node_call_2")
                    workflow.leads.set_status(stopped, "failed", None)
                    fake.store.add_lead(workflow, "+919822222222", status="in_progress")

        fake.interceptor = between_scans
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            watch = dn.workflows.leads.watch(
                workflow.id, every=0.01, max_scans=3, status="in_progress", page_size=50
            )
            async with watch:
                changes = [change async for change in watch]
    added = [c for c in changes if c.kind == "added"]
    assert [(c.kind, c.lead_id, c.scan) for c in changes if c.kind != "added"] == [
        ("changed", moved["id"], 2),
        ("gone", stopped["id"], 2),
    ]
    assert [(c.lead.phone_number if c.lead else None, c.scan) for c in added] == [
        ("+919822222222", 2)
    ]
    assert watch.stats.scans == 3  # the third scan found nothing new
    assert (watch.stats.added, watch.stats.changed, watch.stats.gone) == (1, 1, 1)


async def test_watch_with_the_initial_scan_and_a_clean_close() -> None:
    async with FakeDialNexa(leads=120, api_key=API_KEY, latency=0.005) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            watch = dn.workflows.leads.watch(fake.workflow_id or "", every=60, include_initial=True)
            first = []
            async for change in watch:
                first.append(change)
                if len(first) == 120:
                    break
            await watch.aclose()
            await asyncio.sleep(0)
            assert [t for t in asyncio.all_tasks() if t.get_name().startswith("dialnexa-")] == []
    assert {c.kind for c in first} == {"added"}
    with pytest.raises(ValueError, match="every"):
        AsyncDialNexa(API_KEY).workflows.leads.watch("wf_1", every=0)


async def test_closing_a_with_options_copy_closes_the_shared_connections() -> None:
    async with FakeDialNexa(leads=5, api_key=API_KEY) as fake:
        dn = AsyncDialNexa(API_KEY, base_url=fake.url)
        copy = dn.with_options(max_retries=0)
        await copy.workflows.leads.count(fake.workflow_id or "")
        session = dn._client.transport._session  # type: ignore[attr-defined]
        assert session is not None
        await copy.aclose()
        assert session.closed  # no "Unclosed client session" left behind
        await dn.aclose()  # closing again is harmless
