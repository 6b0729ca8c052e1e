"""The only aiohttp client code: build a request, authenticate, time out, retry, decipher.

Every request of a session goes through :meth:`Transport.request`, which holds one slot of the
session's :class:`anyio.CapacityLimiter` for each attempt (not while sleeping between attempts),
so that all iterators and calls of a session together never exceed ``max_concurrency``.

What a hostile or broken server cannot do to a caller here:

* **redirect** it: redirects are never followed (a 3xx is a :class:`RedirectError`), so a
  request, its key and its body go to the base URL's host and nowhere else;
* **flood** it: a body is read in chunks, after decompression, and the request fails with
  :class:`APIResponseValidationError` (not retried) once it passes ``max_response_bytes``;
* **stall** it past a per-call ``timeout``: that is one deadline for the whole call (the wait
  for a slot, every attempt, backoff and ``Retry-After`` included), and a ``Retry-After`` that
  does not fit in what is left raises at once instead of sleeping into the deadline;
* **learn** the key from an error: aiohttp exceptions that hold the request's headers are
  replaced in the chain by copies without them, and the key is redacted from server text.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._decipher import decipher
from ._retry import RetryPolicy, parse_retry_after
from ._validate import check_timeout
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    DialNexaError,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Response",
    "Transport",
    "UploadFile",
    "encode_path",
]

# Far above any real page (a 100-lead page is tens of KiB), far below what hurts a process.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_READ_CHUNK = 64 * 1024

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
    error: APIStatusError | APIConnectionError | APIResponseValidationError
    retry_after: float | None


class _TooLarge(Exception):
    """A body passed the session's ``max_response_bytes``."""


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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self.retry = retry
        self.max_concurrency = max_concurrency
        self.max_response_bytes = max_response_bytes
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
            session = aiohttp.ClientSession(connector=connector)
            # aiohttp silently re-sends a GET or DELETE once when a kept-alive connection drops
            # (a private switch, on by default): that attempt would escape the retry budget,
            # the stats and the deadline, so the retry loop here is the only one.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._session = session
        return self._session

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._key}",
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
        parse: bool = True,
    ) -> Response:
        """Send, retrying per the policy, and return the deciphered answer or raise.

        ``path`` must already be encoded (see :func:`encode_path`). ``timeout``, when given, is
        a deadline for the whole call; otherwise each attempt has the session's timeout. A
        status in ``ok_after_retry`` answered to a *retried* attempt is returned as a response,
        not raised: for a DELETE, "not found" after a lost answer means the first attempt
        worked. With ``parse=False`` a 2xx body is not read as JSON.
        """
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        url = URL(self._base_url + path, encoded=True)
        if params:
            url = url.with_query({k: str(v) for k, v in params.items()})
        client = self._client()
        attempt = 0
        while True:
            budget = self._timeout if deadline is None else deadline - time.monotonic()
            outcome = await self._attempt(
                client,
                method,
                path,
                url,
                json=json,
                file=file,
                budget=budget,
                wait_for_slot=deadline is not None,
                attempt=attempt,
                parse=parse,
            )
            if isinstance(outcome, Response):
                return attrs.evolve(outcome, attempts=attempt + 1)
            error = outcome.error
            if isinstance(error, APIResponseValidationError):
                raise _scrubbed(error)
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
                raise _scrubbed(error)
            delay = self.retry.delay(attempt, retry_after=outcome.retry_after)
            if deadline is not None and time.monotonic() + delay >= deadline:
                # The next attempt could not start before the deadline: say so now (a 429
                # keeps its .retry_after) rather than sleep into it.
                raise _scrubbed(error)
            await anyio.sleep(delay)
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
        budget: float,
        wait_for_slot: bool,
        attempt: int,
        parse: bool,
    ) -> Response | _AttemptFailure:
        """One attempt, holding one slot of the session's limiter.

        ``budget`` is the time this attempt may take; with ``wait_for_slot`` (a per-call
        deadline) the wait for a slot is taken out of it too.
        """
        started = time.monotonic()
        acquired = False
        with anyio.move_on_after(budget if wait_for_slot else None):
            await self.limiter.acquire()
            acquired = True
        if not acquired:
            return _AttemptFailure(APITimeoutError(method=method, path=path, body_sent=False), None)
        outcome: Response | _AttemptFailure | None = None
        try:
            remaining = budget - (time.monotonic() - started)
            if remaining <= 0:
                error = APITimeoutError(method=method, path=path, body_sent=False)
                outcome = _AttemptFailure(error, None)
            else:
                outcome = await self._exchange(
                    client, method, path, url, json=json, file=file, timeout=remaining, parse=parse
                )
            return outcome
        finally:
            self.limiter.release()
            logger.debug(
                "%s %s -> %s in %.3fs (attempt %d)",
                method,
                path,
                _outcome_text(outcome),
                time.monotonic() - started,
                attempt + 1,
            )

    async def _exchange(
        self,
        client: aiohttp.ClientSession,
        method: str,
        path: str,
        url: URL,
        *,
        json: Any,
        file: UploadFile | None,
        timeout: float,
        parse: bool,
    ) -> Response | _AttemptFailure:
        data: aiohttp.FormData | None = None
        if file is not None:
            # A fresh form per attempt: a sent payload cannot be sent again.
            data = aiohttp.FormData()
            data.add_field(
                "file", file.data, filename=file.filename, content_type=file.content_type
            )
        client_timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(self._connect_timeout, timeout)
        )
        try:
            async with client.request(
                method,
                url,
                headers=self._headers(None),
                json=json,
                data=data,
                timeout=client_timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                headers: Mapping[str, str] = resp.headers
                body = await self._read(resp)
        except _TooLarge:
            error = APIResponseValidationError(
                f"response body larger than max_response_bytes ({self.max_response_bytes})",
                method=method,
                path=path,
                status_code=status,
                body=None,
            )
            return _AttemptFailure(error, None)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # The connection was never made, so the body was never sent.
            return _AttemptFailure(_connection_error(exc, method, path, sent=False), None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return _AttemptFailure(_connection_error(exc, method, path, sent=True), None)
        try:
            payload = decipher(method, path, status, headers, body, secret=self._key, parse=parse)
        except APIStatusError as exc:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            return _AttemptFailure(exc, retry_after)
        except APIResponseValidationError as exc:
            return _AttemptFailure(exc, None)
        return Response(status=status, payload=payload, attempts=1)

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, decompressed, read in chunks and refused past ``max_response_bytes``."""
        limit = self.max_response_bytes
        declared = resp.content_length
        if declared is not None and declared > limit and not resp.headers.get("Content-Encoding"):
            raise _TooLarge
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            body += chunk
            if len(body) > limit:
                raise _TooLarge
        return bytes(body)


def _outcome_text(outcome: Response | _AttemptFailure | None) -> str:
    """What an attempt came to, for the log line: a status, or the kind of failure."""
    if outcome is None:
        return "cancelled"
    if isinstance(outcome, Response):
        return str(outcome.status)
    error = outcome.error
    if isinstance(error, APIStatusError | APIResponseValidationError):
        return str(error.status_code)
    cause = error.__cause__
    return type(cause if cause is not None else error).__name__


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


def _without_headers(exc: BaseException) -> BaseException:
    """``exc`` itself, or a copy of an aiohttp error without the request headers it holds."""
    info = getattr(exc, "request_info", None)
    if not isinstance(info, aiohttp.RequestInfo):
        return exc
    headers = CIMultiDict(info.headers)
    headers.popall("Authorization", None)
    clean_info = aiohttp.RequestInfo(
        info.url, info.method, CIMultiDictProxy(headers), info.real_url
    )
    clean = copy.copy(exc)
    clean.request_info = clean_info  # type: ignore[attr-defined]
    if hasattr(clean, "history"):
        clean.history = ()  # earlier responses' requests hold it too
    # The constructor's arguments are kept in .args (and shown by repr) as well.
    clean.args = tuple(
        clean_info if arg is info else () if isinstance(arg, tuple) and arg else arg
        for arg in exc.args
    )
    clean.__traceback__ = None  # its frames hold the headers as local variables
    return clean


def _scrubbed(error: DialNexaError) -> DialNexaError:
    """``error`` with no aiohttp exception in its chain that holds the request's headers.

    Each one is replaced by a copy of the same type and message without them (and without the
    frames of its traceback), so ``error.__cause__``/``__context__`` keep saying what happened
    but never lead to ``Authorization: Bearer <key>``.
    """
    current: BaseException = error
    seen: set[int] = set()
    while id(current) not in seen:
        seen.add(id(current))
        cause, context = current.__cause__, current.__context__
        if cause is not None:
            current.__cause__ = _without_headers(cause)
        if context is not None:
            current.__context__ = (
                current.__cause__ if context is cause else _without_headers(context)
            )
        following = current.__cause__ or current.__context__
        if following is None:
            break
        current = following
    return error
