"""What a dashboard refresher costs: counts for many workflows, and client CPU per lead.

    python -m benchmarks.dashboard [--workflows 500] [--latency-ms 20] [--leads 20000]
                                   [--rounds 9]

``--workflows 0`` runs the CPU comparison alone.

In the same run, with the fake server in a process of its own:

* **counts-many**: ``status_counts_many`` over ``--workflows`` workflows (six ``limit=1``
  requests each) at ``--latency-ms``, under the session's cap of 8: the requests sent, the wall
  time, and the limit for 8 in flight (``ceil(requests / 8)`` round trips);
* **client CPU per lead** of a full scan of ``--leads`` leads from a server that answers at once
  (``time.process_time`` of the client process, the three taken in turn within each of
  ``--rounds`` rounds; the best of each, and the median over rounds of the ratios within a
  round): a hand-written aiohttp + orjson scan to plain dicts (the floor), the SDK, and the
  same aiohttp scan decoding each page with an equivalent pydantic v2 model
  (``model_validate_json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial

import aiohttp
import orjson

from benchmarks.decode import PydanticPage, median_ratio
from dialnexa_async import AsyncDialNexa


@contextmanager
def dashboard_server(workflows: int, leads: int, latency_ms: float) -> Iterator[dict[str, str]]:
    """A fake server process holding ``workflows`` workflows of ``leads`` leads each."""
    code = (
        "import asyncio, json, sys\n"
        "from dialnexa_async.testing import FakeDialNexa\n"
        "async def main():\n"
        f"    fake = FakeDialNexa(latency={latency_ms / 1000}, benchmark_page_cache=True)\n"
        "    async with fake:\n"
        f"        ids = []\n"
        f"        for n in range({workflows}):\n"
        "            wf = fake.store.create_workflow(f'wf {n}', status='active')\n"
        f"            fake.store.seed_leads(wf, {leads})\n"
        "            ids.append(wf.id)\n"
        "        out = {'url': fake.url, 'key': fake.api_key, 'ids': ids}\n"
        "        print(json.dumps(out), flush=True)\n"
        "        await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=30)


def counts_many(server: dict[str, str], repeat: int) -> tuple[int, float, float]:
    """Requests, best wall time, and the measured round trip."""

    async def run() -> tuple[int, float, float]:
        async with AsyncDialNexa(server["key"], base_url=server["url"]) as dn:
            ids = list(server["ids"])
            await dn.workflows.leads.count(ids[0])
            rtt = math.inf
            for _ in range(10):
                started = time.perf_counter()
                await dn.workflows.leads.count(ids[0])
                rtt = min(rtt, time.perf_counter() - started)
            best = math.inf
            for _ in range(repeat):
                started = time.perf_counter()
                results = await dn.workflows.leads.status_counts_many(ids).collect()
                best = min(best, time.perf_counter() - started)
                assert all(result.ok for result in results.values())
            return len(ids) * 6, best, rtt

    return asyncio.run(run())


def cpu_per_lead(
    url: str, key: str, workflow: str, leads: int, rounds: int
) -> dict[str, list[float]]:
    """Client CPU seconds per lead of a full scan, three ways, in each of ``rounds`` rounds."""
    headers = {"Authorization": f"Bearer {key}"}
    pages = math.ceil(leads / 100)

    async def by_hand(session: aiohttp.ClientSession, count_page: Callable[[bytes], int]) -> int:
        """Page after page with plain aiohttp, each page's body counted by ``count_page``."""
        count = 0
        for page in range(1, pages + 1):
            async with session.get(
                f"{url}/workflows/{workflow}/leads", params={"page": page, "limit": 100}
            ) as resp:
                count += count_page(await resp.read())
        return count

    def dicts(body: bytes) -> int:
        return len(orjson.loads(body)["data"])

    def models(body: bytes) -> int:
        return len(PydanticPage.model_validate_json(body).data)

    async def sdk(dn: AsyncDialNexa) -> int:
        count = 0
        async for _ in dn.workflows.leads.list(workflow):
            count += 1
        return count

    async def measure() -> dict[str, list[float]]:
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            AsyncDialNexa(key, base_url=url) as dn,
        ):
            scans: dict[str, Callable[[], Awaitable[int]]] = {
                "floor": partial(by_hand, session, dicts),
                "sdk": partial(sdk, dn),
                "pydantic": partial(by_hand, session, models),
            }
            return await cpu_rounds(scans, leads, rounds)

    return asyncio.run(measure())


async def cpu_rounds(
    scans: dict[str, Callable[[], Awaitable[int]]], leads: int, rounds: int
) -> dict[str, list[float]]:
    """CPU seconds per lead of each scan in each of ``rounds`` rounds, the scans taken in turn
    within a round (so that a machine slowing down for a while weighs on all of them alike)."""
    for scan in scans.values():
        await scan()  # warm: connections, caches
    taken: dict[str, list[float]] = {name: [] for name in scans}
    for _ in range(rounds):
        for name, scan in scans.items():
            started = time.process_time()
            count = await scan()
            taken[name].append((time.process_time() - started) / leads)
            assert count == leads, (name, count, leads)
    return taken


def report_counts_many(workflows: int, latency_ms: float, repeat: int) -> None:
    with dashboard_server(workflows, 50, latency_ms) as server:
        requests, wall, rtt = counts_many(server, repeat)
    limit = math.ceil(requests / 8) * rtt
    print(
        f"counts-many: {workflows} workflows, {requests} requests, cap 8, latency "
        f"{latency_ms:g} ms (measured round trip {rtt * 1000:.1f} ms)"
    )
    print(f"  wall {wall:.2f}s  limit {limit:.2f}s  wall/limit {wall / limit:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the CPU comparison")
    args = parser.parse_args()
    if args.workflows > 0:
        report_counts_many(args.workflows, args.latency_ms, args.repeat)
    with dashboard_server(1, args.leads, 0.0) as server:
        cpu = cpu_per_lead(server["url"], server["key"], server["ids"][0], args.leads, args.rounds)
    print(f"client CPU per lead, full scan of {args.leads:,} leads, server answering at once:")
    print(f"  (best of {args.rounds} rounds; ratios: the median of the rounds' own ratios)")
    for name in ("floor", "sdk", "pydantic"):
        print(f"  {name:<9} {min(cpu[name]) * 1e6:6.2f} us")
    print(
        f"  SDK / floor {median_ratio(cpu['sdk'], cpu['floor']):.2f}x   "
        f"pydantic / SDK {median_ratio(cpu['pydantic'], cpu['sdk']):.2f}x"
    )


if __name__ == "__main__":
    main()
