"""Bad input is refused before any request: the mocked transport must see nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dialnexa_async import AsyncDialNexa, SourceValidationError

from .conftest import API_KEY

Call = Callable[[AsyncDialNexa], Awaitable[Any]]


async def _list(dn: AsyncDialNexa, **kwargs: Any) -> Any:
    return await dn.workflows.leads.list("wf_1", **kwargs).collect()


BAD_VALUES: list[tuple[str, Call, str]] = [
    ("page_size 0", lambda dn: _list(dn, page_size=0), "page_size"),
    ("page_size 101", lambda dn: _list(dn, page_size=101), "page_size"),
    ("max_concurrency 0", lambda dn: _list(dn, max_concurrency=0), "max_concurrency"),
    ("limit 0", lambda dn: dn.workflows.leads.page("wf_1", limit=0), "limit"),
    ("limit 101", lambda dn: dn.workflows.leads.page("wf_1", limit=101), "limit"),
    ("page 0", lambda dn: dn.workflows.leads.page("wf_1", page=0), "page"),
    ("empty workflow id", lambda dn: dn.workflows.leads.page(""), "workflow_id"),
    ("blank lead id", lambda dn: dn.workflows.leads.remove("wf_1", " "), "lead_id"),
    ("id with space", lambda dn: dn.campaign_leads.get("lead 1"), "lead_id"),
    ("empty title", lambda dn: dn.workflows.create(title="  "), "title"),
    ("long title", lambda dn: dn.workflows.create(title="x" * 101), "title"),
    ("unknown status", lambda dn: dn.workflows.create(title="T", status="running"), "status"),
    ("status filter blank", lambda dn: dn.workflows.leads.page("wf_1", status=""), "status"),
    (
        "chunk size 0",
        lambda dn: dn.workflows.leads.enroll("wf_1", b"phone_number\n1\n", chunk_size=0),
        "chunk_size",
    ),
    (
        "csv without phone",
        lambda dn: dn.workflows.leads.enroll("wf_1", b"name,city\nA,B\n"),
        "phone_number",
    ),
    ("empty bytes", lambda dn: dn.workflows.leads.enroll("wf_1", b""), "empty"),
    (
        "missing file",
        lambda dn: dn.workflows.leads.enroll("wf_1", Path("/nonexistent/leads.csv")),
        "does not exist",
    ),
    ("not csv", lambda dn: dn.workflows.leads.enroll("wf_1", "leads.json"), ".csv"),
    (
        "rows without phone",
        lambda dn: dn.workflows.leads.enroll("wf_1", [{"name": "A"}]),
        "phone_number",
    ),
    (
        "bad duplicate policy",
        lambda dn: dn.workflows.leads.enroll("wf_1", b"phone_number\n1\n", on_duplicate="merge"),  # type: ignore[arg-type]
        "on_duplicate",
    ),
]

BAD_TYPES: list[tuple[str, Call, str]] = [
    ("int workflow id", lambda dn: dn.workflows.leads.page(123), "workflow_id"),  # type: ignore[arg-type]
    ("None lead id", lambda dn: dn.campaign_leads.get(None), "lead_id"),  # type: ignore[arg-type]
    ("float page_size", lambda dn: _list(dn, page_size=50.0), "page_size"),
    ("bool limit", lambda dn: dn.workflows.leads.page("wf_1", limit=True), "limit"),
    ("int title", lambda dn: dn.workflows.create(title=5), "title"),  # type: ignore[arg-type]
    ("text file object", lambda dn: dn.workflows.leads.enroll("wf_1", _TextFile()), "binary"),
    (
        "a single mapping",
        lambda dn: dn.workflows.leads.enroll("wf_1", {"phone_number": "1"}),
        "iterable",
    ),
    ("rows of ints", lambda dn: dn.workflows.leads.enroll("wf_1", [1, 2]), "row 0"),
    ("an int source", lambda dn: dn.workflows.leads.enroll("wf_1", 42), "source"),
]


class _TextFile:
    name = "leads.csv"

    def read(self) -> str:
        return "phone_number\n1\n"


BAD_INPUT = [(*case, ValueError) for case in BAD_VALUES] + [
    (*case, TypeError) for case in BAD_TYPES
]


@pytest.mark.parametrize(
    ("case", "call", "names", "error"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT]
)
async def test_bad_input_is_refused_with_its_error_type_before_any_request(
    case: str, call: Call, names: str, error: type[Exception], mocked: Any
) -> None:
    async with AsyncDialNexa(API_KEY) as dn:
        with pytest.raises(error, match=names) as info:
            await call(dn)
    # A wrong value is a ValueError, a wrong type a TypeError: never the other one.
    assert not isinstance(info.value, TypeError if error is ValueError else ValueError)
    assert mocked.requests == {}


@pytest.mark.parametrize(
    ("content", "problem", "rows"),
    [
        (b"phone_number,name\n+919800000001,A\n,B\n+919800000003,C\n", "missing_phone_number", [3]),
        (
            b"phone_number\n+919800000001\n+919800000002\n+919800000001\n",
            "duplicate_phone_number",
            [4],
        ),
        (b"phone_number,name\n+919800000001,A,extra\n", "too_many_values", [2]),
    ],
)
async def test_bad_rows_are_listed_with_their_row_numbers(
    content: bytes, problem: str, rows: list[int], mocked: Any
) -> None:
    async with AsyncDialNexa(API_KEY) as dn:
        with pytest.raises(SourceValidationError) as info:
            await dn.workflows.leads.enroll("wf_1", content)
    assert mocked.requests == {}
    (found,) = info.value.problems
    assert (found.code, found.rows) == (problem, rows)


async def test_columns_colliding_after_trimming_are_refused() -> None:
    async with AsyncDialNexa(API_KEY) as dn:
        with pytest.raises(ValueError, match="more than once"):
            await dn.workflows.leads.enroll("wf_1", b"phone_number, name,name \n1,a,b\n")
        with pytest.raises(ValueError, match="collide"):
            await dn.workflows.leads.enroll(
                "wf_1", [{"phone_number": "1", "name": "a", " name": "b"}]
            )


def test_empty_xlsx_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.xlsx").write_bytes(b"")
    from dialnexa_async._sources import open_source

    with pytest.raises(ValueError, match="empty"):
        open_source(tmp_path / "empty.xlsx")
