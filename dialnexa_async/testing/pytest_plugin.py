"""pytest fixtures for code that uses dialnexa_async.

Registered through the ``pytest11`` entry point, so installing the package is enough::

    async def test_my_sync(dialnexa_client, dialnexa_fake_server):
        wf_id = dialnexa_fake_server.workflow_id
        leads = await dialnexa_client.workflows.leads.list(wf_id).collect()
        assert len(leads) == 250

The fixtures are async, so they need pytest-asyncio. Without it, this plugin registers nothing:
installing the SDK never breaks a test suite that does not use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dialnexa_async import AsyncDialNexa

from ._server import FakeDialNexa

__all__ = ["dialnexa_client", "dialnexa_fake_server"]

try:
    import pytest_asyncio
except ModuleNotFoundError:  # pragma: no cover - the dev extra installs pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def dialnexa_fake_server() -> AsyncIterator[FakeDialNexa]:
        """A running fake server with one workflow of 250 leads and one campaign lead."""
        async with FakeDialNexa(leads=250) as fake:
            yield fake

    @pytest_asyncio.fixture
    async def dialnexa_client(
        dialnexa_fake_server: FakeDialNexa,
    ) -> AsyncIterator[AsyncDialNexa]:
        """An :class:`AsyncDialNexa` talking to ``dialnexa_fake_server``."""
        async with AsyncDialNexa(
            dialnexa_fake_server.api_key, base_url=dialnexa_fake_server.url
        ) as client:
            yield client
