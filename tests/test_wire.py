"""Exact wire checks (aioresponses): method, path, query, headers, body of every endpoint."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from dialnexa_async import AsyncDialNexa, __version__

from .conftest import API_KEY, seed_sample

BASE = "https://api.dialnexa.com/v1"


@pytest_asyncio.fixture
async def dn() -> AsyncIterator[AsyncDialNexa]:
    async with AsyncDialNexa(API_KEY, max_retries=0) as client:
        yield client


def only_request(m: Any) -> tuple[str, URL, dict[str, Any]]:
    assert len(m.requests) == 1, m.requests
    (method, url), calls = next(iter(m.requests.items()))
    assert len(calls) == 1
    return method, url, calls[0].kwargs


def assert_standard_headers(kwargs: dict[str, Any]) -> None:
    headers = kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == f"dialnexa-async/{__version__}"


async def test_create_workflow(mocked: Any, dn: AsyncDialNexa) -> None:
    mocked.post(f"{BASE}/workflows", status=201, payload=seed_sample("create_workflow_201.json"))
    wf = await dn.workflows.create(title="Lead Nurture Sequence", description="d", status="draft")
    method, url, kwargs = only_request(mocked)
    assert (method, str(url)) == ("POST", f"{BASE}/workflows")
    assert kwargs["json"] == {
        "title": "Lead Nurture Sequence",
        "description": "d",
        "status": "draft",
    }
    assert_standard_headers(kwargs)
    assert wf.id == "wf_abc123"


async def test_create_workflow_omits_absent_description(mocked: Any, dn: AsyncDialNexa) -> None:
    mocked.post(f"{BASE}/workflows", status=201, payload=seed_sample("create_workflow_alt.json"))
    await dn.workflows.create(title="T")
    _, _, kwargs = only_request(mocked)
    assert kwargs["json"] == {"title": "T", "status": "draft"}


async def test_lead_page(mocked: Any, dn: AsyncDialNexa) -> None:
    mocked.get(re.compile(r".*/leads\?.*"), payload=seed_sample("list_leads_b.json"))
    page = await dn.workflows.leads.page("wfl_m3v7zb9rk2px", page=2, limit=50, status="in_progress")
    method, url, kwargs = only_request(mocked)
    assert method == "GET"
    assert url.path == "/v1/workflows/wfl_m3v7zb9rk2px/leads"
    assert dict(url.query) == {"page": "2", "limit": "50", "status": "in_progress"}
    assert_standard_headers(kwargs)
    assert len(page.data) == 2


async def test_list_asks_for_page_one_with_page_size(mocked: Any, dn: AsyncDialNexa) -> None:
    mocked.get(
        re.compile(r".*/leads\?.*"),
        payload={"data": [{"id": "a"}], "meta": {"page": 1, "limit": 100, "total": 1}},
    )
    leads = await dn.workflows.leads.list("wf_1", status="completed").collect()
    _, url, _ = only_request(mocked)
    assert dict(url.query) == {"page": "1", "limit": "100", "status": "completed"}
    assert [lead.id for lead in leads] == ["a"]


@pytest.mark.parametrize(
    ("workflow_id", "lead_id", "path"),
    [
        ("wf_1", "wlead_1", "/v1/workflows/wf_1/leads/wlead_1"),
        ("a/b", "../x", "/v1/workflows/a%2Fb/leads/..%2Fx"),
        ("..", "?q#f", "/v1/workflows/%2E%2E/leads/%3Fq%23f"),
        ("wf%41", "é", "/v1/workflows/wf%2541/leads/%C3%A9"),
    ],
)
async def test_remove_encodes_each_id_as_one_segment(
    mocked: Any, dn: AsyncDialNexa, workflow_id: str, lead_id: str, path: str
) -> None:
    mocked.delete(
        re.compile(r".*"), payload={"statusCode": 200, "message": "Lead removed successfully"}
    )
    await dn.workflows.leads.remove(workflow_id, lead_id)
    method, url, kwargs = only_request(mocked)
    assert method == "DELETE"
    assert url.raw_path == path
    assert_standard_headers(kwargs)


async def test_get_campaign_lead(mocked: Any, dn: AsyncDialNexa) -> None:
    mocked.get(
        f"{BASE}/campaigns-leads/lead_m4b7zx9nq2pw", payload=seed_sample("campaign_lead_b.json")
    )
    lead = await dn.campaign_leads.get("lead_m4b7zx9nq2pw")
    method, url, kwargs = only_request(mocked)
    assert (method, url.raw_path) == ("GET", "/v1/campaigns-leads/lead_m4b7zx9nq2pw")
    assert_standard_headers(kwargs)
    assert lead.campaign_id == "cmp_5tw8vz2rnx1q"


def multipart_file(kwargs: dict[str, Any]) -> tuple[str, str, bytes]:
    form = kwargs["data"]
    assert isinstance(form, aiohttp.FormData)
    (field,) = form._fields
    options, headers, value = field
    assert options["name"] == "file"
    return options["filename"], headers["Content-Type"], value


async def test_enroll_csv_path_sends_the_file_as_multipart_field_file(
    mocked: Any, dn: AsyncDialNexa, tmp_path: Any
) -> None:
    csv_file = tmp_path / "leads.csv"
    content = (
        b"phone_number,name,city\n9876543210,Priya Sharma,Mumbai\n9123456789,Rahul Mehra,Delhi\n"
    )
    csv_file.write_bytes(content)
    mocked.post(
        f"{BASE}/workflows/wf_1/leads", status=201, payload=seed_sample("enroll_schema.json")
    )
    result = await dn.workflows.leads.enroll("wf_1", csv_file)
    method, url, kwargs = only_request(mocked)
    assert (method, url.raw_path) == ("POST", "/v1/workflows/wf_1/leads")
    assert multipart_file(kwargs) == ("leads.csv", "text/csv", content)
    assert_standard_headers(kwargs)
    assert result.leads_enrolled == 50
    assert result.ok


async def test_enroll_xlsx_bytes_sends_the_xlsx_content_type(
    mocked: Any, dn: AsyncDialNexa
) -> None:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["phone_number", "name"])
    sheet.append(["+919876543210", "Priya"])
    buffer = io.BytesIO()
    book.save(buffer)
    mocked.post(
        f"{BASE}/workflows/wf_1/leads", status=201, payload=seed_sample("enroll_schema.json")
    )
    await dn.workflows.leads.enroll("wf_1", buffer.getvalue())
    _, _, kwargs = only_request(mocked)
    filename, content_type, value = multipart_file(kwargs)
    assert filename == "leads.xlsx"
    assert content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert value == buffer.getvalue()


async def test_enroll_binary_file_object_keeps_its_name(
    mocked: Any, dn: AsyncDialNexa, tmp_path: Any
) -> None:
    path = tmp_path / "crm-export.csv"
    path.write_bytes(b"phone_number\n+919876543210\n")
    mocked.post(
        f"{BASE}/workflows/wf_1/leads", status=201, payload=seed_sample("enroll_lead_object.json")
    )
    with path.open("rb") as handle:
        result = await dn.workflows.leads.enroll("wf_1", handle)
    _, _, kwargs = only_request(mocked)
    assert multipart_file(kwargs)[:2] == ("crm-export.csv", "text/csv")
    assert result.uploads[0].lead is not None
