"""Fault injection, secrets, redirects: the SDK under a misbehaving network and server."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dialnexa_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncDialNexa,
    AuthenticationError,
    DialNexaError,
    InternalServerError,
)
from dialnexa_async.testing import FakeDialNexa, Faults

from .conftest import API_KEY, sdk_log_lines

FAULTS = Faults(rate=0.2, seed=7, slow_seconds=0.6)


async def test_a_full_scan_under_20_percent_faults_yields_every_lead_once_in_order() -> None:
    async with FakeDialNexa(leads=10_000, api_key=API_KEY, faults=FAULTS) as fake:
        async with AsyncDialNexa(
            API_KEY, base_url=fake.url, max_retries=10, backoff=0.001, timeout=0.3
        ) as dn:
            iterator = dn.workflows.leads.list(fake.workflow_id or "")
            ids = [lead.id async for lead in iterator]
        expected = [lead["id"] for lead in fake.store.workflows[fake.workflow_id or ""].leads]
    assert ids == expected
    assert iterator.stats.retries > 0
    assert sum(fake.stats.faults.values()) >= 10
    assert set(fake.stats.faults) >= {"500", "502", "503", "429", "drop", "slow"}


async def test_enrolment_under_faults_never_applies_an_upload_twice() -> None:
    rows = [{"phone_number": f"+9198{i:08d}", "n": str(i)} for i in range(600)]
    async with FakeDialNexa(api_key=API_KEY, faults=FAULTS) as fake:
        workflow = fake.store.create_workflow("faults")
        async with AsyncDialNexa(
            API_KEY, base_url=fake.url, max_retries=10, backoff=0.001, timeout=0.3
        ) as dn:
            result = await dn.workflows.leads.enroll(workflow.id, rows, chunk_size=20)
        # Let uploads whose answer was slow or lost finish on the server before counting.
        await asyncio.sleep(FAULTS.slow_seconds + 0.2)
        stored = Counter(lead["phone_number"] for lead in workflow.leads)
    assert max(stored.values()) == 1  # no row was enrolled twice
    accepted = {n for upload in result.uploads for n in [upload.leads_enrolled]}
    assert accepted <= {20}
    assert result.leads_enrolled == 20 * len(result.uploads)
    accounted = len(result.uploads) + len(result.failed) + len(result.unknown)
    assert accounted == 30  # every chunk is accounted for
    assert (
        len(result.uploads)
        <= fake.store.uploads_applied
        <= len(result.uploads) + len(result.unknown)
    )
    for failure in result.failed:  # refused before it was handled: applied nowhere
        assert all(stored[row["phone_number"]] == 0 for row in failure.rows)
    assert result.unknown  # the seed injects drops and slow answers on uploads
    # Unknown: the connection broke after sending, or a 5xx that may have come after applying.
    assert all(
        isinstance(u.error, APIConnectionError | InternalServerError) for u in result.unknown
    )


async def test_a_drop_after_handling_is_unknown_and_not_resent() -> None:
    faults = Faults(rate=1.0, kinds=("drop",))
    async with FakeDialNexa(api_key=API_KEY, faults=faults) as fake:
        workflow = fake.store.create_workflow("drop")
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=5, backoff=0.001) as dn:
            result = await dn.workflows.leads.enroll(workflow.id, b"phone_number\n+919800000001\n")
    assert len(result.unknown) == 1
    assert fake.store.uploads_applied == 1  # applied once, never re-sent


async def test_session_closed_while_iterators_run_leaves_nothing_behind() -> None:
    async with FakeDialNexa(leads=2000, api_key=API_KEY, latency=0.01) as fake:
        connector = aiohttp.TCPConnector()
        async with aiohttp.ClientSession(connector=connector) as session:
            dn = AsyncDialNexa(API_KEY, base_url=fake.url, session=session)
            streams = [
                aiter(dn.workflows.leads.list(fake.workflow_id or "", page_size=10))
                for _ in range(3)
            ]
            for stream in streams:
                await anext(stream)
            await dn.aclose()
            for _ in range(10):
                await asyncio.sleep(0)
            assert [t for t in asyncio.all_tasks() if t.get_name().startswith("dialnexa-")] == []
            assert len(connector._acquired) == 0
            for stream in streams:
                await stream.aclose()  # type: ignore[attr-defined]


async def test_the_key_appears_in_no_log_repr_or_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def bad_json(request: web.Request) -> web.Response | None:
        if request.path.endswith("/campaigns-leads/garbled"):
            return web.Response(text="<html>oops</html>", content_type="text/html")
        return None

    async with FakeDialNexa(leads=50, api_key=API_KEY, latency=0.01, interceptor=bad_json) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=0, timeout=5) as dn:
            texts += [
                repr(dn),
                repr(dn.workflows),
                repr(dn.workflows.leads),
                repr(dn._client),
                repr(dn._client.transport),
            ]
            iterator = dn.workflows.leads.list(fake.workflow_id or "")
            texts += [repr(iterator), repr(iterator.stats)]
            result = await dn.workflows.leads.enroll(
                fake.workflow_id or "", [{"phone_number": "12"}]
            )
            texts += [repr(result), str(result.failed[0].error)]
            calls: list[Any] = [
                dn.campaign_leads.get("missing"),
                dn.campaign_leads.get("garbled"),
                dn.campaign_leads.get("x", timeout=0.001),
                dn.workflows.leads.remove("wf_missing", "x"),
                dn.workflows.create(title="x" * 101),
            ]
            for call in calls:
                try:
                    await call
                except (DialNexaError, ValueError) as exc:
                    texts += [str(exc), repr(exc), repr(exc.__dict__)]
        async with AsyncDialNexa("dnx_wrong_key_99999999", base_url=fake.url) as wrong:
            with pytest.raises(AuthenticationError) as info:
                await wrong.workflows.get("wf_1")
            texts += [str(info.value), repr(info.value.__dict__)]
    async with AsyncDialNexa(API_KEY, base_url="http://127.0.0.1:9/v1", max_retries=0) as dn:
        with pytest.raises(APIConnectionError) as connection:
            await dn.campaign_leads.get("x")
        texts += [str(connection.value), repr(connection.value.__cause__)]
    texts += [record.getMessage() for record in caplog.records]
    assert any("-> 404" in text for text in texts)  # the logs were captured
    assert any(isinstance(t, str) and "not JSON" in t for t in texts)
    for text in texts:
        assert API_KEY not in text
        assert "dnx_wrong_key_99999999" not in text


async def test_each_request_is_logged_once_with_its_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dialnexa_async")
    attempts = 0

    def fail_once(request: web.Request) -> web.Response | None:
        nonlocal attempts
        attempts += 1
        return web.json_response({"message": "busy"}, status=503) if attempts == 1 else None

    async with FakeDialNexa(api_key=API_KEY, interceptor=fail_once) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, backoff=0.001) as dn:
            await dn.campaign_leads.get(fake.campaign_lead_id)
    lines = sdk_log_lines(caplog, logging.DEBUG)
    retries = sdk_log_lines(caplog, logging.INFO)
    assert len(retries) == 1
    assert "retrying in" in retries[0]
    path = f"/campaigns-leads/{fake.campaign_lead_id}"
    assert lines[0].startswith(f"GET {path} -> 503 in ")
    assert lines[0].endswith("(attempt 1)")
    assert lines[1].startswith(f"GET {path} -> 200 in ")
    assert lines[1].endswith("(attempt 2)")


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        ("not json at all", "text/plain", "not JSON"),
        ('{"data": {"a": 1}}', "application/json", r"\$\.data"),
        ('{"data": [{"id": 5, "enrolled_at": "soon"}]}', "application/json", "enrolled_at"),
        ("[1, 2, 3]", "application/json", "expected an object"),
    ],
)
async def test_bad_output_is_one_typed_error(body: str, content_type: str, match: str) -> None:
    def answer(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type=content_type)

    async with FakeDialNexa(api_key=API_KEY, interceptor=answer) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(APIResponseValidationError, match=match) as info:
                await dn.workflows.leads.page("wf_1")
    assert info.value.status_code == 200
    assert not isinstance(info.value, APIStatusError)


async def test_timeouts_per_session_and_per_call() -> None:
    async with FakeDialNexa(api_key=API_KEY, latency=0.3) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, timeout=0.05, max_retries=0) as dn:
            with pytest.raises(APITimeoutError):
                await dn.campaign_leads.get(fake.campaign_lead_id)
            lead = await dn.campaign_leads.get(fake.campaign_lead_id, timeout=2)
    assert lead.id == fake.campaign_lead_id
