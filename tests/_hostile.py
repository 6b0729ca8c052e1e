"""Helpers for the hardening tests: a raw TCP server that speaks broken HTTP, and a walk over
everything an exception lets a caller reach."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from types import FunctionType, ModuleType
from typing import Any

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 answering with ``handler``; yields its ``/v1`` base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """The request head (and nothing more), so the answer can follow."""
    return await reader.readuntil(b"\r\n\r\n")


def reachable_texts(root: object, max_depth: int = 8) -> Iterator[str]:
    """``repr``/``str`` of every object reachable from ``root`` through attributes, items,
    ``args``, ``__cause__``, ``__context__`` and ``__notes__`` (tracebacks aside)."""
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > max_depth:
            continue
        seen.add(id(obj))
        if isinstance(obj, type | ModuleType | FunctionType):
            continue
        try:
            yield repr(obj)
            yield str(obj)
        except Exception:  # noqa: S112 - a repr that fails holds nothing to leak
            continue
        children: list[Any] = []
        if isinstance(obj, BaseException):
            children += [obj.__cause__, obj.__context__, *obj.args]
            children += list(getattr(obj, "__notes__", []))
        if isinstance(obj, dict):
            children += list(obj.keys()) + list(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            children += list(obj)
        elif hasattr(obj, "items") and callable(obj.items):
            try:
                children += [value for pair in obj.items() for value in pair]
            except Exception:  # noqa: S110
                pass
        if hasattr(obj, "__dict__"):
            children += list(vars(obj).values())
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                children.append(getattr(obj, name))
        stack += [(child, depth + 1) for child in children if child is not None]


def assert_no_secret(root: object, secret: str) -> None:
    for text in reachable_texts(root):
        assert secret not in text, text[:300]
