"""Enrolments that are interrupted, re-run, or fed careless input."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from dialnexa_async import (
    AsyncDialNexa,
    EnrollmentError,
    NotFoundError,
    SourceValidationError,
    read_journal,
)
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY


def phones(count: int, start: int = 0) -> list[dict[str, str]]:
    return [{"phone_number": f"+9198{i:08d}", "n": str(i)} for i in range(start, start + count)]


def stored(fake: FakeDialNexa, workflow_id: str) -> Counter[str]:
    return Counter(lead["phone_number"] for lead in fake.store.workflows[workflow_id].leads)


# -- journals ------------------------------------------------------------------------------


async def test_a_timed_out_enrolment_re_run_with_its_journal_enrols_nobody_twice(
    tmp_path: Path,
) -> None:
    rows = phones(2000)
    journal = tmp_path / "enrol.jsonl"
    uploads = 0

    async def staggered(request: web.Request) -> None:
        # Uploads take 0 to 150 ms, so that when one is through others are still in flight.
        nonlocal uploads
        if request.method == "POST":
            uploads += 1
            await asyncio.sleep(0.05 * (uploads % 4))

    async with FakeDialNexa(api_key=API_KEY, interceptor=staggered) as fake:
        workflow = fake.store.create_workflow("interrupted")
        # One attempt may take 1 s: a re-run settles unknown uploads 1 s after they were let go.
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=4, timeout=1) as dn:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(None) as deadline:

                    def expire(done: int, total: int | None) -> None:
                        # The timeout strikes once an upload is through and others are in
                        # flight: as a timer would, but the same way on a loaded machine.
                        deadline.reschedule(asyncio.get_running_loop().time())

                    await dn.workflows.leads.enroll(
                        workflow.id, rows, chunk_size=100, journal=journal, on_progress=expire
                    )
            first = read_journal(journal)
            assert first.rows_enrolled > 0
            assert first.rows_unknown > 0  # uploads in flight when the timeout struck

            # Run it again at once, as a user would: the uploads left in flight may still be
            # applied; the re-run waits until they cannot be, then looks them up.
            second = await dn.workflows.leads.enroll(
                workflow.id, rows, chunk_size=100, journal=journal
            )
            applied_by_first = len(workflow.leads) - second.leads_enrolled
            assert max(stored(fake, workflow.id).values()) == 1  # nobody twice
            assert second.ok
            assert second.unknown == []
            assert second.rows_already_enrolled >= first.rows_enrolled
            assert second.rows_already_enrolled == applied_by_first
    assert stored(fake, workflow.id) == Counter(row["phone_number"] for row in rows)
    summary = read_journal(journal)
    assert summary.runs == 2
    assert summary.workflow_id == workflow.id
    assert (summary.rows_enrolled, summary.rows_unknown) == (2000, 0)


async def test_a_journal_re_sends_failed_uploads_and_survives_a_torn_line(tmp_path: Path) -> None:
    journal = tmp_path / "enrol.jsonl"
    bad = [{"phone_number": "12"}]  # refused by the server
    rows = phones(3) + bad
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("failed")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            first = await dn.workflows.leads.enroll(
                workflow.id, rows, chunk_size=2, journal=journal
            )
            assert first.leads_enrolled == 2
            assert len(first.failed) == 1
            with journal.open("a") as handle:
                handle.write('{"event": "enrolled", "upl')  # a crash mid-write
            fixed = [*phones(3), {"phone_number": "+919812345678"}]
            second = await dn.workflows.leads.enroll(
                workflow.id, fixed, chunk_size=2, journal=journal
            )
    assert second.rows_already_enrolled == 2
    assert second.leads_enrolled == 2  # the failed upload's rows, sent again
    assert max(stored(fake, workflow.id).values()) == 1
    assert stat.S_IMODE(os.stat(journal).st_mode) == 0o600  # it holds names and numbers


async def test_a_journal_of_another_workflow_is_refused_before_sending(tmp_path: Path) -> None:
    journal = tmp_path / "enrol.jsonl"
    async with FakeDialNexa(api_key=API_KEY) as fake:
        one = fake.store.create_workflow("one")
        two = fake.store.create_workflow("two")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            await dn.workflows.leads.enroll(one.id, phones(2), journal=journal)
            before = fake.stats.requests
            with pytest.raises(ValueError, match="another journal"):
                await dn.workflows.leads.enroll(two.id, phones(2), journal=journal)
    assert fake.stats.requests == before


async def test_journal_events_say_what_happened(tmp_path: Path) -> None:
    journal = tmp_path / "enrol.jsonl"
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("events")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            await dn.workflows.leads.enroll(workflow.id, phones(3), chunk_size=2, journal=journal)
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["event"] for e in events].count("sending") == 2
    assert [e["event"] for e in events].count("enrolled") == 2
    # The two uploads run concurrently: their events come in either order.
    sending = sorted(
        (e for e in events if e["event"] == "sending"), key=lambda e: e["row_numbers"][0]
    )
    assert [[row["phone_number"] for row in e["rows"]] for e in sending] == [
        ["+919800000000", "+919800000001"],
        ["+919800000002"],
    ]
    assert [e["row_numbers"] for e in sending] == [[2, 3], [4]]
    assert all(len(e["upload"]) == 64 for e in sending)  # a SHA-256 of the bytes sent


async def test_skip_existing_enrols_nobody_twice_without_a_journal() -> None:
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("existing")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            await dn.workflows.leads.enroll(workflow.id, phones(150))
            posts = fake.stats.by_route.get("POST /v1/workflows/{workflow_id}/leads", 0)
            again = await dn.workflows.leads.enroll(workflow.id, phones(200), skip_existing=True)
    assert again.leads_enrolled == 50
    assert again.rows_already_enrolled == 150
    assert {row.reason for row in again.skipped} == {"already_in_workflow"}
    assert [row.row_number for row in again.skipped] == list(range(2, 152))
    assert fake.stats.by_route["POST /v1/workflows/{workflow_id}/leads"] == posts + 1
    assert max(stored(fake, workflow.id).values()) == 1


async def test_duplicates_skipped_in_the_source_are_reported() -> None:
    rows = [*phones(2), phones(1)[0]]
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("dupes")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            result = await dn.workflows.leads.enroll(workflow.id, rows, on_duplicate="skip")
    assert result.leads_enrolled == 2
    assert [(r.row_number, r.reason) for r in result.skipped] == [(4, "duplicate_in_source")]


# -- [C, G] callbacks and closed sessions never lose the result --------------------------------


async def test_a_progress_callback_that_raises_keeps_the_result() -> None:
    def on_progress(done: int, total: int | None) -> None:
        raise ValueError("progress bar broke")

    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("callback")
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=1) as dn:
            with pytest.raises(EnrollmentError, match="progress bar broke") as info:
                await dn.workflows.leads.enroll(
                    workflow.id, phones(500), chunk_size=100, on_progress=on_progress
                )
    result = info.value.result
    assert isinstance(info.value.__cause__, ValueError)
    assert not isinstance(info.value, BaseExceptionGroup)
    enrolled = result.leads_enrolled
    not_sent = sum(len(f.row_numbers) for f in result.failed)
    assert enrolled >= 100
    assert enrolled + not_sent == 500  # every row accounted for
    assert len(workflow.leads) == enrolled


async def test_enrolling_on_a_closed_session_is_a_plain_error() -> None:
    async with FakeDialNexa(api_key=API_KEY) as fake:
        dn = AsyncDialNexa(API_KEY, base_url=fake.url)
        await dn.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await dn.workflows.leads.enroll("wf_1", phones(3))


async def test_a_session_closed_mid_enrolment_raises_the_result_not_a_group() -> None:
    async with FakeDialNexa(api_key=API_KEY, latency=0.05) as fake:
        workflow = fake.store.create_workflow("closing")
        dn = AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=2)

        def close_soon(done: int, total: int | None) -> None:
            asyncio.get_running_loop().create_task(dn.aclose())

        with pytest.raises(EnrollmentError) as info:
            await dn.workflows.leads.enroll(
                workflow.id, phones(1000), chunk_size=100, on_progress=close_soon
            )
        await asyncio.sleep(0.1)
    result = info.value.result
    accounted = result.leads_enrolled + sum(
        len(f.row_numbers) for f in [*result.failed, *result.unknown]
    )
    assert accounted == 1000


# -- errors that escaped the hierarchy -----------------------------------------------------


async def test_status_counts_of_a_missing_workflow_is_one_not_found_error() -> None:
    async with FakeDialNexa(api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(NotFoundError) as info:
                await dn.workflows.leads.status_counts("wf_nope")
    assert not isinstance(info.value, BaseExceptionGroup)


async def test_remove_accepts_any_2xx_body() -> None:
    def deleted(request: web.Request) -> web.Response | None:
        if request.method == "DELETE":
            return web.Response(text="Deleted", content_type="text/plain")
        return None

    async with FakeDialNexa(api_key=API_KEY, interceptor=deleted) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            await dn.workflows.leads.remove("wf_1", "lead_1")


async def test_stalled_survives_a_lead_removed_meanwhile_and_closes_cleanly() -> None:
    gone: list[str] = []

    def remove_first(request: web.Request) -> web.Response | None:
        if request.path.endswith("/history") and not gone:
            gone.append(request.path)
            return web.json_response({"message": "Workflow lead not found"}, status=404)
        return None

    async with FakeDialNexa(
        leads=300, api_key=API_KEY, latency=0.01, interceptor=remove_first
    ) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            found = [
                lead
                async for lead, _ in dn.workflows.leads.stalled(
                    fake.workflow_id or "", older_than=timedelta(0)
                )
            ]
            assert gone
            assert found
            stalled = dn.workflows.leads.stalled(fake.workflow_id or "", older_than=timedelta(0))
            stream = aiter(stalled)
            await anext(stream)
            await stalled.aclose()
            assert [t for t in asyncio.all_tasks() if t.get_name().startswith("dialnexa-")] == []


# -- careless input ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1000, 1])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
async def test_row_numbers_count_blank_lines_as_a_spreadsheet_does(
    chunk_size: int, newline: str
) -> None:
    text = newline.join(["phone_number", "+919800000001", "", "12", "+919800000002", ""])
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("blank")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            result = await dn.workflows.leads.enroll(
                workflow.id, text.encode(), chunk_size=chunk_size
            )
    bad = [row for failure in result.failed for error in failure.errors for row in error.rows]
    assert bad == [4]


async def test_a_latin_1_csv_needs_its_encoding_named(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes("phone_number,name\n+919800000001,José\n".encode("latin-1"))
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("latin")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(SourceValidationError, match="encoding=") as info:
                await dn.workflows.leads.enroll(workflow.id, path)
            assert info.value.source == "leads.csv"
            result = await dn.workflows.leads.enroll(workflow.id, path, encoding="latin-1")
    assert result.leads_enrolled == 1
    [lead] = workflow.leads
    assert lead["metadata"]["name"] == "José"  # sent as UTF-8


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"name\nAsha\n", "phone_number"),
        (b"phone_number,name,name\n+919800000001,a,b\n", "more than once"),
        (b"\n\n", "empty"),
    ],
)
async def test_header_problems_are_source_validation_errors(data: bytes, match: str) -> None:
    async with FakeDialNexa(api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(ValueError, match=match) as info:
                await dn.workflows.leads.enroll("wf_1", data)
    if match != "empty":
        assert isinstance(info.value, SourceValidationError)
    assert fake.stats.requests == 0


async def test_rows_whose_columns_do_not_name_a_phone_are_source_validation_errors() -> None:
    async with FakeDialNexa(api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(SourceValidationError, match="phone_number"):
                await dn.workflows.leads.enroll("wf_1", [{"name": "Asha"}])
