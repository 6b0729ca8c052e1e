"""The fake DialNexa server: an aiohttp.web application on 127.0.0.1, in-process."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import attrs
from aiohttp import BodyPartReader, web

from ._store import WORKFLOW_STATUSES, FakeStore, FakeWorkflow, UploadRejected, parse_upload

__all__ = ["FakeDialNexa", "FakeServerStats", "Interceptor"]

Interceptor = Callable[
    [web.Request], Awaitable[web.StreamResponse | None] | web.StreamResponse | None
]

DEFAULT_API_KEY = "dnx_test_key"
MAX_LIMIT = 100


@attrs.define
class FakeServerStats:
    """What the fake server saw.

    Attributes:
        requests: Requests received (authenticated or not).
        in_flight: Requests being handled now.
        max_in_flight: The most requests it handled at once.
        by_route: Requests per ``"METHOD /route"``.
    """

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_route: dict[str, int] = attrs.field(factory=dict)


def _error(status: int, message: str, error: str, **extra: Any) -> web.Response:
    body = {"statusCode": status, "message": message, "error": error, **extra}
    return web.json_response(body, status=status)


def _not_found(what: str) -> web.Response:
    return _error(404, f"{what} not found", "Not Found")


def _bad_request(message: str, **extra: Any) -> web.Response:
    return _error(400, message, "Bad Request", **extra)


def _positive_int(raw: str | None, default: int) -> int | None:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


class FakeDialNexa:
    """An in-process fake of the DialNexa API for tests and demos.

    ``async with FakeDialNexa(leads=1000) as fake:`` starts it on a free port of 127.0.0.1;
    ``fake.url`` is the base URL (``.../v1``) and ``fake.api_key`` the key it accepts.
    With ``leads=N`` it creates one workflow, ``fake.workflow_id``, holding N generated leads,
    and one campaign lead, ``fake.campaign_lead_id``.

    Enrolment uploads are validated as the seeds describe: a ``phone_number`` column is
    required, and rows whose number is not ``+`` and 8 to 15 digits, or starts with ``+999`` (a
    destination not enabled), are refused with a 400 whose body groups them::

        {"statusCode": 400, "error": "Bad Request", "message": "2 rows failed validation",
         "errors": [{"code": "invalid_phone_number", "field": "phone_number",
                     "message": "not a valid phone number", "rows": [3, 8]}]}

    Row numbers count the header as row 1. An upload with any bad row enrols nothing.

    Args:
        leads: Generated leads in a first workflow (0: no workflow is created).
        latency: Seconds each request waits before it is answered.
        api_key: The key it accepts.
        port: The port (0: a free one).
        interceptor: Called with each authenticated request before its handler; a response it
            returns (sync or async) is sent instead, to inject faults in tests.
    """

    def __init__(
        self,
        *,
        leads: int = 0,
        latency: float = 0.0,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        interceptor: Interceptor | None = None,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.interceptor = interceptor
        self.store = FakeStore()
        self.stats = FakeServerStats()
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.workflow_id: str | None = None
        self.campaign_lead_id: str | None = None
        if leads:
            workflow = self.store.create_workflow("Seeded workflow", status="active")
            self.store.seed_leads(workflow, leads)
            self.workflow_id = workflow.id
        self.campaign_lead_id = self.store.add_campaign_lead(
            "+919876543210",
            metadata={"customer_name": "Priya Sharma", "product": "home_loan"},
            name="Priya Sharma",
        )["id"]

    # -- lifecycle ----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/workflows", self._create_workflow)
        app.router.add_get("/v1/workflows/{workflow_id}/leads", self._list_leads)
        app.router.add_post("/v1/workflows/{workflow_id}/leads", self._enroll)
        app.router.add_delete("/v1/workflows/{workflow_id}/leads/{lead_id}", self._remove_lead)
        app.router.add_get("/v1/campaigns-leads/{lead_id}", self._get_campaign_lead)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self._host}:{port}/v1"

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        resource = request.match_info.route.resource
        route = f"{request.method} {resource.canonical if resource else request.path}"
        stats.by_route[route] = stats.by_route.get(route, 0) + 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return _error(401, "API key is missing or invalid", "Unauthorized")
            if self.interceptor is not None:
                injected = self.interceptor(request)
                if inspect.isawaitable(injected):
                    injected = await injected
                if injected is not None:
                    return injected
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            stats.in_flight -= 1

    def _workflow(self, request: web.Request) -> FakeWorkflow | None:
        return self.store.workflows.get(request.match_info["workflow_id"])

    # -- handlers -----------------------------------------------------------------------------

    async def _create_workflow(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _bad_request("body must be JSON")
        if not isinstance(body, dict):
            return _bad_request("body must be an object")
        title = body.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > 100:
            return _bad_request("title must be a string of 1 to 100 characters")
        status = body.get("status", "draft")
        if status not in WORKFLOW_STATUSES:
            return _bad_request(f"status must be one of {', '.join(WORKFLOW_STATUSES)}")
        description = body.get("description")
        workflow = self.store.create_workflow(title, description, status)
        return web.json_response(workflow.as_json(), status=201)

    async def _list_leads(self, request: web.Request) -> web.Response:
        workflow = self._workflow(request)
        if workflow is None:
            return _not_found("Workflow")
        page = _positive_int(request.query.get("page"), 1)
        limit = _positive_int(request.query.get("limit"), 20)
        if page is None or page < 1:
            return _bad_request("page must be a positive integer")
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            return _bad_request(f"limit must be between 1 and {MAX_LIMIT}")
        leads = self.store.list_leads(workflow, request.query.get("status"))
        start = (page - 1) * limit
        total = len(leads)
        return web.json_response(
            {
                "data": leads[start : start + limit],
                "meta": {
                    "page": page,
                    "limit": limit,
                    "total": total,
                    "totalPages": math.ceil(total / limit),
                },
            }
        )

    async def _enroll(self, request: web.Request) -> web.Response:
        workflow = self._workflow(request)
        if workflow is None:
            return _not_found("Workflow")
        if not request.content_type.startswith("multipart/"):
            return _bad_request("expected multipart/form-data with a 'file' field")
        reader = await request.multipart()
        upload: tuple[str, str, bytes] | None = None
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name == "file":
                data = await part.read()
                content_type = part.headers.get("Content-Type", "")
                upload = (part.filename or "upload", content_type, bytes(data))
        if upload is None:
            return _bad_request("multipart field 'file' is required")
        try:
            rows = parse_upload(*upload)
        except UploadRejected as exc:
            errors = [attrs.asdict(problem) for problem in exc.problems]
            return _bad_request(exc.message, **({"errors": errors} if errors else {}))
        enrolled = self.store.enroll(workflow, rows)
        return web.json_response(
            {
                "workflow_id": workflow.id,
                "leads_enrolled": enrolled,
                "message": f"{enrolled} leads enrolled in the workflow.",
            },
            status=201,
        )

    async def _remove_lead(self, request: web.Request) -> web.Response:
        workflow = self._workflow(request)
        if workflow is None:
            return _not_found("Workflow")
        lead = workflow.by_id.get(request.match_info["lead_id"])
        if lead is None:
            return _not_found("Workflow lead")
        if lead["status"] in ("completed", "removed"):
            return _error(409, f"Lead is already {lead['status']}", "Conflict")
        lead["status"] = "removed"
        lead["current_node_id"] = None
        return web.json_response({"statusCode": 200, "message": "Lead removed successfully"})

    async def _get_campaign_lead(self, request: web.Request) -> web.Response:
        lead = self.store.campaign_leads.get(request.match_info["lead_id"])
        if lead is None:
            return _not_found("Campaign lead")
        return web.json_response(lead)
