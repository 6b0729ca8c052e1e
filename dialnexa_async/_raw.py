"""``dn.with_raw_response``: the same calls, returning the decoded value with its HTTP answer.

Every method here is the session's own method wrapped by
:func:`~dialnexa_async.resources._base.to_raw_response`, so it takes the same arguments, sends
the same requests and raises the same errors; it returns a :class:`RawResponse` whose
``parsed`` is what the plain call returns, with the answer's ``status_code``, ``headers``,
``request_id`` and ``attempts`` (of the last request, for a call that makes several).
Iterators and enrolments (many requests each) have no raw form: their ``.stats`` and results
say what happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .resources._base import to_raw_response

if TYPE_CHECKING:
    from .resources.campaign_leads import CampaignLeads
    from .resources.workflow_leads import WorkflowLeads
    from .resources.workflows import Workflows

__all__ = [
    "CampaignLeadsWithRawResponse",
    "WorkflowLeadsWithRawResponse",
    "WorkflowsWithRawResponse",
]


class WorkflowLeadsWithRawResponse:
    """``dn.with_raw_response.workflows.leads``."""

    def __init__(self, leads: WorkflowLeads) -> None:
        self.page = to_raw_response(leads.page)
        self.count = to_raw_response(leads.count)
        self.history = to_raw_response(leads.history)
        self.variable_keys = to_raw_response(leads.variable_keys)
        self.remove = to_raw_response(leads.remove)


class WorkflowsWithRawResponse:
    """``dn.with_raw_response.workflows``."""

    def __init__(self, workflows: Workflows) -> None:
        self.create = to_raw_response(workflows.create)
        self.get = to_raw_response(workflows.get)
        self.set_status = to_raw_response(workflows.set_status)
        self.activate = to_raw_response(workflows.activate)
        self.pause = to_raw_response(workflows.pause)
        self.resume = to_raw_response(workflows.resume)
        self.deactivate = to_raw_response(workflows.deactivate)
        self.leads = WorkflowLeadsWithRawResponse(workflows.leads)


class CampaignLeadsWithRawResponse:
    """``dn.with_raw_response.campaign_leads``."""

    def __init__(self, campaign_leads: CampaignLeads) -> None:
        self.get = to_raw_response(campaign_leads.get)


class WithRawResponse:
    """``dn.with_raw_response``: ``.workflows`` (with ``.leads``) and ``.campaign_leads``."""

    def __init__(self, workflows: Workflows, campaign_leads: CampaignLeads) -> None:
        self.workflows = WorkflowsWithRawResponse(workflows)
        self.campaign_leads = CampaignLeadsWithRawResponse(campaign_leads)
