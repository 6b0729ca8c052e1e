from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialnexa_async._retry import MAX_RETRY_AFTER, RETRY_STATUSES, RetryPolicy, parse_retry_after


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_idempotent_requests_retry_every_retryable_status(status: int) -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.should_retry_status(status, attempt=0, idempotent=True, retry_after=None)
    assert policy.should_retry_status(status, attempt=1, idempotent=True, retry_after=None)
    assert not policy.should_retry_status(status, attempt=2, idempotent=True, retry_after=None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_other_statuses_are_never_retried(status: int) -> None:
    assert not RetryPolicy().should_retry_status(
        status, attempt=0, idempotent=True, retry_after=None
    )


def test_non_idempotent_requests_retry_only_when_certainly_not_processed() -> None:
    policy = RetryPolicy()
    assert policy.should_retry_status(429, attempt=0, idempotent=False, retry_after=None)
    assert policy.should_retry_status(503, attempt=0, idempotent=False, retry_after=1.0)
    assert not policy.should_retry_status(503, attempt=0, idempotent=False, retry_after=None)
    assert not policy.should_retry_status(500, attempt=0, idempotent=False, retry_after=None)
    assert not policy.should_retry_status(502, attempt=0, idempotent=False, retry_after=1.0)
    assert policy.should_retry_connection_error(attempt=0, idempotent=False, body_sent=False)
    assert not policy.should_retry_connection_error(attempt=0, idempotent=False, body_sent=True)
    assert policy.should_retry_connection_error(attempt=0, idempotent=True, body_sent=True)
    assert not policy.should_retry_connection_error(attempt=2, idempotent=True, body_sent=False)


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:10 GMT", now=now) == 10.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


@given(
    attempt=st.integers(min_value=0, max_value=50),
    rand=st.floats(min_value=0, max_value=1, exclude_max=True),
    base=st.floats(min_value=0.001, max_value=5),
    cap=st.floats(min_value=0.001, max_value=60),
)
def test_backoff_is_within_bounds(attempt: int, rand: float, base: float, cap: float) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap)
    delay = policy.delay(attempt, rand=lambda: rand)
    assert 0 <= delay <= min(cap, base * 2**attempt)


@given(retry_after=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9))
def test_retry_after_is_respected_and_capped(retry_after: float) -> None:
    delay = RetryPolicy().delay(0, retry_after=retry_after, rand=lambda: 0.99)
    assert 0 <= delay <= MAX_RETRY_AFTER
    if 0 <= retry_after <= MAX_RETRY_AFTER:
        assert delay == retry_after


@given(st.text())
def test_parse_retry_after_never_raises_or_goes_negative(value: str) -> None:
    parsed = parse_retry_after(value)
    assert parsed is None or parsed >= 0
