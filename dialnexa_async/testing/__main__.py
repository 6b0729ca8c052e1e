"""Run the fake DialNexa server on its own: ``python -m dialnexa_async.testing``.

It prints one line, ``DIALNEXA_BASE_URL=<url> DIALNEXA_API_KEY=<key> WORKFLOW_ID=<id>``, then
serves until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio

from ._server import DEFAULT_API_KEY, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dialnexa_async.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--leads", type=int, default=0, help="generated leads in a first workflow")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key it accepts")
    parser.add_argument(
        "--benchmark-page-cache",
        action="store_true",
        help="keep lead pages' answers until the list changes (for client benchmarks)",
    )
    args = parser.parse_args(argv)
    asyncio.run(
        serve(
            port=args.port,
            leads=args.leads,
            latency_ms=args.latency_ms,
            api_key=args.api_key,
            benchmark_page_cache=args.benchmark_page_cache,
        )
    )


if __name__ == "__main__":
    main()
