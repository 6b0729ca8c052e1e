"""``GET /campaigns-leads/{id}``."""

from __future__ import annotations

from .._convert import decode
from .._transport import Transport, encode_path
from .._validate import check_id
from ..models import CampaignLead

__all__ = ["CampaignLeads"]


class CampaignLeads:
    """``dn.campaign_leads``: leads of flat calling campaigns."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def get(self, lead_id: str, *, timeout: float | None = None) -> CampaignLead:
        """One campaign lead by id.

        Raises:
            NotFoundError: No such lead, or it was removed.
            PermissionDeniedError: The key may not read campaign data.
        """
        check_id(lead_id, "lead_id")
        path = encode_path("campaigns-leads", lead_id)
        response = await self._transport.request("GET", path, idempotent=True, timeout=timeout)
        return decode(response.payload, CampaignLead, method="GET", path=path)
