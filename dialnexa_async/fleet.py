"""One request budget shared by every process of a fleet, through Redis (extra ``redis``).

``RedisLimiter`` is a :class:`~dialnexa_async.Limiter` for ``AsyncDialNexa(limiter=...)``:
every request attempt of every process that names the same budget takes a slot of it.

* **Concurrency**: at most ``max_concurrency`` attempts in flight across the fleet. A slot is a
  lease in a Redis sorted set (score: when it expires), renewed by the process while its
  request runs; a process killed with SIGKILL stops renewing, and its slots are free again
  within ``lease`` seconds.
* **Rate** (``max_rate``, optional): at most that many attempts per second across the fleet, a
  moving window (a sorted set of the last second's sends) checked in the same script that takes
  the slot. Not the ``limits`` library, for two reasons measured here: its async storage opens a
  connection pool of its own that it offers no way to close (every test saw it leak), and it
  cannot use the client a caller passes in; and it costs a second round trip per attempt, where
  this costs none.
* **Cool-down**: a ``429`` with ``Retry-After`` seen by any process pauses every process's new
  attempts until it passes (the retry of that request included).
* **Fairness**: waiters queue in arrival order (a Redis sorted set of tickets), so a busy
  process cannot starve a waiting one; a release wakes the waiters at once (pub/sub), and a
  waiter whose process died leaves the queue after ``lease`` seconds.
* **Redis down**: :class:`~dialnexa_async.LimiterError` by default, after at most
  ``redis_timeout`` seconds, never a hang; with ``fallback="local"`` the process falls back to
  a :class:`~dialnexa_async.LocalLimiter` of ``max_concurrency`` (so each process, not the
  fleet, then stays within the cap: never unlimited) until Redis answers again.

Each acquire and release is one round trip to Redis (a Lua script, atomic); see the README's
"Running a fleet" for what a slot costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

import anyio

from ._concurrency import same_loop
from ._limiter import Lease, LocalLimiter
from ._validate import check_int_range, check_seconds
from .errors import EnrollmentLockedError, LimiterError

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ModuleNotFoundError as exc:  # pragma: no cover - the redis extra installs it
    raise ModuleNotFoundError(
        "dialnexa_async.fleet needs redis-py: pip install 'dialnexa-async[redis]'"
    ) from exc

__all__ = ["DEFAULT_LEASE", "RedisLimiter"]

DEFAULT_LEASE = 90.0

logger = logging.getLogger("dialnexa_async.fleet")

# Redis's clock decides every lease, cool-down and rate window, so that processes on machines
# whose clocks disagree still agree. KEYS: slots, queue, beats, seq, cooldown, rate.
# ARGV: token, cap, lease ms, waiter ttl ms, rate limit (0: none), rate window ms.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, cap, lease, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], token) then return {1, 0} end
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 500)
if #dead > 0 then
  redis.call('ZREM', KEYS[2], unpack(dead))
  redis.call('ZREM', KEYS[3], unpack(dead))
end
if not redis.call('ZSCORE', KEYS[2], token) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), token)
end
redis.call('ZADD', KEYS[3], now + ttl, token)
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ttl * 4) end
local cool = tonumber(redis.call('GET', KEYS[5]) or '0')
if cool > now then return {0, cool - now} end
local free = cap - redis.call('ZCARD', KEYS[1])
if redis.call('ZRANK', KEYS[2], token) < free then
  local limit, window = tonumber(ARGV[5]), tonumber(ARGV[6])
  if limit > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - window)
    if redis.call('ZCARD', KEYS[6]) >= limit then
      local oldest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
      return {0, math.max(1, tonumber(oldest[2]) + window - now)}
    end
    redis.call('ZADD', KEYS[6], now, token)
    redis.call('PEXPIRE', KEYS[6], window * 2)
  end
  redis.call('ZADD', KEYS[1], now + lease, token)
  redis.call('PEXPIRE', KEYS[1], lease * 4)
  redis.call('ZREM', KEYS[2], token)
  redis.call('ZREM', KEYS[3], token)
  return {1, 0}
end
return {0, 0}
"""
# A release hands its slot straight to the first waiter (when no cool-down or rate stands in
# the way) and names it in the message, so that the waiter needs no round trip of its own.
# KEYS: slots, queue, beats, cooldown; ARGV: channel, token, cap, lease ms, rate limit.
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cool = tonumber(redis.call('GET', KEYS[4]) or '0')
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
if cool > now or tonumber(ARGV[5]) > 0 or free < 1 then
  redis.call('PUBLISH', ARGV[1], '')
  return 0
end
for _, head in ipairs(redis.call('ZRANGE', KEYS[2], 0, free - 1)) do
  local beat = tonumber(redis.call('ZSCORE', KEYS[3], head) or '0')
  redis.call('ZREM', KEYS[2], head)
  redis.call('ZREM', KEYS[3], head)
  if beat > now then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), head)
    redis.call('PUBLISH', ARGV[1], head)
    return 0
  end
end
redis.call('PUBLISH', ARGV[1], '')
return 0
"""
# KEYS: slots; ARGV: lease, tokens...
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 4)
return 0
"""
# A run lock is a key holding its holder's token; only the holder extends or deletes it.
# KEYS: lock; ARGV: token, lease ms (extend) / token (unlock).
_EXTEND_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: cooldown; ARGV: milliseconds.
_COOL_DOWN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
if until_ms > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]))
end
return 0
"""

# A waiter re-asks at least this often even without a wake-up (a lease that expired, a lost
# message), and at most this long after a cool-down ends.
_POLL_SECONDS = 0.05
# A waiter that stopped asking for this long (its process died) loses its place in the queue.
_WAITER_TTL_MS = 2000
# How long giving a slot back, or leaving the queue, may take before it is left to expire.
_RELEASE_SECONDS = 5.0


class _RedisLease:
    __slots__ = ("_limiter", "_local", "token")

    def __init__(self, limiter: RedisLimiter, token: str, local: Lease) -> None:
        self._limiter = limiter
        self._local = local
        self.token = token

    async def release(self) -> None:
        await self._local.release()
        await self._limiter._release(self.token)


class RedisLimiter:
    """A request budget shared through Redis by every process that names it; see the module
    docstring.

    Args:
        url_or_client: A Redis URL (``redis://host:6379/0``) or a ``redis.asyncio.Redis``
            client (left open on :meth:`aclose`).
        name: The budget: processes that use the same name share it.
        max_concurrency: Attempts in flight at once across the fleet.
        max_rate: Attempts per second across the fleet (``None``: no rate limit).
        lease: Seconds a slot is held without renewal; a dead process's slots are free again
            after this long. Renewed every ``lease / 3`` while held, by the event loop that
            holds it. The default, 90 s, is longer than a request's default timeout (60 s):
            a slot outlives the request it was taken for, unless that process's event loop
            stops for longer than ``lease`` (a SIGSTOP, a blocking call), which is the one way
            the fleet can exceed its cap (see the README's "Running a fleet").
        redis_timeout: Seconds a Redis command may take before the budget counts as
            unreachable: the socket timeouts of the client the limiter makes, which retries
            nothing (a client you pass keeps its own timeouts and retries).
        fallback: ``"error"`` (default): raise :class:`~dialnexa_async.LimiterError` when Redis
            cannot be reached; ``"local"``: use a per-process limiter of ``max_concurrency``
            until it can.
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        name: str,
        max_concurrency: int,
        max_rate: float | None = None,
        lease: float = DEFAULT_LEASE,
        redis_timeout: float = 2.0,
        fallback: Literal["error", "local"] = "error",
    ) -> None:
        if not isinstance(name, str) or not name or any(ch.isspace() for ch in name):
            raise ValueError(f"name must be a non-empty word, got {name!r}")
        check_int_range(max_concurrency, "max_concurrency", 1)
        if max_rate is not None:
            check_seconds(max_rate, "max_rate")
        self._lease_ms = int(check_seconds(lease, "lease") * 1000)
        check_seconds(redis_timeout, "redis_timeout")
        if fallback not in ("error", "local"):
            raise ValueError(f"fallback must be 'error' or 'local', got {fallback!r}")
        self.name = name
        self.max_concurrency = max_concurrency
        self.max_rate = max_rate
        self.fallback = fallback
        if isinstance(url_or_client, str):
            self._redis = aioredis.Redis.from_url(
                url_or_client,
                socket_timeout=redis_timeout,
                socket_connect_timeout=redis_timeout,
                # No retries inside redis-py: redis_timeout is the whole wait for a command.
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
            self._owns_redis = True
            self._url: str | None = url_or_client
        elif isinstance(url_or_client, aioredis.Redis):
            self._redis = url_or_client
            self._owns_redis = False
            self._url = None
        else:
            raise TypeError("url_or_client must be a Redis URL or a redis.asyncio.Redis client")
        prefix = f"dialnexa:limiter:{name}:"
        parts = ("slots", "queue", "beats", "seq", "cooldown", "rate")
        self._keys = [prefix + part for part in parts]
        # A moving window of rate_window_ms holding at most rate_limit sends (0: no rate).
        self._rate_limit = 0 if max_rate is None else max(1, int(max_rate))
        self._rate_window_ms = 0 if max_rate is None else round(1000 * self._rate_limit / max_rate)
        self._channel = prefix + "released"
        self._acquire_script = self._redis.register_script(_ACQUIRE)
        self._release_script = self._redis.register_script(_RELEASE)
        self._renew_script = self._redis.register_script(_RENEW)
        self._cool_script = self._redis.register_script(_COOL_DOWN)
        self._extend_lock_script = self._redis.register_script(_EXTEND_LOCK)
        self._unlock_script = self._redis.register_script(_UNLOCK)
        self._held: set[str] = set()
        self._waiting: set[str] = set()  # tokens of this process's waiters
        self._granted: set[str] = set()  # ... that a release handed a slot to
        self._local = LocalLimiter(max_concurrency)
        self._wakeup: anyio.Event | None = None
        self._cool_until = 0.0  # monotonic: this process's copy of the fleet's cool-down
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tidying: set[asyncio.Task[None]] = set()
        self.stats: dict[str, int] = {"acquired": 0, "waited": 0, "fallbacks": 0}

    def __repr__(self) -> str:
        return (
            f"<RedisLimiter name={self.name!r} max_concurrency={self.max_concurrency} "
            f"max_rate={self.max_rate}>"
        )

    def _check_loop(self) -> None:
        self._loop = same_loop(
            self._loop,
            f"RedisLimiter {self.name!r}",
            "RedisLimiter",
            "its connections and lease renewals",
        )

    # -- the Limiter protocol ----------------------------------------------------------------

    async def acquire(self) -> Lease:
        # Every slot of this process, the fleet's or the fallback's, is also one of its own
        # max_concurrency: so falling back while fleet slots are still out never goes past it.
        self._check_loop()
        local = await self._local.acquire()
        token = uuid.uuid4().hex
        try:
            await self._start()
            try:
                await self._take_slot(token)
            except (RedisError, OSError) as exc:
                # Redis did not answer within redis_timeout: tidy up (leave the queue, give
                # back a slot the script may have granted) in the background, so that the
                # caller hears of it after redis_timeout, not after more waits on a dead Redis.
                self._tidy_later(token)
                self._unreachable(exc)
                return local
        except LimiterError:
            await local.release()
            raise
        except BaseException:
            # Cancelled (a deadline) perhaps just after the slot was granted: give it back.
            await self._release_quietly(token)
            await local.release()
            raise
        self._held.add(token)
        self.stats["acquired"] += 1
        return _RedisLease(self, token, local)

    async def cool_down(self, seconds: float) -> None:
        self._check_loop()
        self._cool_until = max(self._cool_until, time.monotonic() + seconds)
        try:
            await self._cool_script(keys=[self._keys[4]], args=[max(1, int(seconds * 1000))])
        except (RedisError, OSError) as exc:
            raise LimiterError(
                f"budget {self.name!r}: Redis could not be reached ({type(exc).__name__})",
                name=self.name,
            ) from None

    async def aclose(self) -> None:
        """Stop renewing and listening; close the Redis client if this limiter made it."""
        self._closed = True
        tasks, self._tasks = [*self._tasks, *self._tidying], []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_redis:
            await self._redis.aclose()

    async def __aenter__(self) -> RedisLimiter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- run locks ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the fleet-wide lock ``key`` for the ``async with`` block (a
        :class:`~dialnexa_async.RunLock`): ``enroll(..., lock=limiter)`` takes one keyed by
        workflow and source, so that two machines cannot run the same enrolment at once.

        The lock is a Redis key that expires ``lease`` seconds after its last renewal (every
        ``lease / 3`` while held): a holder that dies frees it within ``lease`` seconds.

        Raises:
            EnrollmentLockedError: Another holder has it (nothing was done).
            LimiterError: Redis could not be reached.
        """
        self._check_loop()
        name = f"dialnexa:lock:{key}"
        token = uuid.uuid4().hex
        try:
            taken = await self._redis.set(name, token, nx=True, px=self._lease_ms)
        except (RedisError, OSError) as exc:
            raise LimiterError(
                f"lock {key!r}: Redis could not be reached ({type(exc).__name__})",
                name=self.name,
            ) from None
        if not taken:
            raise EnrollmentLockedError(
                f"{key} is being run by another process of the fleet (lock {name!r})",
                resource=name,
            )
        keeper = asyncio.create_task(self._keep_lock(name, token), name=f"dialnexa-lock-{key}")
        try:
            yield
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(_RELEASE_SECONDS),
                contextlib.suppress(RedisError, OSError),
            ):
                await self._unlock_script(keys=[name], args=[token])

    async def _keep_lock(self, name: str, token: str) -> None:
        while True:
            await anyio.sleep(self._lease_ms / 3000)
            try:
                kept = await self._extend_lock_script(keys=[name], args=[token, self._lease_ms])
            except (RedisError, OSError) as exc:
                logger.warning("lock %r: could not renew it (%s)", name, exc)
                continue
            if not kept:
                logger.warning("lock %r was lost (expired or taken): renew failed", name)
                return

    # -- slots -------------------------------------------------------------------------------

    def _tidy_later(self, token: str) -> None:
        """Leave the queue and give back a possibly granted slot, in a task of the limiter's
        own (``aclose()`` cancels it): best effort, as Redis may be gone."""

        async def tidy() -> None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.zrem(self._keys[1], token)
            await self._release_quietly(token)

        task = asyncio.create_task(tidy(), name=f"dialnexa-fleet-tidy-{self.name}")
        self._tidying.add(task)
        task.add_done_callback(self._tidying.discard)

    async def _take_slot(self, token: str) -> None:
        try:
            await self._wait_for_slot(token)
        except (RedisError, OSError):
            raise  # Redis is not answering: the caller tidies up in the background
        except BaseException:
            # Cancelled (a deadline) or failed while queued: leave the queue, so that nobody
            # waits behind a ticket nobody will use.
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(_RELEASE_SECONDS),
                contextlib.suppress(RedisError, OSError),
            ):
                await self._redis.zrem(self._keys[1], token)
            raise

    async def _wait_for_slot(self, token: str) -> None:
        self._waiting.add(token)
        try:
            await self._ask_until_granted(token)
        finally:
            self._waiting.discard(token)
            self._granted.discard(token)

    async def _ask_until_granted(self, token: str) -> None:
        waited = False
        while True:
            if token in self._granted:
                self.stats["waited"] += 1
                return
            wake = self._wakeup
            pause = self._cool_until - time.monotonic()
            if pause > 0:
                waited = True
                await anyio.sleep(pause)
                continue
            got, wait_ms = await self._acquire_script(
                keys=self._keys,
                args=[
                    token,
                    self.max_concurrency,
                    self._lease_ms,
                    _WAITER_TTL_MS,
                    self._rate_limit,
                    self._rate_window_ms,
                ],
            )
            if got:
                if waited:
                    self.stats["waited"] += 1
                return
            waited = True
            if wait_ms:
                # A cool-down, or the rate's window full: nobody here asks before it passes.
                self._cool_until = max(self._cool_until, time.monotonic() + wait_ms / 1000)
                continue
            with anyio.move_on_after(_POLL_SECONDS):
                if wake is not None:
                    await wake.wait()

    async def _release(self, token: str) -> None:
        self._held.discard(token)
        await self._release_script(
            keys=[self._keys[0], self._keys[1], self._keys[2], self._keys[4]],
            args=[
                self._channel,
                token,
                self.max_concurrency,
                self._lease_ms,
                self._rate_limit,
            ],
        )

    async def _release_quietly(self, token: str) -> None:
        """Give back a slot taken by an acquire that then failed (if it was taken at all)."""
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(_RELEASE_SECONDS),
            contextlib.suppress(RedisError, OSError),
        ):
            await self._release(token)

    def _unreachable(self, exc: BaseException) -> None:
        """With ``fallback="local"``, note it (the caller keeps its local slot); else raise."""
        if self.fallback == "local":
            self.stats["fallbacks"] += 1
            logger.warning(
                "budget %r: Redis unreachable (%s); using a per-process limiter of %d",
                self.name,
                type(exc).__name__,
                self.max_concurrency,
            )
            return
        raise LimiterError(
            f"budget {self.name!r}: Redis could not be reached ({type(exc).__name__}); no "
            "request was sent",
            name=self.name,
        ) from None

    # -- background: renew leases, hear releases ---------------------------------------------

    async def _start(self) -> None:
        if self._tasks:
            return
        if self._closed:
            raise RuntimeError(f"RedisLimiter {self.name!r} is closed")
        self._wakeup = anyio.Event()
        # Plain tasks, not a task group: they live as long as the limiter, across the calls of
        # many tasks, and aclose() (from any task) cancels and awaits them.
        self._tasks = [
            asyncio.create_task(self._renew_forever(), name=f"dialnexa-fleet-renew-{self.name}"),
            asyncio.create_task(self._listen_forever(), name=f"dialnexa-fleet-listen-{self.name}"),
        ]

    async def _renew_forever(self) -> None:
        while True:
            await anyio.sleep(self._lease_ms / 3000)
            held = list(self._held)
            if not held:
                continue
            try:
                await self._renew_script(keys=[self._keys[0]], args=[self._lease_ms, *held])
            except (RedisError, OSError) as exc:
                logger.warning("budget %r: could not renew leases (%s)", self.name, exc)

    async def _listen_forever(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        granted = message.get("data", b"").decode()
                        if granted in self._waiting:
                            self._granted.add(granted)  # handed over by the release itself
                        wake, self._wakeup = self._wakeup, anyio.Event()
                        if wake is not None:
                            wake.set()
            except (RedisError, OSError):
                await anyio.sleep(_POLL_SECONDS * 10)  # waiters poll meanwhile
