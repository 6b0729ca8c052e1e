"""Bulk enrolment: chunked and concurrent, against one single upload and chunks one by one.

    python -m benchmarks.enrollment [--rows 200000] [--latency-ms 20] [--chunk-size 1000]

The shipped fake server runs in a process of its own with injected latency. In the same run this
enrols ``--rows`` generated rows (Python dicts) three ways, each into a new workflow:

* chunked and concurrent: ``enroll(rows)`` (``--chunk-size`` rows per upload, 8 at a time);
* one single upload: ``enroll(rows, chunk_size=len(rows))``;
* chunks one after another: ``enroll(rows, max_concurrency=1)``;

and prints rows per second for each. Then, in a child process, it enrols the same rows from a
CSV file on disk and reports how much that process's resident memory grew.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dialnexa_async import AsyncDialNexa

from .pagination import fake_server, peak_rss_mib, rss_mib


def make_rows(count: int) -> list[dict[str, str]]:
    return [
        {"phone_number": f"+9198{i:08d}", "customer_name": f"Customer {i}", "city": "Mumbai"}
        for i in range(count)
    ]


async def enrol(url: str, key: str, rows: object, **options: int) -> tuple[float, int]:
    async with AsyncDialNexa(key, base_url=url, max_concurrency=8, timeout=600) as dn:
        workflow = await dn.workflows.create(title="bench")
        started = time.perf_counter()
        result = await dn.workflows.leads.enroll(workflow.id, rows, **options)  # type: ignore[arg-type]
        took = time.perf_counter() - started
    assert result.ok, (result.failed, result.unknown)
    return took, result.leads_enrolled


async def speed(url: str, key: str, count: int, chunk_size: int) -> None:
    rows = make_rows(count)
    ways = {
        f"chunked, concurrent ({chunk_size}/upload, 8 at a time)": {"chunk_size": chunk_size},
        "one single upload": {"chunk_size": count},
        f"chunks one after another ({chunk_size}/upload)": {
            "chunk_size": chunk_size,
            "max_concurrency": 1,
        },
    }
    results = {}
    for name, options in ways.items():
        took, enrolled = await enrol(url, key, rows, **options)
        assert enrolled == count
        results[name] = count / took
        print(f"  {name:<48} {took:6.2f}s  {count / took:>10,.0f} rows/s")
    first, single, sequential = results.values()
    print(
        f"chunked-concurrent vs single upload {first / single:.1f}x, "
        f"vs one by one {first / sequential:.1f}x"
    )


def memory_child(url: str, key: str, path: str) -> None:
    async def run() -> tuple[float, float, float]:
        async with AsyncDialNexa(key, base_url=url, max_concurrency=8, timeout=600) as dn:
            workflow = await dn.workflows.create(title="memory")
            before = rss_mib()
            started = time.perf_counter()
            result = await dn.workflows.leads.enroll(workflow.id, Path(path))
            took = time.perf_counter() - started
        assert result.ok
        peak = peak_rss_mib()
        return before, peak, took

    print(*asyncio.run(run()))


def memory(url: str, key: str, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["phone_number", "customer_name", "city"])
            writer.writeheader()
            writer.writerows(make_rows(count))
        size = path.stat().st_size / 2**20
        command = [sys.executable, "-m", "benchmarks.enrollment", "--memory-child", url, key]
        out = subprocess.run(  # noqa: S603
            [*command, str(path)], check=True, capture_output=True, text=True
        ).stdout.split()
    before, peak, took = (float(x) for x in out)
    print(
        f"memory: enrolling a {count:,}-row CSV file ({size:.1f} MiB) took {took:.1f}s; "
        f"RSS {before:.1f} MiB before, peak {peak:.1f} MiB: grew {peak - before:.1f} MiB"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        memory_child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description="Bulk enrolment: chunked vs single vs serial.")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--chunk-size", type=int, default=1000)
    args = parser.parse_args()
    with fake_server(0, args.latency_ms) as (url, key, _):
        print(f"{args.rows:,} rows into the fake server, latency {args.latency_ms:g} ms")
        asyncio.run(speed(url, key, args.rows, args.chunk_size))
        memory(url, key, args.rows)


if __name__ == "__main__":
    main()
