"""The fake DialNexa server: an aiohttp.web application on 127.0.0.1, in-process."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import random
import shlex
import signal
import sys
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import attrs
from aiohttp import BodyPartReader, web

from ._store import (
    TRANSITIONS,
    WORKFLOW_STATUSES,
    FakeStore,
    FakeWorkflow,
    InvalidTransition,
    UploadRejected,
    parse_upload,
)

__all__ = ["FakeDialNexa", "FakeServerStats", "Faults", "Hostile", "Interceptor", "serve"]

DEFAULT_API_KEY = "dnx_test_key"
MAX_LIMIT = 100
_PAGE_CACHE_SIZE = 2048


class _BenchmarkPageCache:
    """Lead-page answers kept until their list changes: for benchmarks only (off by default),
    so that a client benchmark measures the client, not this server building a page again."""

    def __init__(self, size: int = _PAGE_CACHE_SIZE) -> None:
        self._size = size
        self._answers: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

    def get(self, key: tuple[Any, ...], build: Callable[[], bytes]) -> bytes:
        body = self._answers.get(key)
        if body is None:
            body = self._answers[key] = build()
            if len(self._answers) > self._size:
                self._answers.popitem(last=False)
        else:
            self._answers.move_to_end(key)
        return body


Interceptor = Callable[
    [web.Request], Awaitable[web.StreamResponse | None] | web.StreamResponse | None
]

_dumps: Callable[[Any], bytes]
try:
    from orjson import dumps as _dumps
except ModuleNotFoundError:  # pragma: no cover - the dev extra installs orjson

    def _dumps(data: Any) -> bytes:
        return json.dumps(data).encode()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_dumps(data), status=status, headers=headers, content_type="application/json"
    )


@attrs.frozen(kw_only=True)
class Faults:
    """Faults the fake server injects into a share of requests, chosen by a seeded generator.

    Kinds: ``"500"``, ``"502"`` (answered before the request is handled), ``"503"`` and
    ``"429"`` (the same, with ``Retry-After``), ``"drop"`` (the request *is* handled, then the
    connection is closed without an answer) and ``"slow"`` (the answer waits ``slow_seconds``
    first, then the request is handled).

    Attributes:
        rate: The share of authenticated requests that get a fault, 0..1.
        seed: Seeds the generator, so a run can be repeated.
        kinds: The kinds to choose from, uniformly.
        slow_seconds: How long a ``"slow"`` answer waits.
        retry_after: The ``Retry-After`` value sent with 429 and 503.
    """

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = ("500", "502", "503", "429", "drop", "slow")
    slow_seconds: float = 2.0
    retry_after: str = "0"


@attrs.frozen(kw_only=True)
class Hostile:
    """Answers of a hostile or broken server, to test code against them (all off by default).

    Attributes:
        redirect_to: Answer every authenticated request with a redirect to this URL.
        redirect_status: The redirect's status (301, 302, 303, 307 or 308).
        oversize_bytes: Answer every authenticated request with a 200 JSON body of this many
            bytes, streamed.
        gzip_bomb_bytes: Answer every authenticated request with a small gzip body that
            inflates to this many bytes.
        deep_json: Answer every authenticated request with a 400 whose JSON body nests this
            many arrays deep.
        echo_key: Answer every authenticated request with a 401 whose message repeats the
            ``Authorization`` header it was sent.
        cycle_pages: Lead pages past this number repeat pages ``1..cycle_pages`` in turn.
        meta: Values that replace those of every lead page's ``meta`` (e.g. ``{"totalPages":
            1}`` with a ``total`` that says more, or a huge ``totalPages``).
    """

    redirect_to: str | None = None
    redirect_status: int = 307
    oversize_bytes: int | None = None
    gzip_bomb_bytes: int | None = None
    deep_json: int | None = None
    echo_key: bool = False
    cycle_pages: int | None = None
    meta: dict[str, int] | None = None


def _gzip_of_zeros(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes, built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    parts = []
    left = size
    while left > 0:
        parts.append(packer.compress(block[: min(left, len(block))]))
        left -= len(block)
    parts.append(packer.flush())
    return b"".join(parts)


@attrs.define
class FakeServerStats:
    """What the fake server saw.

    Attributes:
        requests: Requests received (authenticated or not).
        in_flight: Requests being handled now.
        max_in_flight: The most requests it handled at once.
        by_route: Requests per ``"METHOD /route"``.
        faults: Faults injected, per kind.
    """

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_route: dict[str, int] = attrs.field(factory=dict)
    faults: dict[str, int] = attrs.field(factory=dict)


def _error(status: int, message: str, error: str, **extra: Any) -> web.Response:
    body = {"statusCode": status, "message": message, "error": error, **extra}
    return _json(body, status=status)


class _NotFound(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.response = _error(404, f"{what} not found", "Not Found")


def _bad_request(message: str, **extra: Any) -> web.Response:
    return _error(400, message, "Bad Request", **extra)


def _int_param(raw: str | None, default: int) -> int | None:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _envelope(message: str, data: Any, **extra: Any) -> web.Response:
    return _json({"statusCode": 200, "message": message, "data": data, **extra})


class FakeDialNexa:
    """An in-process fake of the DialNexa API for tests and demos.

    ``async with FakeDialNexa(leads=1000) as fake:`` starts it on a free port of 127.0.0.1;
    ``fake.url`` is the base URL (``.../v1``) and ``fake.api_key`` the key it accepts.
    With ``leads=N`` it creates one active workflow, ``fake.workflow_id``, holding N generated
    leads (made on demand, so a million cost nothing until read), and one campaign lead,
    ``fake.campaign_lead_id``.

    Routes: the five of the API reference pages (``POST /workflows``, ``GET``/``POST
    /workflows/{id}/leads``, ``DELETE /workflows/{id}/leads/{leadId}``, ``GET
    /campaigns-leads/{id}``) in the pages' shapes, and the lifecycle routes of the observed live
    service (``GET /workflows``, ``GET /workflows/{id}``, ``PATCH /workflows/{id}/status``,
    ``GET /workflows/{id}/leads/variable-keys``, ``GET /workflows/{id}/leads/{leadId}/history``)
    in its ``{statusCode, message, data}`` envelope.

    Status actions: ``activate`` (draft → active), ``pause`` (active → paused), ``resume``
    (paused → active), ``deactivate`` (active or paused → draft); any other action is a 400, an
    action that does not apply to the current status a 409. When a workflow becomes active, its
    enrolled leads that are still pending start their first step (``node_call_1``).

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
        faults: Random faults to inject (:class:`Faults`).
        hostile: Hostile answers to give (:class:`Hostile`); may be changed while it runs.
        clock: What "now" is for the store (tests pass a fixed clock).
        benchmark_page_cache: Keep each lead page's answer until its list changes, so that a
            benchmark measures the client rather than this server (off by default).
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
        faults: Faults | None = None,
        hostile: Hostile | None = None,
        clock: Callable[[], datetime] | None = None,
        benchmark_page_cache: bool = False,
    ) -> None:
        self.api_key = api_key
        self.hostile = hostile or Hostile()
        self._bombs: dict[int, bytes] = {}
        self.latency = latency
        self.interceptor = interceptor
        self.faults = faults or Faults()
        self._fault_random = random.Random(self.faults.seed)
        self.store = FakeStore(clock)
        self._page_cache = _BenchmarkPageCache() if benchmark_page_cache else None
        self.stats = FakeServerStats()
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.workflow_id: str | None = None
        if leads:
            workflow = self.store.create_workflow("Seeded workflow", status="active")
            self.store.seed_leads(workflow, leads)
            self.workflow_id = workflow.id
        self.campaign_lead_id: str = self.store.add_campaign_lead(
            "+919876543210",
            metadata={"customer_name": "Priya Sharma", "product": "home_loan"},
            name="Priya Sharma",
        )["id"]

    # -- lifecycle ----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        add = app.router
        add.add_post("/v1/workflows", self._create_workflow)
        add.add_get("/v1/workflows", self._list_workflows)
        add.add_get("/v1/workflows/{workflow_id}", self._get_workflow)
        add.add_patch("/v1/workflows/{workflow_id}/status", self._set_status)
        add.add_get("/v1/workflows/{workflow_id}/leads", self._list_leads)
        add.add_post("/v1/workflows/{workflow_id}/leads", self._enroll)
        add.add_get("/v1/workflows/{workflow_id}/leads/variable-keys", self._variable_keys)
        add.add_delete("/v1/workflows/{workflow_id}/leads/{lead_id}", self._remove_lead)
        add.add_get("/v1/workflows/{workflow_id}/leads/{lead_id}/history", self._history)
        add.add_get("/v1/campaigns-leads/{lead_id}", self._get_campaign_lead)
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
            return await self._answer(request, handler)
        except _NotFound as exc:
            return exc.response
        finally:
            stats.in_flight -= 1

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "API key is missing or invalid", "Unauthorized")
        hostile = await self._hostile_answer(request)
        if hostile is not None:
            return hostile
        if self.interceptor is not None:
            injected = self.interceptor(request)
            if inspect.isawaitable(injected):
                injected = await injected
            if injected is not None:
                return injected
        fault = self._pick_fault()
        if fault is not None:
            return await self._inject(fault, request, handler)
        response: web.StreamResponse = await handler(request)
        return response

    async def _hostile_answer(self, request: web.Request) -> web.StreamResponse | None:
        hostile = self.hostile
        if hostile.redirect_to is not None:
            return web.Response(
                status=hostile.redirect_status, headers={"Location": hostile.redirect_to}
            )
        if hostile.echo_key:
            presented = request.headers.get("Authorization", "")
            return _error(401, f"the key in {presented!r} may not do this", "Unauthorized")
        if hostile.deep_json is not None:
            depth = hostile.deep_json
            body = b"[" * depth + b"]" * depth
            return web.Response(body=body, status=400, content_type="application/json")
        if hostile.gzip_bomb_bytes is not None:
            size = hostile.gzip_bomb_bytes
            if size not in self._bombs:
                self._bombs[size] = await asyncio.to_thread(_gzip_of_zeros, size)
            return web.Response(
                body=self._bombs[size],
                content_type="application/json",
                headers={"Content-Encoding": "gzip"},
            )
        if hostile.oversize_bytes is not None:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            block = b" " * (256 * 1024)
            left = hostile.oversize_bytes
            try:
                while left > 0:
                    await response.write(block[: min(left, len(block))])
                    left -= len(block)
            except (ConnectionResetError, RuntimeError):
                pass  # the client hung up, as a careful client does
            return response
        return None

    def _pick_fault(self) -> str | None:
        faults = self.faults
        if faults.rate <= 0 or self._fault_random.random() >= faults.rate:
            return None
        kind = self._fault_random.choice(faults.kinds)
        self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
        return kind

    async def _inject(self, kind: str, request: web.Request, handler: Any) -> web.StreamResponse:
        retry_after = {"Retry-After": self.faults.retry_after}
        if kind == "500":
            return _error(500, "Internal server error", "Internal Server Error")
        if kind == "502":
            return _json({"message": "bad gateway"}, status=502)
        if kind == "503":
            return web.Response(status=503, text="service unavailable", headers=retry_after)
        if kind == "429":
            return _json({"statusCode": 429, "message": "slow down"}, 429, retry_after)
        if kind == "slow":
            await asyncio.sleep(self.faults.slow_seconds)
            try:
                response: web.StreamResponse = await handler(request)
            except ConnectionResetError:
                # The client gave up and hung up before its body could be read: nothing done.
                raise asyncio.CancelledError from None
            return response
        # "drop": handled, then the answer is lost with the connection.
        await handler(request)
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError

    def _workflow(self, request: web.Request) -> FakeWorkflow:
        workflow = self.store.workflows.get(request.match_info["workflow_id"])
        if workflow is None:
            raise _NotFound("Workflow")
        return workflow

    def _lead(self, request: web.Request) -> tuple[FakeWorkflow, dict[str, Any]]:
        workflow = self._workflow(request)
        lead = workflow.leads.find(request.match_info["lead_id"])
        if lead is None:
            raise _NotFound("Workflow lead")
        return workflow, lead

    # -- workflows ----------------------------------------------------------------------------

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
        return _json(workflow.as_json(), status=201)

    async def _list_workflows(self, request: web.Request) -> web.Response:
        page = _int_param(request.query.get("page"), 1)
        limit = _int_param(request.query.get("limit"), 20)
        if page is None or page < 1 or limit is None or not 1 <= limit <= MAX_LIMIT:
            return _bad_request("Workflow validation failed")
        sort_by = request.query.get("sortBy", "createdAt")
        order = request.query.get("sortOrder", "DESC")
        keys: dict[str, Callable[[FakeWorkflow], Any]] = {
            "createdAt": lambda w: (w.created_at, w.id),
            "updatedAt": lambda w: (w.updated_at, w.id),
            "title": lambda w: (w.title, w.id),
        }
        if sort_by not in keys or order not in ("ASC", "DESC"):
            return _bad_request("Workflow validation failed")
        ordered = sorted(self.store.workflows.values(), key=keys[sort_by], reverse=order == "DESC")
        start = (page - 1) * limit
        return _envelope(
            "Workflows fetched successfully",
            [w.as_observed_json() for w in ordered[start : start + limit]],
            meta={
                "totalItems": len(ordered),
                "itemsPerPage": limit,
                "totalPages": math.ceil(len(ordered) / limit),
                "currentPage": page,
            },
        )

    async def _get_workflow(self, request: web.Request) -> web.Response:
        workflow = self._workflow(request)
        return _envelope("Workflow fetched successfully", workflow.as_observed_json())

    async def _set_status(self, request: web.Request) -> web.Response:
        workflow = self._workflow(request)
        try:
            body = await request.json()
        except ValueError:
            body = None
        action = body.get("action") if isinstance(body, dict) else None
        if action not in TRANSITIONS:
            return _bad_request(
                "Invalid action. Must be one of: activate, deactivate, pause, resume"
            )
        try:
            done = self.store.transition(workflow, action)
        except InvalidTransition as exc:
            return _error(409, str(exc), "Conflict")
        return _envelope(f"Workflow {done} successfully", workflow.as_observed_json())

    # -- leads --------------------------------------------------------------------------------

    async def _list_leads(self, request: web.Request) -> web.Response:
        workflow = self._workflow(request)
        page = _int_param(request.query.get("page"), 1)
        limit = _int_param(request.query.get("limit"), 20)
        if page is None or page < 1:
            return _bad_request("page must be a positive integer")
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            return _bad_request(f"limit must be between 1 and {MAX_LIMIT}")
        status = request.query.get("status")
        cycle = self.hostile.cycle_pages
        if cycle is not None and page > cycle:
            page = (page - 1) % cycle + 1

        def build() -> bytes:
            start = (page - 1) * limit
            data, total = workflow.leads.page(start, start + limit, status)
            pages = math.ceil(total / limit)
            meta = {"page": page, "limit": limit, "total": total, "totalPages": pages}
            meta.update(self.hostile.meta or {})
            return _dumps({"data": data, "meta": meta})

        if self._page_cache is None:
            body = build()
        else:
            key = (workflow.id, workflow.leads.version, page, limit, status, str(self.hostile.meta))
            body = self._page_cache.get(key, build)
        return web.Response(body=body, content_type="application/json")

    async def _enroll(self, request: web.Request) -> web.Response:
        workflow = self._workflow(request)
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
        return _json(
            {
                "workflow_id": workflow.id,
                "leads_enrolled": enrolled,
                "message": f"{enrolled} leads enrolled in the workflow.",
            },
            status=201,
        )

    async def _variable_keys(self, request: web.Request) -> web.Response:
        workflow = self._workflow(request)
        keys = self.store.variable_keys(workflow)
        return _envelope("Variable keys fetched successfully", {"keys": keys})

    async def _remove_lead(self, request: web.Request) -> web.Response:
        workflow, lead = self._lead(request)
        if lead["status"] in ("completed", "removed"):
            return _error(409, f"Lead is already {lead['status']}", "Conflict")
        self.store.remove_lead(workflow, lead)
        return _json({"statusCode": 200, "message": "Lead removed successfully"})

    async def _history(self, request: web.Request) -> web.Response:
        workflow, lead = self._lead(request)
        steps = workflow.leads.history(lead)
        return _envelope(
            "Lead history fetched successfully", {"lead": lead, "history": list(steps)}
        )

    async def _get_campaign_lead(self, request: web.Request) -> web.Response:
        lead = self.store.campaign_leads.get(request.match_info["lead_id"])
        if lead is None:
            raise _NotFound("Campaign lead")
        return _json(lead)


async def serve(
    *,
    port: int = 0,
    leads: int = 0,
    latency_ms: float = 0.0,
    api_key: str = DEFAULT_API_KEY,
    benchmark_page_cache: bool = False,
    export: bool = False,
) -> None:
    """Run a :class:`FakeDialNexa` until SIGINT or SIGTERM.

    It first prints one line, ``DIALNEXA_BASE_URL=<url> DIALNEXA_API_KEY=<key>
    WORKFLOW_ID=<id>``, so that a shell or a test can point a client at it, and when stopped a
    JSON line of what it saw: ``{"requests": ..., "max_in_flight": ...}``. With ``export``, the
    first lines are ``export NAME=value`` instead, one a variable, for a shell.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeDialNexa(
        leads=leads,
        latency=latency_ms / 1000,
        port=port,
        api_key=api_key,
        benchmark_page_cache=benchmark_page_cache,
    ) as fake:
        if export:
            # For a shell: eval "$(dialnexa fake-server --export & sleep 1)" or copy and paste.
            for name, value in (
                ("DIALNEXA_BASE_URL", fake.url),
                ("DIALNEXA_API_KEY", fake.api_key),
                ("WORKFLOW_ID", fake.workflow_id or ""),
            ):
                sys.stdout.write(f"export {name}={shlex.quote(value)}\n")
        else:
            sys.stdout.write(
                f"DIALNEXA_BASE_URL={fake.url} DIALNEXA_API_KEY={fake.api_key} "
                f"WORKFLOW_ID={fake.workflow_id or ''}\n"
            )
        sys.stdout.flush()
        await stop.wait()
        stats = fake.stats
        sys.stdout.write(
            json.dumps({"requests": stats.requests, "max_in_flight": stats.max_in_flight}) + "\n"
        )
        sys.stdout.flush()
