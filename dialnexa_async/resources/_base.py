"""What every resource shares: one typed way to send a request and decode its answer.

A resource method checks its arguments, makes one call of :meth:`APIResource._get`,
``_post``, ``_patch`` or ``_delete`` (or hands a page fetcher to an iterator), and returns.
These helpers are also the one place that sees each HTTP answer, which is how
``dn.with_raw_response`` hands out the status, headers and request id with the decoded value.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, Generic, ParamSpec, Self, TypeVar

import attrs

from .._client import Client, Response
from .._convert import decode
from .._pagination import PageFetch
from .._transport import UploadFile
from .._validate import check_headers, check_int_range, check_query, check_timeout

__all__ = ["APIResource", "RawResponse", "to_raw_response"]

T = TypeVar("T")
P = ParamSpec("P")

# Set by to_raw_response for the duration of one call: the answers that call received.
_CAPTURE: ContextVar[list[Response] | None] = ContextVar("dialnexa_raw_responses", default=None)


@attrs.frozen(kw_only=True)
class RawResponse(Generic[T]):
    """A call's decoded value together with the HTTP answer it was decoded from.

    Attributes:
        parsed: What the call returns without ``with_raw_response``.
        status_code: The answer's HTTP status.
        headers: The answer's headers.
        request_id: The server's request id header, when it sent one.
        attempts: How many attempts the request took (1 when it was not retried).
    """

    parsed: T
    status_code: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    request_id: str | None
    attempts: int


def to_raw_response(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[RawResponse[T]]]:
    """``func`` returning a :class:`RawResponse` (of the last answer it received)."""

    @functools.wraps(func)
    async def call(*args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        answers: list[Response] = []
        token = _CAPTURE.set(answers)
        try:
            value = await func(*args, **kwargs)
        finally:
            _CAPTURE.reset(token)
        last = answers[-1]
        return RawResponse(
            parsed=value,
            status_code=last.status,
            headers=last.headers,
            request_id=last.request_id,
            attempts=last.attempts,
        )

    return call


class APIResource:
    """A group of endpoints, sharing the session's :class:`~dialnexa_async._client.Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def _with_extras(
        self, extra_headers: Mapping[str, str] | None, extra_query: Mapping[str, str | int] | None
    ) -> Self:
        """This resource, or, for one call's ``extra_headers``/``extra_query``, a twin whose
        client adds them to every request of that call (connections, cap and limiter shared).

        Checked here, so bad extras are refused before anything is sent.
        """
        headers = check_headers(extra_headers, "extra_headers")
        query = check_query(extra_query, "extra_query")
        if headers is None and query is None:
            return self
        twin = copy.copy(self)
        twin._client = self._client.derive(headers=headers, query=query)
        return twin

    def _concurrency(self, requested: int | None) -> int:
        """What a call may use: the session's cap, or less when the caller asks for less."""
        cap = self._client.max_concurrency
        if requested is None:
            return cap
        return min(check_int_range(requested, "max_concurrency", 1), cap)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        file: UploadFile | None = None,
        idempotent: bool,
        timeout: float | None = None,
        ok_after_retry: frozenset[int] = frozenset(),
        parse: bool = True,
    ) -> Response:
        response = await self._client.request(
            method,
            path,
            params=params,
            json=body,
            file=file,
            idempotent=idempotent,
            timeout=timeout,
            ok_after_retry=ok_after_retry,
            parse=parse,
        )
        answers = _CAPTURE.get()
        if answers is not None:
            answers.append(response)
        return response

    async def _get(
        self,
        path: str,
        *,
        cast_to: type[T],
        params: Mapping[str, str | int] | None = None,
        timeout: float | None = None,
    ) -> T:
        response = await self._send("GET", path, params=params, idempotent=True, timeout=timeout)
        return decode(
            response.payload, cast_to, method="GET", path=path, status_code=response.status
        )

    async def _post(
        self,
        path: str,
        *,
        cast_to: type[T],
        body: Any = None,
        file: UploadFile | None = None,
        timeout: float | None = None,
    ) -> T:
        # A POST creates (a workflow, or leads from a file): retried only when the server
        # certainly did not take it.
        response = await self._send(
            "POST", path, body=body, file=file, idempotent=False, timeout=timeout
        )
        return decode(
            response.payload, cast_to, method="POST", path=path, status_code=response.status
        )

    async def _patch(
        self,
        path: str,
        *,
        body: Any = None,
        timeout: float | None = None,
        ok_after_retry: frozenset[int] = frozenset(),
    ) -> Response:
        # The only PATCH sets a state: retried like a read. Decoded by the caller, which knows
        # what an ok_after_retry answer means.
        return await self._send(
            "PATCH",
            path,
            body=body,
            idempotent=True,
            timeout=timeout,
            ok_after_retry=ok_after_retry,
        )

    async def _delete(
        self,
        path: str,
        *,
        timeout: float | None = None,
        ok_after_retry: frozenset[int] = frozenset(),
    ) -> None:
        # Any 2xx is done, whatever its body says (or fails to say).
        await self._send(
            "DELETE",
            path,
            idempotent=True,
            timeout=timeout,
            ok_after_retry=ok_after_retry,
            parse=False,
        )

    def _page_fetcher(
        self,
        path: str,
        *,
        limit: int,
        params: Mapping[str, str],
        timeout: float | None,
    ) -> PageFetch:
        """Fetches page ``number`` of the list at ``path``: its parsed JSON and its attempts."""
        check_timeout(timeout)

        async def fetch(number: int) -> tuple[Any, int]:
            response = await self._send(
                "GET",
                path,
                params={"page": number, "limit": limit, **params},
                idempotent=True,
                timeout=timeout,
            )
            return response.payload, response.attempts

        return fetch
