from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aioresponses import aioresponses

from dialnexa_async import AsyncDialNexa
from dialnexa_async.testing import FakeDialNexa

from ._aioresponses_compat import install as install_aioresponses_compat

SAMPLES = Path(__file__).parent / "samples"
API_KEY = "dnx_secret_0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    # A run started in the background by a non-interactive shell (`make test &` in a script)
    # has SIGINT ignored, and so would every CLI process the tests stop with Ctrl-C as a person
    # would: they would never stop. The tests' own children must hear it.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def seed_sample(name: str) -> Any:
    return json.loads((SAMPLES / "seeds" / name).read_text())


def observed_samples() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads((SAMPLES / "observed.json").read_text())
    return data


class InFlight:
    """How many calls of a test's handler run at once: ``peak`` is the most."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0

    async def hold(self, seconds: float) -> None:
        """Count this call as running for ``seconds``."""
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.running -= 1


def sdk_log_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The SDK's own log lines at exactly ``level``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "dialnexa_async" and record.levelno == level
    ]


@pytest.fixture
def mocked() -> Iterator[Any]:
    """aioresponses in place of the network, for exact wire checks."""
    install_aioresponses_compat()
    with aioresponses() as m:
        yield m


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never pick up a developer's real key or URL.
    monkeypatch.delenv("DIALNEXA_API_KEY", raising=False)
    monkeypatch.delenv("DIALNEXA_BASE_URL", raising=False)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDialNexa]:
    async with FakeDialNexa(leads=0, api_key=API_KEY) as server:
        yield server


@pytest_asyncio.fixture
async def client(fake: FakeDialNexa) -> AsyncIterator[AsyncDialNexa]:
    async with AsyncDialNexa(API_KEY, base_url=fake.url, max_retries=0) as dn:
        yield dn
