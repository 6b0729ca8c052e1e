"""The key is not reachable from any exception: attributes, chain, tracebacks and the local
variables of their frames, as the standard library and a real error tracker (sentry-sdk, with an
in-process transport) record them."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import sentry_sdk
from aiohttp import web
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from dialnexa_async import AsyncDialNexa, DialNexaError
from dialnexa_async.testing import FakeDialNexa, Hostile

from ._hostile import raw_server, reachable_texts, read_request

# A module constant, not a local: the test's own frames must not be what holds it.
SECRET = "sk_live_7f3a9c1e5b2d4f6a8c0e"


class _Captured(Transport):
    """A sentry transport that keeps every envelope in memory instead of sending it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


@pytest.fixture
def tracker() -> Iterator[_Captured]:
    """sentry-sdk as an application configures it (frames' local variables recorded: its
    default, checked by the tests below)."""
    transport = _Captured()
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1", transport=transport, default_integrations=False
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # back to no client


def _event_text(transport: _Captured) -> str:
    parts = []
    for envelope in transport.envelopes:
        for item in envelope.items:
            payload = item.payload.json if item.payload.json is not None else item.payload.bytes
            parts.append(json.dumps(payload, default=str))
    return "\n".join(parts)


def _with_locals(exc: BaseException) -> str:
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


async def _slow(request: web.Request) -> None:
    await asyncio.sleep(2)


async def _timeout(url: str) -> None:
    async with AsyncDialNexa(SECRET, base_url=url, timeout=0.2, max_retries=0) as dn:
        await dn.campaign_leads.get("lead_1")


async def _scan_timeout(url: str) -> None:
    async with AsyncDialNexa(SECRET, base_url=url, timeout=0.2, max_retries=1) as dn:
        await dn.workflows.leads.list("wf_1").collect()


async def _upload_timeout(url: str) -> None:
    async with AsyncDialNexa(SECRET, base_url=url, timeout=0.2, max_retries=0) as dn:
        await dn.workflows.leads.enroll(
            "wf_1", [{"phone_number": "+919800000001"}], raise_on_error=True
        )


async def _nul_header(url: str) -> None:
    async with AsyncDialNexa(SECRET, base_url=url) as dn:
        await dn.campaign_leads.get("lead_1", extra_headers={"X-Trace": "a\x00b"})


async def _refused(url: str) -> None:
    async with AsyncDialNexa(SECRET, base_url="http://127.0.0.1:9/v1", max_retries=0) as dn:
        await dn.campaign_leads.get("lead_1")


async def _not_found(url: str) -> None:
    async with AsyncDialNexa(SECRET, base_url=url) as dn:
        await dn.workflows.get("wf_missing")


async def _key_with_a_line_break(url: str) -> None:
    AsyncDialNexa(SECRET + "\r\nX-Evil: 1", base_url=url)


CALLS: dict[str, Callable[[str], Awaitable[None]]] = {
    "attempt timeout": _timeout,
    "scan timeout": _scan_timeout,
    "upload timeout": _upload_timeout,
    "NUL in a header": _nul_header,
    "connection refused": _refused,
    "404": _not_found,
    "key with a line break": _key_with_a_line_break,
}


@pytest.fixture
async def slow_server() -> AsyncIterator[str]:
    async with FakeDialNexa(api_key=SECRET, interceptor=_slow) as fake:
        yield fake.url


async def _raised(name: str, url: str) -> BaseException:
    try:
        await CALLS[name](url)
    except (DialNexaError, ValueError, TypeError) as exc:
        return exc
    raise AssertionError(f"{name}: nothing was raised")


@pytest.mark.parametrize("name", list(CALLS))
async def test_no_frame_of_an_error_holds_the_key(name: str, slow_server: str) -> None:
    exc = await _raised(name, slow_server)
    assert SECRET not in _with_locals(exc)
    assert not [text for text in reachable_texts(exc) if SECRET in text]


@pytest.mark.parametrize("name", list(CALLS))
async def test_an_error_trackers_event_does_not_hold_the_key(
    name: str, slow_server: str, tracker: _Captured
) -> None:
    exc = await _raised(name, slow_server)
    sentry_sdk.capture_exception(exc)
    sentry_sdk.flush()
    text = _event_text(tracker)
    assert '"vars"' in text  # local variables were recorded: the check below means something
    assert SECRET not in text


async def test_a_key_echoed_in_a_redirect_or_body_is_not_in_the_event(tracker: _Captured) -> None:
    async with FakeDialNexa(api_key=SECRET, hostile=Hostile(echo_key=True)) as fake:
        exc = await _raised("404", fake.url)
    sentry_sdk.capture_exception(exc)
    sentry_sdk.flush()
    assert SECRET not in _event_text(tracker)


async def test_a_broken_http_answer_is_not_a_way_to_the_key(tracker: _Captured) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        await writer.drain()
        writer.close()

    async with raw_server(garbage) as url:
        async with AsyncDialNexa(SECRET, base_url=url, max_retries=0) as dn:
            with pytest.raises(DialNexaError) as caught:
                await dn.campaign_leads.get("lead_1")
    assert SECRET not in _with_locals(caught.value)
    sentry_sdk.capture_exception(caught.value)
    sentry_sdk.flush()
    assert SECRET not in _event_text(tracker)
