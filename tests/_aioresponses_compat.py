"""aioresponses 0.7.9 predates aiohttp 3.14, whose ClientResponse needs ``stream_writer``
(pnuckowski/aioresponses#289). Until a release fixes it, give mocked responses a stand-in writer
that reports nothing sent; only the responses aioresponses builds are affected."""

from __future__ import annotations

import inspect
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse

# Older aiohttp (the floor that make test-min installs) has no such argument: nothing to patch.
_NEEDS_WRITER = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


class _SentWriter:
    output_size = 0


class CompatClientResponse(ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentWriter())
        super().__init__(method, url, **kwargs)


def install() -> None:
    if _NEEDS_WRITER:
        setattr(aioresponses.core, "ClientResponse", CompatClientResponse)  # noqa: B010
