"""The only aiohttp client code: build a request, authenticate, time out, retry, decipher.

Every request of a session goes through :meth:`Transport.request`, which holds one slot of the
session's :class:`anyio.CapacityLimiter` for each attempt (not while sleeping between attempts),
so that all iterators and calls of a session together never exceed ``max_concurrency``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import attrs
from yarl import URL

from ._decipher import decipher
from ._retry import RetryPolicy, parse_retry_after
from ._version import __version__
from .errors import APIConnectionError, APIStatusError, APITimeoutError

__all__ = ["Response", "Transport", "UploadFile", "encode_path"]

logger = logging.getLogger("dialnexa_async")

USER_AGENT = f"dialnexa-async/{__version__}"


def encode_path(*segments: str) -> str:
    """``/seg1/seg2`` with every segment percent-encoded as one segment.

    ``/``, ``?``, ``#`` and ``%`` in an id are encoded, and a segment made only of dots is encoded
    too, so no id can climb out of its place in the path.
    """
    parts = []
    for segment in segments:
        encoded = quote(segment, safe="")
        if encoded and set(encoded) == {"."}:
            encoded = encoded.replace(".", "%2E")
        parts.append(encoded)
    return "/" + "/".join(parts)


@attrs.frozen
class UploadFile:
    """A file to send as the multipart field ``file``."""

    filename: str
    content_type: str
    data: bytes


@attrs.frozen
class Response:
    """A deciphered 2xx answer."""

    status: int
    payload: Any
    attempts: int


@attrs.define(eq=False)
class _AttemptFailure:
    error: APIStatusError | APIConnectionError
    retry_after: float | None


class Transport:
    """Sends requests for one :class:`~dialnexa_async.AsyncDialNexa`.

    It owns its ``aiohttp.ClientSession`` unless one was passed in, in which case it leaves that
    session open.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: float,
        connect_timeout: float,
        retry: RetryPolicy,
        max_concurrency: int,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self._auth = f"Bearer {api_key}"
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self.retry = retry
        self.max_concurrency = max_concurrency
        self._session = session
        self._owns_session = session is None
        self._limiter: anyio.CapacityLimiter | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Transport {self._base_url!r}>"

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Created lazily: anyio primitives need a running event loop.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_concurrency)
        return self._limiter

    @property
    def closed(self) -> bool:
        return self._closed

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this AsyncDialNexa is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=max(self.max_concurrency, 10))
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {
            "Authorization": self._auth,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if extra:
            headers.update(extra)
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        file: UploadFile | None = None,
        idempotent: bool,
        timeout: float | None = None,
        ok_after_retry: frozenset[int] = frozenset(),
    ) -> Response:
        """Send, retrying per the policy, and return the deciphered answer or raise.

        ``path`` must already be encoded (see :func:`encode_path`). A status in
        ``ok_after_retry`` answered to a *retried* attempt is returned as a response, not
        raised: for a DELETE, "not found" after a lost answer means the first attempt worked.
        """
        url = URL(self._base_url + path, encoded=True)
        if params:
            url = url.with_query({k: str(v) for k, v in params.items()})
        client = self._client()
        attempt = 0
        while True:
            outcome = await self._attempt(
                client, method, path, url, json=json, file=file, timeout=timeout, attempt=attempt
            )
            if isinstance(outcome, Response):
                return outcome
            error = outcome.error
            if (
                isinstance(error, APIStatusError)
                and attempt
                and error.status_code in ok_after_retry
            ):
                return Response(status=error.status_code, payload=error.body, attempts=attempt + 1)
            if isinstance(error, APIStatusError):
                retry = self.retry.should_retry_status(
                    error.status_code,
                    attempt=attempt,
                    idempotent=idempotent,
                    retry_after=outcome.retry_after,
                )
            else:
                retry = self.retry.should_retry_connection_error(
                    attempt=attempt, idempotent=idempotent, body_sent=error.body_sent
                )
            if not retry:
                raise error
            await anyio.sleep(self.retry.delay(attempt, retry_after=outcome.retry_after))
            attempt += 1

    async def _attempt(
        self,
        client: aiohttp.ClientSession,
        method: str,
        path: str,
        url: URL,
        *,
        json: Any,
        file: UploadFile | None,
        timeout: float | None,
        attempt: int,
    ) -> Response | _AttemptFailure:
        data: aiohttp.FormData | None = None
        if file is not None:
            # A fresh form per attempt: a sent payload cannot be sent again.
            data = aiohttp.FormData()
            data.add_field(
                "file", file.data, filename=file.filename, content_type=file.content_type
            )
        client_timeout = aiohttp.ClientTimeout(
            total=self._timeout if timeout is None else timeout,
            sock_connect=self._connect_timeout,
        )
        started = time.monotonic()
        status: int | str = "-"
        try:
            async with self.limiter:
                try:
                    async with client.request(
                        method,
                        url,
                        headers=self._headers(None),
                        json=json,
                        data=data,
                        timeout=client_timeout,
                    ) as resp:
                        status = resp.status
                        body = await resp.read()
                        headers: Mapping[str, str] = resp.headers
                except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
                    # The connection was never made, so the body was never sent.
                    status = type(exc).__name__
                    return _AttemptFailure(_connection_error(exc, method, path, sent=False), None)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status = type(exc).__name__
                    return _AttemptFailure(_connection_error(exc, method, path, sent=True), None)
        finally:
            logger.debug(
                "%s %s -> %s in %.3fs (attempt %d)",
                method,
                path,
                status,
                time.monotonic() - started,
                attempt + 1,
            )
        try:
            payload = decipher(method, path, resp.status, headers, body)
        except APIStatusError as exc:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            return _AttemptFailure(exc, retry_after)
        return Response(status=resp.status, payload=payload, attempts=attempt + 1)


def _connection_error(
    exc: BaseException, method: str, path: str, *, sent: bool
) -> APIConnectionError:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        error: APIConnectionError = APITimeoutError(method=method, path=path, body_sent=sent)
    else:
        # The exception's text can hold the URL, never the key; keep only its kind.
        error = APIConnectionError(
            f"Connection error: {type(exc).__name__}", method=method, path=path, body_sent=sent
        )
    error.__cause__ = exc
    return error
