"""The bottom layer: one HTTP attempt, behind a small protocol; aiohttp is its implementation.

Following httpx's transports and gidgethub's ``_request``, everything that speaks HTTP is one
method, :meth:`AsyncTransport.send`: it takes an :class:`HTTPRequest` (one attempt, its URL,
headers, body and time budget) and returns an :class:`HTTPResponse` (status, headers, body
bytes), or raises :class:`~dialnexa_async.APIConnectionError` (with ``body_sent``) when no
answer came. Retries, the session's limiter, deadlines, deciphering and logging sit above it, in
``_client``, and are tested through :class:`~dialnexa_async.testing.MockTransport` as much as
through real sockets.

:class:`AiohttpTransport` is the only aiohttp client code of the package. What it guarantees:

* redirects are never followed (a 3xx comes back as it is, and the layer above raises
  :class:`~dialnexa_async.RedirectError`), so a request, its key and its body go nowhere else;
* a body is read in chunks and decompressed here, a bounded piece at a time (aiohttp's own
  decompression is off: depending on its version it inflates a whole network chunk at once, or
  fails a large body as a connection error), and refused with
  :class:`~dialnexa_async.APIResponseValidationError` once it passes ``max_response_bytes``,
  so a gzip bomb never holds more than that in memory;
* aiohttp exceptions that hold the request's headers (and so the key) never reach a caller:
  they are replaced in the chain by copies of the same type and message without them;
* aiohttp's own silent re-send of a GET or DELETE over a dropped kept-alive connection is off
  on the session it creates, so every attempt is one the retry layer counted.
"""

from __future__ import annotations

import asyncio
import copy
import os
import zlib
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._tracing import aiohttp_trace_configs
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    ClosedError,
    DialNexaError,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AiohttpTransport",
    "AsyncTransport",
    "HTTPRequest",
    "HTTPResponse",
    "UploadFile",
    "encode_path",
    "scrubbed",
]

# Far above any real page (a 100-lead page is tens of KiB), far below what hurts a process.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_READ_CHUNK = 64 * 1024


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
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")


@attrs.frozen(kw_only=True)
class HTTPRequest:
    """One attempt of a request, as the retry layer hands it to a transport.

    Attributes:
        method: ``GET``, ``POST``, ``PATCH`` or ``DELETE``.
        url: The absolute URL, path and query already percent-encoded.
        path: The path relative to the base URL (what errors and logs name).
        headers: The headers to send, ``Authorization`` included (never shown by ``repr``).
        json: A JSON body, or ``None``.
        file: A file to send as the multipart field ``file``, or ``None``.
        timeout: Seconds this attempt may take in all.
        connect_timeout: Seconds to establish a connection.
        max_response_bytes: The largest body to read, counted after decompression.
    """

    method: str
    url: str
    path: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    json: Any = None
    file: UploadFile | None = None
    timeout: float
    connect_timeout: float
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


@attrs.frozen(kw_only=True)
class HTTPResponse:
    """What a transport received: the status, the headers and the body's bytes.

    Attributes:
        status: The HTTP status.
        headers: The response headers (looked up without regard to case by the SDK).
        body: The body, decompressed.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""

    @classmethod
    def json(
        cls, data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> HTTPResponse:
        """A JSON answer, for a :class:`~dialnexa_async.testing.MockTransport` handler."""
        import json  # noqa: PLC0415 - only test handlers build answers

        return cls(
            status=status,
            headers={"Content-Type": "application/json", **(headers or {})},
            body=json.dumps(data).encode(),
        )


@runtime_checkable
class AsyncTransport(Protocol):
    """What sends one attempt: :class:`AiohttpTransport`, or a test's
    :class:`~dialnexa_async.testing.MockTransport`."""

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send ``request`` once; return the answer, or raise
        :class:`~dialnexa_async.APIConnectionError` (``APITimeoutError`` when
        ``request.timeout`` ran out) saying whether the body may have been sent."""
        ...

    async def aclose(self) -> None:
        """Release what the transport holds (connections)."""
        ...


class _TooLarge(Exception):
    """A body passed the request's ``max_response_bytes``."""


class _Undecodable(Exception):
    """A body in a ``Content-Encoding`` the SDK did not ask for, or corrupt."""


class AiohttpTransport:
    """:class:`AsyncTransport` over an ``aiohttp.ClientSession``.

    It creates its session lazily (aiohttp needs a running loop) with a connection pool of
    ``pool_size``, or uses the one passed in and leaves it open on :meth:`aclose`.
    """

    def __init__(
        self, *, session: aiohttp.ClientSession | None = None, pool_size: int = 10
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._pool_size = pool_size
        self._closed = False

    def __repr__(self) -> str:
        return f"<AiohttpTransport owns_session={self._owns_session}>"

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            # Never a new session after aclose(): it would be left open (and warned about).
            raise ClosedError("this transport is closed (its AsyncDialNexa was closed)")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=max(self._pool_size, 10))
            session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=aiohttp_trace_configs() or None,
                # The API authenticates by key, not cookies: a cookie a server sets is never
                # sent back (and no time goes into a jar on every request).
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp silently re-sends a GET or DELETE once when a kept-alive connection drops
            # (a private switch, on by default): that attempt would escape the retry budget,
            # the stats and the deadline, so the retry loop above is the only one.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._session = session
        return self._session

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        data: aiohttp.FormData | None = None
        if request.file is not None:
            # A fresh form per attempt: a sent payload cannot be sent again.
            data = aiohttp.FormData()
            file = request.file
            data.add_field(
                "file", file.data, filename=file.filename, content_type=file.content_type
            )
        timeout = aiohttp.ClientTimeout(
            total=request.timeout, sock_connect=min(request.connect_timeout, request.timeout)
        )
        method, path = request.method, request.path
        status = 0
        error: DialNexaError
        try:
            async with self._client().request(
                method,
                URL(request.url, encoded=True),
                headers={**request.headers, "Accept-Encoding": "gzip, deflate"},
                json=request.json,
                data=data,
                timeout=timeout,
                allow_redirects=False,
                auto_decompress=False,
            ) as resp:
                status = resp.status
                body = await _read(resp, request.max_response_bytes)
                return HTTPResponse(status=status, headers=resp.headers, body=body)
        except _TooLarge:
            error = APIResponseValidationError(
                f"response body larger than max_response_bytes ({request.max_response_bytes})",
                method=method,
                path=path,
                status_code=status,
                body=None,
            )
        except _Undecodable as exc:
            error = APIResponseValidationError(
                f"response body cannot be decoded: {exc}",
                method=method,
                path=path,
                status_code=status,
                body=None,
            )
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # The connection was never made, so the body was never sent.
            error = _connection_error(exc, method, path, sent=False)
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = _connection_error(exc, method, path, sent=True)
        except ValueError as exc:
            # aiohttp refused to build the request (a header it cannot send): nothing left.
            # The SDK checks headers before this; this keeps aiohttp's frames out if one slips.
            error = APIConnectionError(
                f"the request could not be built: {type(exc).__name__}",
                method=method,
                path=path,
                body_sent=False,
            )
        # Raised here, outside the handlers, so that no __context__ points at aiohttp's error.
        raise scrubbed(error)


def _decompressor(encoding: str, first: bytes) -> Any:
    """A zlib decompressor for a body's ``Content-Encoding``, given its first bytes."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=31)
    # "deflate" is meant to be zlib-wrapped; some servers send it raw.
    wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] * 256 + first[1]) % 31 == 0
    return zlib.decompressobj(wbits=15 if wrapped else -15)


async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, decompressed a bounded piece at a time, refused past ``limit`` bytes."""
    encoding = resp.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise _Undecodable(f"Content-Encoding {encoding!r} was not asked for")
    declared = resp.content_length
    if encoding in ("", "identity") and declared is not None:
        if declared > limit:
            raise _TooLarge
        # aiohttp reads exactly the declared length (a longer body is a protocol error), so
        # this is bounded, in one piece, without copying it again.
        return await resp.read()
    body = bytearray()
    inflate = None
    try:
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            if encoding in ("", "identity"):
                body += chunk
            else:
                if inflate is None:
                    inflate = _decompressor(encoding, chunk)
                data = chunk
                while data:
                    # Never more than one byte past the limit from one call.
                    body += inflate.decompress(data, limit - len(body) + 1)
                    if len(body) > limit:
                        raise _TooLarge
                    data = inflate.unconsumed_tail
            if len(body) > limit:
                raise _TooLarge
        if inflate is not None:
            body += inflate.flush()
    except zlib.error as exc:
        raise _Undecodable(str(exc)) from None
    if len(body) > limit:
        raise _TooLarge
    return bytes(body)


def _connection_error(
    exc: BaseException, method: str, path: str, *, sent: bool
) -> APIConnectionError:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        error: APIConnectionError = APITimeoutError(method=method, path=path, body_sent=sent)
    else:
        error = APIConnectionError(
            f"Connection error: {type(exc).__name__}{_why(exc)}",
            method=method,
            path=path,
            body_sent=sent,
        )
    error.__cause__ = exc
    return error


def _why(exc: BaseException) -> str:
    """What the operating system or the server did, in words (never a header, so never the
    key): "connection refused", "name or service not known", "server disconnected"."""
    reason = getattr(exc, "os_error", None) or exc
    if isinstance(reason, OSError) and reason.errno:
        return f" ({os.strerror(reason.errno).lower()})"
    if isinstance(reason, OSError) and reason.strerror:
        return f" ({reason.strerror.lower()})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return " (the server closed the connection without answering)"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        text = str(getattr(exc, "message", "") or "").splitlines()
        return f" ({text[0][:200]})" if text and text[0] else ""
    return ""


def _without_headers(exc: BaseException) -> BaseException:
    """A copy of ``exc`` without a traceback (the frames of aiohttp and asyncio below the
    SDK hold the request's headers as local variables, which error trackers record) and, for
    an aiohttp error, without the request headers it holds."""
    info = getattr(exc, "request_info", None)
    if not isinstance(info, aiohttp.RequestInfo):
        clean = copy.copy(exc)
        clean.__traceback__ = None
        return clean
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


def scrubbed(error: DialNexaError) -> DialNexaError:
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
