"""One process of a fleet, for the multi-process tests: scan a workflow under a shared budget
and print what it saw as one JSON line.

    python -m tests._fleet_worker BASE_URL API_KEY REDIS_URL BUDGET WORKFLOW_ID [LEASE]
"""

from __future__ import annotations

import asyncio
import json
import sys

from dialnexa_async import AsyncDialNexa
from dialnexa_async.fleet import RedisLimiter


async def main(base_url: str, key: str, redis_url: str, budget: str, workflow_id: str) -> None:
    lease = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
    async with RedisLimiter(redis_url, name=budget, max_concurrency=8, lease=lease) as limiter:
        async with AsyncDialNexa(
            key, base_url=base_url, max_concurrency=8, limiter=limiter, max_retries=3
        ) as dn:
            ids = [lead.id async for lead in dn.workflows.leads.list(workflow_id, page_size=10)]
    result = {"count": len(ids), "ordered": ids == sorted(ids), "unique": len(set(ids))}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
