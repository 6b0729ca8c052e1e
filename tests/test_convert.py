import copy
import json
import pickle
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialnexa_async import (
    APIResponseValidationError,
    CampaignLead,
    Enrollment,
    LeadHistory,
    LeadStatus,
    Workflow,
    WorkflowLead,
    WorkflowStatus,
)
from dialnexa_async._convert import decode, decode_page

from .conftest import observed_samples, seed_sample

CTX: dict[str, Any] = {"method": "GET", "path": "/x"}


def test_seed_create_workflow_response() -> None:
    wf = decode(seed_sample("create_workflow_201.json"), Workflow, **CTX)
    assert wf.id == "wf_abc123"
    assert wf.title == "Lead Nurture Sequence"
    assert wf.status is WorkflowStatus.ACTIVE
    assert wf.organization_id == "org_xyz"
    assert wf.created_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert wf.updated_at == datetime(2024, 3, 2, 11, 0, tzinfo=UTC)


def test_seed_create_workflow_alternative_response_reads_name_and_counts() -> None:
    wf = decode(seed_sample("create_workflow_alt.json"), Workflow, **CTX)
    assert wf.title == "30-Day Lead Nurture"
    assert (wf.node_count, wf.edge_count, wf.enrolled_leads) == (5, 6, 420)


def test_running_decodes_as_active_and_unknown_status_is_kept() -> None:
    assert decode({"id": "w", "status": "running"}, Workflow, **CTX).status is WorkflowStatus.ACTIVE
    wf = decode({"id": "w", "status": "archived", "surprise": [1, 2]}, Workflow, **CTX)
    assert wf.status == "archived"
    assert not isinstance(wf.status, WorkflowStatus)


def test_seed_lead_list_with_total_pages_and_created_at() -> None:
    page = decode_page(seed_sample("list_leads_a.json"), WorkflowLead, page=1, limit=20, **CTX)
    assert page.meta.total == 150
    assert page.meta.total_pages == 8
    lead = page.data[0]
    assert lead.enrolled_at == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert lead.status == "active"
    assert lead.workflow_id == "wf_abc123"
    assert lead.current_node_id == "node_abc"


def test_seed_lead_list_without_total_pages_derives_it() -> None:
    page = decode_page(seed_sample("list_leads_b.json"), WorkflowLead, page=1, limit=20, **CTX)
    assert page.meta.total_pages == 21  # ceil(420 / 20)
    assert [lead.status for lead in page.data] == [LeadStatus.IN_PROGRESS, LeadStatus.COMPLETED]
    assert page.data[1].current_node_id is None
    assert page.data[0].enrolled_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def test_seed_enrolment_responses_both_forms() -> None:
    schema = decode(seed_sample("enroll_schema.json"), Enrollment, **CTX)
    assert schema.leads_enrolled == 50
    assert schema.workflow_id == "wf_abc123"
    assert schema.message == "50 leads enrolled in the workflow."
    single = decode(seed_sample("enroll_lead_object.json"), Enrollment, **CTX)
    assert single.leads_enrolled == 1
    assert single.lead is not None
    assert single.lead.metadata == {"name": "Priya Sharma", "city": "Mumbai"}
    assert single.workflow_id == "wfl_m3v7zb9rk2px"


def test_seed_campaign_leads_notes_and_metadata() -> None:
    a = decode(seed_sample("campaign_lead_a.json"), CampaignLead, **CTX)
    assert a.metadata == {"loan_amount": "250000", "product": "home_loan"}
    assert a.name == "Priya Sharma"
    assert a.call_log_id == "log_abc123"
    assert a.status is LeadStatus.COMPLETED
    b = decode(seed_sample("campaign_lead_b.json"), CampaignLead, **CTX)
    assert b.metadata == {"customer_name": "Priya Sharma", "product": "home_loan"}
    assert b.name is None
    assert b.created_at == datetime(2024, 5, 1, 9, 5, tzinfo=UTC)


OBSERVED = observed_samples()


def test_observed_lead_list_envelope_with_count() -> None:
    body = OBSERVED["GET /workflows/{workflowId}/leads"]["200"]
    page = decode_page(body, WorkflowLead, page=1, limit=100, **CTX)
    assert page.meta.total == 1
    assert page.meta.total_pages == 1
    lead = page.data[0]
    assert lead.metadata == {"customer_name": "Priya Sharma", "loan_amount": "500000"}
    assert lead.enrolled_at == datetime(2026, 7, 3, 10, 30, tzinfo=UTC)
    assert lead.status is LeadStatus.PENDING


def test_observed_list_without_meta_or_count_is_one_page() -> None:
    page = decode_page({"data": [{"id": "a"}, {"id": "b"}]}, WorkflowLead, page=1, limit=100, **CTX)
    assert (page.meta.total, page.meta.total_pages) == (2, 1)


def test_observed_enrolment_response_gives_lead_ids() -> None:
    body = OBSERVED["POST /workflows/{workflowId}/leads"]["201"]
    enrollment = decode(body, Enrollment, **CTX)
    assert enrollment.leads_enrolled == 1
    assert enrollment.lead_ids == {"+919876543210": ["lead_abc123"]}
    assert enrollment.message == "Leads uploaded successfully"


def test_envelope_around_a_seed_enrolment_form() -> None:
    body = {"statusCode": 201, "message": "ok", "data": {"leads_enrolled": 3}}
    assert decode(body, Enrollment, **CTX) == Enrollment(leads_enrolled=3, message="ok")


def test_observed_workflow_shapes_decode() -> None:
    for route in ("GET /workflows/{id}", "PATCH /workflows/{id}/status"):
        wf = decode(OBSERVED[route]["200"], Workflow, **CTX)
        assert wf.id == "workflow_abc123"
        assert wf.title == "Q3 Outreach Workflow"
        assert wf.created_at == datetime(2026, 7, 3, 10, 30, tzinfo=UTC)
    page = decode_page(OBSERVED["GET /workflows"]["200"], Workflow, page=1, limit=20, **CTX)
    assert (page.meta.page, page.meta.limit, page.meta.total, page.meta.total_pages) == (
        1,
        20,
        1,
        1,
    )


def test_observed_history_decodes_in_order() -> None:
    history = decode(
        OBSERVED["GET /workflows/{workflowId}/leads/{id}/history"]["200"], LeadHistory, **CTX
    )
    assert history.lead.id == "lead_abc123"
    assert [step.node_id for step in history.steps] == ["node_start"]
    assert history.steps[0].ended_at == datetime(2026, 7, 3, 10, 32, tzinfo=UTC)


def test_naive_timestamps_are_taken_as_utc() -> None:
    lead = decode({"id": "a", "enrolled_at": "2024-05-01T09:00:00"}, WorkflowLead, **CTX)
    assert lead.enrolled_at is not None
    assert lead.enrolled_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"data": "nope"}, "$.data"),
        ({"data": [{"phone_number": "+91"}]}, "$.data[0].id"),
        ({"data": [{"id": "a", "enrolled_at": "yesterday"}]}, "$.data[0].enrolled_at"),
        ({"data": [{"id": "a", "status": 7}]}, "$.data[0].status"),
        ({"data": [], "meta": {"total": "many"}}, "$.meta"),
        ([1, 2], "$"),
    ],
)
def test_wrong_shapes_name_the_field(payload: Any, where: str) -> None:
    with pytest.raises(APIResponseValidationError) as info:
        decode_page(payload, WorkflowLead, page=1, limit=20, **CTX)
    assert where in str(info.value)
    assert info.value.body == payload


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
lead_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "status": json_values,
        "created_at": json_values,
        "metadata": json_values,
        "phone_number": json_values,
    },
)


@given(
    st.one_of(
        json_values,
        lead_like,
        st.fixed_dictionaries(
            {"data": st.lists(lead_like, max_size=3)},
            optional={"meta": json_values, "count": json_values},
        ),
    )
)
def test_arbitrary_json_gives_a_model_or_a_typed_error(payload: Any) -> None:
    json.dumps(payload)  # it is JSON
    for decoder in (
        lambda: decode(payload, WorkflowLead, **CTX),
        lambda: decode(payload, Enrollment, **CTX),
        lambda: decode(payload, Workflow, **CTX),
        lambda: decode_page(payload, WorkflowLead, page=1, limit=10, **CTX),
    ):
        try:
            decoder()
        except APIResponseValidationError:
            pass


lead_keys = st.sampled_from(
    [
        "id",
        "phone_number",
        "phoneNumber",
        "status",
        "current_node_id",
        "currentNodeId",
        "workflow_id",
        "workflowId",
        "enrolled_at",
        "created_at",
        "createdAt",
        "enrolledAt",
        "metadata",
        "dynamic_variables",
        "dynamicVariables",
        "other",
    ]
)
lead_values = st.one_of(
    st.none(),
    st.sampled_from(
        ["", "pending", "IN_PROGRESS", "odd", "2024-05-01T09:00:00.000Z", "2024-05-01T09:00:00"]
    ),
    st.text(max_size=8),
    st.integers(),
    st.booleans(),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    st.lists(st.integers(), max_size=2),
)


@given(st.dictionaries(lead_keys, lead_values, max_size=12))
def test_the_lead_fast_path_agrees_with_the_generic_hook(raw: dict[str, Any]) -> None:
    from dialnexa_async._convert import _fast_workflow_lead, _generic_workflow_lead, _Unusual

    try:
        fast = _fast_workflow_lead(dict(raw))
    except _Unusual:
        return
    generic = _generic_workflow_lead(dict(raw), WorkflowLead)
    assert fast == generic
    assert type(fast) is WorkflowLead
    assert repr(fast) == repr(generic)
    assert attrs.asdict(fast) == attrs.asdict(generic)


def test_a_lead_from_the_fast_path_is_a_frozen_workflow_lead() -> None:
    from dialnexa_async._convert import _fast_workflow_lead

    raw = {"id": "wlead_1", "phone_number": "+919800000000", "status": "pending"}
    lead = _fast_workflow_lead(raw)
    assert type(lead) is WorkflowLead
    assert isinstance(lead, WorkflowLead)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        lead.status = "completed"  # type: ignore[misc]
    assert attrs.evolve(lead, status=LeadStatus.COMPLETED).status is LeadStatus.COMPLETED
    assert lead == WorkflowLead(id="wlead_1", phone_number="+919800000000", status="pending")
    assert pickle.loads(pickle.dumps(lead)) == lead  # noqa: S301 - our own bytes
    assert copy.copy(lead) == lead
