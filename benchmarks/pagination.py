"""Full ordered scan of a workflow's leads: the SDK against a page-after-page loop and the limit.

    python -m benchmarks.pagination [--leads 10000] [--latency-ms 20] [--repeat 3]

Starts the shipped fake server with injected latency and, in the same run, measures:

* baseline: a plain aiohttp loop fetching page after page (what a user writes today);
* the SDK's ``async for lead in dn.workflows.leads.list(...)`` at C = 8 and C = 16;
* the physical limit for an ordered scan: one round trip to learn ``totalPages``, then
  ``ceil((P - 1) / C)`` round trips, each of the measured single-request round-trip time.

It prints each time (best of ``--repeat``) and the ratios SDK / limit and baseline / SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

import aiohttp

from dialnexa_async import AsyncDialNexa
from dialnexa_async.testing import FakeDialNexa

PAGE = 100


async def baseline(url: str, key: str, workflow_id: str) -> int:
    count = 0
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        page = 1
        while True:
            params = {"page": str(page), "limit": str(PAGE)}
            async with session.get(f"{url}/workflows/{workflow_id}/leads", params=params) as resp:
                body = await resp.json()
            count += len(body["data"])
            if page >= body["meta"]["totalPages"]:
                return count
            page += 1


async def sdk_scan(url: str, key: str, workflow_id: str, concurrency: int) -> int:
    async with AsyncDialNexa(key, base_url=url, max_concurrency=concurrency) as dn:
        count = 0
        async for _ in dn.workflows.leads.list(workflow_id, page_size=PAGE):
            count += 1
        return count


async def round_trip(url: str, key: str, workflow_id: str) -> float:
    async with AsyncDialNexa(key, base_url=url) as dn:
        await dn.workflows.leads.page(workflow_id, limit=PAGE)  # warm the connection
        times = []
        for _ in range(5):
            started = time.perf_counter()
            await dn.workflows.leads.page(workflow_id, limit=PAGE)
            times.append(time.perf_counter() - started)
        return min(times)


async def best_of(repeat: int, make: object) -> tuple[float, int]:
    best = math.inf
    count = 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = await make()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best, count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    async with FakeDialNexa(leads=args.leads, latency=args.latency_ms / 1000) as fake:
        url, key, wf = fake.url, fake.api_key, fake.workflow_id or ""
        pages = math.ceil(args.leads / PAGE)
        rtt = await round_trip(url, key, wf)
        base, n = await best_of(args.repeat, lambda: baseline(url, key, wf))
        assert n == args.leads
        print(
            f"{args.leads} leads, {pages} pages of {PAGE}, latency {args.latency_ms:g} ms, "
            f"measured round trip {rtt * 1000:.1f} ms"
        )
        print(f"baseline (page after page): {base:.3f}s")
        for concurrency in (8, 16):
            took, n = await best_of(args.repeat, lambda c=concurrency: sdk_scan(url, key, wf, c))
            assert n == args.leads
            limit = rtt * (1 + math.ceil((pages - 1) / concurrency))
            print(
                f"SDK C={concurrency:<2}: {took:.3f}s  limit {limit:.3f}s  "
                f"SDK/limit {took / limit:.2f}x  baseline/SDK {base / took:.1f}x"
            )


if __name__ == "__main__":
    asyncio.run(main())
