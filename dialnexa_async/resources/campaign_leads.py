"""``GET /campaigns-leads/{id}``."""

from __future__ import annotations

from collections.abc import Mapping

from .._transport import encode_path
from .._validate import check_id
from ..models import CampaignLead
from ._base import APIResource

__all__ = ["CampaignLeads"]


class CampaignLeads(APIResource):
    """``dn.campaign_leads``: leads of flat calling campaigns."""

    async def get(
        self,
        lead_id: str,
        *,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> CampaignLead:
        """One campaign lead by id.

        Raises:
            NotFoundError: No such lead, or it was removed.
            PermissionDeniedError: The key may not read campaign data.
        """
        api = self._with_extras(extra_headers, extra_query)
        check_id(lead_id, "lead_id")
        path = encode_path("campaigns-leads", lead_id)
        return await api._get(path, cast_to=CampaignLead, timeout=timeout)
