"""A scan yields every lead once, in order, or raises a typed error: never fewer, never a repeat.

Proven with hypothesis against :class:`~dialnexa_async.testing.HostilePages`, a server model
that clamps, shortens and empties pages, lies in ``meta``, and inserts, removes and re-orders
leads while the scan runs. Plus the pure page rules on their own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialnexa_async import (
    APIResponseValidationError,
    AsyncDialNexa,
    PageMeta,
    PaginationError,
)
from dialnexa_async._page_rules import END, MORE, REREAD, PageRules, PlanViolation, pages_for
from dialnexa_async.testing import HostilePages, MockTransport, Mutation

from .conftest import API_KEY

WORKFLOW = "wf_model"


def _meta(total: int, limit: int, page: int = 1) -> PageMeta:
    return PageMeta(page=page, limit=limit, total=total, total_pages=pages_for(total, limit))


# -- the pure rules ------------------------------------------------------------------------------


@given(total=st.integers(0, 2000), limit=st.integers(1, 100), clamp=st.integers(1, 100))
def test_the_rules_end_a_static_list_on_its_last_page_exactly(
    total: int, limit: int, clamp: int
) -> None:
    size = min(limit, clamp)
    rules = PageRules(limit)
    seen, number = 0, 1
    while True:
        count = min(size, max(0, total - (number - 1) * size))
        verdict = rules.judge(number, count, _meta(total, limit, number), second_look=False)
        if verdict == REREAD:  # only an undeclared clamp or an empty list is read twice
            assert number == 1
            assert size < limit or total == 0
            verdict = rules.judge(number, count, _meta(total, limit, number), second_look=True)
        seen += count
        if verdict == END:
            break
        assert verdict == MORE
        number += 1
    assert seen == total
    assert number == max(1, pages_for(total, size))


def test_a_short_page_twice_before_the_end_is_a_violation() -> None:
    rules = PageRules(100)
    assert rules.judge(1, 100, _meta(1000, 100), second_look=False) == MORE
    assert rules.judge(2, 99, _meta(1000, 100, 2), second_look=False) == REREAD
    with pytest.raises(PlanViolation, match="page 2 held 99 leads where 100 were expected"):
        rules.judge(2, 99, _meta(1000, 100, 2), second_look=True)


def test_a_total_that_falls_is_a_violation() -> None:
    rules = PageRules(10)
    assert rules.judge(1, 10, _meta(100, 10), second_look=False) == MORE
    assert rules.judge(2, 10, _meta(90, 10, 2), second_look=False) == REREAD
    with pytest.raises(PlanViolation, match="shrank from 100 to 90"):
        rules.judge(2, 10, _meta(90, 10, 2), second_look=True)


def test_repeats_beyond_the_growth_are_a_violation() -> None:
    rules = PageRules(10)
    rules.judge(1, 10, _meta(100, 10), second_look=False)
    rules.judge(2, 10, _meta(101, 10, 2), second_look=False)
    rules.count_repeats(2, 1)  # one insertion: one repeat
    with pytest.raises(PlanViolation, match="re-ordered"):
        rules.count_repeats(3, 1)


# -- scans against the hostile model --------------------------------------------------------------


def _scan(
    model: HostilePages, *, page_size: int, concurrency: int
) -> tuple[list[str], Exception | None]:
    """Run a scan of ``model``; the ids yielded, and the error it ended with (if any)."""

    async def run() -> tuple[list[str], Exception | None]:
        ids: list[str] = []
        async with AsyncDialNexa(
            API_KEY, transport=MockTransport(model), max_concurrency=concurrency, max_retries=0
        ) as dn:
            try:
                async for lead in dn.workflows.leads.list(WORKFLOW, page_size=page_size):
                    ids.append(lead.id)
            except (PaginationError, APIResponseValidationError) as exc:
                return ids, exc
        return ids, None

    return asyncio.run(run())


def _ids(count: int) -> list[str]:
    return [f"lead_{n:05d}" for n in range(count)]


def _assert_kept(model: HostilePages, ids: list[str], error: Exception | None) -> None:
    """The invariant: never a repeat; the leads present throughout in order; every one of them,
    unless a typed error, or unless the list had both insertions and removals (or moves) while
    it was read: an offset pager cannot see those balance out (the bound the README states)."""
    assert len(ids) == len(set(ids)), "a lead was yielded twice"
    yielded = set(ids)
    unmoved = [lead for lead in model.persistent if lead not in model.moved]
    assert [lead for lead in ids if lead in set(unmoved)] == [
        lead for lead in unmoved if lead in yielded
    ], "leads out of order"
    if error is not None:
        return
    missing = [lead for lead in model.persistent if lead not in yielded]
    balanced = "insert" in model.changes and bool({"remove", "move_to_front"} & model.changes)
    assert not missing or balanced, f"{len(missing)} leads missing and no error: {missing[:5]}"


PAGE_SIZES = st.sampled_from([1, 3, 7, 10, 25, 100])
SCENARIO_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def _faults(draw: st.DrawFn, pages: int) -> dict[str, Any]:
    page_numbers = st.integers(1, max(1, pages + 1))
    return {
        "clamp": draw(st.none() | st.integers(1, 100)),
        "declare_clamp": draw(st.booleans()),
        "short_once": draw(st.dictionaries(page_numbers, st.integers(1, 50), max_size=3)),
        "empty_once": draw(st.sets(page_numbers, max_size=3)),
    }


@SCENARIO_SETTINGS
@given(
    count=st.integers(0, 400),
    page_size=PAGE_SIZES,
    concurrency=st.integers(1, 4),
    data=st.data(),
)
def test_transient_faults_and_clamps_never_lose_a_lead(
    count: int, page_size: int, concurrency: int, data: st.DataObject
) -> None:
    """Clamped pages and pages short or empty once: the whole list, exactly, with no error."""
    faults = data.draw(_faults(pages_for(count, page_size)))
    model = HostilePages(_ids(count), **faults)
    ids, error = _scan(model, page_size=page_size, concurrency=concurrency)
    assert error is None, error
    assert ids == _ids(count)


META_LIES = st.sampled_from(
    [
        {"total": 0, "totalPages": 0},
        {"totalPages": 0},
        {"totalPages": 1},
        {"total": 0},
        {"limit": 500},
        {"limit": 1},
        {"totalPages": 10**6},
        {"total": 10**400},
        {"limit": 0},
        {"limit": -5},
        {"total": -1},
    ]
)


@SCENARIO_SETTINGS
@given(
    count=st.integers(0, 300),
    page_size=PAGE_SIZES,
    concurrency=st.integers(1, 4),
    lie=META_LIES,
    shape=st.sampled_from(["object", "object", "list"]),
    data=st.data(),
)
def test_lying_meta_gives_every_lead_or_a_typed_error(  # noqa: PLR0917
    count: int,
    page_size: int,
    concurrency: int,
    lie: dict[str, int],
    shape: Any,
    data: st.DataObject,
) -> None:
    faults = data.draw(_faults(pages_for(count, page_size)))
    model = HostilePages(_ids(count), meta=lie, meta_shape=shape, **faults)
    ids, error = _scan(model, page_size=page_size, concurrency=concurrency)
    _assert_kept(model, ids, error)


@SCENARIO_SETTINGS
@given(
    count=st.integers(1, 300),
    page_size=PAGE_SIZES,
    concurrency=st.integers(1, 4),
    short=st.dictionaries(st.integers(1, 30), st.integers(1, 5), min_size=1, max_size=3),
)
def test_pages_short_for_good_are_an_error_never_a_quiet_end(
    count: int, page_size: int, concurrency: int, short: dict[int, int]
) -> None:
    model = HostilePages(_ids(count), short_always=short)
    ids, error = _scan(model, page_size=page_size, concurrency=concurrency)
    _assert_kept(model, ids, error)


MUTATIONS = st.lists(
    st.builds(
        Mutation,
        after=st.integers(1, 40),
        kind=st.sampled_from(["insert", "remove", "move_to_front"]),
        position=st.integers(0, 10_000),
    ),
    max_size=6,
)


@SCENARIO_SETTINGS
@given(
    count=st.integers(0, 400),
    page_size=PAGE_SIZES,
    concurrency=st.integers(1, 4),
    mutations=MUTATIONS,
    data=st.data(),
)
def test_a_list_changing_mid_scan_gives_every_lead_once_or_a_typed_error(
    count: int,
    page_size: int,
    concurrency: int,
    mutations: list[Mutation],
    data: st.DataObject,
) -> None:
    faults = data.draw(_faults(pages_for(count, page_size)))
    model = HostilePages(_ids(count), mutations=mutations, **faults)
    ids, error = _scan(model, page_size=page_size, concurrency=concurrency)
    _assert_kept(model, ids, error)


@SCENARIO_SETTINGS
@given(
    count=st.integers(0, 400),
    page_size=PAGE_SIZES,
    concurrency=st.integers(1, 4),
    inserts=st.lists(st.tuples(st.integers(1, 40), st.integers(0, 10_000)), max_size=20),
)
def test_insertions_alone_never_stop_a_scan(
    count: int, page_size: int, concurrency: int, inserts: list[tuple[int, int]]
) -> None:
    """Insertions shift leads forward only: every lead once, no error (repeats are dropped)."""
    mutations = [Mutation(after, "insert", position) for after, position in inserts]
    model = HostilePages(_ids(count), mutations=mutations)
    ids, error = _scan(model, page_size=page_size, concurrency=concurrency)
    assert error is None, error
    _assert_kept(model, ids, error)


# -- the observed cases, named -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (HostilePages(_ids(1000), short_once={3: 1}), 1000),  # 99 of 100 on page 3
        (HostilePages(_ids(900), empty_once={4}), 900),  # a lagging replica
        (HostilePages(_ids(1000), clamp=50), 1000),  # clamped, limit echoed
        (HostilePages(_ids(1000), clamp=50, declare_clamp=True), 1000),
        (HostilePages(_ids(1000), meta={"total": 0, "totalPages": 0}), 1000),
        (HostilePages(_ids(1000), meta={"limit": 500}), 1000),
    ],
)
def test_observed_short_scans_now_read_every_lead(model: HostilePages, expected: int) -> None:
    ids, error = _scan(model, page_size=100, concurrency=4)
    assert error is None
    assert ids == _ids(expected)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (HostilePages(_ids(1000), short_always=dict.fromkeys(range(1, 11), 3)), "expected"),
        (HostilePages(_ids(1000), mutations=[Mutation(4, "move_to_front", 900)]), "re-ordered"),
        (HostilePages(_ids(1000), mutations=[Mutation(4, "remove", 3)]), "shrank"),
        (HostilePages(_ids(1000), meta={"total": 10**400}), "absurd"),
        (HostilePages(_ids(1000), meta={"limit": 0}), "absurd"),
        (HostilePages(_ids(1000), meta_shape="list"), "meta"),
    ],
)
def test_observed_short_scans_now_raise(model: HostilePages, match: str) -> None:
    ids, error = _scan(model, page_size=100, concurrency=4)
    assert error is not None
    assert match in str(error)
    assert len(ids) == len(set(ids))
