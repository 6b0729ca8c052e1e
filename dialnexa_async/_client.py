"""The layer above the transport: authenticate, hold a slot, retry, keep deadlines, decipher, log.

Every request of a session goes through :meth:`Client.request`. Each attempt holds one slot of
the session's :class:`anyio.CapacityLimiter` (not while sleeping between attempts), so that all
iterators and calls of a session together never exceed ``max_concurrency``; the attempt itself
is one :meth:`~dialnexa_async._transport.AsyncTransport.send`.

Deadlines: a per-call ``timeout`` is one deadline for the whole call (the wait for a slot, every
attempt, backoff and ``Retry-After`` included); a ``Retry-After`` that does not fit in what is
left raises at once instead of sleeping into the deadline. Without one, each attempt has the
session's ``timeout``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import quote

import anyio
import attrs

from ._concurrency import same_loop
from ._decipher import decipher, header, redact, request_id
from ._limiter import Lease, Limiter, LocalLimiter
from ._retry import RetryPolicy, parse_retry_after
from ._secret import Secret
from ._transport import AsyncTransport, HTTPRequest, HTTPResponse, UploadFile, scrubbed
from ._validate import check_timeout
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ClosedError,
    DialNexaError,
)

__all__ = ["USER_AGENT", "Client", "Response"]

logger = logging.getLogger("dialnexa_async")

# How long giving a shared slot back may take before it is left to expire.
_RELEASE_SECONDS = 5.0

USER_AGENT = f"dialnexa-async/{__version__}"


@attrs.frozen(kw_only=True)
class Response:
    """A deciphered 2xx answer (or an ``ok_after_retry`` status), with what came with it."""

    status: int
    payload: Any
    attempts: int
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def request_id(self) -> str | None:
        return request_id(self.headers)


@attrs.define(eq=False)
class _Lifecycle:
    """What a session and every client derived from it (``with_options``) share."""

    closed: bool = False
    loop: asyncio.AbstractEventLoop | None = None


class _Call(NamedTuple):
    """What every attempt of one call sends."""

    method: str
    url: str
    path: str
    json: Any
    file: UploadFile | None
    parse: bool


@attrs.define(eq=False)
class _Failure:
    error: APIStatusError | APIConnectionError | APIResponseValidationError
    retry_after: float | None = None


class Client:
    """Sends requests for one :class:`~dialnexa_async.AsyncDialNexa`; see the module docstring."""

    def __init__(
        self,
        *,
        transport: AsyncTransport,
        owns_transport: bool,
        api_key: str,
        base_url: str,
        timeout: float,
        connect_timeout: float,
        retry: RetryPolicy,
        max_concurrency: int,
        max_response_bytes: int,
        limiter: Limiter | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str | int] | None = None,
    ) -> None:
        self.transport = transport
        self._owns_transport = owns_transport
        self._key = Secret(api_key)
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self.retry = retry
        self.max_concurrency = max_concurrency
        self.max_response_bytes = max_response_bytes
        self._local = LocalLimiter(max_concurrency)
        self.shared_limiter = limiter
        self._life = _Lifecycle()
        # Extra headers and query parameters of every request (default_headers, with_options);
        # the SDK's own (Authorization above all) are set after them and win.
        self._extra_headers = dict(headers or {})
        self._extra_query = dict(query or {})
        self._headers = MappingProxyType(self._compose_headers())

    def __repr__(self) -> str:
        return f"<Client {self._base_url!r}>"

    def call_deadline(self, timeout: float | None) -> float:
        """The longest a call can take, in seconds: its own ``timeout`` (one deadline for the
        whole call), else every attempt at the session's timeout and the longest waits
        between them (``Retry-After`` included)."""
        if timeout is not None:
            return timeout
        retries = self.retry.max_retries
        longest_wait = max(self.retry.max_delay, self.retry.max_retry_after)
        return (retries + 1) * self._timeout + retries * longest_wait

    def attempt_deadline(self, timeout: float | None) -> float:
        """The longest one attempt of a call can take, in seconds."""
        return self._timeout if timeout is None else timeout

    def derive(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str | int] | None = None,
    ) -> Client:
        """A client with other options that shares this one's connections, cap, limiter and
        lifecycle (closing either closes both, and the transport once)."""
        twin = copy.copy(self)
        if timeout is not None:
            twin._timeout = timeout
        if retry is not None:
            twin.retry = retry
        twin._extra_headers = {**self._extra_headers, **(headers or {})}
        twin._extra_query = {**self._extra_query, **(query or {})}
        twin._headers = MappingProxyType(twin._compose_headers())
        return twin

    @property
    def closed(self) -> bool:
        return self._life.closed

    async def aclose(self) -> None:
        already = self._life.closed
        self._life.closed = True
        if self._owns_transport and not already:
            await self.transport.aclose()

    def _compose_headers(self) -> dict[str, str]:
        # Built once per client: every attempt sends the same (the transport copies them).
        return {
            **self._extra_headers,
            "Authorization": f"Bearer {self._key.reveal()}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    def _url(self, path: str, params: Mapping[str, str | int] | None) -> str:
        url = self._base_url + path
        if params and self._extra_query and not self._extra_query.keys().isdisjoint(params):
            clash = ", ".join(repr(key) for key in self._extra_query if key in params)
            raise ValueError(f"extra_query and this call's own parameters both set {clash}")
        query = {**self._extra_query, **params} if params else self._extra_query
        if query:
            url += "?" + _query_string(query)
        return url

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

        ``path`` must already be encoded (see :func:`~dialnexa_async._transport.encode_path`).
        A status in ``ok_after_retry`` answered to a *retried* attempt is returned as a
        response, not raised: for a DELETE, "not found" after a lost answer means the first
        attempt worked. With ``parse=False`` a 2xx body is not read as JSON.
        """
        timeout = check_timeout(timeout)
        self._check_open()
        self._check_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        call = _Call(method, self._url(path, params), path, json, file, parse)
        attempt = 0
        # Whether an earlier attempt may have been applied (sent, and no answer said it was
        # not): only then does an ok_after_retry status mean the work was done.
        maybe_applied = False
        while True:
            budget = self._timeout if deadline is None else deadline - time.monotonic()
            outcome = await self._attempt(call, budget, deadline is not None, attempt)
            if isinstance(outcome, Response):
                return outcome
            # The session closed under the attempt (its connections with it): say that.
            self._check_open()
            error = outcome.error
            if (
                isinstance(error, APIStatusError)
                and maybe_applied
                and error.status_code in ok_after_retry
            ):
                return Response(status=error.status_code, payload=error.body, attempts=attempt + 1)
            maybe_applied = maybe_applied or _maybe_applied(outcome)
            if not self._retryable(outcome, attempt, idempotent):
                raise self._give_up(error, attempt)
            delay = self.retry.delay(attempt, retry_after=outcome.retry_after)
            if deadline is not None and time.monotonic() + delay >= deadline:
                # The next attempt could not start before the deadline: say so now (a 429
                # keeps its .retry_after) rather than sleep into it.
                raise self._give_up(error, attempt)
            logger.info(
                "%s %s: retrying in %.2fs after %s (attempt %d failed)",
                method,
                path,
                delay,
                _outcome_text(outcome),
                attempt + 1,
            )
            await anyio.sleep(delay)
            self._check_open()  # closed while waiting to retry: nothing more is sent
            attempt += 1

    def _check_open(self) -> None:
        if self._life.closed:
            raise ClosedError("this AsyncDialNexa is closed")

    def _check_loop(self) -> None:
        self._life.loop = same_loop(
            self._life.loop, "this AsyncDialNexa", "AsyncDialNexa", "its connections"
        )

    def _give_up(self, error: DialNexaError, attempt: int) -> DialNexaError:
        if attempt:
            logger.info("giving up after %d attempts: %s", attempt + 1, error)
        return scrubbed(error)

    def _retryable(self, failure: _Failure, attempt: int, idempotent: bool) -> bool:
        error = failure.error
        if isinstance(error, APIResponseValidationError):
            return False  # an answer came; asking again would get the same
        if isinstance(error, APIStatusError):
            return self.retry.should_retry_status(
                error.status_code,
                attempt=attempt,
                idempotent=idempotent,
                retry_after=failure.retry_after,
            )
        return self.retry.should_retry_connection_error(
            attempt=attempt, idempotent=idempotent, body_sent=error.body_sent
        )

    async def _attempt(
        self, call: _Call, budget: float, wait_counts: bool, attempt: int
    ) -> Response | _Failure:
        """One attempt, holding a slot of the session's cap (and of the shared limiter, if
        any).

        ``budget`` is the time this attempt may take; when ``wait_counts`` (a per-call
        deadline) the wait for slots is taken out of it too.
        """
        method, path = call.method, call.path
        started = time.monotonic()
        if wait_counts:
            leases = await self._acquire_within(budget)
        else:
            leases = await self._acquire()
        if leases is None:
            return _Failure(APITimeoutError(method=method, path=path, body_sent=False))
        outcome: Response | _Failure | None = None
        try:
            remaining = budget - (time.monotonic() - started)
            if remaining <= 0:
                outcome = _Failure(APITimeoutError(method=method, path=path, body_sent=False))
                return outcome
            request = HTTPRequest(
                method=method,
                url=call.url,
                path=path,
                headers=self._headers,
                json=call.json,
                file=call.file,
                timeout=remaining,
                connect_timeout=self._connect_timeout,
                max_response_bytes=self.max_response_bytes,
            )
            try:
                answer = await self.transport.send(request)
            except (APIConnectionError, APIResponseValidationError) as exc:
                outcome = _Failure(exc)
                return outcome
            if answer.status >= 300:
                # An error answer becomes an exception whose traceback keeps this frame (and
                # decipher's): a key the server echoed must be gone from the body they hold.
                answer = attrs.evolve(answer, body=redact(answer.body, self._key))
            outcome = self._decipher(call, answer, attempt + 1)
            if isinstance(outcome, _Failure) and outcome.retry_after is not None:
                # Before the slot goes back: the fleet's pause must be in place before a
                # release can hand the slot to a waiter elsewhere.
                error = outcome.error
                if isinstance(error, APIStatusError):
                    await self._cool_down(error.status_code, outcome.retry_after)
            return outcome
        finally:
            await self._release(leases)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s %s -> %s in %.3fs (attempt %d)",
                    method,
                    path,
                    _outcome_text(outcome),
                    time.monotonic() - started,
                    attempt + 1,
                )

    async def _cool_down(self, status: int, seconds: float) -> None:
        """Tell the shared limiter of a 429's ``Retry-After``: every process sharing it pauses."""
        if status != 429 or self.shared_limiter is None:
            return
        try:
            await self.shared_limiter.cool_down(seconds)
        except Exception:
            # The 429 is what the caller must hear of; the shared pause is best effort.
            logger.warning("could not share a %ss cool-down with the fleet", seconds)

    async def _acquire(self) -> list[Lease]:
        """A slot of the session's cap, then of the shared limiter (waiting as long as it
        takes)."""
        leases = [await self._local.acquire()]
        if self.shared_limiter is not None:
            try:
                leases.append(await self.shared_limiter.acquire())
            except BaseException:
                await self._release(leases)
                raise
        return leases

    async def _acquire_within(self, wait: float) -> list[Lease] | None:
        """The same slots, or ``None`` when ``wait`` seconds ran out first (a slot taken by
        then is given back by :meth:`_acquire` as the wait is cancelled)."""
        with anyio.move_on_after(wait):
            return await self._acquire()
        return None

    async def _release(self, leases: list[Lease]) -> None:
        for lease in reversed(leases):
            if lease is leases[0]:
                await lease.release()  # the session's own: instant, no await inside
                continue
            # A shared slot is given back even when the attempt is cancelled, and an error in
            # giving it back is not the request's: its lease expires on its own.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_SECONDS):
                try:
                    await lease.release()
                except Exception:
                    logger.warning("could not release a shared slot; it expires with its lease")

    def _decipher(self, call: _Call, answer: HTTPResponse, attempts: int) -> Response | _Failure:
        method, path, headers = call.method, call.path, answer.headers
        try:
            payload = decipher(
                method,
                path,
                answer.status,
                headers,
                answer.body,
                secret=self._key,
                parse=call.parse,
            )
        except APIStatusError as exc:
            return _Failure(exc, parse_retry_after(header(headers, "retry-after")))
        except APIResponseValidationError as exc:
            return _Failure(exc)
        return Response(status=answer.status, payload=payload, attempts=attempts, headers=headers)


def _maybe_applied(failure: _Failure) -> bool:
    """Whether a failed attempt may still have been carried out by the server: a connection
    lost after the request went out, or a 500, 502 or 504 (a gateway's backend may have done
    the work), but not an answer saying it was not taken on (a 429, a 503) nor a 4xx."""
    error = failure.error
    if isinstance(error, APIConnectionError):
        return error.body_sent
    if isinstance(error, APIStatusError):
        return error.status_code >= 500 and error.status_code != 503
    return False


@lru_cache(maxsize=256)
def _quoted_key(key: str) -> str:
    # Query keys repeat on every request (page, limit): each is percent-encoded once.
    return quote(key, safe="")


def _query_string(query: Mapping[str, str | int]) -> str:
    """What ``urlencode(query, quote_via=quote)`` gives, without its cost for the keys every
    page repeats and for whole numbers, which need no encoding."""
    return "&".join(
        f"{_quoted_key(key)}={value if type(value) is int else quote(str(value), safe='')}"
        for key, value in query.items()
    )


def _outcome_text(outcome: Response | _Failure | None) -> str:
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
