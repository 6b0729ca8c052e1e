"""Decode speed: leads per second from the same page bodies.

    python -m benchmarks.decode [--pages 200] [--repeat 7]

Page bodies are what the fake server sends (100 leads each). Measured, best of ``--repeat``:

* ``json.loads`` alone (plain dicts, the floor);
* ``json.loads`` + the SDK's converter (``decode_page`` → ``Page[WorkflowLead]``);
* ``json.loads`` + pydantic v2 ``model_validate`` of an equivalent model (the same aliases,
  aware datetimes, statuses as the same enum);
* pydantic v2 ``model_validate_json`` (its own JSON parser).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from dialnexa_async._convert import decode_page
from dialnexa_async._decipher import JSON_PARSER, parse_json
from dialnexa_async.models import LeadStatus, WorkflowLead
from dialnexa_async.testing import FakeStore

PAGE = 100


class PydanticLead(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    phone_number: str | None = None
    # As the SDK does: a known status becomes the enum, any other string stays a string.
    status: LeadStatus | str | None = Field(default=None, union_mode="left_to_right")
    current_node_id: str | None = None
    enrolled_at: datetime | None = Field(
        default=None, validation_alias=AliasChoices("enrolled_at", "created_at", "createdAt")
    )
    workflow_id: str | None = None
    metadata: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("metadata", "dynamic_variables")
    )


class PydanticPage(BaseModel):
    data: list[PydanticLead]


def bodies(pages: int) -> list[bytes]:
    store = FakeStore()
    workflow = store.create_workflow("bench")
    store.seed_leads(workflow, pages * PAGE)
    out = []
    for number in range(1, pages + 1):
        data, total = workflow.leads.page((number - 1) * PAGE, number * PAGE, None)
        meta = {"page": number, "limit": PAGE, "total": total, "totalPages": pages}
        out.append(json.dumps({"data": data, "meta": meta}).encode())
    return out


def leads_per_second(work: Callable[[bytes], object], pages: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for body in pages:
            work(body)
        best = min(best, time.perf_counter() - started)
    return len(pages) * PAGE / best


def sdk_stdlib(body: bytes) -> object:
    return decode_page(json.loads(body), WorkflowLead, page=1, limit=PAGE, method="GET", path="/")


def sdk_shipped(body: bytes) -> object:
    # What a scan does: the transport's parser (orjson when installed), then the converter.
    return decode_page(parse_json(body), WorkflowLead, page=1, limit=PAGE, method="GET", path="/")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    pages = bodies(args.pages)
    ours = sdk_shipped(pages[0]).data  # type: ignore[attr-defined]
    theirs = PydanticPage.model_validate_json(pages[0]).data
    # The two models decode the same page to the same values and types.
    assert [(a.id, a.enrolled_at, a.status) for a in ours] == [
        (b.id, b.enrolled_at, b.status) for b in theirs
    ]
    assert {type(a.status) for a in ours} == {type(b.status) for b in theirs} == {LeadStatus}
    rates = {
        "json.loads (dicts, the floor)": leads_per_second(json.loads, pages, args.repeat),
        "SDK: json.loads + converter": leads_per_second(sdk_stdlib, pages, args.repeat),
        f"SDK as shipped ({JSON_PARSER} + converter)": leads_per_second(
            sdk_shipped, pages, args.repeat
        ),
        "pydantic v2: json.loads + model_validate": leads_per_second(
            lambda body: PydanticPage.model_validate(json.loads(body)), pages, args.repeat
        ),
        "pydantic v2: model_validate_json": leads_per_second(
            PydanticPage.model_validate_json, pages, args.repeat
        ),
    }
    print(f"{args.pages * PAGE} leads in pages of {PAGE}, best of {args.repeat}")
    for name, rate in rates.items():
        print(f"  {name:<44} {rate:>10,.0f} leads/s")
    names = list(rates)
    print(f"converter vs pydantic, both after json.loads: {rates[names[1]] / rates[names[3]]:.2f}x")
    print(
        f"SDK as shipped vs pydantic model_validate_json: {rates[names[2]] / rates[names[4]]:.2f}x"
    )


if __name__ == "__main__":
    main()
