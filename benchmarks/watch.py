"""What a watch keeps per lead: two scans of 1,000,000 leads, the resident memory it grows by.

    python -m benchmarks.watch [--leads 1000000]

The fake server runs in a process of its own (no latency); a child process runs
``dn.workflows.leads.watch(..., max_scans=2)`` and reports its resident memory just before the
watch, after both scans (the watch's state is alive: one entry per lead), and at its peak. The
growth divided by the number of leads is what one lead costs the watcher.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from benchmarks.pagination import fake_server, peak_rss_mib, rss_mib
from dialnexa_async import AsyncDialNexa


async def child(url: str, key: str, workflow_id: str, leads: int) -> None:
    async with AsyncDialNexa(key, base_url=url) as dn:
        await dn.workflows.leads.page(workflow_id, limit=1)  # warm up: imports, connection
        before = rss_mib()
        started = time.perf_counter()
        watch = dn.workflows.leads.watch(workflow_id, every=0.01, max_scans=2)
        changes = [change async for change in watch]
        took = time.perf_counter() - started
        after = rss_mib()  # the watch's entries are still alive here
        assert watch.stats.leads == leads, watch.stats
        assert changes == []  # nothing changed between the two scans
        peak = peak_rss_mib()
        await watch.aclose()
    print(f"{before:.1f} {after:.1f} {peak:.1f} {took:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, key, workflow = args.child
        asyncio.run(child(url, key, workflow, args.leads))
        return
    with fake_server(args.leads, 0.0) as (url, key, workflow):
        command = [sys.executable, "-m", "benchmarks.watch", "--leads", str(args.leads)]
        out = subprocess.run(  # noqa: S603
            [*command, "--child", url, key, workflow],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    before, after, peak, took = (float(value) for value in out)
    per_lead = (after - before) * 1024 * 1024 / args.leads
    print(f"watch of {args.leads:,} leads, two scans in {took:.1f}s")
    print(
        f"RSS {before:.1f} MiB before, {after:.1f} MiB after (peak {peak:.1f} MiB): "
        f"{per_lead:.0f} bytes per lead kept between scans"
    )


if __name__ == "__main__":
    main()
