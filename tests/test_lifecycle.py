"""The workflow lifecycle: list, get, status actions, lead history, variable keys, stalls."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from dialnexa_async import (
    AsyncDialNexa,
    ConflictError,
    LeadHistory,
    NotFoundError,
    WorkflowStatus,
)
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY, observed_samples

OBSERVED = observed_samples()
BASE = "https://api.dialnexa.com/v1"


def only_request(m: Any) -> tuple[str, Any, dict[str, Any]]:
    assert len(m.requests) == 1, m.requests
    (method, url), calls = next(iter(m.requests.items()))
    return method, url, calls[0].kwargs


async def test_list_workflows_wire(mocked: Any) -> None:
    mocked.get(re.compile(r".*/workflows\?.*"), payload=OBSERVED["GET /workflows"]["200"])
    async with AsyncDialNexa(API_KEY) as dn:
        workflows = await dn.workflows.list(
            sort_by="createdAt", sort_order="ASC", page_size=50
        ).collect()
    method, url, kwargs = only_request(mocked)
    assert (method, url.path) == ("GET", "/v1/workflows")
    assert dict(url.query) == {
        "page": "1",
        "limit": "50",
        "sortBy": "createdAt",
        "sortOrder": "ASC",
    }
    assert kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert [w.id for w in workflows] == ["workflow_abc123"]


async def test_get_workflow_wire(mocked: Any) -> None:
    mocked.get(f"{BASE}/workflows/workflow_abc123", payload=OBSERVED["GET /workflows/{id}"]["200"])
    async with AsyncDialNexa(API_KEY) as dn:
        workflow = await dn.workflows.get("workflow_abc123")
    method, url, _ = only_request(mocked)
    assert (method, url.raw_path) == ("GET", "/v1/workflows/workflow_abc123")
    assert workflow.status is WorkflowStatus.ACTIVE


@pytest.mark.parametrize("action", ["activate", "pause", "resume", "deactivate"])
async def test_status_action_wire(mocked: Any, action: str) -> None:
    mocked.patch(
        f"{BASE}/workflows/wf%2F1/status", payload=OBSERVED["PATCH /workflows/{id}/status"]["200"]
    )
    async with AsyncDialNexa(API_KEY) as dn:
        workflow = await getattr(dn.workflows, action)("wf/1")
    method, url, kwargs = only_request(mocked)
    assert (method, url.raw_path) == ("PATCH", "/v1/workflows/wf%2F1/status")
    assert kwargs["json"] == {"action": action}
    assert workflow.title == "Q3 Outreach Workflow"


async def test_unknown_action_is_refused_before_sending(mocked: Any) -> None:
    async with AsyncDialNexa(API_KEY) as dn:
        with pytest.raises(ValueError, match="action"):
            await dn.workflows.set_status("wf_1", "archive")
        with pytest.raises(ValueError, match="sort_order"):
            dn.workflows.list(sort_order="UP")  # type: ignore[arg-type]
    assert mocked.requests == {}


async def test_variable_keys_and_history_wire(mocked: Any) -> None:
    mocked.get(
        f"{BASE}/workflows/wf_1/leads/variable-keys",
        payload=OBSERVED["GET /workflows/{workflowId}/leads/variable-keys"]["200"],
    )
    mocked.get(
        f"{BASE}/workflows/wf_1/leads/lead_abc123/history",
        payload=OBSERVED["GET /workflows/{workflowId}/leads/{id}/history"]["200"],
    )
    async with AsyncDialNexa(API_KEY) as dn:
        keys = await dn.workflows.leads.variable_keys("wf_1")
        history = await dn.workflows.leads.history("wf_1", "lead_abc123")
    assert keys == ["customer_name", "loan_amount", "product"]
    assert isinstance(history, LeadHistory)
    assert history.steps[0].node_type == "VOICE_CALL"
    assert history.steps[0].call_id == "call_abc123"
    paths = sorted(url.raw_path for (_, url) in mocked.requests)
    assert paths == [
        "/v1/workflows/wf_1/leads/lead_abc123/history",
        "/v1/workflows/wf_1/leads/variable-keys",
    ]


async def test_status_transitions_against_the_fake_server(client: AsyncDialNexa) -> None:
    wf = await client.workflows.create(title="Lifecycle")
    assert (await client.workflows.activate(wf.id)).status is WorkflowStatus.ACTIVE
    assert (await client.workflows.pause(wf.id)).status is WorkflowStatus.PAUSED
    with pytest.raises(ConflictError, match="paused"):
        await client.workflows.pause(wf.id)
    assert (await client.workflows.resume(wf.id)).status is WorkflowStatus.ACTIVE
    assert (await client.workflows.deactivate(wf.id)).status is WorkflowStatus.DRAFT
    with pytest.raises(ConflictError):
        await client.workflows.resume(wf.id)
    fetched = await client.workflows.get(wf.id)
    assert (fetched.id, fetched.title, fetched.status) == (wf.id, "Lifecycle", WorkflowStatus.DRAFT)
    with pytest.raises(NotFoundError):
        await client.workflows.activate("wf_missing")


async def test_a_retried_action_answered_409_reads_the_workflow_back() -> None:
    calls = 0

    def lose_first_answer(request: web.Request) -> web.Response | None:
        nonlocal calls
        if request.method == "PATCH":
            calls += 1
            if calls == 1:
                fake.store.transition(
                    fake.store.workflows[request.match_info["workflow_id"]], "activate"
                )
                return web.json_response({"message": "gateway timeout"}, status=504)
        return None

    async with FakeDialNexa(api_key=API_KEY, interceptor=lose_first_answer) as fake:
        wf = fake.store.create_workflow("T")
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=1, backoff=0.001) as dn:
            workflow = await dn.workflows.activate(wf.id)
    assert workflow.status is WorkflowStatus.ACTIVE
    assert calls == 2


async def test_list_workflows_in_order_across_pages(
    fake: FakeDialNexa, client: AsyncDialNexa
) -> None:
    created = [await client.workflows.create(title=f"wf {i:02d}") for i in range(23)]
    listed = await client.workflows.list(sort_by="title", sort_order="ASC", page_size=5).collect()
    assert [w.id for w in listed] == [w.id for w in sorted(created, key=lambda w: w.title or "")]
    newest_first = await client.workflows.list(page_size=7).collect()
    assert len(newest_first) == 23


async def test_history_is_ordered_and_variable_keys_follow_enrolments(
    client: AsyncDialNexa,
) -> None:
    async with FakeDialNexa(leads=10, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            wf = fake.workflow_id or ""
            leads = await dn.workflows.leads.list(wf).collect()
            for lead in leads:
                history = await dn.workflows.leads.history(wf, lead.id)
                starts = [step.started_at for step in history.steps]
                assert starts == sorted(starts)  # type: ignore[type-var]
                assert history.lead.id == lead.id
                if lead.status == "in_progress":
                    assert history.steps[-1].ended_at is None
                    assert history.steps[-1].node_id == lead.current_node_id
            await dn.workflows.leads.enroll(wf, [{"phone_number": "+919800000001", "plan": "gold"}])
            assert await dn.workflows.leads.variable_keys(wf) == ["customer_name", "plan"]
            with pytest.raises(NotFoundError):
                await dn.workflows.leads.history(wf, "wlead_missing")


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_stall_detection_with_a_fixed_clock() -> None:
    now = {"t": T0}
    moved_during_scan: list[str] = []

    def move_when_its_history_is_asked(request: web.Request) -> None:
        lead_id = request.match_info.get("lead_id")
        if request.path.endswith("/history") and lead_id == mover["id"]:
            workflow = fake.store.workflows[request.match_info["workflow_id"]]
            fake.store.move_lead(workflow, mover, "node_call_2")  # moves at "now"
            moved_during_scan.append(mover["id"])

    async with FakeDialNexa(
        api_key=API_KEY,
        clock=lambda: now["t"],
        interceptor=move_when_its_history_is_asked,
        latency=0.005,
    ) as fake:
        workflow = fake.store.create_workflow("stalls", status="active")
        expected_stalled = []
        started_at = {}
        for i in range(40):
            lead = fake.store.add_lead(workflow, f"+9198000{i:05d}")
            now["t"] = T0 + timedelta(minutes=10 * i)  # lead i's step starts 10*i minutes in
            fake.store.move_lead(workflow, lead, "node_call_1")
            started_at[lead["id"]] = now["t"]
        pending = fake.store.add_lead(workflow, "+919900000001")  # never started: not in progress
        assert pending["status"] == "pending"
        mover = next(lead for lead in workflow.leads if lead["id"] == list(started_at)[2])
        now["t"] = T0 + timedelta(hours=8)
        cutoff = now["t"] - timedelta(hours=2)
        expected_stalled = [
            lead_id
            for lead_id, since in started_at.items()
            if since < cutoff and lead_id != mover["id"]
        ]
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=4) as dn:
            found = [
                (lead.id, since)
                async for lead, since in dn.workflows.leads.stalled(
                    workflow.id, older_than=timedelta(hours=2), now=now["t"]
                )
            ]
        assert [lead_id for lead_id, _ in found] == expected_stalled
        assert all(since == started_at[lead_id] for lead_id, since in found)
        assert moved_during_scan == [mover["id"]]
        assert fake.stats.max_in_flight > 1  # histories were fetched concurrently
        history_requests = fake.stats.by_route[
            "GET /v1/workflows/{workflow_id}/leads/{lead_id}/history"
        ]
        assert history_requests == 40


async def test_stalled_refuses_bad_arguments() -> None:
    dn = AsyncDialNexa(API_KEY)
    with pytest.raises(TypeError, match="older_than"):
        dn.workflows.leads.stalled("wf_1", older_than=7200)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        dn.workflows.leads.stalled("wf_1", older_than=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone"):
        dn.workflows.leads.stalled("wf_1", older_than=timedelta(1), now=datetime(2026, 1, 1))
