"""Test helpers: an in-process fake DialNexa server, for this project's tests and yours.

::

    from dialnexa_async import AsyncDialNexa
    from dialnexa_async.testing import FakeDialNexa

    async with FakeDialNexa(leads=250) as fake:
        async with AsyncDialNexa(fake.api_key, base_url=fake.url) as dn:
            leads = await dn.workflows.leads.list(fake.workflow_id).collect()

``Faults`` makes it misbehave on purpose (errors, dropped connections, slow answers), and
``Hostile`` makes it answer as a hostile or broken server would (redirects, oversize and
gzip-bomb bodies, deeply nested JSON, an echoed key, cycling pages, inconsistent ``meta``).

``HostilePages`` is a model of a lead-list server that pages badly (clamped, short or empty
pages, lying or absurd ``meta``, a list that changes mid-scan), to run scans against through a
``MockTransport``; it knows which leads a scan must yield.

``MockTransport(handler)`` is the client without sockets: everything above the transport runs
for real, and ``handler`` answers each attempt.

With pytest, the plugin (registered automatically on install) gives the fixtures
``dialnexa_fake_server`` (a running :class:`FakeDialNexa` with 250 leads) and ``dialnexa_client``
(an :class:`~dialnexa_async.AsyncDialNexa` pointed at it).
"""

from ._mock import MockTransport
from ._pages import HostilePages, Mutation
from ._redis import RedisServer, redis_binary, redis_server
from ._server import (
    DEFAULT_API_KEY,
    FakeDialNexa,
    FakeServerStats,
    Faults,
    Hostile,
    Interceptor,
    serve,
)
from ._store import FakeStore

__all__ = [
    "DEFAULT_API_KEY",
    "FakeDialNexa",
    "FakeServerStats",
    "FakeStore",
    "Faults",
    "Hostile",
    "HostilePages",
    "Interceptor",
    "MockTransport",
    "Mutation",
    "RedisServer",
    "redis_binary",
    "redis_server",
    "serve",
]
