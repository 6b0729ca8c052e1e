"""The exceptions the SDK raises, one tree under :class:`DialNexaError`.

::

    DialNexaError
    ├── APIConnectionError            the request did not get an HTTP answer
    │   └── APITimeoutError           ... because a timeout ran out
    ├── APIResponseValidationError    an answer arrived, but not in a shape the SDK understands
    ├── PaginationError               the server paged inconsistently (e.g. ignored ``page``)
    ├── EnrollmentError               an enrolment had failed uploads or ones of unknown outcome
    ├── EnrollmentLockedError         another run holds the enrolment's journal or fleet lock
    ├── LimiterError                  a budget shared with other processes could not be reached
    ├── ClosedError                   (also a RuntimeError) the session or iterator was closed
    ├── SourceValidationError         (also a ValueError) enrolment rows refused before sending
    └── APIStatusError                the server answered with a 3xx/4xx/5xx status
        ├── RedirectError             3xx (``.location``): redirects are never followed
        ├── BadRequestError           400 (``.errors``: row-level enrolment errors)
        ├── AuthenticationError       401
        ├── PermissionDeniedError     403
        ├── NotFoundError             404
        ├── ConflictError             409
        ├── UnprocessableEntityError  422
        ├── RateLimitError            429 (``.retry_after``)
        └── InternalServerError       5xx

Every error carries the request's method and path (never the API key, which is not part of
either). Bad arguments are refused before any request with the built-in ``ValueError`` and
``TypeError``, naming the argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import EnrollmentResult, RowError

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClosedError",
    "ConflictError",
    "DialNexaError",
    "EnrollmentError",
    "EnrollmentLockedError",
    "InternalServerError",
    "LimiterError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedirectError",
    "SourceValidationError",
    "UnprocessableEntityError",
]


class DialNexaError(Exception):
    """The root of every error this SDK raises."""


class _RequestError(DialNexaError):
    """An error tied to one request: keeps its method and path."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path

    def __str__(self) -> str:
        return f"{self.message} ({self.method} {self.path})"


class APIConnectionError(_RequestError):
    """The request could not be completed: DNS, refused or dropped connection, TLS, ...

    Attributes:
        method: The HTTP method.
        path: The request path, relative to the base URL, without query.
        body_sent: ``False`` when the failure certainly happened before the request body was
            sent (so a non-idempotent request was not processed), ``True`` when it may have been.
    """

    def __init__(
        self,
        message: str = "Connection error",
        *,
        method: str,
        path: str,
        body_sent: bool = True,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.body_sent = body_sent


class APITimeoutError(APIConnectionError):
    """A connect or total timeout ran out before the answer arrived."""

    def __init__(self, *, method: str, path: str, body_sent: bool = True) -> None:
        super().__init__("Request timed out", method=method, path=path, body_sent=body_sent)


class APIResponseValidationError(_RequestError):
    """The server answered, but the body is not JSON or not of the expected shape.

    Attributes:
        status_code: The HTTP status of the answer.
        body: The parsed JSON, or a snippet of the text when it was not JSON.
    """

    def __init__(
        self, message: str, *, method: str, path: str, status_code: int, body: object
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status_code = status_code
        self.body = body


class PaginationError(_RequestError):
    """The server paged inconsistently, e.g. it answered every ``page`` with the same leads."""


class APIStatusError(_RequestError):
    """The server answered with an error status.

    Attributes:
        status_code: The HTTP status.
        body: The parsed JSON body, or a snippet of the text when it was not JSON.
        request_id: The server's request id header, when it sent one.
        method: The HTTP method.
        path: The request path, without the base URL and query.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int,
        body: object = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status_code = status_code
        self.body = body
        self.request_id = request_id

    def __str__(self) -> str:
        rid = f", request id {self.request_id}" if self.request_id else ""
        return f"{self.status_code} {self.message} ({self.method} {self.path}{rid})"


class RedirectError(APIStatusError):
    """3xx: the server answered with a redirect, which the SDK never follows.

    Following one would re-send the request, its key and its body (an enrolment file holds
    names and phone numbers) to wherever the server points, or turn a POST into a GET whose
    answer would pass for the POST's. The request was sent once and is not retried.

    Attributes:
        location: The ``Location`` the server pointed to, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int,
        body: object = None,
        request_id: str | None = None,
        location: str | None = None,
    ) -> None:
        super().__init__(
            message,
            method=method,
            path=path,
            status_code=status_code,
            body=body,
            request_id=request_id,
        )
        self.location = location


class BadRequestError(APIStatusError):
    """400: the request was refused as invalid.

    Attributes:
        errors: The row-level enrolment errors the server grouped in its body (empty when it
            sent none), as :class:`~dialnexa_async.models.RowError`; the header is row 1.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int = 400,
        body: object = None,
        request_id: str | None = None,
        errors: Sequence[RowError] = (),
    ) -> None:
        super().__init__(
            message,
            method=method,
            path=path,
            status_code=status_code,
            body=body,
            request_id=request_id,
        )
        self.errors: list[RowError] = list(errors)


class AuthenticationError(APIStatusError):
    """401: the API key is missing or invalid."""


class PermissionDeniedError(APIStatusError):
    """403: the API key may not do this."""


class NotFoundError(APIStatusError):
    """404: the workflow, lead or campaign lead does not exist."""


class ConflictError(APIStatusError):
    """409: the resource is in a state that forbids this (e.g. a lead already removed)."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well formed but semantically invalid."""


class _AnswerWithRetryAfter(APIStatusError):
    """An error answer that may say how long to wait (``Retry-After``): a 429, or a 503."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int,
        body: object = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            method=method,
            path=path,
            status_code=status_code,
            body=body,
            request_id=request_id,
        )
        self.retry_after = retry_after


class RateLimitError(_AnswerWithRetryAfter):
    """429: too many requests.

    Attributes:
        retry_after: Seconds the server asked to wait, when it said (``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int = 429,
        body: object = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            method=method,
            path=path,
            status_code=status_code,
            body=body,
            request_id=request_id,
            retry_after=retry_after,
        )


class InternalServerError(_AnswerWithRetryAfter):
    """5xx: the server failed.

    Attributes:
        retry_after: Seconds the server asked to wait (``Retry-After``, sent with a 503 by a
            server saying it did not take the request on), when it said.
    """


class EnrollmentError(DialNexaError):
    """An enrolment that did not fully go through, with everything it did.

    Raised by ``enroll(..., raise_on_error=True)`` when any upload failed, is unknown or came
    back short (``result.ok`` is false), and by
    every ``enroll`` that had to stop early for a reason outside the API: an ``on_progress``
    callback that raised, a journal that could not be written, the session closed under it.
    Then the cause is the ``__cause__``, uploads in flight were let finish, and rows not sent
    are in ``result.failed``.

    Attributes:
        result: The full :class:`~dialnexa_async.models.EnrollmentResult`: what was enrolled,
            and every failed or unknown upload with its rows and row errors.
    """

    def __init__(self, result: EnrollmentResult, *, reason: str | None = None) -> None:
        failed = len(result.failed)
        unknown = len(result.unknown)
        summary = (
            f"{result.leads_enrolled} leads enrolled, "
            f"{failed} upload(s) failed, {unknown} upload(s) with unknown outcome"
        )
        if result.short:
            summary += f", {len(result.short)} accepted upload(s) enrolled fewer leads than rows"
        super().__init__(
            f"enrolment stopped ({reason}): {summary}"
            if reason
            else f"enrolment incomplete: {summary}"
        )
        self.result = result


class EnrollmentLockedError(DialNexaError):
    """Another run of the same enrolment holds its lock (the journal's file lock, or the
    fleet's lock in Redis): nothing was sent. Run it again once the other run has ended.

    Attributes:
        resource: What is locked: the journal's path, or the fleet lock's key.
    """

    def __init__(self, message: str, *, resource: str) -> None:
        super().__init__(message)
        self.resource = resource


class ClosedError(DialNexaError, RuntimeError):
    """The session (``AsyncDialNexa.aclose()``) or the iterator (``aclose()`` from another
    task) was closed: a call or an iteration that was waiting stops with this, and a call made
    after the session closed sends nothing."""


class LimiterError(DialNexaError):
    """A budget shared with other processes (a :class:`~dialnexa_async.fleet.RedisLimiter`)
    could not be reached, so no slot could be taken: the request was not sent.

    Attributes:
        name: The budget's name.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class SourceValidationError(DialNexaError, ValueError):
    """An enrolment source that cannot be sent; raised before anything is sent.

    Raised for a file that cannot be read (not a workbook, a zip bomb, a sheet beyond the
    workbook limits, text in another encoding), for a header without ``phone_number`` or with a
    repeated column, and for rows that cannot be sent.

    Attributes:
        problems: One :class:`~dialnexa_async.models.RowError` per reason, with the source's row
            numbers (the header is row 1); empty when the file as a whole was refused.
        source: The file name, when the source is a file.
    """

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[RowError] = (),
        source: str | None = None,
    ) -> None:
        details = "; ".join(
            f"{p.message} (rows {', '.join(map(str, p.rows[:10]))}"
            f"{', …' if len(p.rows) > 10 else ''})"
            for p in problems
        )
        super().__init__(f"{message}: {details}" if details else message)
        self.problems: list[RowError] = list(problems)
        self.source = source


_STATUS_CLASSES: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The error class for an HTTP error status."""
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)
