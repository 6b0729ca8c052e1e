"""Pure: turn an HTTP answer (status, headers, body bytes) into JSON data or a typed error.

Kept apart from the transport so that every status → error rule is tested without a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._coerce import whole_number
from ._retry import parse_retry_after
from ._secret import Secret
from .errors import (
    APIResponseValidationError,
    APIStatusError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    RedirectError,
    status_error_class,
)
from .models import RowError

__all__ = [
    "JSON_PARSER",
    "MAX_MESSAGE_CHARS",
    "REQUEST_ID_HEADERS",
    "decipher",
    "decode_row_errors",
    "error_from_response",
    "header",
    "parse_json",
    "request_id",
    "snippet",
]

# orjson, when installed (the ``speedups`` extra), parses a page about twice as fast as the
# standard library; every parse goes through this one name.
_loads: Callable[[bytes], Any]
try:
    from orjson import loads as _loads
except ModuleNotFoundError:  # pragma: no cover - the dev extra installs orjson
    _loads = json.loads
JSON_PARSER = _loads.__module__ or "json"

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-dialnexa-request-id")
_SNIPPET_CHARS = 200
# A server's message kept on an exception (and printed by the CLI) is cut to this length.
MAX_MESSAGE_CHARS = 2000
REDACTED = "[redacted]"
_NO_BODY = object()


def _cut(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def redact(body: bytes, secret: Secret | None) -> bytes:
    """``body`` with every occurrence of ``secret`` replaced, for text kept on an error."""
    if secret is None or not secret.reveal():
        return body
    return body.replace(secret.reveal().encode(), REDACTED.encode())


def snippet(body: bytes) -> str:
    """The start of a body as text, for error messages (never the whole of a large body)."""
    text = body[: _SNIPPET_CHARS * 4].decode("utf-8", errors="replace")
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…"


# The standard library's parser recurses once per level and raises RecursionError past about a
# thousand; some CPython 3.11 releases then fail a later, unrelated compile() (attrs builds
# methods with it) with "AST constructor recursion depth mismatch". So it is never let near
# its limit: nesting deeper than this is refused before it parses (orjson has its own limit).
MAX_JSON_DEPTH = 512
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether ``body`` opens more than ``limit`` arrays or objects inside one another
    (strings skipped). Counting first keeps the usual page (a few hundred brackets) cheap."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for token in _JSON_TOKEN.finditer(body):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


def _stdlib_loads(body: bytes) -> Any:
    if _nested_deeper_than(body, MAX_JSON_DEPTH):
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return json.loads(body)


def parse_json(body: bytes) -> Any:
    """The JSON in ``body``, or :data:`_NO_BODY` when it is empty, or raise ``ValueError``."""
    if not body.strip():
        return _NO_BODY
    if _loads is json.loads:
        return _stdlib_loads(body)
    try:
        return _loads(body)
    except ValueError:
        # orjson refuses some JSON the standard library reads (NaN, Infinity).
        return _stdlib_loads(body)


def header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def request_id(headers: Mapping[str, str]) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = header(headers, name)
        if value:
            return value
    return None


def _server_message(body: object, status: int) -> str:
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, list):
            # NestJS-style validation answers send a list of strings.
            return "; ".join(str(m) for m in message)
        if isinstance(message, str) and message:
            return message
        error = body.get("error")
        if isinstance(error, str) and error:
            return error
    if isinstance(body, str) and body:
        return body
    return f"HTTP {status}"


def decode_row_errors(body: Any) -> list[RowError]:
    """The row-level errors of an enrolment's 400 body, in any of the shapes the SDK tolerates.

    Grouped (``errors: [{code, field, message, rows: [...]}]``) or flat
    (``errors: [{row, message}]``); anything else gives no row errors (the message stays on the
    exception). Never raises.
    """
    if not isinstance(body, Mapping):
        return []
    raw = body.get("errors")
    if raw is None and isinstance(body.get("data"), Mapping):
        raw = body["data"].get("errors")
    if not isinstance(raw, list):
        return []
    out: list[RowError] = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            continue
        rows = entry.get("rows")
        if rows is None and entry.get("row") is not None:
            rows = [entry["row"]]
        message = entry.get("message")
        try:
            out.append(
                RowError(
                    message=str(message) if message is not None else "invalid row",
                    rows=[whole_number(r) for r in rows or []],
                    code=None if entry.get("code") is None else str(entry["code"]),
                    field=None if entry.get("field") is None else str(entry["field"]),
                )
            )
        except TypeError:
            continue
    return out


def error_from_response(
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: Secret | None = None,
) -> APIStatusError:
    """The typed error for an error status; the body is parsed when JSON, a snippet otherwise.

    ``secret`` (the API key) is redacted from everything kept, should a server echo it.
    """
    body = redact(body, secret)
    try:
        parsed: object = parse_json(body)
    except ValueError:
        parsed = snippet(body)
    if parsed is _NO_BODY:
        parsed = None
    message = _cut(_server_message(parsed, status))
    rid = request_id(headers)
    cls = status_error_class(status)
    common: dict[str, Any] = {
        "method": method,
        "path": path,
        "status_code": status,
        "body": parsed,
        "request_id": rid,
    }
    if cls is BadRequestError:
        return BadRequestError(message, errors=decode_row_errors(parsed), **common)
    if cls is RateLimitError or cls is InternalServerError:
        retry_after = parse_retry_after(header(headers, "retry-after"))
        return cls(message, retry_after=retry_after, **common)
    return cls(message, **common)


def decipher(
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: Secret | None = None,
    parse: bool = True,
) -> Any:
    """The JSON payload of a 2xx answer (``None`` when empty), or raise the typed error.

    With ``parse=False`` a 2xx body is not read as JSON (``None`` is returned): for calls whose
    answer carries nothing the SDK needs, so that ``200 "Deleted"`` as plain text is a success.
    """
    if status >= 400:
        raise error_from_response(method, path, status, headers, body, secret=secret)
    if status >= 300:
        location = header(headers, "location")
        if location is not None and secret is not None:
            location = location.replace(secret.reveal(), REDACTED)
        raise RedirectError(
            f"the server redirected to {location!r}; redirects are not followed"
            if location
            else f"unexpected redirect ({status}) not followed",
            method=method,
            path=path,
            status_code=status,
            body=snippet(redact(body, secret)),
            request_id=request_id(headers),
            location=location,
        )
    if not parse:
        return None
    try:
        parsed = parse_json(body)
    except ValueError:
        text = snippet(redact(body, secret))
        raise APIResponseValidationError(
            f"response is not JSON: {text!r}",
            method=method,
            path=path,
            status_code=status,
            body=text,
        ) from None
    return None if parsed is _NO_BODY else parsed
