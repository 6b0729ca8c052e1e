import asyncio
import signal
import sys

from dialnexa_async import AsyncDialNexa


async def test_the_fake_server_runs_on_its_own_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dialnexa_async.testing",
        "--leads",
        "42",
        "--latency-ms",
        "1",
        "--api-key",
        "dnx_cli_key",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode()
        fields = dict(part.split("=", 1) for part in line.split())
        assert fields["DIALNEXA_API_KEY"] == "dnx_cli_key"
        async with AsyncDialNexa(
            fields["DIALNEXA_API_KEY"], base_url=fields["DIALNEXA_BASE_URL"]
        ) as dn:
            assert await dn.workflows.leads.count(fields["WORKFLOW_ID"]) == 42
    finally:
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
