"""Decode speed: leads per second from the same page bodies.

    python -m benchmarks.decode [--pages 200] [--repeat 7]

Page bodies are what the fake server sends (100 leads each). Measured in ``--repeat`` rounds,
each way in turn within a round (CPU time; rates from the best round of each, ratios the
median over rounds of the two ways' times in the same round):

* ``json.loads`` alone (plain dicts, the floor);
* ``json.loads`` + the SDK's converter (``decode_page`` → ``Page[WorkflowLead]``);
* ``json.loads`` + pydantic v2 ``model_validate`` of an equivalent model (the same aliases,
  aware datetimes, statuses as the same enum);
* pydantic v2 ``model_validate_json`` (its own JSON parser).
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def seconds_per_round(
    works: dict[str, Callable[[bytes], object]], pages: list[bytes], repeat: int
) -> dict[str, list[float]]:
    """CPU seconds each way of decoding takes for all ``pages``, in each of ``repeat`` rounds,
    the ways taken in turn within a round (a machine slowing down weighs on all alike)."""
    taken: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeat):
        for name, work in works.items():
            started = time.process_time()
            for body in pages:
                work(body)
            taken[name].append(time.process_time() - started)
    return taken


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
    works: dict[str, Callable[[bytes], object]] = {
        "json.loads (dicts, the floor)": json.loads,
        "SDK: json.loads + converter": sdk_stdlib,
        f"SDK as shipped ({JSON_PARSER} + converter)": sdk_shipped,
        "pydantic v2: json.loads + model_validate": lambda body: PydanticPage.model_validate(
            json.loads(body)
        ),
        "pydantic v2: model_validate_json": PydanticPage.model_validate_json,
    }
    taken = seconds_per_round(works, pages, args.repeat)
    leads = args.pages * PAGE
    print(f"{leads} leads in pages of {PAGE}, best of {args.repeat} rounds")
    for name, seconds in taken.items():
        print(f"  {name:<44} {leads / min(seconds):>10,.0f} leads/s")
    _, stdlib, shipped, pydantic, pydantic_json = taken.values()
    # Ratios: the median over rounds of the two ways' times within the same round.
    print(f"converter vs pydantic, both after json.loads: {median_ratio(pydantic, stdlib):.2f}x")
    print(
        "SDK as shipped vs pydantic model_validate_json: "
        f"{median_ratio(pydantic_json, shipped):.2f}x"
    )


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median over rounds of one way's time over another's in the same round: steadier on a
    shared machine than a ratio of bests, which can pair a lucky run with an unlucky one."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


if __name__ == "__main__":
    main()
