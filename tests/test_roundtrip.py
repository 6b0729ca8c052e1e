"""Every endpoint over real HTTP against the shipped fake server."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from dialnexa_async import (
    AsyncDialNexa,
    BadRequestError,
    ConflictError,
    EnrollmentError,
    LeadStatus,
    NotFoundError,
    WorkflowStatus,
)
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY


async def test_create_enroll_list_remove_read(fake: FakeDialNexa, client: AsyncDialNexa) -> None:
    wf = await client.workflows.create(title="Lead Nurture", description="three calls")
    assert wf.status is WorkflowStatus.DRAFT
    assert wf.description == "three calls"
    result = await client.workflows.leads.enroll(
        wf.id,
        b"phone_number,name,city\n+919876543210,Priya Sharma,Mumbai\n+919123456789,Rahul,Delhi\n",
    )
    assert result.leads_enrolled == 2
    assert result.ok
    leads = await client.workflows.leads.list(wf.id).collect()
    assert [lead.phone_number for lead in leads] == ["+919876543210", "+919123456789"]
    assert leads[0].metadata == {"name": "Priya Sharma", "city": "Mumbai"}
    assert leads[0].enrolled_at is not None
    await client.workflows.leads.remove(wf.id, leads[0].id)
    removed = await client.workflows.leads.list(wf.id, status="removed").collect()
    assert [lead.id for lead in removed] == [leads[0].id]
    assert removed[0].status is LeadStatus.REMOVED
    with pytest.raises(ConflictError):
        await client.workflows.leads.remove(wf.id, leads[0].id)
    with pytest.raises(NotFoundError):
        await client.workflows.leads.remove(wf.id, "wlead_missing")
    campaign_lead = await client.campaign_leads.get(fake.campaign_lead_id or "")
    assert campaign_lead.metadata["product"] == "home_loan"
    with pytest.raises(NotFoundError):
        await client.campaign_leads.get("lead_missing")


async def test_unknown_workflow_is_not_found(client: AsyncDialNexa) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.workflows.leads.list("wf_nope").collect()
    assert info.value.path == "/workflows/wf_nope/leads"
    assert info.value.message == "Workflow not found"


async def test_server_row_errors_come_back_in_the_callers_row_numbers(
    client: AsyncDialNexa,
) -> None:
    wf = await client.workflows.create(title="T")
    rows = [{"phone_number": f"+9198{i:08d}", "n": str(i)} for i in range(10)]
    rows[3]["phone_number"] = "12"  # row 5 in the caller's numbering
    rows[8]["phone_number"] = "+99912345678"  # row 10
    result = await client.workflows.leads.enroll(wf.id, rows, chunk_size=4)
    assert result.leads_enrolled == 4  # only the middle chunk (rows 6-9) went in
    assert len(result.uploads) == 1
    assert [f.row_numbers for f in result.failed] == [[2, 3, 4, 5], [10, 11]]
    assert [[(e.code, e.rows) for e in f.errors] for f in result.failed] == [
        [("invalid_phone_number", [5])],
        [("destination_not_allowed", [10])],
    ]
    assert result.failed[0].rows[3] == {"phone_number": "12", "n": "3"}
    assert all(isinstance(f.error, BadRequestError) for f in result.failed)
    with pytest.raises(EnrollmentError) as info:
        await client.workflows.leads.enroll(wf.id, rows, chunk_size=4, raise_on_error=True)
    assert len(info.value.result.failed) == 2


async def test_single_file_with_bad_rows_reports_them(
    client: AsyncDialNexa, tmp_path: Path
) -> None:
    wf = await client.workflows.create(title="T")
    path = tmp_path / "leads.csv"
    path.write_text("phone_number\n+919800000001\nabc\n+99900000000\n")
    result = await client.workflows.leads.enroll(wf.id, path)
    (failure,) = result.failed
    assert failure.outcome == "failed"
    assert {e.code: e.rows for e in failure.errors} == {
        "invalid_phone_number": [3],
        "destination_not_allowed": [4],
    }
    assert failure.rows[1] == {"phone_number": "abc"}
    assert result.leads_enrolled == 0


async def test_unicode_commas_quotes_and_newlines_survive(
    fake: FakeDialNexa, client: AsyncDialNexa
) -> None:
    wf = await client.workflows.create(title="T")
    tricky = 'Zoë "the, best"\nsecond line — ✓'
    rows = [{"phone_number": f"+9198000000{i:02d}", "note": tricky} for i in range(5)]
    result = await client.workflows.leads.enroll(wf.id, rows, chunk_size=2)
    assert result.leads_enrolled == 5
    assert len(result.uploads) == 3
    stored = fake.store.workflows[wf.id].leads
    assert [lead["metadata"]["note"] for lead in stored] == [tricky] * 5


@pytest.fixture(params=["calamine", "openpyxl"])
def xlsx_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "openpyxl":
        monkeypatch.setitem(sys.modules, "python_calamine", None)  # as if not installed
    return str(request.param)


async def test_xlsx_file_round_trip(
    client: AsyncDialNexa, tmp_path: Path, xlsx_reader: str
) -> None:
    wf = await client.workflows.create(title="T")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["phone_number", "name"])
    sheet.append([919876543210, "Priya"])  # a number, as spreadsheets store phones
    sheet.append(["+919123456789", "Rahul"])
    path = tmp_path / "leads.xlsx"
    book.save(path)
    result = await client.workflows.leads.enroll(wf.id, path)
    assert result.leads_enrolled == 2
    leads = await client.workflows.leads.list(wf.id).collect()
    assert [lead.phone_number for lead in leads] == ["919876543210", "+919123456789"]
    # Larger than a chunk: converted to CSV uploads.
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["phone_number", "name"])
    for i in range(7):
        sheet.append([f"+9197{i:08d}", f"N{i}"])
    buffer = io.BytesIO()
    book.save(buffer)
    result = await client.workflows.leads.enroll(wf.id, buffer.getvalue(), chunk_size=3)
    assert (result.leads_enrolled, len(result.uploads)) == (7, 3)


@pytest.mark.parametrize(("count", "uploads"), [(0, 0), (1, 1), (5, 1), (6, 2)])
async def test_chunk_boundaries(
    fake: FakeDialNexa, client: AsyncDialNexa, count: int, uploads: int
) -> None:
    wf = await client.workflows.create(title="T")
    progress: list[tuple[int, int | None]] = []
    rows = [{"phone_number": f"+9198{i:08d}"} for i in range(count)]
    result = await client.workflows.leads.enroll(
        wf.id, rows, chunk_size=5, on_progress=lambda done, total: progress.append((done, total))
    )
    assert result.leads_enrolled == count
    assert len(result.uploads) == uploads
    assert fake.store.uploads_applied == uploads
    assert len(progress) == uploads
    if uploads:
        assert progress[-1] == (count, count)


async def test_duplicates_skip_or_keep(client: AsyncDialNexa) -> None:
    wf = await client.workflows.create(title="T")
    rows = [{"phone_number": "+919800000001"}, {"phone_number": "+919800000001"}]
    assert (
        await client.workflows.leads.enroll(wf.id, rows, on_duplicate="skip")
    ).leads_enrolled == 1
    assert (
        await client.workflows.leads.enroll(wf.id, rows, on_duplicate="keep")
    ).leads_enrolled == 2


async def test_unknown_workflow_stops_enrolment_and_keeps_every_row(client: AsyncDialNexa) -> None:
    rows = [{"phone_number": f"+9198{i:08d}"} for i in range(10)]
    result = await client.workflows.leads.enroll("wf_nope", rows, chunk_size=2, max_concurrency=1)
    assert result.leads_enrolled == 0
    assert sorted(n for f in result.failed for n in f.row_numbers) == list(range(2, 12))
    assert all(isinstance(f.error, NotFoundError) for f in result.failed)


async def test_the_pytest_plugin_fixtures_work(
    dialnexa_client: AsyncDialNexa, dialnexa_fake_server: FakeDialNexa
) -> None:
    leads = await dialnexa_client.workflows.leads.list(
        dialnexa_fake_server.workflow_id or ""
    ).collect()
    assert len(leads) == 250


async def test_count_and_status_counts() -> None:
    async with FakeDialNexa(leads=103, api_key=API_KEY, latency=0.005) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            wf = fake.workflow_id or ""
            assert await dn.workflows.leads.count(wf) == 103
            counts = await dn.workflows.leads.status_counts(wf)
    stored = fake.store.workflows[wf].leads
    expected: dict[str, int] = {
        status: sum(1 for lead in stored if lead["status"] == status) for status in LeadStatus
    }
    assert dict(counts) == {**expected, "other": 0}
    assert sum(counts.values()) == counts.total == 103
    assert fake.stats.max_in_flight > 1  # the per-status requests overlapped


async def test_status_counts_account_for_statuses_the_sdk_does_not_know() -> None:
    async with FakeDialNexa(leads=100, api_key=API_KEY) as fake:
        workflow = fake.store.workflows[fake.workflow_id or ""]
        for i in range(7):  # the seed's own example shows a lead "active"
            fake.store.add_lead(workflow, f"+9190000000{i:02d}", status="active")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            counts = await dn.workflows.leads.status_counts(workflow.id)
    assert counts.total == 107
    assert counts["other"] == counts.other == 7
    assert sum(counts.values()) == 107  # every lead is counted somewhere
    assert counts[LeadStatus.PENDING] == counts["pending"]
    assert list(counts) == [*(status.value for status in LeadStatus), "other"]


async def test_async_iterable_attrs_and_dataclass_rows(
    fake: FakeDialNexa, client: AsyncDialNexa
) -> None:
    import dataclasses

    import attrs

    @attrs.define
    class AttrsRow:
        phone_number: str
        plan: str

    @dataclasses.dataclass
    class DataRow:
        phone_number: str
        plan: str

    async def rows() -> Any:
        yield {"phone_number": "+919800000001", "plan": "gold", "score": 7}
        yield AttrsRow("+919800000002", "silver")
        yield DataRow("+919800000003", "bronze")

    wf = await client.workflows.create(title="T")
    result = await client.workflows.leads.enroll(wf.id, rows())
    assert result.leads_enrolled == 3
    stored = list(fake.store.workflows[wf.id].leads)
    assert [lead["metadata"] for lead in stored] == [
        {"plan": "gold", "score": "7"},
        {"plan": "silver", "score": ""},
        {"plan": "bronze", "score": ""},
    ]
