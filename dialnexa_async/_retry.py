"""Pure retry policy: which outcomes are retried, and how long to wait. No I/O here.

The rules, by what is known about the request:

* **Idempotent** requests (GET, DELETE, and the status PATCH, which sets a state) are retried on
  connection errors, timeouts and the statuses in :data:`RETRY_STATUSES`.
* **Non-idempotent** requests (the enrolment upload, workflow creation) are retried only when the
  server certainly did not process them: a 429, a 503 that carries ``Retry-After``, or a connection
  that failed before the body was sent.

Waits are exponential with full jitter (``uniform(0, min(cap, base * 2**attempt))``), and a
server's ``Retry-After`` (seconds or an HTTP date) replaces the computed wait. A ``Retry-After``
longer than :data:`MAX_RETRY_AFTER` seconds is not waited for at all: the error is raised at
once, with its ``retry_after``, so a server cannot stall a caller for an hour (and waiting a
capped minute only to be told the same again helps nobody).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import attrs

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_MAX_RETRIES",
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "RetryPolicy",
    "parse_retry_after",
]

DEFAULT_MAX_RETRIES = 2
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 8.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None`` when absent/unreadable.

    Accepts delta-seconds (``"3"``, ``"1.5"``) and HTTP dates. Never negative; not capped here.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When to retry and how long to wait before attempt ``n + 1``.

    Attributes:
        max_retries: Retries after the first attempt (so ``max_retries + 1`` attempts at most).
        base_delay: The first backoff ceiling, in seconds.
        max_delay: The largest computed backoff, in seconds.
        max_retry_after: The largest ``Retry-After`` honoured, in seconds.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    base_delay: float = DEFAULT_BACKOFF
    max_delay: float = DEFAULT_MAX_BACKOFF
    max_retry_after: float = MAX_RETRY_AFTER

    def should_retry_status(
        self, status: int, *, attempt: int, idempotent: bool, retry_after: float | None
    ) -> bool:
        """Whether an answer with ``status`` on attempt ``attempt`` (0-based) is retried."""
        if attempt >= self.max_retries or status not in RETRY_STATUSES:
            return False
        if retry_after is not None and retry_after > self.max_retry_after:
            return False
        if idempotent:
            return True
        # The server says it did not take the request on.
        return status == 429 or (status == 503 and retry_after is not None)

    def should_retry_connection_error(
        self, *, attempt: int, idempotent: bool, body_sent: bool
    ) -> bool:
        """Whether a failed connection or timeout on attempt ``attempt`` (0-based) is retried."""
        if attempt >= self.max_retries:
            return False
        return idempotent or not body_sent

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to sleep before retrying after attempt ``attempt`` (0-based) failed."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2.0**attempt))
        return ceiling * rand()
