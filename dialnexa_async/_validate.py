"""Pure argument checks, run before any request: ``TypeError`` for a wrong type, ``ValueError``
for a wrong value, each naming the argument."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_TITLE_LENGTH",
    "check_choice",
    "check_headers",
    "check_id",
    "check_int_range",
    "check_query",
    "check_seconds",
    "check_timeout",
]

MAX_PAGE_SIZE = 100
MAX_TITLE_LENGTH = 100


def check_id(value: object, name: str) -> str:
    """A non-empty id string without whitespace."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if any(ch.isspace() for ch in value):
        raise ValueError(f"{name} must not contain whitespace: {value!r}")
    if not _encodable(value):
        raise ValueError(f"{name} is not valid text (a lone surrogate): {value!r}")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# RFC 9110 token characters: what a header name may be made of.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def is_header_name(name: str) -> bool:
    """Whether ``name`` is an HTTP token (RFC 9110), as a header name must be."""
    return bool(name) and all(ch in _TOKEN for ch in name)


def is_header_value(value: str) -> bool:
    """Whether ``value`` can be sent as a header value: no control character but a tab (so no
    line break, no NUL), and nothing outside Latin-1 (HTTP/1.1 sends header bytes as such)."""
    return all(
        ch == "\t" or (" " <= ch <= "~") or ("\x80" <= ch <= "\xff" and ch != "\x7f")
        for ch in value
    )


def check_int_range(value: object, name: str, low: int, high: int | None = None) -> int:
    """An int (not bool) within ``low..high`` inclusive."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_choice(value: object, name: str, choices: type[enum.StrEnum]) -> str:
    """One of the enum's values (an enum member or its string)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    allowed: Iterable[str] = [member.value for member in choices]
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def check_title(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"title must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError("title must not be empty")
    if len(value) > MAX_TITLE_LENGTH:
        raise ValueError(f"title must be at most {MAX_TITLE_LENGTH} characters, got {len(value)}")
    return value


def check_optional_str(value: object, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    return value


def check_seconds(value: object, name: str) -> float:
    """A finite, positive number of seconds (``0``, negatives, ``nan`` and ``inf`` are refused:
    each would silently turn a timeout off or overflow the event loop's clock)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def check_timeout(value: object, name: str = "timeout") -> float | None:
    """A per-call timeout: ``None`` (the session's) or :func:`check_seconds`."""
    return None if value is None else check_seconds(value, name)


# Headers the SDK sets itself on every request: the key, what it accepts (it decompresses only
# what it asked for), who it is, and what HTTP itself derives from the request.
SDK_HEADERS = frozenset(
    {
        "authorization",
        "accept",
        "accept-encoding",
        "user-agent",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
    }
)


def check_headers(values: object, name: str) -> dict[str, str] | None:
    """Extra headers: a mapping of str to str, none of the SDK's own, no line breaks."""
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise TypeError(f"{name} must be a mapping of str to str, got {type(values).__name__}")
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"{name} must map str to str, got {key!r}: {type(value).__name__}")
        if not is_header_name(key):
            raise ValueError(
                f"{name} has an invalid header name: {key!r} (letters, digits and "
                "!#$%&'*+-.^_`|~ only)"
            )
        if key.lower() in SDK_HEADERS:
            raise ValueError(f"{name} cannot set {key!r}: the SDK sets it")
        if not is_header_value(value):
            raise ValueError(
                f"{name} {key!r} must not contain a line break or another control character, "
                "nor characters beyond Latin-1"
            )
    return dict(values)


# Query parameters the SDK's own calls set (pagination, filters, sorting): an extra one of the
# same name would contradict the call (a limit over the API's cap, a page out of order).
SDK_QUERY = frozenset({"page", "limit", "status", "sortBy", "sortOrder"})


def check_query(values: object, name: str) -> dict[str, str | int] | None:
    """Extra query parameters: a mapping of non-empty str to str or int (each is
    percent-encoded, so any character may be sent), none of the SDK's own."""
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise TypeError(
            f"{name} must be a mapping of str to str or int, got {type(values).__name__}"
        )
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{name} keys must be non-empty strings, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(
                f"{name} must map str to str or int, got {key!r}: {type(value).__name__}"
            )
        if _query_name(key) in SDK_QUERY_FOLDED:
            raise ValueError(f"{name} cannot set {key!r}: the SDK sets {_query_name(key)!r}")
        if not _encodable(key) or (isinstance(value, str) and not _encodable(value)):
            raise ValueError(f"{name} {key!r} is not valid text (a lone surrogate)")
    return dict(values)


SDK_QUERY_FOLDED = frozenset(name.lower() for name in SDK_QUERY)


def _query_name(key: str) -> str:
    """The parameter a query key names as servers read it: without case, and without the
    brackets frameworks use for arrays and objects (``limit[]``, ``LIMIT``, ``page[0]``)."""
    return key.split("[", 1)[0].strip().lower()
