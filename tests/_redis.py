"""The fleet tests' Redis: the shipped ``dialnexa_async.testing.redis_server``."""

from __future__ import annotations

from dialnexa_async.testing import redis_binary, redis_server

__all__ = ["redis_binary", "redis_server"]
