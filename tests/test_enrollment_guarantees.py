"""One person is enrolled at most once per journal, whatever happens to the file or the runs.

Against the fake server (real HTTP): concurrent runs sharing a journal (tasks and OS processes),
rows edited between runs, interrupted uploads settled by the next run, truthful accounting, and
a journal that survives its own failures.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dialnexa_async import (
    AsyncDialNexa,
    EnrollmentError,
    EnrollmentLockedError,
    HTTPRequest,
    HTTPResponse,
    LimiterError,
    read_journal,
)
from dialnexa_async.testing import FakeDialNexa, MockTransport

from .conftest import API_KEY


def rows_of(count: int, **extra: str) -> list[dict[str, str]]:
    return [{"phone_number": f"+9198{i:08d}", **extra} for i in range(count)]


def stored(fake: FakeDialNexa, workflow_id: str) -> Counter[str]:
    return Counter(lead["phone_number"] for lead in fake.store.workflows[workflow_id].leads)


def slow_uploads(seconds: float) -> Any:
    async def interceptor(request: web.Request) -> None:
        if request.method == "POST":
            await asyncio.sleep(seconds)

    return interceptor


# -- one run per journal -------------------------------------------------------------------------


async def test_two_tasks_with_one_journal_enrol_each_person_once(tmp_path: Path) -> None:
    journal = tmp_path / "enrol.jsonl"
    rows = rows_of(400)
    async with FakeDialNexa(api_key=API_KEY, interceptor=slow_uploads(0.05)) as fake:
        workflow = fake.store.create_workflow("twice")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            outcomes = await asyncio.gather(
                dn.workflows.leads.enroll(workflow.id, rows, chunk_size=100, journal=journal),
                dn.workflows.leads.enroll(workflow.id, rows, chunk_size=100, journal=journal),
                return_exceptions=True,
            )
    locked = [o for o in outcomes if isinstance(o, EnrollmentLockedError)]
    assert len(locked) == 1
    assert locked[0].resource == str(journal)
    assert max(stored(fake, workflow.id).values()) == 1
    assert sum(stored(fake, workflow.id).values()) == 400


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from dialnexa_async import AsyncDialNexa, EnrollmentLockedError

    async def main() -> None:
        url, workflow, journal = sys.argv[1:4]
        rows = [{"phone_number": f"+9198{i:08d}"} for i in range(600)]
        async with AsyncDialNexa("test-key", base_url=url) as dn:
            try:
                result = await dn.workflows.leads.enroll(
                    workflow, rows, chunk_size=50, journal=journal
                )
            except EnrollmentLockedError:
                print("locked")
                return
            print("enrolled", result.leads_enrolled)

    asyncio.run(main())
    """
)


async def test_two_processes_with_one_journal_enrol_each_person_once(tmp_path: Path) -> None:
    journal = tmp_path / "enrol.jsonl"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    async with FakeDialNexa(api_key="test-key", interceptor=slow_uploads(0.05)) as fake:
        workflow = fake.store.create_workflow("fleet")
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                fake.url,
                workflow.id,
                str(journal),
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = [(await worker.communicate())[0].decode().strip() for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    # Whichever came second either found the journal locked, or (the first being done) found
    # everyone enrolled already.
    assert sorted(outputs) in (["enrolled 600", "locked"], ["enrolled 0", "enrolled 600"])
    assert max(stored(fake, workflow.id).values()) == 1
    assert sum(stored(fake, workflow.id).values()) == 600


# -- a person is their phone number --------------------------------------------------------------


async def test_rows_edited_between_runs_are_not_enrolled_again(tmp_path: Path) -> None:
    journal = tmp_path / "enrol.jsonl"
    first_rows = [{**row, "name": "Asha"} for row in rows_of(5)]
    edited = [
        {"phone_number": "+9198 0000-0000", "name": "Asha"},  # spaces and a hyphen
        {"phone_number": " +919800000001 ", "name": "Asha K."},  # a corrected name, spaces
        {"phone_number": "+919800000002", "name": "Asha", "city": "Pune"},  # a new column
        {"phone_number": "+919800000003", "name": "Asha"},
        {"phone_number": "+919800000004", "name": "Asha"},
        {"phone_number": "+919800000005", "name": "Ravi"},  # a new person
    ]
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("edited")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            await dn.workflows.leads.enroll(workflow.id, first_rows, journal=journal)
            again = await dn.workflows.leads.enroll(workflow.id, edited, journal=journal)
    assert again.leads_enrolled == 1
    changed = {row.row_number: row.changed_fields for row in again.skipped}
    assert changed == {2: (), 3: ("name",), 4: ("city",), 5: (), 6: ()}
    assert {row.reason for row in again.skipped} == {"already_enrolled"}
    assert len(fake.store.workflows[workflow.id].leads) == 6


async def test_numbers_written_differently_are_one_person_in_a_source() -> None:
    rows = [{"phone_number": "+919800000001"}, {"phone_number": "+91 (98000) 00-001"}]
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("dupes")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            result = await dn.workflows.leads.enroll(workflow.id, rows, on_duplicate="skip")
    assert result.leads_enrolled == 1
    assert [row.reason for row in result.skipped] == ["duplicate_in_source"]


# -- unknown uploads settle ----------------------------------------------------------------------


async def test_an_unknown_upload_is_settled_by_the_next_run_never_guessed(tmp_path: Path) -> None:
    """An upload the server applied but whose answer never came, and one it never received:
    the next run waits out the first, finds it in the workflow, and sends only the second."""
    journal = tmp_path / "enrol.jsonl"
    rows = rows_of(200)
    answered = 0

    async def drop_answers(request: web.Request) -> None:
        nonlocal answered
        if request.method == "POST":
            answered += 1
            if answered == 1:
                await asyncio.sleep(5)  # applied late: the client's 0.5 s attempt gives up

    async with FakeDialNexa(api_key=API_KEY, interceptor=drop_answers) as fake:
        workflow = fake.store.create_workflow("unknown")
        async with AsyncDialNexa(
            API_KEY, base_url=fake.url, timeout=0.5, max_retries=0, max_concurrency=1
        ) as dn:
            first = await dn.workflows.leads.enroll(
                workflow.id, rows, chunk_size=100, journal=journal
            )
            assert len(first.unknown) == 1
            assert read_journal(journal).rows_unknown == 100
            second = await dn.workflows.leads.enroll(
                workflow.id, rows, chunk_size=100, journal=journal
            )
    assert second.ok
    assert second.unknown == []
    assert max(stored(fake, workflow.id).values()) == 1
    assert sum(stored(fake, workflow.id).values()) == 200
    summary = read_journal(journal)
    assert (summary.rows_enrolled, summary.rows_unknown) == (200, 0)


# -- accounting tells the truth ------------------------------------------------------------------


def _answer_uploads(status: int, body: object, headers: dict[str, str] | None = None) -> Any:
    def handler(request: HTTPRequest) -> HTTPResponse:
        if request.method == "POST":
            return HTTPResponse.json(body, status=status, headers=headers or {})
        return HTTPResponse.json({"data": [], "meta": {"total": 0}})

    return handler


async def test_a_503_with_retry_after_on_every_attempt_is_failed_not_unknown() -> None:
    handler = _answer_uploads(503, {"message": "busy"}, {"Retry-After": "0"})
    async with AsyncDialNexa(API_KEY, transport=MockTransport(handler), max_retries=1) as dn:
        result = await dn.workflows.leads.enroll("wf_1", rows_of(3))
    assert [f.outcome for f in result.failed] == ["failed"]
    assert result.unknown == []


async def test_a_503_without_retry_after_is_unknown() -> None:
    handler = _answer_uploads(503, {"message": "busy"})
    async with AsyncDialNexa(API_KEY, transport=MockTransport(handler), max_retries=0) as dn:
        result = await dn.workflows.leads.enroll("wf_1", rows_of(3))
    assert [f.outcome for f in result.unknown] == ["unknown"]


async def test_an_unreachable_limiter_fails_the_upload_as_never_sent() -> None:
    class Down:
        async def acquire(self) -> Any:
            raise LimiterError("redis is down", name="budget")

        async def cool_down(self, seconds: float) -> None:
            pass

        async def aclose(self) -> None:
            pass

    transport = MockTransport(_answer_uploads(201, {"leads_enrolled": 3}))
    async with AsyncDialNexa(API_KEY, transport=transport, limiter=Down()) as dn:
        result = await dn.workflows.leads.enroll("wf_1", rows_of(3))
    assert [f.outcome for f in result.failed] == ["failed"]
    assert isinstance(result.failed[0].error, LimiterError)
    assert result.unknown == []
    assert transport.requests == []


async def test_a_2xx_enrolling_fewer_leads_than_rows_is_reported_short() -> None:
    body = {"statusCode": 201, "message": "ok", "data": {"+919800000000": ["lead_1"]}, "count": 1}
    async with AsyncDialNexa(API_KEY, transport=MockTransport(_answer_uploads(201, body))) as dn:
        result = await dn.workflows.leads.enroll("wf_1", rows_of(3))
    assert not result.ok
    assert [f.outcome for f in result.short] == ["short"]
    assert result.short[0].row_numbers == [3, 4]  # the rows the server named no lead for
    assert "enrolled 1 leads" in str(result.short[0].error)


async def test_row_errors_naming_rows_outside_their_upload_are_flagged() -> None:
    body = {
        "message": "1 row failed",
        "errors": [{"code": "invalid", "message": "bad", "rows": [2, 57]}],
    }
    async with AsyncDialNexa(API_KEY, transport=MockTransport(_answer_uploads(400, body))) as dn:
        result = await dn.workflows.leads.enroll("wf_1", rows_of(3))
    (error,) = result.failed[0].errors
    assert error.rows == [2]
    assert error.unmapped_rows == [57]


async def test_an_async_progress_callback_is_awaited() -> None:
    seen: list[int] = []

    async def progress(done: int, total: int | None) -> None:
        await asyncio.sleep(0)
        seen.append(done)

    transport = MockTransport(_answer_uploads(201, {"leads_enrolled": 2}))
    async with AsyncDialNexa(API_KEY, transport=transport) as dn:
        await dn.workflows.leads.enroll("wf_1", rows_of(4), chunk_size=2, on_progress=progress)
    assert sorted(seen) == [2, 4]


# -- the journal survives its own failures -------------------------------------------------------


async def test_a_full_disk_raises_the_whole_result_with_the_os_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "enrol.jsonl"
    real_fsync = os.fsync
    calls = 0

    def fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls > 3:  # the run event and the first upload's two events fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("full")
        async with AsyncDialNexa(API_KEY, base_url=fake.url, max_concurrency=1) as dn:
            with pytest.raises(EnrollmentError) as caught:
                await dn.workflows.leads.enroll(
                    workflow.id, rows_of(500), chunk_size=100, journal=journal
                )
    assert isinstance(caught.value.__cause__, OSError)
    result = caught.value.result
    accounted = sum(u.leads_enrolled for u in result.uploads) + sum(
        len(f.row_numbers) for f in [*result.failed, *result.unknown]
    )
    assert accounted == 500  # every row is somewhere


async def test_a_torn_last_line_is_mended_for_every_later_run(tmp_path: Path) -> None:
    journal = tmp_path / "enrol.jsonl"
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("torn")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            for run in range(4):
                await dn.workflows.leads.enroll(
                    workflow.id, rows_of(10 * (run + 1)), journal=journal
                )
                with journal.open("a") as handle:
                    handle.write('{"event": "enrolled", "upl')  # a crash mid-write
    assert read_journal(journal).runs == 4
    assert sum(stored(fake, workflow.id).values()) == 40


def test_a_journal_edited_by_hand_is_a_value_error_naming_the_line(tmp_path: Path) -> None:
    journal = tmp_path / "enrol.jsonl"
    lines = [
        {"event": "run", "version": 2, "workflow_id": "wf_1"},
        {"event": "sending", "upload": "u1", "rows": "not a list"},
        {"event": "enrolled", "upload": "u1"},
    ]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ValueError, match="line 2"):
        read_journal(journal)
    journal.write_text('{"event": "run"}\nnot json\n{"event": "run"}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_journal(journal)


def test_a_crashed_run_leaves_a_journal_the_next_run_reads(tmp_path: Path) -> None:
    """SIGKILL mid-run in a real process: the journal reads, and unknown uploads wait for the
    whole upload deadline from when they were sent."""
    journal = tmp_path / "enrol.jsonl"
    journal.write_text(
        json.dumps({"event": "run", "version": 2, "workflow_id": "wf_1"})
        + "\n"
        + json.dumps(
            {
                "event": "sending",
                "upload": "u1",
                "rows": [{"phone_number": "+919800000000"}],
                "settle_after": 12345.0,
            }
        )
        + "\n"
    )
    summary = read_journal(journal)
    assert (summary.rows_unknown, summary.rows_enrolled) == (1, 0)
    code = "import fcntl, sys; f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)"
    # No lock is left behind by a reader.
    subprocess.run([sys.executable, "-c", code, str(journal)], check=True)


async def test_skip_existing_decides_only_on_a_complete_scan() -> None:
    """The workflow's page 3 comes back one lead short, twice: the enrolment stops with a
    typed error before it sends anything (it used to re-send 801 of 1,000 rows)."""
    from dialnexa_async import PaginationError
    from dialnexa_async.testing import HostilePages

    pages = HostilePages([f"lead_{n}" for n in range(1000)], short_always={3: 1})
    uploads = 0

    def handler(request: HTTPRequest) -> HTTPResponse:
        nonlocal uploads
        if request.method == "POST":
            uploads += 1
            return HTTPResponse.json({"leads_enrolled": 1}, status=201)
        return pages(request)

    async with AsyncDialNexa(API_KEY, transport=MockTransport(handler), max_retries=0) as dn:
        with pytest.raises(PaginationError, match="page 3"):
            await dn.workflows.leads.enroll("wf_1", rows_of(1000), skip_existing=True)
    assert uploads == 0
