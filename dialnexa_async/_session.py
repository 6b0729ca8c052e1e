"""``AsyncDialNexa``: configuration, lifecycle, and the resources hung on it."""

from __future__ import annotations

import copy
import functools
import ipaddress
import logging
import os
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import attrs

from ._client import Client
from ._limiter import Limiter
from ._pagination import PagedIterator, close_all
from ._raw import WithRawResponse
from ._retry import DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_RETRIES, RetryPolicy
from ._transport import DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport, AsyncTransport
from ._validate import (
    check_headers,
    check_int_range,
    check_query,
    check_seconds,
    is_header_value,
)
from .resources.campaign_leads import CampaignLeads
from .resources.workflow_leads import WorkflowLeads
from .resources.workflows import Workflows

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MAX_CONCURRENCY", "AsyncDialNexa"]

DEFAULT_BASE_URL = "https://api.dialnexa.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_CONCURRENCY = 8


_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}


def _log_from_environment() -> None:
    """``DIALNEXA_LOG=info|debug`` sends the SDK's log lines to stderr (as ``OPENAI_LOG``
    does). An application that configured logging itself (a handler on the root logger or on
    ``dialnexa_async``) gets the level and keeps its own handlers: no second copy of each
    line."""
    level = _LOG_LEVELS.get(os.environ.get("DIALNEXA_LOG", "").strip().lower())
    sdk = logging.getLogger("dialnexa_async")
    if level is None:
        return
    if sdk.handlers or logging.getLogger().handlers:
        if sdk.level == logging.NOTSET:
            sdk.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    sdk.addHandler(handler)
    sdk.setLevel(level)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: object, allow_insecure_http: bool) -> str:
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    parts = urlsplit(base_url)
    # Checked first, and never echoed: the URL holds a password.
    if "@" in parts.netloc:
        raise ValueError(
            "base_url must not carry credentials (user:password@host); the API key is the "
            "only credential, passed as api_key"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"base_url has an invalid port (1..65535): {base_url!r}")
    if parts.query or parts.fragment or base_url.endswith(("?", "#")):
        raise ValueError(f"base_url must not have a query or fragment: {base_url!r}")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise ValueError(
            "base_url uses plain http to a host other than loopback, which would send the API "
            "key in clear; use https, or pass allow_insecure_http=True"
        )
    return base_url


class AsyncDialNexa:
    """A session with the DialNexa API.

    Use it as ``async with AsyncDialNexa() as dn: ...``, or call :meth:`aclose` when done. One
    session is meant to live as long as the process and to be shared by every task.

    Args:
        api_key: The API key; defaults to ``$DIALNEXA_API_KEY``.
        base_url: Defaults to ``$DIALNEXA_BASE_URL``, else ``https://api.dialnexa.com/v1``.
        timeout: Seconds one request attempt may take. A call's own ``timeout=`` replaces it
            with a deadline for that whole call: waiting for a slot, every attempt, backoff and
            ``Retry-After`` waits included.
        connect_timeout: Seconds to establish a connection.
        max_retries: Retries after a failed attempt (see the README's retry table).
        backoff: The first retry waits up to this many seconds (full jitter), doubling after.
        max_backoff: The longest wait between attempts, in seconds (a server's
            ``Retry-After`` is honoured up to 60 s instead).
        max_concurrency: Requests in flight at once for this whole session, across every call
            and iterator.
        default_headers: Headers sent with every request (the SDK's own, ``Authorization``
            above all, cannot be replaced).
        limiter: A budget shared with other processes that every request attempt also takes
            a slot from, and tells of a 429's ``Retry-After`` (e.g.
            :class:`~dialnexa_async.fleet.RedisLimiter`); it is left open on close.
        session: An ``aiohttp.ClientSession`` to use; it is left open on close.
        transport: An :class:`~dialnexa_async.AsyncTransport` to send every attempt through
            instead of aiohttp (e.g. :class:`~dialnexa_async.testing.MockTransport` in a
            unit test); it is left open on close. Not together with ``session``.
        allow_insecure_http: Allow a plain ``http://`` base URL to a non-loopback host.
        max_response_bytes: The largest response body read, counted after decompression
            (default 32 MiB, far above any real page); a larger one fails the request with
            :class:`~dialnexa_async.APIResponseValidationError`, not retried.

    Attributes:
        workflows: :class:`~dialnexa_async.resources.workflows.Workflows` (with ``.leads``).
        campaign_leads: :class:`~dialnexa_async.resources.campaign_leads.CampaignLeads`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: AsyncTransport | None = None,
        limiter: Limiter | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        _log_from_environment()
        key = api_key if api_key is not None else os.environ.get("DIALNEXA_API_KEY")
        if key is not None and not isinstance(key, str):
            raise TypeError(f"api_key must be a str, got {type(key).__name__}")
        if key is None or not key.strip():
            raise ValueError(
                "no API key: pass api_key=... or set the DIALNEXA_API_KEY environment variable"
            )
        if not is_header_value(key.strip()):
            # Gone from this frame before raising: an error tracker that records the locals
            # of a traceback's frames must not find the key here.
            del key, api_key
            raise ValueError(
                "api_key contains a line break or another character an HTTP header cannot "
                "carry (the key is not shown)"
            )
        url = base_url or os.environ.get("DIALNEXA_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = _check_base_url(url, allow_insecure_http)
        for name, value in (
            ("timeout", timeout),
            ("connect_timeout", connect_timeout),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
        ):
            check_seconds(value, name)
        check_int_range(max_retries, "max_retries", 0)
        check_int_range(max_concurrency, "max_concurrency", 1)
        check_int_range(max_response_bytes, "max_response_bytes", 1)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError("session must be an aiohttp.ClientSession")
        if transport is not None:
            if session is not None:
                raise ValueError("pass session or transport, not both")
            if not isinstance(transport, AsyncTransport):
                raise TypeError("transport must have async send(request) and aclose() methods")
        if limiter is not None and not isinstance(limiter, Limiter):
            raise TypeError("limiter must have async acquire(), cool_down() and aclose() methods")
        self.max_concurrency = max_concurrency
        self._client = Client(
            transport=transport or AiohttpTransport(session=session, pool_size=max_concurrency),
            owns_transport=transport is None,
            api_key=key.strip(),
            base_url=self.base_url,
            timeout=float(timeout),
            connect_timeout=float(connect_timeout),
            retry=RetryPolicy(
                max_retries=max_retries, base_delay=float(backoff), max_delay=float(max_backoff)
            ),
            max_concurrency=max_concurrency,
            max_response_bytes=max_response_bytes,
            limiter=limiter,
            headers=check_headers(default_headers, "default_headers"),
        )
        self._attach(self._client, weakref.WeakSet())

    def _attach(self, client: Client, iterators: weakref.WeakSet[PagedIterator[Any]]) -> None:
        self._client = client
        self._iterators = iterators
        leads = WorkflowLeads(client, iterators)
        self.workflows = Workflows(client, leads, iterators)
        self.campaign_leads = CampaignLeads(client)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> AsyncDialNexa:
        """This session with other options: it shares the connection pool, the cap, the shared
        limiter and the lifecycle (closing one closes both), so it costs nothing to make one
        per call: ``await dn.with_options(timeout=2, extra_headers={"X-Trace": t}).workflows
        .get(wf_id)``.

        Args:
            timeout: Seconds one attempt may take (a call's own ``timeout=`` is still a deadline
                for the whole call).
            max_retries: Retries after a failed attempt.
            extra_headers: Headers added to every request (the SDK's own, ``Authorization``
                above all, cannot be replaced).
            extra_query: Query parameters added to every request.
        """
        retry = self._client.retry
        if max_retries is not None:
            retry = attrs.evolve(retry, max_retries=check_int_range(max_retries, "max_retries", 0))
        client = self._client.derive(
            timeout=None if timeout is None else check_seconds(timeout, "timeout"),
            retry=retry,
            headers=check_headers(extra_headers, "extra_headers"),
            query=check_query(extra_query, "extra_query"),
        )
        twin = copy.copy(self)
        twin.__dict__.pop("with_raw_response", None)  # made afresh, on the twin's resources
        twin._attach(client, self._iterators)
        return twin

    def __repr__(self) -> str:
        # getattr: a half-built session (its __init__ refused an argument) shows too, as in a
        # traceback rendered with its frames' local variables.
        base_url = getattr(self, "base_url", None)
        concurrency = getattr(self, "max_concurrency", None)
        return f"<AsyncDialNexa base_url={base_url!r} max_concurrency={concurrency}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._client.closed

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call an endpoint the SDK does not wrap, with the same authentication, cap, shared
        limiter, retries, deadline and errors as every other call; return the answer's JSON
        (``None`` when empty), with a ``{statusCode, message, data}`` envelope left as sent.

        Args:
            method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE``.
            path: The path under the base URL, e.g. ``"/workflows/wf_1/leads/variable-keys"``:
                it must start with ``/`` and carry no query (use ``params``), no scheme or
                host (the request never leaves the base URL).
            params: The query string.
            json: A JSON body.
            timeout: A deadline for the whole call, retries included.
            idempotent: Whether a failure that may have reached the server can be retried
                (default: yes for GET, PUT and DELETE, no for POST and PATCH).
            extra_headers: Headers added to this call's requests.

        Raises:
            ValueError, TypeError: A bad method or path (nothing is sent).
        """
        verb = method.upper() if isinstance(method, str) else method
        if verb not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise ValueError(f"method must be GET, POST, PUT, PATCH or DELETE, got {method!r}")
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, got {type(path).__name__}")
        if not path.startswith("/") or path.startswith("//") or any(c in path for c in "?# \\"):
            raise ValueError(
                f"path must be a path under the base URL, like '/workflows', without a query, "
                f"a host or spaces: got {path!r}"
            )
        if any(unquote(segment) in (".", "..") for segment in path.split("/")):
            # Dot segments, raw or percent-encoded, would climb out of the base URL at the
            # server or a proxy that normalises paths.
            raise ValueError(f"path must not contain '.' or '..' segments: got {path!r}")
        safe = quote(path, safe="/%:@!$&'()*+,;=-._~")
        if idempotent is None:
            idempotent = verb in ("GET", "PUT", "DELETE")
        headers = check_headers(extra_headers, "extra_headers")
        client = self._client if headers is None else self._client.derive(headers=headers)
        response = await client.request(
            verb, safe, params=params, json=json, idempotent=idempotent, timeout=timeout
        )
        return response.payload

    @functools.cached_property
    def with_raw_response(self) -> WithRawResponse:
        """The same calls, each returning a :class:`~dialnexa_async.RawResponse`: the decoded
        value (``.parsed``) with the answer's ``status_code``, ``headers``, ``request_id`` and
        ``attempts``. ``await dn.with_raw_response.workflows.get(wf_id)``."""
        return WithRawResponse(self.workflows, self.campaign_leads)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every running iterator and close the HTTP session (unless it was passed in)."""
        iterators = list(self._iterators)
        close_all(self._iterators)
        for iterator in iterators:
            await iterator.aclose()
        await self._client.aclose()
