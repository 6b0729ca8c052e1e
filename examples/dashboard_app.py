"""A small dashboard backend to copy: one AsyncDialNexa for the whole app, shared through its
lifespan; counts for many workflows at once; a workflow's leads streamed as NDJSON, the scan
cancelled when the client goes away.

    pip install 'dialnexa-async' fastapi uvicorn
    DIALNEXA_API_KEY=... uvicorn dashboard_app:app

    GET /counts?workflow_id=wf_1&workflow_id=wf_2
        -> {"wf_1": {"total": ..., "counts": {...}}, "wf_2": {"error": "NotFoundError", ...}}
    GET /workflows/wf_1/leads.ndjson
        -> one lead per line, as the scan reads them (404 before anything, if there is none)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from dialnexa_async import AsyncDialNexa, NotFoundError, WorkflowLead


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One session for the process: one connection pool, one cap, closed on shutdown.
    async with AsyncDialNexa(max_concurrency=16) as dn:
        app.state.dialnexa = dn
        yield


app = FastAPI(lifespan=lifespan)


def _dialnexa(request: Request) -> AsyncDialNexa:
    dn: AsyncDialNexa = request.app.state.dialnexa
    return dn


@app.get("/counts")
async def counts(
    request: Request, workflow_id: Annotated[list[str], Query()]
) -> dict[str, dict[str, Any]]:
    """Each workflow's counts by status; a workflow that cannot be read says why."""
    tiles: dict[str, dict[str, Any]] = {}
    async with _dialnexa(request).workflows.leads.status_counts_many(workflow_id) as results:
        async for result in results:
            if result.counts is not None:
                tiles[result.workflow_id] = {
                    "total": result.counts.total,
                    "counts": dict(result.counts),
                }
            else:
                status = getattr(result.error, "status_code", None)
                tiles[result.workflow_id] = {"error": type(result.error).__name__, "status": status}
    return tiles


def _line(lead: WorkflowLead) -> str:
    return (
        json.dumps(
            {
                "id": lead.id,
                "phone_number": lead.phone_number,
                "status": str(lead.status),
                "current_node_id": lead.current_node_id,
                "enrolled_at": lead.enrolled_at.isoformat() if lead.enrolled_at else None,
            }
        )
        + "\n"
    )


@app.get("/workflows/{workflow_id}/leads.ndjson")
async def leads(workflow_id: str, request: Request) -> StreamingResponse:
    scan = _dialnexa(request).workflows.leads.list(workflow_id)
    try:
        # Before the response starts: a missing workflow is a 404, not an empty 200.
        await scan.first_page()
    except NotFoundError:
        await scan.aclose()
        raise HTTPException(status_code=404, detail="workflow not found") from None

    async def lines() -> AsyncIterator[str]:
        # If the client disconnects, the server cancels this generator: leaving `async with`
        # cancels and awaits the page requests in flight, and frees their connections.
        async with scan:
            async for lead in scan:
                yield _line(lead)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
