"""A fleet of arq workers sharing one DialNexa request budget through Redis.

arq (asyncio + Redis job queue) runs the jobs; every worker process holds one AsyncDialNexa
whose requests all take slots of the same RedisLimiter, so ten workers together never send
more than the budget allows, and a 429 seen by one pauses them all.

    # one or more workers (each a process):
    DIALNEXA_API_KEY=... DIALNEXA_REDIS_URL=redis://localhost:6379/0 arq fleet_worker.WorkerSettings
    # then, from anywhere, hand them work:
    python fleet_worker.py scan wf_abc123 8          # a scan cut into 8 shards
    python fleet_worker.py enroll wf_abc123 a.csv b.csv   # one enrolment job per file

Copy it and change the jobs; the budget (name, concurrency) is set once, below.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from dialnexa_async import AsyncDialNexa
from dialnexa_async.fleet import RedisLimiter

BUDGET = os.environ.get("DIALNEXA_BUDGET", "dialnexa-fleet")
FLEET_CONCURRENCY = int(os.environ.get("DIALNEXA_FLEET_CONCURRENCY", "8"))
PAGE_SIZE = 100


def redis_url() -> str:
    return os.environ.get("DIALNEXA_REDIS_URL", "redis://localhost:6379/0")


# -- the worker's life: one session per process, in the fleet's budget -------------------------


async def startup(ctx: dict[str, Any]) -> None:
    limiter = RedisLimiter(redis_url(), name=BUDGET, max_concurrency=FLEET_CONCURRENCY)
    ctx["limiter"] = limiter
    ctx["dn"] = AsyncDialNexa(limiter=limiter)  # key and base URL from the environment


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["dn"].aclose()
    await ctx["limiter"].aclose()


# -- the jobs -----------------------------------------------------------------------------------


async def scan_shard(
    ctx: dict[str, Any], workflow_id: str, first: int, stop: int
) -> dict[str, Any]:
    """Read one shard of a workflow's leads; return what a dashboard would keep of it."""
    dn: AsyncDialNexa = ctx["dn"]
    by_status: dict[str, int] = {}
    first_id = last_id = None
    count = 0
    async with dn.workflows.leads.list(
        workflow_id, page_size=PAGE_SIZE, pages=range(first, stop)
    ) as leads:
        async for lead in leads:
            by_status[str(lead.status)] = by_status.get(str(lead.status), 0) + 1
            first_id = first_id or lead.id
            last_id = lead.id
            count += 1
    return {"first": first, "leads": count, "by_status": by_status, "ids": [first_id, last_id]}


async def enroll_file(ctx: dict[str, Any], workflow_id: str, path: str) -> dict[str, Any]:
    """Enrol one file, with a journal beside it and the fleet's lock held: a job retried by
    arq, or queued twice, enrols nobody twice (a second run at the same time is refused with
    EnrollmentLockedError before it sends anything)."""
    dn: AsyncDialNexa = ctx["dn"]
    result = await dn.workflows.leads.enroll(
        workflow_id, path, journal=f"{path}.journal", skip_existing=True, lock=ctx["limiter"]
    )
    return {
        "path": path,
        "enrolled": result.leads_enrolled,
        "skipped": result.rows_skipped,
        "failed_rows": sum(len(f.row_numbers) for f in result.failed),
        "unknown_rows": sum(len(f.row_numbers) for f in result.unknown),
    }


class WorkerSettings:
    """``arq fleet_worker.WorkerSettings``."""

    functions = [scan_shard, enroll_file]  # noqa: RUF012 - arq reads class attributes
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(redis_url())


# -- handing out work ---------------------------------------------------------------------------


async def enqueue_scan(workflow_id: str, shards: int) -> list[str]:
    """Plan the scan (one request) and queue one job per shard; return the job ids."""
    async with AsyncDialNexa() as dn:
        plan = await dn.workflows.leads.plan(workflow_id, shards=shards, page_size=PAGE_SIZE)
    queue = await create_pool(RedisSettings.from_dsn(redis_url()))
    try:
        jobs = [
            await queue.enqueue_job("scan_shard", workflow_id, shard.start, shard.stop)
            for shard in plan
        ]
    finally:
        await queue.aclose()
    return [job.job_id for job in jobs if job is not None]


async def enqueue_enrolments(workflow_id: str, paths: list[str]) -> list[str]:
    """Queue one enrolment job per file; return the job ids."""
    queue = await create_pool(RedisSettings.from_dsn(redis_url()))
    try:
        # A job id made of the workflow and the file: enqueueing the same enrolment again while
        # it is queued, running or its result is kept is a no-op in arq (it returns None).
        jobs = [
            await queue.enqueue_job(
                "enroll_file", workflow_id, path, _job_id=f"enroll:{workflow_id}:{path}"
            )
            for path in paths
        ]
    finally:
        await queue.aclose()
    return [job.job_id for job in jobs if job is not None]


if __name__ == "__main__":
    command, workflow, *rest = sys.argv[1:]
    if command == "scan":
        print(asyncio.run(enqueue_scan(workflow, int(rest[0]) if rest else 8)))
    else:
        print(asyncio.run(enqueue_enrolments(workflow, rest)))
