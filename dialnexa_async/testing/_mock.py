"""``MockTransport``: the client without sockets, for unit tests of code that uses the SDK."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from dialnexa_async import HTTPRequest, HTTPResponse

__all__ = ["Handler", "MockTransport"]

Handler = Callable[[HTTPRequest], HTTPResponse | Awaitable[HTTPResponse]]


class MockTransport:
    """An :class:`~dialnexa_async.AsyncTransport` that answers every attempt with ``handler``.

    ``AsyncDialNexa(api_key, transport=MockTransport(handler))`` runs everything above the
    transport for real (authentication, the session's cap, retries, deadlines, deciphering,
    decoding) with no socket: ``handler`` gets each attempt's :class:`~dialnexa_async.HTTPRequest`
    and returns an :class:`~dialnexa_async.HTTPResponse` (``HTTPResponse.json(data, status=...)``
    builds one), sync or async, or raises :class:`~dialnexa_async.APIConnectionError` to act
    out a network failure.

    Attributes:
        requests: Every request the handler was given, in order.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[HTTPRequest] = []

    def __repr__(self) -> str:
        return f"<MockTransport requests={len(self.requests)}>"

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, HTTPResponse):
            raise TypeError(f"a MockTransport handler must return an HTTPResponse, got {answer!r}")
        return answer

    async def aclose(self) -> None:
        """Nothing to release."""
