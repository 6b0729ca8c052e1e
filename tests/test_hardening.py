"""The SDK against hostile servers and careless callers: redirects, floods, deadlines, secrets.

Each test here failed before the hardening it covers.
"""

from __future__ import annotations

import asyncio
import math
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dialnexa_async import (
    APIConnectionError,
    APIResponseValidationError,
    AsyncDialNexa,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    PaginationError,
    RateLimitError,
    RedirectError,
)
from dialnexa_async.testing import FakeDialNexa, Hostile

from ._hostile import assert_no_secret, raw_server, read_request
from .conftest import API_KEY

MiB = 1024 * 1024


# -- redirects are never followed ----------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_a_typed_error_sent_once_and_never_followed(status: int) -> None:
    async with FakeDialNexa(api_key=API_KEY) as elsewhere:
        target = f"{elsewhere.url}/workflows/wf_x/leads"
        hostile = Hostile(redirect_to=target, redirect_status=status)
        async with FakeDialNexa(api_key=API_KEY, hostile=hostile) as fake:
            async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=5) as dn:
                result = await dn.workflows.leads.enroll("wf_1", b"phone_number\n+919800000001\n")
                with pytest.raises(RedirectError) as read:
                    await dn.campaign_leads.get("lead_1")
    [failure] = result.failed
    for error in (failure.error, read.value):
        assert isinstance(error, RedirectError)
        assert error.status_code == status
        assert error.location == target
    assert fake.stats.requests == 2  # each sent once, neither retried
    assert elsewhere.stats.requests == 0  # the file and the key went nowhere else


async def test_a_redirect_loop_is_one_request_not_thirty() -> None:
    async with FakeDialNexa(api_key=API_KEY) as fake:
        fake.hostile = Hostile(redirect_to=f"{fake.url}/campaigns-leads/x", redirect_status=302)
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=3) as dn:
            with pytest.raises(RedirectError):
                await dn.campaign_leads.get("x")
    assert fake.stats.requests == 1


# -- responses of any size -----------------------------------------------------------------


async def test_an_oversize_body_fails_once_past_max_response_bytes() -> None:
    async with FakeDialNexa(api_key=API_KEY, hostile=Hostile(oversize_bytes=8 * MiB)) as fake:
        async with AsyncDialNexa(
            API_KEY, base_url=fake.url, max_response_bytes=1 * MiB, max_retries=3
        ) as dn:
            with pytest.raises(APIResponseValidationError, match="max_response_bytes"):
                await dn.workflows.leads.page("wf_1")
    assert fake.stats.requests == 1  # not retried


async def test_a_gzip_bomb_is_refused_with_bounded_memory() -> None:
    bomb = Hostile(gzip_bomb_bytes=160 * MiB)
    async with FakeDialNexa(api_key=API_KEY, hostile=bomb) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=0) as dn:
            with pytest.raises(APIResponseValidationError):
                await dn.campaign_leads.get("warm-up")  # builds and caches the bomb
            tracemalloc.start()
            try:
                with pytest.raises(APIResponseValidationError, match="max_response_bytes"):
                    await dn.campaign_leads.get("x")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    # Read up to the default 32 MiB, then refused: never the 160 MiB it inflates to.
    assert peak < 80 * MiB


async def test_deeply_nested_json_is_a_typed_error_for_errors_and_answers() -> None:
    async with FakeDialNexa(api_key=API_KEY, hostile=Hostile(deep_json=100_000)) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(BadRequestError) as info:
                await dn.campaign_leads.get("x")
            assert isinstance(info.value.body, str)  # kept as a snippet of the text

            def deep_ok(request: web.Request) -> web.Response:
                return web.Response(body=b"[" * 100_000 + b"]" * 100_000)

            fake.hostile = Hostile()
            fake.interceptor = deep_ok
            with pytest.raises(APIResponseValidationError, match="not JSON"):
                await dn.campaign_leads.get("x")


async def test_a_long_error_message_is_cut() -> None:
    def long_message(request: web.Request) -> web.Response:
        return web.json_response({"message": "x" * 100_000}, status=400)

    async with FakeDialNexa(api_key=API_KEY, interceptor=long_message) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(BadRequestError) as info:
                await dn.campaign_leads.get("x")
    assert len(info.value.message) <= 2001
    assert len(str(info.value)) < 2200


# -- deadlines -----------------------------------------------------------------------------


def rate_limited(retry_after: str) -> Any:
    def answer(request: web.Request) -> web.Response:
        return web.json_response(
            {"message": "slow down"}, status=429, headers={"Retry-After": retry_after}
        )

    return answer


@pytest.mark.parametrize("timeout", [2.0, None])
async def test_a_retry_after_that_does_not_fit_raises_at_once(timeout: float | None) -> None:
    async with FakeDialNexa(api_key=API_KEY, interceptor=rate_limited("3600")) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=2) as dn:
            with pytest.raises(RateLimitError) as info:
                await dn.campaign_leads.get("x", timeout=timeout)
    assert info.value.retry_after == 3600
    assert fake.stats.requests == 1


async def test_a_retry_after_that_fits_is_waited_for() -> None:
    async with FakeDialNexa(api_key=API_KEY, interceptor=rate_limited("0.05")) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=2) as dn:
            with pytest.raises(RateLimitError):
                await dn.campaign_leads.get("x", timeout=5)
    assert fake.stats.requests == 3


async def test_a_per_call_timeout_bounds_every_attempt_and_wait_together() -> None:
    def busy(request: web.Request) -> web.Response:
        return web.json_response({"message": "busy"}, status=503)

    async with FakeDialNexa(api_key=API_KEY, latency=0.3, interceptor=busy) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=10, backoff=0.001) as dn:
            with pytest.raises((InternalServerError, APIConnectionError)):
                await dn.campaign_leads.get("x", timeout=0.5)
    # 0.3 s per answer leaves room for two attempts in 0.5 s, not eleven.
    assert fake.stats.requests <= 2


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("5", TypeError),
        (True, TypeError),
    ],
)
async def test_an_invalid_per_call_timeout_is_refused_before_sending(
    timeout: Any, error: type[Exception]
) -> None:
    async with FakeDialNexa(leads=5, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            workflow = fake.workflow_id or ""
            calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: dn.campaign_leads.get("x", timeout=timeout),
                lambda: dn.workflows.get(workflow, timeout=timeout),
                lambda: dn.workflows.leads.page(workflow, timeout=timeout),
                lambda: dn.workflows.leads.remove(workflow, "x", timeout=timeout),
                lambda: dn.workflows.leads.list(workflow, timeout=timeout).collect(),
                lambda: dn.workflows.leads.enroll(
                    workflow, [{"phone_number": "+919800000001"}], timeout=timeout
                ),
            ]
            for call in calls:
                with pytest.raises(error, match="timeout"):
                    await call()
    assert fake.stats.requests == 0


@pytest.mark.parametrize("setting", [math.nan, math.inf, "5"])
def test_an_invalid_session_timeout_is_refused(setting: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="timeout"):
        AsyncDialNexa(API_KEY, timeout=setting)


# -- secrets -------------------------------------------------------------------------------


async def test_a_key_echoed_by_the_server_is_redacted() -> None:
    async with FakeDialNexa(api_key=API_KEY, hostile=Hostile(echo_key=True)) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(AuthenticationError) as info:
                await dn.campaign_leads.get("x")
    assert "redacted" in str(info.value)
    assert_no_secret(info.value, API_KEY)


async def test_no_error_reaches_the_key_through_its_chain() -> None:
    async def malformed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello")
        await writer.drain()
        writer.close()

    async with raw_server(malformed) as url:
        async with AsyncDialNexa(API_KEY, base_url=url, max_retries=0) as dn:
            with pytest.raises(APIConnectionError) as info:
                await dn.campaign_leads.get("x")
    cause = info.value.__cause__
    assert isinstance(cause, aiohttp.ClientResponseError)  # its kind and message are kept
    assert_no_secret(info.value, API_KEY)


async def test_a_cookie_a_server_sets_is_never_sent_back() -> None:
    cookies: list[str | None] = []

    def answer_with_cookie(request: web.Request) -> web.Response:
        cookies.append(request.headers.get("Cookie"))
        response = web.json_response({"ok": True})
        response.set_cookie("session", "from-the-server")
        return response

    async with FakeDialNexa(api_key=API_KEY, interceptor=answer_with_cookie) as fake:
        # By name: a cookie jar keeps no cookie of a bare IP address.
        by_name = fake.url.replace("127.0.0.1", "localhost")
        async with AsyncDialNexa(API_KEY, base_url=by_name) as dn:
            for _ in range(3):
                await dn.request("GET", "/workflows")
    assert cookies == [None, None, None]


def test_credentials_in_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        AsyncDialNexa(API_KEY, base_url="https://admin:hunter2@api.example.com/v1")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["https://api.example.com:99999/v1", "https://api.example.com/v1?x=1", "https://h/v1#frag"],
)
def test_a_base_url_that_would_fail_later_is_refused_now(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        AsyncDialNexa(API_KEY, base_url=url)


# -- every attempt counts ------------------------------------------------------------------


async def test_a_dropped_connection_is_resent_only_by_the_retry_budget() -> None:
    requests = 0

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        try:
            await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        requests += 1
        writer.close()

    async with raw_server(drop) as url:
        async with AsyncDialNexa(API_KEY, base_url=url, max_retries=2, backoff=0.001) as dn:
            with pytest.raises(APIConnectionError):
                await dn.campaign_leads.get("x")
            with pytest.raises(APIConnectionError):
                await dn.workflows.leads.remove("wf_1", "x")
    assert requests == 6  # 3 attempts each, not 6 each


# -- pagination that never ends or silently stops ------------------------------------------


async def test_a_server_cycling_through_two_pages_is_stopped() -> None:
    cycling = Hostile(cycle_pages=2, meta={"totalPages": 1_000_000, "total": 100_000_000})
    async with FakeDialNexa(leads=1000, api_key=API_KEY, hostile=cycling) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=8) as dn:
            with pytest.raises(PaginationError, match="cycle"):
                async for _ in dn.workflows.leads.list(fake.workflow_id or ""):
                    pass
    assert fake.stats.requests < 60


@pytest.mark.parametrize(
    "meta", [{"totalPages": 1}, {"total": 100}, {"totalPages": 1, "total": 150}]
)
async def test_disagreeing_counts_never_cut_a_scan_short(meta: dict[str, int]) -> None:
    async with FakeDialNexa(leads=300, api_key=API_KEY, hostile=Hostile(meta=meta)) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            leads = await dn.workflows.leads.list(fake.workflow_id or "").collect()
    assert len(leads) == 300
    assert len({lead.id for lead in leads}) == 300


async def test_many_leads_inserted_mid_scan_are_not_yielded_twice() -> None:
    inserted = False

    def insert_500(request: web.Request) -> None:
        nonlocal inserted
        if request.query.get("page") == "10" and not inserted:
            inserted = True
            workflow = fake.store.workflows[fake.workflow_id or ""]
            for i in range(500):
                fake.store.add_lead(workflow, f"+9190{i:08d}", front=True)

    async with FakeDialNexa(leads=5000, api_key=API_KEY, interceptor=insert_500) as fake:
        original = [lead["id"] for lead in fake.store.workflows[fake.workflow_id or ""].leads]
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=8) as dn:
            iterator = dn.workflows.leads.list(fake.workflow_id or "")
            ids = [lead.id async for lead in iterator]
    assert inserted
    assert len(ids) == len(set(ids))  # no lead twice
    assert set(original) <= set(ids)  # an insertion ahead only shifts leads forward
    assert iterator.stats.duplicates_dropped >= 500


async def test_max_pages_guards_a_scan() -> None:
    async with FakeDialNexa(leads=500, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            iterator = dn.workflows.leads.list(fake.workflow_id or "", page_size=10, max_pages=5)
            with pytest.raises(PaginationError, match="max_pages=5"):
                await iterator.collect()
            assert (
                len(await dn.workflows.leads.list(fake.workflow_id or "", max_pages=5).collect())
                == 500
            )
    assert fake.stats.by_route["GET /v1/workflows/{workflow_id}/leads"] <= 5 + 5
