"""One process of the fleet benchmark: scan a workflow under a RedisLimiter when told to.

Prints ``ready`` once imported and connected, waits for a line on stdin, scans, and prints
``{"seconds": ..., "leads": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from dialnexa_async import AsyncDialNexa
from dialnexa_async.fleet import RedisLimiter


async def main(base_url: str, key: str, redis_url: str, budget: str, workflow_id: str) -> None:
    limiter = RedisLimiter(redis_url, name=budget, max_concurrency=8)
    async with limiter, AsyncDialNexa(key, base_url=base_url, limiter=limiter) as dn:
        await dn.workflows.leads.count(workflow_id)  # connections and scripts warm
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.perf_counter()
        leads = 0
        async for _ in dn.workflows.leads.list(workflow_id):
            leads += 1
        seconds = time.perf_counter() - started
    sys.stdout.write(json.dumps({"seconds": seconds, "leads": leads}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
