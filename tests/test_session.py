from __future__ import annotations

import logging

import aiohttp
import pytest

from dialnexa_async import AsyncDialNexa, AuthenticationError
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY


def test_key_comes_from_the_argument_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="DIALNEXA_API_KEY"):
        AsyncDialNexa()
    monkeypatch.setenv("DIALNEXA_API_KEY", API_KEY)
    monkeypatch.setenv("DIALNEXA_BASE_URL", "http://127.0.0.1:9/v1")
    dn = AsyncDialNexa()
    assert dn.base_url == "http://127.0.0.1:9/v1"


def test_a_key_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="api_key"):
        AsyncDialNexa(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="API key"):
        AsyncDialNexa("   ")


def test_default_base_url_is_the_public_one() -> None:
    assert AsyncDialNexa(API_KEY).base_url == "https://api.dialnexa.com/v1"


def test_the_key_is_never_in_a_repr() -> None:
    dn = AsyncDialNexa(API_KEY)
    assert API_KEY not in repr(dn)
    assert API_KEY not in repr(vars(dn))
    assert API_KEY not in repr(dn.workflows.leads.list("wf_1"))


@pytest.mark.parametrize("url", ["http://api.dialnexa.com/v1", "http://10.0.0.5/v1"])
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        AsyncDialNexa(API_KEY, base_url=url)
    assert AsyncDialNexa(API_KEY, base_url=url, allow_insecure_http=True).base_url == url


@pytest.mark.parametrize("url", ["ftp://x/v1", "not a url"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        AsyncDialNexa(API_KEY, base_url=url)


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"connect_timeout": -1}, {"max_retries": -1}, {"max_concurrency": 0}],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AsyncDialNexa(API_KEY, **kwargs)  # type: ignore[arg-type]


async def test_a_session_passed_in_is_used_and_left_open(fake: FakeDialNexa) -> None:
    async with aiohttp.ClientSession() as session:
        async with AsyncDialNexa(API_KEY, base_url=fake.url, session=session) as dn:
            await dn.campaign_leads.get(fake.campaign_lead_id or "")
        assert not session.closed
        assert dn.closed
        with pytest.raises(RuntimeError, match="closed"):
            await dn.campaign_leads.get("x")


async def test_wrong_key_is_an_authentication_error_without_the_key(
    fake: FakeDialNexa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dialnexa_async")
    wrong = "dnx_wrong_key_5555555555"
    async with AsyncDialNexa(wrong, base_url=fake.url) as dn:
        with pytest.raises(AuthenticationError) as info:
            await dn.workflows.leads.page("wf_1")
    assert info.value.status_code == 401
    assert wrong not in str(info.value)
    assert wrong not in repr(info.value)
    assert wrong not in caplog.text
    assert "GET /workflows/wf_1/leads -> 401" in caplog.text
