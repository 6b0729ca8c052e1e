"""Retries, timeouts and connection failures over real HTTP."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from dialnexa_async import (
    APIConnectionError,
    APITimeoutError,
    AsyncDialNexa,
    InternalServerError,
    RateLimitError,
)
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY


def failing(
    times: int, status: int, headers: dict[str, str] | None = None
) -> tuple[list[str], object]:
    seen: list[str] = []

    def interceptor(request: web.Request) -> web.Response | None:
        seen.append(request.method)
        if len(seen) <= times:
            return web.json_response(
                {"statusCode": status, "message": "try later"}, status=status, headers=headers
            )
        return None

    return seen, interceptor


async def test_get_is_retried_until_it_succeeds() -> None:
    seen, interceptor = failing(2, 503)
    async with FakeDialNexa(api_key=API_KEY, interceptor=interceptor) as fake:  # type: ignore[arg-type]
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=2, backoff=0.001) as dn:
            lead = await dn.campaign_leads.get(fake.campaign_lead_id or "")
    assert lead.id == fake.campaign_lead_id
    assert seen == ["GET"] * 3


async def test_rate_limit_out_of_retries_carries_retry_after() -> None:
    seen, interceptor = failing(10, 429, {"Retry-After": "0"})
    async with FakeDialNexa(api_key=API_KEY, interceptor=interceptor) as fake:  # type: ignore[arg-type]
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=1, backoff=0.001) as dn:
            with pytest.raises(RateLimitError) as info:
                await dn.workflows.create(title="T")
    assert info.value.retry_after == 0.0
    assert seen == ["POST", "POST"]  # a 429 was certainly not processed: retried


async def test_create_is_not_retried_after_a_500() -> None:
    seen, interceptor = failing(1, 500)
    async with FakeDialNexa(api_key=API_KEY, interceptor=interceptor) as fake:  # type: ignore[arg-type]
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=3) as dn:
            with pytest.raises(InternalServerError):
                await dn.workflows.create(title="T")
    assert seen == ["POST"]
    assert fake.store.workflows == {}


async def test_a_retried_remove_answered_not_found_counts_as_done() -> None:
    calls = 0

    async def lose_first_answer(request: web.Request) -> web.Response | None:
        nonlocal calls
        if request.method != "DELETE":
            return None
        calls += 1
        if calls == 1:
            # Apply the removal, then fail as if the answer was lost.
            workflow = fake.store.workflows[fake.workflow_id or ""]
            lead = workflow.leads.find(request.match_info["lead_id"])
            assert lead is not None
            fake.store.remove_lead(workflow, lead)
            return web.json_response({"statusCode": 502, "message": "bad gateway"}, status=502)
        return None

    async with FakeDialNexa(leads=3, api_key=API_KEY, interceptor=lose_first_answer) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=1, backoff=0.001) as dn:
            lead = (await dn.workflows.leads.page(fake.workflow_id or "")).data[0]
            await dn.workflows.leads.remove(fake.workflow_id or "", lead.id)
    assert calls == 2


async def test_timeout_names_method_and_path() -> None:
    async with FakeDialNexa(api_key=API_KEY, latency=0.5) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=0) as dn:
            with pytest.raises(APITimeoutError) as info:
                await dn.campaign_leads.get("lead_1", timeout=0.05)
    assert (info.value.method, info.value.path) == ("GET", "/campaigns-leads/lead_1")
    assert "GET /campaigns-leads/lead_1" in str(info.value)


async def test_refused_connection_is_a_connection_error_before_sending() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AsyncDialNexa(API_KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0) as dn:
        with pytest.raises(APIConnectionError) as info:
            await dn.workflows.create(title="T")
    assert info.value.body_sent is False
    assert API_KEY not in str(info.value)


async def test_connection_dropped_after_sending_makes_an_upload_unknown() -> None:
    async def drop(request: web.Request) -> web.Response | None:
        if request.method == "POST":
            await request.read()
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.05)
        return None

    async with FakeDialNexa(leads=1, api_key=API_KEY, interceptor=drop) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=3) as dn:
            result = await dn.workflows.leads.enroll(
                fake.workflow_id or "", b"phone_number\n+919800000001\n"
            )
    (unknown,) = result.unknown
    assert unknown.outcome == "unknown"
    assert unknown.rows == [{"phone_number": "+919800000001"}]
    assert isinstance(unknown.error, APIConnectionError)
    assert fake.store.uploads_applied == 0
