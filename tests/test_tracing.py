"""OpenTelemetry spans for scans, enrolments and status changes, with the HTTP attempts nested
under them (the ``otel`` extra), read back from the SDK's in-memory span exporter."""

from __future__ import annotations

import pytest

from dialnexa_async import AsyncDialNexa
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider() -> None:
    # One global provider per process (OpenTelemetry refuses a second): set it once, here.
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


async def test_a_scan_an_enrolment_and_a_status_change_are_spans_with_their_requests() -> None:
    async with FakeDialNexa(leads=350, api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            EXPORTER.clear()
            leads = await dn.workflows.leads.list(fake.workflow_id or "").collect()
            workflow = await dn.workflows.create(title="Traced")
            rows = [{"phone_number": f"+9198{i:08d}"} for i in range(250)]
            result = await dn.workflows.leads.enroll(workflow.id, rows, chunk_size=100)
            await dn.workflows.activate(workflow.id)
    assert len(leads) == 350
    assert result.leads_enrolled == 250
    spans = EXPORTER.get_finished_spans()
    by_name = {span.name: span for span in spans if span.name.startswith("dialnexa.")}
    scan, enrol, status = (
        by_name["dialnexa.scan"],
        by_name["dialnexa.enroll"],
        by_name["dialnexa.set_status"],
    )
    assert scan.attributes is not None
    assert scan.attributes["dialnexa.pages_fetched"] == 4
    assert scan.attributes["dialnexa.path"] == f"/workflows/{fake.workflow_id}/leads"
    assert enrol.attributes is not None
    assert enrol.attributes["dialnexa.leads_enrolled"] == 250
    assert enrol.attributes["dialnexa.uploads"] == 3
    assert enrol.attributes["dialnexa.rows_failed"] == 0
    assert status.attributes is not None
    assert status.attributes["dialnexa.action"] == "activate"

    def children(parent: object) -> list[object]:
        return [
            span
            for span in spans
            if span.parent is not None and span.parent.span_id == parent.context.span_id  # type: ignore[attr-defined]
        ]

    assert len(children(scan)) == 4  # every page request nested under its scan
    assert len(children(enrol)) == 3  # every upload under its enrolment
    assert len(children(status)) == 1
    for span in spans:  # the key is recorded nowhere
        assert API_KEY not in str(dict(span.attributes or {}))


def test_without_opentelemetry_nothing_is_traced_and_everything_works() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('opentelemetry', 'opentelemetry.trace', 'opentelemetry.context',\n"
        "             'opentelemetry.instrumentation.aiohttp_client'):\n"
        "    sys.modules[name] = None\n"
        "import asyncio\n"
        "from dialnexa_async import AsyncDialNexa, _tracing\n"
        "from dialnexa_async.testing import FakeDialNexa\n"
        "assert not _tracing.enabled()\n"
        "assert _tracing.aiohttp_trace_configs() == []\n"
        "async def main():\n"
        "    async with FakeDialNexa(leads=150) as fake:\n"
        "        async with AsyncDialNexa(fake.api_key, base_url=fake.url) as dn:\n"
        "            assert len(await dn.workflows.leads.list(fake.workflow_id).collect()) == 150\n"
        "            await dn.workflows.leads.enroll(fake.workflow_id, [{'phone_number': '+919800000001'}])\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
