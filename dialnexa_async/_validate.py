"""Pure argument checks, run before any request: ``TypeError`` for a wrong type, ``ValueError``
for a wrong value, each naming the argument."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_TITLE_LENGTH",
    "check_choice",
    "check_id",
    "check_int_range",
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
    return value


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
