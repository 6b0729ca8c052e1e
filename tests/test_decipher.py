from typing import Any

import pytest

from dialnexa_async import (
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RowError,
    UnprocessableEntityError,
)
from dialnexa_async._decipher import decipher, error_from_response

from .conftest import observed_samples


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_status_maps_to_error_class(status: int, cls: type[APIStatusError]) -> None:
    body = b'{"statusCode": %d, "message": "nope", "error": "X"}' % status
    with pytest.raises(cls) as info:
        decipher("GET", "/workflows/wf_1/leads", status, {"X-Request-Id": "req_9"}, body)
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == "nope"
    assert error.request_id == "req_9"
    assert error.method == "GET"
    assert error.path == "/workflows/wf_1/leads"
    assert "req_9" in str(error)


def test_non_json_error_body_gives_typed_error_with_snippet() -> None:
    body = b"<html>" + b"x" * 5000 + b"</html>"
    error = error_from_response("GET", "/p", 502, {}, body)
    assert isinstance(error, InternalServerError)
    assert isinstance(error.body, str)
    assert error.body.startswith("<html>")
    assert len(error.body) <= 201


def test_empty_error_body() -> None:
    error = error_from_response("DELETE", "/p", 404, {}, b"")
    assert isinstance(error, NotFoundError)
    assert error.message == "HTTP 404"


def test_nest_style_message_list_is_joined() -> None:
    body = b'{"statusCode": 400, "message": ["a must be set", "b too"], "error": "Bad Request"}'
    error = error_from_response("POST", "/workflows", 400, {}, body)
    assert error.message == "a must be set; b too"


def test_grouped_row_errors_are_surfaced() -> None:
    body = (
        b'{"statusCode": 400, "error": "Bad Request", "message": "2 rows failed validation",'
        b' "errors": [{"code": "invalid_phone_number", "field": "phone_number",'
        b' "message": "not a valid phone number", "rows": [3, 8]},'
        b' {"code": "destination_not_allowed", "field": "phone_number",'
        b' "message": "country or prefix not enabled", "rows": [5]}]}'
    )
    error = error_from_response("POST", "/workflows/w/leads", 400, {}, body)
    assert isinstance(error, BadRequestError)
    assert error.errors == [
        RowError(
            code="invalid_phone_number",
            field="phone_number",
            message="not a valid phone number",
            rows=[3, 8],
        ),
        RowError(
            code="destination_not_allowed",
            field="phone_number",
            message="country or prefix not enabled",
            rows=[5],
        ),
    ]


def test_flat_row_errors_are_tolerated() -> None:
    body = b'{"message": "bad", "errors": [{"row": 4, "message": "bad phone"}, "junk", {"rows": ["x"]}]}'
    error = error_from_response("POST", "/w", 400, {}, body)
    assert isinstance(error, BadRequestError)
    assert error.errors == [RowError(message="bad phone", rows=[4])]


def test_rate_limit_carries_retry_after() -> None:
    error = error_from_response("GET", "/p", 429, {"Retry-After": "7"}, b"{}")
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0


def test_success_body_that_is_not_json_is_a_validation_error() -> None:
    with pytest.raises(APIResponseValidationError, match="not JSON"):
        decipher("GET", "/p", 200, {}, b"<html>oops</html>")
    assert decipher("DELETE", "/p", 204, {}, b"") is None


@pytest.mark.parametrize(
    ("route", "status"),
    [
        (route, status)
        for route, answers in observed_samples().items()
        for status in answers
        if int(status) >= 400
    ],
)
def test_every_observed_error_example_maps_to_its_class(route: str, status: str) -> None:
    import json

    body = json.dumps(observed_samples()[route][status]).encode()
    error = error_from_response("GET", route, int(status), {}, body)
    assert error.status_code == int(status)
    assert error.message == observed_samples()[route][status]["message"]


def test_json_the_fast_parser_refuses_is_still_read() -> None:
    import math

    parsed = decipher("GET", "/p", 200, {}, b'{"total": NaN}')  # orjson refuses NaN
    assert math.isnan(parsed["total"])
    assert decipher("GET", "/p", 200, {}, b"  ") is None


@pytest.mark.parametrize("with_orjson", [True, False])
def test_deep_json_never_reaches_the_parsers_recursion_limit(
    with_orjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from dialnexa_async import _decipher

    calls: list[int] = []
    real = json.loads

    def counted(body: bytes) -> Any:
        calls.append(1)
        return real(body)

    monkeypatch.setattr(json, "loads", counted)
    if not with_orjson:
        monkeypatch.setattr(_decipher, "_loads", counted)  # as when orjson is not installed
    deep = b"[" * 5000 + b"]" * 5000
    with pytest.raises(ValueError, match="deep"):
        _decipher.parse_json(deep)
    assert calls == []  # refused before the standard library's parser saw it
    assert _decipher.parse_json(b'{"a": [[["ok"]]], "b": "[[[["}') == {"a": [[["ok"]]], "b": "[[[["}
