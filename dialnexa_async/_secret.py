"""``Secret``: the API key, kept where nothing that shows objects can show it."""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """A string that never shows itself: ``repr`` and ``str`` say ``<redacted>``.

    The key travels through the SDK as one of these, so that a traceback rendered with its
    frames' local variables (``traceback`` with ``capture_locals``, or an error tracker that
    records them, as Sentry does by default) finds ``<redacted>`` wherever it is passed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__

    def reveal(self) -> str:
        """The value itself, for the one place that must send it (the header)."""
        return self._value

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")
