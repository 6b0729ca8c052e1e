"""Run the fake DialNexa server on its own: ``python -m dialnexa_async.testing``.

It prints one line, ``DIALNEXA_BASE_URL=<url> DIALNEXA_API_KEY=<key> WORKFLOW_ID=<id>``, then
serves until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from ._server import DEFAULT_API_KEY, FakeDialNexa


async def serve(port: int, leads: int, latency_ms: float, api_key: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeDialNexa(
        leads=leads, latency=latency_ms / 1000, port=port, api_key=api_key
    ) as fake:
        sys.stdout.write(
            f"DIALNEXA_BASE_URL={fake.url} DIALNEXA_API_KEY={fake.api_key} "
            f"WORKFLOW_ID={fake.workflow_id or ''}\n"
        )
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dialnexa_async.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--leads", type=int, default=0, help="generated leads in a first workflow")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key it accepts")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.leads, args.latency_ms, args.api_key))


if __name__ == "__main__":
    main()
