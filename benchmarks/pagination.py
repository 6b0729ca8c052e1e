"""Full ordered scan of a workflow's leads: the SDK against a page-after-page loop and the limit.

    python -m benchmarks.pagination [--leads 10000] [--latency-ms 20] [--repeat 3]
                                    [--memory-leads 1000000]

The shipped fake server runs in a process of its own (``python -m dialnexa_async.testing``),
with injected latency, so its CPU is not the client's. In the same run this measures:

* baseline: a plain aiohttp loop fetching page after page (what a user writes today);
* the SDK's ``async for lead in dn.workflows.leads.list(...)`` at C = 8 and C = 16;
* the physical limit of an ordered scan: one round trip to learn ``totalPages``, then
  ``ceil((P - 1) / C)`` round trips, each the measured single-request round-trip time;
* the peak memory of scanning ``--memory-leads`` leads (no latency), in a child process: how
  much its resident set grows from just before the scan to its peak.

Times are the best of ``--repeat``; it prints the ratios SDK / limit and baseline / SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import aiohttp

from dialnexa_async import AsyncDialNexa

PAGE = 100


@contextmanager
def fake_server(leads: int, latency_ms: float) -> Iterator[tuple[str, str, str]]:
    """A fake server process; yields ``(base url, api key, workflow id)``."""
    command = [sys.executable, "-m", "dialnexa_async.testing", "--leads", str(leads)]
    command.append("--benchmark-page-cache")
    command += ["--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert process.stdout is not None
        fields = dict(part.split("=", 1) for part in process.stdout.readline().split())
        yield fields["DIALNEXA_BASE_URL"], fields["DIALNEXA_API_KEY"], fields["WORKFLOW_ID"]
    finally:
        process.terminate()
        process.wait(timeout=30)


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
    """The best single-page round trip, on a warm connection."""
    async with AsyncDialNexa(key, base_url=url) as dn:
        await dn.workflows.leads.page(workflow_id, limit=PAGE)
        times = []
        for _ in range(10):
            started = time.perf_counter()
            await dn.workflows.leads.page(workflow_id, limit=PAGE)
            times.append(time.perf_counter() - started)
        return min(times)


async def best_of(repeat: int, run: Callable[[], Awaitable[int]], expected: int) -> float:
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        count = await run()
        best = min(best, time.perf_counter() - started)
        assert count == expected, (count, expected)
    return best


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """This process's peak resident memory, in MiB.

    Read from ``VmHWM``, not ``ru_maxrss``: a child started by fork and exec inherits its
    parent's ``ru_maxrss``, so that would report the parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def memory_child(url: str, key: str, workflow_id: str, leads: int) -> None:
    """Runs in a child process: scan everything, print RSS before and peak after."""
    async with AsyncDialNexa(key, base_url=url) as dn:
        await dn.workflows.leads.page(workflow_id, limit=1)  # warm up: imports, connection
        before = rss_mib()
        started = time.perf_counter()
        count = 0
        async for _ in dn.workflows.leads.list(workflow_id):
            count += 1
        took = time.perf_counter() - started
    peak = peak_rss_mib()
    assert count == leads, (count, leads)
    print(f"{before:.1f} {peak:.1f} {took:.2f}")


def measure_memory(leads: int) -> None:
    with fake_server(leads, 0) as (url, key, wf):
        command = [sys.executable, "-m", "benchmarks.pagination", "--memory-child", url, key, wf]
        out = subprocess.run(  # noqa: S603
            [*command, str(leads)], check=True, capture_output=True, text=True
        ).stdout.split()
    before, peak, took = (float(x) for x in out)
    print(
        f"memory: scanning {leads:,} leads took {took:.1f}s; RSS {before:.1f} MiB before, "
        f"peak {peak:.1f} MiB: grew {peak - before:.1f} MiB"
    )


async def measure_speed(leads: int, latency_ms: float, repeat: int) -> None:
    with fake_server(leads, latency_ms) as (url, key, wf):
        pages = math.ceil(leads / PAGE)
        rtt = await round_trip(url, key, wf)
        base = await best_of(repeat, lambda: baseline(url, key, wf), leads)
        print(
            f"{leads:,} leads, {pages} pages of {PAGE}, latency {latency_ms:g} ms, "
            f"measured round trip {rtt * 1000:.1f} ms"
        )
        print(f"baseline (page after page): {base:.3f}s")
        for concurrency in (8, 16):

            def run(c: int = concurrency) -> Awaitable[int]:
                return sdk_scan(url, key, wf, c)

            took = await best_of(repeat, run, leads)
            limit = rtt * (1 + math.ceil((pages - 1) / concurrency))
            print(
                f"SDK C={concurrency:<2}: {took:.3f}s  limit {limit:.3f}s  "
                f"SDK/limit {took / limit:.2f}x  baseline/SDK {base / took:.1f}x"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        url, key, wf, leads = sys.argv[2:6]
        asyncio.run(memory_child(url, key, wf, int(leads)))
        return
    parser = argparse.ArgumentParser(description="Ordered scan: SDK vs baseline vs limit.")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-leads", type=int, default=1_000_000, help="0: skip")
    args = parser.parse_args()
    asyncio.run(measure_speed(args.leads, args.latency_ms, args.repeat))
    if args.memory_leads:
        measure_memory(args.memory_leads)


if __name__ == "__main__":
    main()
