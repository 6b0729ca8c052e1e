"""Pure: what the SDK accepts as a whole number from a server (shared by the converter and the
reading of error bodies, which must not need the converter)."""

from __future__ import annotations

__all__ = ["whole_number"]


def whole_number(value: object) -> int:
    """An int from an int, an integral float or a string of digits; ``TypeError`` otherwise
    (a bool is not a number here)."""
    if isinstance(value, bool):
        raise TypeError("expected an integer, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise TypeError(f"expected an integer, got {value!r}")
