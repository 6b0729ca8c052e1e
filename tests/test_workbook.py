"""[A] Hostile and broken .xlsx files are refused before any reader loads them."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dialnexa_async import AsyncDialNexa, SourceValidationError, WorkbookLimits
from dialnexa_async.testing import FakeDialNexa

from .conftest import API_KEY

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Leads" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
)


def cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def sheet(rows: str, dimension: str | None = None) -> str:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"{dim}<sheetData>{rows}</sheetData></worksheet>"
    )


def workbook(sheet_xml: str | bytes, *, parts: dict[str, str] | None = None) -> bytes:
    """An .xlsx built by hand, so that it can say whatever a hostile file says."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        files = {
            "[Content_Types].xml": _CONTENT_TYPES,
            "_rels/.rels": _ROOT_RELS,
            "xl/workbook.xml": _WORKBOOK,
            "xl/_rels/workbook.xml.rels": _WORKBOOK_RELS,
            "xl/worksheets/sheet1.xml": sheet_xml,
        }
        files.update(parts or {})
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


GOOD_ROWS = (
    f'<row r="1">{cell("A1", "phone_number")}{cell("B1", "name")}</row>'
    f'<row r="2">{cell("A2", "+919800000001")}{cell("B2", "Asha")}</row>'
)
FAR_CELL = (
    f'<row r="1">{cell("A1", "phone_number")}</row><row r="1048576">{cell("XFD1048576", "x")}</row>'
)


async def enroll(data: bytes, **options: object) -> object:
    async with FakeDialNexa(api_key=API_KEY) as fake:
        workflow = fake.store.create_workflow("xlsx")
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            result = await dn.workflows.leads.enroll(workflow.id, data, **options)  # type: ignore[arg-type]
        assert fake.stats.requests >= 1
        return result


async def test_a_hand_built_workbook_is_read() -> None:
    result = await enroll(workbook(sheet(GOOD_ROWS, "A1:B2")))
    assert result.leads_enrolled == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (workbook(sheet(FAR_CELL)), "column 16384"),
        (workbook(sheet(GOOD_ROWS, "A1:XFD1048576")), "column 16384"),
        (
            workbook(sheet(f'<row r="1">{cell("A1", "phone_number")}</row><row r="2000000"/>')),
            "row 2000000",
        ),
        (b"PK\x03\x04 this is not a zip archive at all", "not an .xlsx workbook"),
        (
            workbook("", parts={"xl/workbook.xml": "<nope/>"}).replace(
                b"xl/workbook.xml", b"xl/workbook.xmX"
            ),
            "workbook",
        ),
        (workbook("<worksheet><sheetData><row><c r='A1'"), "cannot be read"),
        (
            workbook(
                sheet(GOOD_ROWS),
                parts={"xl/workbook.xml": '<!DOCTYPE x [<!ENTITY a "a">]><workbook/>'},
            ),
            "DTD",
        ),
    ],
)
async def test_a_hostile_or_broken_workbook_is_refused_naming_the_file(
    data: bytes, match: str, tmp_path: Path
) -> None:
    path = tmp_path / "leads.xlsx"
    path.write_bytes(data)
    async with FakeDialNexa(api_key=API_KEY) as fake:
        async with AsyncDialNexa(API_KEY, base_url=fake.url) as dn:
            with pytest.raises(SourceValidationError, match=match) as info:
                await dn.workflows.leads.enroll("wf_1", path)
    assert info.value.source == "leads.xlsx"
    assert "leads.xlsx" in str(info.value)
    assert fake.stats.requests == 0


async def test_a_zip_bomb_is_refused_by_its_compression_ratio() -> None:
    padding = " " * (40 * 1024 * 1024)  # 40 MiB of spaces compress about 1,000 to 1
    data = workbook(sheet(GOOD_ROWS + padding))
    assert len(data) < 200_000
    with pytest.raises(SourceValidationError, match="zip bomb"):
        await enroll(data)


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        (WorkbookLimits(max_columns=1), "max_columns"),
        (WorkbookLimits(max_rows=1), "max_rows"),
        (WorkbookLimits(max_cells=3), "max_cells"),
        (WorkbookLimits(max_uncompressed_bytes=1000), "max_uncompressed_bytes"),
    ],
)
async def test_the_limits_are_parameters(limits: WorkbookLimits, match: str) -> None:
    with pytest.raises(SourceValidationError, match=match):
        await enroll(workbook(sheet(GOOD_ROWS, "A1:B2")), workbook_limits=limits)


def test_the_reader_is_never_reached_in_a_fresh_process(tmp_path: Path) -> None:
    # The case that aborted the whole process (exit 134) before: now one typed error.
    path = tmp_path / "far.xlsx"
    path.write_bytes(workbook(sheet(FAR_CELL)))
    code = (
        "import asyncio, sys\n"
        "from dialnexa_async import AsyncDialNexa, SourceValidationError\n"
        "async def main():\n"
        "    async with AsyncDialNexa('k', base_url='http://127.0.0.1:9/v1') as dn:\n"
        "        try:\n"
        f"            await dn.workflows.leads.enroll('wf_1', {str(path)!r})\n"
        "        except SourceValidationError as exc:\n"
        "            print('refused:', exc)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout


def test_cells_that_do_not_name_their_place_are_counted_one_by_one() -> None:
    from dialnexa_async._workbook import check_workbook

    row = "<row>" + "<c t='inlineStr'><is><t>x</t></is></c>" * 1001 + "</row>"
    with pytest.raises(SourceValidationError, match="column 1001"):
        check_workbook(None, workbook(sheet(row)), "wide.xlsx", WorkbookLimits())
    rows = "".join(f"<row><c><v>{i}</v></c><c/></row>" for i in range(5))
    check_workbook(None, workbook(sheet(rows)), "fine.xlsx", WorkbookLimits(max_cells=10))
    with pytest.raises(SourceValidationError, match="max_cells"):
        check_workbook(None, workbook(sheet(rows)), "fine.xlsx", WorkbookLimits(max_cells=9))


def test_prefixed_tags_are_read_too() -> None:
    from dialnexa_async._workbook import check_workbook

    prefixed = (
        '<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<x:dimension ref="A1"/><x:sheetData><x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c>'
        '</x:row><x:row r="2"><x:c r="ZZ2"><x:v>1</x:v></x:c></x:row></x:sheetData></x:worksheet>'
    )
    with pytest.raises(SourceValidationError, match="column 702"):
        check_workbook(None, workbook(prefixed), "prefixed.xlsx", WorkbookLimits(max_columns=700))


@pytest.mark.parametrize(("letters", "number"), [("A", 1), ("Z", 26), ("AA", 27), ("XFD", 16384)])
def test_column_numbers(letters: str, number: int) -> None:
    from dialnexa_async._workbook import column_number

    assert column_number(letters) == number
