"""The layers above the transport, through ``MockTransport``: retries, the cap, deadlines, logs,
raw responses; and the one iterator shape."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialnexa_async import (
    APIConnectionError,
    APITimeoutError,
    AsyncDialNexa,
    HTTPRequest,
    HTTPResponse,
    InternalServerError,
    ManyPagedIterator,
    NotFoundError,
    PagedIterator,
    RawResponse,
    RedirectError,
    StalledLeads,
    Workflow,
    WorkflowLead,
)
from dialnexa_async._session import DEFAULT_BASE_URL
from dialnexa_async.testing import FakeDialNexa, MockTransport

from .conftest import API_KEY, InFlight, sdk_log_lines

WORKFLOW = {"id": "wf_1", "title": "T", "status": "draft"}


def test_a_request_never_shows_its_headers() -> None:
    request = HTTPRequest(
        method="GET",
        url="https://x/v1/a",
        path="/a",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=1,
        connect_timeout=1,
    )
    assert API_KEY not in repr(request)


async def test_retries_run_above_the_transport() -> None:
    answers = [HTTPResponse.json({"message": "busy"}, status=503), HTTPResponse.json(WORKFLOW)]
    transport = MockTransport(lambda request: answers.pop(0))
    async with AsyncDialNexa(API_KEY, transport=transport, backoff=0.001) as dn:
        workflow = await dn.workflows.get("wf_1")
    assert workflow == Workflow(id="wf_1", title="T", status="draft")
    assert [r.method for r in transport.requests] == ["GET", "GET"]
    first = transport.requests[0]
    assert first.url == "https://api.dialnexa.com/v1/workflows/wf_1"
    assert first.headers["Authorization"] == f"Bearer {API_KEY}"
    assert first.headers["User-Agent"].startswith("dialnexa-async/")


async def test_a_connection_error_from_the_transport_is_retried_when_safe() -> None:
    calls = 0

    def flaky(request: HTTPRequest) -> HTTPResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise APIConnectionError(method=request.method, path=request.path, body_sent=False)
        return HTTPResponse.json(WORKFLOW, status=201)

    async with AsyncDialNexa(API_KEY, transport=MockTransport(flaky), backoff=0.001) as dn:
        await dn.workflows.create(title="T")  # never sent the first time: safe to re-send
    assert calls == 2


async def test_the_session_cap_holds_through_any_transport() -> None:
    in_flight = InFlight()

    async def slow(request: HTTPRequest) -> HTTPResponse:
        await in_flight.hold(0.01)
        return HTTPResponse.json({"id": "lead_1"})

    async with AsyncDialNexa(API_KEY, transport=MockTransport(slow), max_concurrency=3) as dn:
        await asyncio.gather(*(dn.campaign_leads.get(f"lead_{i}") for i in range(20)))
    assert in_flight.peak == 3


async def test_a_deadline_holds_through_any_transport() -> None:
    async def busy(request: HTTPRequest) -> HTTPResponse:
        await asyncio.sleep(0.2)
        return HTTPResponse.json({"message": "busy"}, status=503)

    transport = MockTransport(busy)
    async with AsyncDialNexa(API_KEY, transport=transport, max_retries=10, backoff=0.001) as dn:
        with pytest.raises((InternalServerError, APITimeoutError)):
            await dn.campaign_leads.get("x", timeout=0.3)
    assert len(transport.requests) <= 2


async def test_attempts_are_logged_above_the_transport(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="dialnexa_async")
    answers = [HTTPResponse.json({}, status=502), HTTPResponse.json({"id": "lead_1"})]
    async with AsyncDialNexa(
        API_KEY, transport=MockTransport(lambda r: answers.pop(0)), backoff=0.001
    ) as dn:
        await dn.campaign_leads.get("lead_1")
    lines = sdk_log_lines(caplog, logging.DEBUG)
    retries = sdk_log_lines(caplog, logging.INFO)
    assert len(retries) == 1
    assert "retrying in" in retries[0]
    assert lines[0].startswith("GET /campaigns-leads/lead_1 -> 502 in ")
    assert lines[1].endswith("(attempt 2)")
    assert API_KEY not in caplog.text


async def test_a_redirect_from_any_transport_is_a_redirect_error() -> None:
    answer = HTTPResponse(status=308, headers={"Location": "https://elsewhere/v1"})
    async with AsyncDialNexa(API_KEY, transport=MockTransport(lambda r: answer)) as dn:
        with pytest.raises(RedirectError) as info:
            await dn.campaign_leads.get("x")
    assert info.value.location == "https://elsewhere/v1"


def test_session_and_transport_are_exclusive() -> None:
    import aiohttp

    async def make() -> None:
        async with aiohttp.ClientSession() as session:
            AsyncDialNexa(API_KEY, session=session, transport=MockTransport(lambda r: None))  # type: ignore[arg-type,return-value]

    with pytest.raises(ValueError, match="not both"):
        asyncio.run(make())
    with pytest.raises(TypeError, match="transport"):
        AsyncDialNexa(API_KEY, transport=object())  # type: ignore[arg-type]


# -- with_raw_response -------------------------------------------------------------------------


async def test_raw_responses_carry_status_headers_request_id_and_attempts() -> None:
    answers = [
        HTTPResponse.json({"message": "busy"}, status=503),
        HTTPResponse.json(
            {"statusCode": 200, "message": "ok", "data": WORKFLOW},
            headers={"X-Request-Id": "req_42", "X-RateLimit-Remaining": "7"},
        ),
    ]
    transport = MockTransport(lambda request: answers.pop(0))
    async with AsyncDialNexa(API_KEY, transport=transport, backoff=0.001) as dn:
        raw = await dn.with_raw_response.workflows.get("wf_1")
    assert isinstance(raw, RawResponse)
    assert raw.parsed.id == "wf_1"
    assert raw.status_code == 200
    assert raw.request_id == "req_42"
    assert raw.headers["X-RateLimit-Remaining"] == "7"
    assert raw.attempts == 2


async def test_raw_responses_against_the_fake_server() -> None:
    async with FakeDialNexa(leads=30, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            wf = fake.workflow_id or ""
            created = await dn.with_raw_response.workflows.create(title="Raw")
            page = await dn.with_raw_response.workflows.leads.page(wf, limit=10)
            removed = await dn.with_raw_response.workflows.leads.remove(wf, page.parsed.data[0].id)
            lead = await dn.with_raw_response.campaign_leads.get(fake.campaign_lead_id)
            activated = await dn.with_raw_response.workflows.activate(created.parsed.id)
            with pytest.raises(NotFoundError):
                await dn.with_raw_response.workflows.get("wf_missing")
    assert created.status_code == 201
    assert page.parsed.meta.total == 30
    assert removed.parsed is None
    assert removed.status_code == 200
    assert lead.parsed.id == fake.campaign_lead_id
    assert activated.parsed.status == "active"
    assert created.headers["Content-Type"].startswith("application/json")


# -- one iterator shape ------------------------------------------------------------------------


async def test_every_iterator_has_async_with_aclose_and_stats() -> None:
    async with FakeDialNexa(leads=600, api_key=API_KEY, latency=0.005) as fake:
        other = fake.store.create_workflow("other")
        fake.store.seed_leads(other, 300)
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            wf = fake.workflow_id or ""
            iterators: list[
                PagedIterator[WorkflowLead] | ManyPagedIterator[WorkflowLead] | StalledLeads
            ] = [
                dn.workflows.leads.list(wf, page_size=10),
                dn.workflows.leads.list_many([wf, other.id], page_size=10),
                dn.workflows.leads.stalled(wf, older_than=timedelta(0)),
            ]
            for iterator in iterators:
                async with iterator as it:
                    async for _ in it:
                        break
                assert it.stats is not None
                await it.aclose()  # twice is fine
                for _ in range(5):
                    await asyncio.sleep(0)
                left = [t for t in asyncio.all_tasks() if t.get_name().startswith("dialnexa-")]
                assert left == [], iterator
            many = dn.workflows.leads.list_many([wf, other.id], page_size=100)
            leads = await many.collect()
            assert len(leads) == 900
            assert many.stats.pages_fetched == 9


# Characters with a meaning in a URL, or outside ASCII, mixed into arbitrary text.
url_text = st.text(
    st.sampled_from("/?&=#% +aZ9é-_.~") | st.characters(exclude_categories=["Cs"]), max_size=6
)


@given(
    st.dictionaries(
        url_text.filter(bool), st.one_of(st.integers(), url_text, st.booleans()), max_size=4
    )
)
def test_query_parameters_are_encoded_as_urlencode_would(params: dict[str, object]) -> None:
    sent: list[str] = []

    def answer(request: HTTPRequest) -> HTTPResponse:
        sent.append(request.url)
        return HTTPResponse.json({})

    async def call() -> None:
        async with AsyncDialNexa(API_KEY, transport=MockTransport(answer)) as dn:
            await dn.request("GET", "/workflows", params=params)  # type: ignore[arg-type]

    asyncio.run(call())
    query = urlencode({key: str(value) for key, value in params.items()}, quote_via=quote)
    assert sent == [f"{DEFAULT_BASE_URL}/workflows" + (f"?{query}" if query else "")]
