"""``examples/dashboard_app.py`` as a user runs it: a real ASGI app, in process, against the fake
server, including a client that disconnects mid-stream."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio

from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY

_APP = Path(__file__).parent.parent / "examples" / "dashboard_app.py"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("dashboard_app", _APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dashboard_app"] = module
    spec.loader.exec_module(module)
    return module


@pytest_asyncio.fixture
async def running(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Any, FakeDialNexa]]:
    async with FakeDialNexa(leads=2500, api_key=API_KEY, latency=0.005) as fake:
        monkeypatch.setenv("DIALNEXA_API_KEY", API_KEY)
        monkeypatch.setenv("DIALNEXA_BASE_URL", fake.url)
        example = load_example()
        async with example.app.router.lifespan_context(example.app):
            yield example.app, fake


async def test_counts_for_many_workflows_and_a_streamed_scan(
    running: tuple[Any, FakeDialNexa],
) -> None:
    app, fake = running
    other = fake.store.create_workflow("other")
    fake.store.seed_leads(other, 40)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://dashboard") as http:
        tiles = (
            await http.get(
                "/counts",
                params=[
                    ("workflow_id", fake.workflow_id),
                    ("workflow_id", other.id),
                    ("workflow_id", "wf_gone"),
                ],
            )
        ).json()
        streamed = await http.get(f"/workflows/{fake.workflow_id}/leads.ndjson")
        missing = await http.get("/workflows/wf_gone/leads.ndjson")
    assert tiles[fake.workflow_id]["total"] == 2500
    assert sum(tiles[other.id]["counts"].values()) == 40
    assert tiles["wf_gone"] == {"error": "NotFoundError", "status": 404}
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert len(lines) == 2500
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    assert missing.status_code == 404  # answered before any streaming began


async def test_a_client_that_disconnects_mid_stream_leaves_nothing_behind(
    running: tuple[Any, FakeDialNexa],
) -> None:
    app, fake = running
    received: list[bytes] = []
    disconnected = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not disconnected.is_set():
            await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            received.append(message.get("body", b""))
            if len(received) == 3:  # the client goes away after a few lines
                disconnected.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/workflows/{fake.workflow_id}/leads.ndjson",
        "raw_path": f"/workflows/{fake.workflow_id}/leads.ndjson".encode(),
        "query_string": b"",
        "headers": [(b"host", b"dashboard")],
        "server": ("dashboard", 80),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert 3 <= len(received) < 2500  # it stopped early
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("dialnexa-")]
    assert left == []
    session = app.state.dialnexa._client.transport._session
    assert session is not None
    assert len(session.connector._acquired) == 0  # every connection back in the pool
