"""The smaller promises: paths stay under the base URL, a retried removal is "done" only when
its first outcome was unknown, and bad values are typed errors that name the argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dialnexa_async import (
    AsyncDialNexa,
    ConflictError,
    HTTPRequest,
    HTTPResponse,
    NotFoundError,
)
from dialnexa_async.testing import MockTransport

from .conftest import API_KEY


def _client(handler: Callable[[HTTPRequest], HTTPResponse], **options: Any) -> AsyncDialNexa:
    return AsyncDialNexa(API_KEY, transport=MockTransport(handler), backoff=0.001, **options)


@pytest.mark.parametrize(
    "path",
    [
        "/../admin",
        "/%2e%2e/admin",
        "/%2E%2E/admin",
        "/workflows/../../admin",
        "/..",
        "/./x",
        "/a/%2e",
    ],
)
async def test_dot_segments_are_refused_before_sending(path: str) -> None:
    transport = MockTransport(lambda request: HTTPResponse.json({}))
    async with AsyncDialNexa(API_KEY, transport=transport) as dn:
        with pytest.raises(ValueError, match="segments"):
            await dn.request("GET", path)
    assert transport.requests == []


def _answers(*statuses: int) -> Callable[[HTTPRequest], HTTPResponse]:
    left = list(statuses)

    def handler(request: HTTPRequest) -> HTTPResponse:
        status = left.pop(0)
        if status == 599:  # the connection drops after the request went out
            from dialnexa_async import APIConnectionError

            raise APIConnectionError("dropped", method=request.method, path=request.path)
        return HTTPResponse.json({"message": "x"} if status >= 400 else {}, status=status)

    return handler


@pytest.mark.parametrize(
    ("statuses", "error"),
    [((503, 404), NotFoundError), ((429, 409), ConflictError), ((503, 409), ConflictError)],
)
async def test_a_removal_answered_not_processed_then_404_is_not_done(
    statuses: tuple[int, ...], error: type[Exception]
) -> None:
    async with _client(_answers(*statuses)) as dn:
        with pytest.raises(error):
            await dn.workflows.leads.remove("wf_1", "lead_1")


@pytest.mark.parametrize("statuses", [(599, 404), (500, 404), (502, 409), (504, 404)])
async def test_a_removal_whose_first_outcome_was_unknown_then_404_is_done(
    statuses: tuple[int, ...],
) -> None:
    async with _client(_answers(*statuses)) as dn:
        await dn.workflows.leads.remove("wf_1", "lead_1")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda dn: dn.campaign_leads.get("lead_\ud800"), "lead_id|campaign_lead_id|surrogate"),
        (lambda dn: dn.campaign_leads.get("x", extra_headers={"X A": "1"}), "header name"),
        (lambda dn: dn.campaign_leads.get("x", extra_headers={"X(A)": "1"}), "header name"),
        (lambda dn: dn.campaign_leads.get("x", extra_headers={"X-A": "a\x00b"}), "control"),
        (lambda dn: dn.workflows.leads.page("wf", extra_query={"limit[]": "500"}), "limit"),
        (lambda dn: dn.workflows.leads.page("wf", extra_query={"LIMIT": "500"}), "limit"),
        (lambda dn: dn.workflows.leads.page("wf", extra_query={"page[0]": "9"}), "page"),
    ],
)
async def test_bad_values_are_typed_errors_naming_the_argument(call: Any, match: str) -> None:
    transport = MockTransport(lambda request: HTTPResponse.json({}))
    async with AsyncDialNexa(API_KEY, transport=transport) as dn:
        with pytest.raises(ValueError, match=match):
            await call(dn)
    assert transport.requests == []


@pytest.mark.parametrize("key", ["sk_1\r\nX-Evil: 1", "sk_1\nx", "sk\x00x"])
def test_an_api_key_a_header_cannot_carry_is_refused_without_showing_it(key: str) -> None:
    with pytest.raises(ValueError, match="not shown") as caught:
        AsyncDialNexa(key)
    assert "sk_1" not in str(caught.value)
    assert "sk\x00x" not in str(caught.value)
