"""``HostilePages``: a model of a lead-list server that pages badly, to test scans against.

It answers ``GET …/leads?page=&limit=`` the way broken or busy servers do: pages clamped to
fewer leads than asked (saying so or not), one short or empty answer for a page (a lagging
replica), pages short for good, ``meta`` that lies or is absurd, and a list that changes under
the scan (leads inserted, removed, moved to the front) after a given number of requests.
Use it as the handler of a :class:`~dialnexa_async.testing.MockTransport`, or call
:meth:`HostilePages.answer` directly.

It also keeps what a scan must be judged by: :attr:`HostilePages.persistent` (the leads present
from the first request to the last, each of which a scan must yield) and
:attr:`HostilePages.moved` (leads whose place changed, whose order a scan cannot promise).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import attrs

from dialnexa_async import HTTPRequest, HTTPResponse

__all__ = ["HostilePages", "Mutation"]

MutationKind = Literal["insert", "remove", "move_to_front"]


@attrs.frozen
class Mutation:
    """A change to the list, made just before the server answers its ``after``-th request
    (counted from 1).

    Attributes:
        after: The request it comes before (1: before the first answer).
        kind: ``"insert"`` (a new lead at ``position``), ``"remove"`` (the lead at
            ``position``) or ``"move_to_front"`` (the lead at ``position`` becomes the first).
        position: Where in the list, as an index (taken modulo the list's length).
    """

    after: int
    kind: MutationKind
    position: int = 0


@attrs.define
class HostilePages:
    """A lead list served badly on purpose (everything off by default: an honest server).

    Attributes:
        ids: The leads' ids, in the server's order (changed by :attr:`mutations`).
        clamp: The most leads a page holds, whatever ``limit`` asks for.
        declare_clamp: Whether ``meta.limit`` says the clamp (else it echoes ``limit``).
        short_once: Pages whose first answer leaves out this many of their last leads.
        empty_once: Pages whose first answer is empty.
        short_always: Pages that always leave out this many of their last leads (as a server
            that filters leads after cutting its pages does).
        meta: Values that replace those of every page's ``meta`` (``total``, ``totalPages``,
            ``limit``, ``page``), e.g. ``{"total": 0, "totalPages": 0}``.
        meta_shape: ``"object"``, ``"list"`` (a ``meta`` that is not an object) or
            ``"absent"`` (no ``meta`` at all).
        mutations: Changes to the list, each before a given request.
        requests: Requests answered so far.
    """

    ids: list[str]
    clamp: int | None = None
    declare_clamp: bool = False
    short_once: dict[int, int] = attrs.field(factory=dict)
    empty_once: set[int] = attrs.field(factory=set)
    short_always: dict[int, int] = attrs.field(factory=dict)
    meta: Mapping[str, Any] = attrs.field(factory=dict)
    meta_shape: Literal["object", "list", "absent"] = "object"
    mutations: Sequence[Mutation] = ()
    requests: int = 0
    _initial: list[str] = attrs.field(init=False)
    _removed: set[str] = attrs.field(init=False, factory=set)
    _moved: set[str] = attrs.field(init=False, factory=set)
    _answered: set[int] = attrs.field(init=False, factory=set)
    _made: int = attrs.field(init=False, default=0)
    _kinds: set[str] = attrs.field(init=False, factory=set)

    def __attrs_post_init__(self) -> None:
        self.ids = list(self.ids)
        self._initial = list(self.ids)

    @property
    def persistent(self) -> list[str]:
        """The leads present from the first request to the last, in their first order."""
        return [lead for lead in self._initial if lead not in self._removed]

    @property
    def moved(self) -> set[str]:
        """The leads a mutation moved (their order relative to others changed)."""
        return set(self._moved)

    @property
    def changes(self) -> set[str]:
        """The kinds of mutation that have happened so far."""
        return set(self._kinds)

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        """Answer one attempt (the :class:`~dialnexa_async.testing.MockTransport` handler)."""
        query = parse_qs(urlsplit(request.url).query)
        page = int(query.get("page", ["1"])[0])
        limit = int(query.get("limit", ["20"])[0])
        return HTTPResponse(
            status=200,
            headers={"Content-Type": "application/json"},
            body=json.dumps(self.answer(page, limit)).encode(),
        )

    def answer(self, page: int, limit: int) -> dict[str, Any]:
        """The JSON body answering ``page`` of ``limit`` leads (the request is counted)."""
        self.requests += 1
        self._mutate()
        size = min(limit, self.clamp) if self.clamp is not None else limit
        start = (page - 1) * size
        chosen = self.ids[start : start + size]
        first_time = page not in self._answered
        self._answered.add(page)
        if first_time and page in self.empty_once:
            chosen = []
        elif first_time and page in self.short_once:
            chosen = chosen[: max(0, len(chosen) - self.short_once[page])]
        if page in self.short_always:
            chosen = chosen[: max(0, len(chosen) - self.short_always[page])]
        body: dict[str, Any] = {"data": [self._lead(lead) for lead in chosen]}
        total = len(self.ids)
        meta: dict[str, Any] = {
            "page": page,
            "limit": size if self.declare_clamp else limit,
            "total": total,
            "totalPages": -(-total // size),
        }
        meta.update(self.meta)
        if self.meta_shape == "object":
            body["meta"] = meta
        elif self.meta_shape == "list":
            body["meta"] = list(meta.values())
        return body

    def _mutate(self) -> None:
        for mutation in self.mutations:
            if mutation.after != self.requests:
                continue
            self._made += 1
            self._kinds.add(mutation.kind)
            if mutation.kind == "insert":
                position = mutation.position % (len(self.ids) + 1)
                self.ids.insert(position, f"new_{self._made}")
                continue
            if not self.ids:
                continue
            lead = self.ids.pop(mutation.position % len(self.ids))
            if mutation.kind == "remove":
                self._removed.add(lead)
            else:
                self.ids.insert(0, lead)
                self._moved.add(lead)

    @staticmethod
    def _lead(lead_id: str) -> dict[str, Any]:
        return {"id": lead_id, "phone_number": "+15550100", "status": "pending"}
