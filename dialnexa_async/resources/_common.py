"""What the resources share: the page fetcher behind every paged list, the concurrency rule."""

from __future__ import annotations

from typing import Any

from .._pagination import PageFetch
from .._transport import Transport
from .._validate import check_int_range, check_timeout

__all__ = ["effective_concurrency", "page_fetcher"]


def effective_concurrency(transport: Transport, requested: int | None) -> int:
    """What a call may use: the session's cap, or less when the caller asks for less."""
    if requested is None:
        return transport.max_concurrency
    return min(check_int_range(requested, "max_concurrency", 1), transport.max_concurrency)


def page_fetcher(
    transport: Transport,
    path: str,
    *,
    limit: int,
    params: dict[str, str],
    timeout: float | None,
) -> PageFetch:
    """Fetches page ``number`` of the list at ``path``: its parsed JSON and the attempts taken."""
    check_timeout(timeout)

    async def fetch(number: int) -> tuple[Any, int]:
        response = await transport.request(
            "GET",
            path,
            params={"page": number, "limit": limit, **params},
            idempotent=True,
            timeout=timeout,
        )
        return response.payload, response.attempts

    return fetch
