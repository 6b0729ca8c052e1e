"""OpenTelemetry spans for the SDK's logical operations (extra ``otel``); nothing without it.

A scan, an enrolment and a status change each get one span (``dialnexa.scan``,
``dialnexa.enroll``, ``dialnexa.set_status``) with attributes that say what it did (workflow id,
pages, retries, rows enrolled and failed); the HTTP attempts under them are spans of
OpenTelemetry's own aiohttp instrumentation, which the SDK's session uses when it is installed,
and they nest under the operation because the operation's span is current in every task that
sends them. When ``opentelemetry-api`` is not installed, every helper here is a no-op.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ._version import __version__

__all__ = ["Operation", "aiohttp_trace_configs", "operation"]

try:
    from opentelemetry import context as _otel_context
    from opentelemetry import trace as _trace
except ModuleNotFoundError:  # pragma: no cover - the dev group installs it
    _trace = None  # type: ignore[assignment]
    _otel_context = None  # type: ignore[assignment]


def enabled() -> bool:
    return _trace is not None


class Operation:
    """A started span (or nothing, without OpenTelemetry): attributes can be added until it
    ends, and :meth:`context` gives a context in which it is current, for tasks to run in."""

    def __init__(self, name: str, attributes: Mapping[str, Any]) -> None:
        self._span: Any = None
        if _trace is not None:
            tracer = _trace.get_tracer("dialnexa_async", __version__)
            self._span = tracer.start_span(name, attributes=dict(attributes))

    def set(self, **attributes: Any) -> None:
        if self._span is not None:
            for key, value in attributes.items():
                self._span.set_attribute(f"dialnexa.{key}", value)

    def fail(self, error: BaseException) -> None:
        if self._span is not None and _trace is not None:
            self._span.record_exception(error)
            self._span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(error).__name__))

    def context(self) -> contextvars.Context | None:
        """A copy of the current context with this span current in it (``None`` without
        OpenTelemetry: tasks then keep the context they would have had)."""
        if self._span is None or _trace is None or _otel_context is None:
            return None
        ctx = contextvars.copy_context()
        ctx.run(_otel_context.attach, _trace.set_span_in_context(self._span))
        return ctx

    def end(self) -> None:
        if self._span is not None:
            self._span.end()
            self._span = None


@contextmanager
def operation(name: str, **attributes: Any) -> Iterator[Operation]:
    """A span current for the block (ended, with any error recorded, when it exits)."""
    op = Operation(name, {f"dialnexa.{key}": value for key, value in attributes.items()})
    token = None
    if op._span is not None and _trace is not None and _otel_context is not None:
        token = _otel_context.attach(_trace.set_span_in_context(op._span))
    try:
        yield op
    except BaseException as exc:
        op.fail(exc)
        raise
    finally:
        if token is not None and _otel_context is not None:
            _otel_context.detach(token)
        op.end()


def aiohttp_trace_configs() -> list[Any]:
    """OpenTelemetry's aiohttp client instrumentation for the SDK's session, when it is
    installed and the application has set a tracer provider (without one, its spans would go
    nowhere and still cost CPU on every request)."""
    if _trace is None or isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider):
        return []
    try:
        from opentelemetry.instrumentation.aiohttp_client import (  # noqa: PLC0415
            create_trace_config,
        )
    except ModuleNotFoundError:
        return []
    # Headers are never recorded: the Authorization header holds the key.
    return [create_trace_config()]
