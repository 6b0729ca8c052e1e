"""The one cattrs converter, and every hook that lets it read what the API sends.

The API speaks several dialects at once (its reference pages disagree with themselves, and the
live service with the pages; ``tests/samples`` holds an example of each): snake_case and
camelCase keys, ``created_at``/``enrolled_at``,
``metadata``/``notes``/``dynamic_variables``, ``title``/``name``, a ``{statusCode, message,
data}`` envelope, ``meta`` with or without ``totalPages`` or no ``meta`` at all. Each model class
gets a key-normalising step in front of cattrs' generated structure function, so the models stay
plain and the dialects live here, in one table.

:func:`make_converter` builds the converter from this module's hooks in one place (nothing is
registered as a side effect of importing); :data:`converter` is the one the SDK uses. Decoding
failures of any kind become :class:`~dialnexa_async.errors.APIResponseValidationError` naming
the field that was wrong.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import NoneType, UnionType
from typing import Any, NoReturn, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from ._coerce import whole_number
from .errors import APIResponseValidationError
from .models import (
    CampaignLead,
    Enrollment,
    LeadHistory,
    LeadHistoryStep,
    LeadStatus,
    Page,
    PageMeta,
    RowError,
    Workflow,
    WorkflowLead,
    WorkflowStatus,
)

__all__ = ["VariableKeys", "converter", "decode", "decode_page", "make_converter", "unwrap"]

T = TypeVar("T")

# Wire key -> attribute name, per class. Keys not listed pass through unchanged; the first alias
# present wins over later ones only if the canonical key is absent (see _normaliser).
_ALIASES: dict[type, dict[str, str]] = {
    Workflow: {
        "name": "title",
        "organizationId": "organization_id",
        "nodeCount": "node_count",
        "edgeCount": "edge_count",
        "enrolledLeads": "enrolled_leads",
        "createdAt": "created_at",
        "updatedAt": "updated_at",
    },
    WorkflowLead: {
        "created_at": "enrolled_at",
        "createdAt": "enrolled_at",
        "enrolledAt": "enrolled_at",
        "phoneNumber": "phone_number",
        "currentNodeId": "current_node_id",
        "workflowId": "workflow_id",
        "dynamic_variables": "metadata",
        "dynamicVariables": "metadata",
    },
    CampaignLead: {
        "notes": "metadata",
        "dynamic_variables": "metadata",
        "dynamicVariables": "metadata",
        "phoneNumber": "phone_number",
        "campaignId": "campaign_id",
        "callLogId": "call_log_id",
        "createdAt": "created_at",
    },
    LeadHistoryStep: {
        "nodeId": "node_id",
        "nodeType": "node_type",
        "callId": "call_id",
        "startedAt": "started_at",
        "endedAt": "ended_at",
    },
    RowError: {"row_numbers": "rows"},
}


def _aliases_of(cls: type, field: str) -> tuple[str, ...]:
    """The wire keys that stand for ``field`` of ``cls``, in the table's order."""
    return tuple(key for key, target in _ALIASES.get(cls, {}).items() if target == field)


def _normaliser(cls: type) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    aliases = _ALIASES.get(cls, {})
    fields = {a.name for a in cls.__attrs_attrs__}  # type: ignore[attr-defined]

    def normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise TypeError(f"expected an object, got {type(raw).__name__}")
        out: dict[str, Any] = {key: value for key, value in raw.items() if key in fields}
        # Aliases fill a field only where its own key is absent or null, in the table's order.
        for key, target in aliases.items():
            if key in raw and out.get(target) is None:
                out[target] = raw[key]
        return out

    return normalise


def _register_model(converter: cattrs.Converter, cls: type) -> None:
    structure: Callable[[Mapping[str, Any], Any], Any] = make_dict_structure_fn(cls, converter)
    normalise = _normaliser(cls)

    def hook(raw: Any, _: type) -> Any:
        return structure(normalise(raw), cls)

    converter.register_structure_hook(cls, hook)


# --- scalar hooks -----------------------------------------------------------------------------


def _structure_datetime(value: Any, _: type) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 time stamp, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _structure_str(value: Any, _: type) -> str:
    # Ids and phone numbers occasionally arrive as JSON numbers; booleans/objects never are strings.
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_int(value: Any, _: type) -> int:
    return whole_number(value)


def _enum_or_str(enum_cls: type[enum.StrEnum], aliases: Mapping[str, enum.StrEnum]) -> Any:
    members = {m.value: m for m in enum_cls} | dict(aliases)

    def hook(value: Any, _: type) -> enum.StrEnum | str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"expected a status string, got {type(value).__name__}")
        # An unknown status is the server's news, not an error: keep the string.
        return members.get(value.lower(), value)

    return hook


_STATUS_HOOKS = {
    WorkflowStatus: _enum_or_str(WorkflowStatus, {"running": WorkflowStatus.ACTIVE}),
    LeadStatus: _enum_or_str(LeadStatus, {}),
}


def _is_status_union(tp: Any) -> bool:
    if get_origin(tp) not in (Union, UnionType):
        return False
    return any(arg in _STATUS_HOOKS for arg in get_args(tp))


def _structure_status_union(value: Any, tp: Any) -> Any:
    enum_cls = next(arg for arg in get_args(tp) if arg in _STATUS_HOOKS)
    if value is None and NoneType not in get_args(tp):
        raise TypeError("expected a status, got null")
    return _STATUS_HOOKS[enum_cls](value, enum_cls)


def _structure_mapping(value: Any, _: type) -> Mapping[str, object]:
    # Dynamic variables are free-form; null means none.
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return dict(value)


# --- the hot path -----------------------------------------------------------------------------
# A full scan decodes every lead, so WorkflowLead gets a hand-written fast path for the common
# shape (a dict of well-typed fields). Anything unusual raises _Unusual and goes through the
# generic hook, which accepts every dialect and names the field when something is wrong. The
# fast path reads the same alias table as the generic hook, in the same order (a hypothesis test
# holds the two to the same answers).

_LEAD_STATUSES: dict[str, LeadStatus] = {member.value: member for member in LeadStatus}
_STAMP_KEYS = ("enrolled_at", *_aliases_of(WorkflowLead, "enrolled_at"))
_VARIABLES_KEYS = ("metadata", *_aliases_of(WorkflowLead, "metadata"))
# The one alias of each plain string field: when its field is null and it is present, the
# generic hook decides (it would fill the field from the alias).
((_PHONE_ALIAS,), (_NODE_ALIAS,), (_WORKFLOW_ALIAS,), ()) = (
    _aliases_of(WorkflowLead, field)
    for field in ("phone_number", "current_node_id", "workflow_id", "id")
)
_LEAD_FIELDS = {field.name for field in attrs.fields(WorkflowLead)}
_FAST_FIELDS = {"id", "phone_number", "status", "current_node_id", "enrolled_at", "workflow_id"}
if _FAST_FIELDS | {"metadata"} != _LEAD_FIELDS:  # pragma: no cover - a guard for maintainers
    raise RuntimeError("WorkflowLead changed: update its fast path in _convert")

# WorkflowLead's own slots, in its order: the layout __class__ assignment requires.
_LEAD_SLOTS: tuple[str, ...] = WorkflowLead.__slots__  # type: ignore[attr-defined]


class _LeadInTheMaking:
    """A WorkflowLead being filled in: the same slots, without the frozen ``__setattr__``.

    attrs' frozen ``__init__`` sets each slot through ``object.__setattr__``, and even the slot
    descriptors cost a call each; a plain object's slots are set by the interpreter's fast path.
    Once filled in, the object becomes a WorkflowLead by ``__class__`` assignment, which CPython
    allows between classes of the same layout (hence WorkflowLead's ``weakref_slot=False``).
    What a frozen class forbids is changing a lead after it is built, and nothing here does.
    """

    __slots__ = _LEAD_SLOTS
    id: str
    phone_number: str | None
    status: LeadStatus | str | None
    current_node_id: str | None
    enrolled_at: datetime | None
    workflow_id: str | None
    metadata: dict[str, object]


class _Unusual(Exception):  # a control-flow signal; never leaves this module
    """The fast path declines; the generic hook decides."""


def _first_set(get: Callable[[str], Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = get(key)
        if value is not None:
            return value
    return None


def _fast_workflow_lead(raw: Any) -> WorkflowLead:
    if type(raw) is not dict:
        raise _Unusual
    get = raw.get
    lead_id = get("id")
    phone = get("phone_number")
    status = get("status")
    node = get("current_node_id")
    workflow_id = get("workflow_id")
    if type(lead_id) is not str:
        raise _Unusual
    if (
        (node is None and _NODE_ALIAS in raw)
        or (phone is None and _PHONE_ALIAS in raw)
        or (workflow_id is None and _WORKFLOW_ALIAS in raw)
    ):
        raise _Unusual
    if (
        (phone is not None and type(phone) is not str)
        or (node is not None and type(node) is not str)
        or (workflow_id is not None and type(workflow_id) is not str)
    ):
        raise _Unusual
    # Aliases only where the canonical key is absent or null, exactly as _normaliser does.
    stamp = get("enrolled_at")
    if stamp is None:
        stamp = _first_set(get, _STAMP_KEYS)
    if stamp is None:
        enrolled_at = None
    elif type(stamp) is str:
        try:
            enrolled_at = datetime.fromisoformat(stamp)
        except ValueError:
            raise _Unusual from None
        if enrolled_at.tzinfo is None:
            enrolled_at = enrolled_at.replace(tzinfo=UTC)
    else:
        raise _Unusual
    variables = get("metadata")
    if variables is None:
        variables = _first_set(get, _VARIABLES_KEYS)
        if variables is None:
            variables = {}
    if type(variables) is not dict:
        raise _Unusual
    if status is not None:
        if type(status) is not str:
            raise _Unusual
        status = _LEAD_STATUSES.get(status) or _LEAD_STATUSES.get(status.lower(), status)
    lead = _LeadInTheMaking()
    lead.id = lead_id
    lead.phone_number = phone
    lead.status = status
    lead.current_node_id = node
    lead.enrolled_at = enrolled_at
    lead.workflow_id = workflow_id
    # The dict was freshly parsed from this response and is referenced nowhere else.
    lead.metadata = variables
    lead.__class__ = WorkflowLead  # type: ignore[assignment]
    return lead  # type: ignore[return-value]


def _with_fast_path(generic: Callable[[Any, type], Any]) -> Callable[[Any, type], WorkflowLead]:
    def hook(raw: Any, cls: type) -> WorkflowLead:
        try:
            return _fast_workflow_lead(raw)
        except _Unusual:
            return generic(raw, cls)  # type: ignore[no-any-return]

    return hook


# --- composite shapes -------------------------------------------------------------------------


def unwrap(payload: Any) -> Any:
    """The object inside a ``{statusCode, message, data}`` envelope, or the payload itself."""
    if isinstance(payload, Mapping) and "statusCode" in payload and "data" in payload:
        return payload["data"]
    return payload


def _structure_enrollment(converter: cattrs.Converter, raw: Any) -> Enrollment:
    if not isinstance(raw, Mapping):
        raise TypeError(f"expected an object, got {type(raw).__name__}")
    message = raw.get("message")
    message = message if isinstance(message, str) else None
    inner = raw.get("data")
    if isinstance(inner, Mapping) and "statusCode" in raw:
        if "leads_enrolled" in inner or "leadsEnrolled" in inner or "id" in inner:
            # The envelope wraps one of the seed forms.
            decoded = _structure_enrollment(converter, inner)
            return decoded if decoded.message else _evolve_message(decoded, message)
        # Observed live form: {"+9198...": ["lead_..."]}, count.
        lead_ids = converter.structure(inner, dict[str, list[str]])
        count = raw.get("count")
        enrolled = (
            converter.structure(count, int)
            if count is not None
            else sum(len(ids) for ids in lead_ids.values())
        )
        return Enrollment(leads_enrolled=enrolled, message=message, lead_ids=lead_ids)
    if "leads_enrolled" in raw or "leadsEnrolled" in raw:
        enrolled_raw = raw.get("leads_enrolled", raw.get("leadsEnrolled"))
        workflow_id = raw.get("workflow_id", raw.get("workflowId"))
        return Enrollment(
            leads_enrolled=converter.structure(enrolled_raw, int),
            workflow_id=None if workflow_id is None else converter.structure(workflow_id, str),
            message=message,
        )
    if "id" in raw:
        # One seed example answers with the enrolled lead itself.
        lead = converter.structure(raw, WorkflowLead)
        return Enrollment(leads_enrolled=1, workflow_id=lead.workflow_id, lead=lead)
    raise ValueError("expected leads_enrolled, a lead object, or a data map of lead ids")


def _evolve_message(enrollment: Enrollment, message: str | None) -> Enrollment:
    return attrs.evolve(enrollment, message=message)


def _structure_history(converter: cattrs.Converter, raw: Any) -> LeadHistory:
    if not isinstance(raw, Mapping):
        raise TypeError(f"expected an object, got {type(raw).__name__}")
    lead = converter.structure(raw.get("lead"), WorkflowLead)
    steps_raw = raw.get("history", raw.get("steps"))
    steps = converter.structure(steps_raw if steps_raw is not None else [], list[LeadHistoryStep])
    far_past = datetime.min.replace(tzinfo=UTC)
    steps.sort(key=lambda s: s.started_at or far_past)
    return LeadHistory(lead=lead, steps=steps)


@attrs.frozen
class VariableKeys:
    """``{"keys": [...]}``: a workflow's dynamic-variable keys."""

    keys: list[str]


def _structure_variable_keys(converter: cattrs.Converter, raw: Any) -> VariableKeys:
    keys = raw.get("keys") if isinstance(raw, Mapping) else raw
    return VariableKeys(keys=converter.structure(keys, list[str]))


def make_converter() -> cattrs.Converter:
    """A converter that reads every dialect of the API into the SDK's models.

    Every hook is registered here, in one place, in an order that does not matter except where
    said: the models' generic hooks first, then WorkflowLead's fast path in front of its own.
    """
    converter = cattrs.Converter(detailed_validation=True)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook_func(_is_status_union, _structure_status_union)
    converter.register_structure_hook_func(
        lambda tp: tp == Mapping[str, object], _structure_mapping
    )
    for cls in (Workflow, WorkflowLead, CampaignLead, LeadHistoryStep, RowError):
        _register_model(converter, cls)
    # The fast path wraps the generic hook just made, which it falls back to.
    generic_lead = converter.get_structure_hook(WorkflowLead)
    converter.register_structure_hook(WorkflowLead, _with_fast_path(generic_lead))
    converter.register_structure_hook(
        Enrollment, lambda raw, _: _structure_enrollment(converter, raw)
    )
    converter.register_structure_hook(
        LeadHistory, lambda raw, _: _structure_history(converter, raw)
    )
    converter.register_structure_hook(
        VariableKeys, lambda raw, _: _structure_variable_keys(converter, raw)
    )
    return converter


converter = make_converter()
# The generic hook alone (without the fast path), for the test that holds the two to one answer.
_lead_structure = make_dict_structure_fn(WorkflowLead, converter)
_lead_normalise = _normaliser(WorkflowLead)


def _generic_workflow_lead(raw: Any, cls: type) -> WorkflowLead:
    return _lead_structure(_lead_normalise(raw), cls)


def _first(raw: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = raw.get(key)
        if value is not None:
            return value
    return None


# More items than any list of leads holds: a count above it is a broken answer, not a plan.
MAX_COUNT = 10**12


def _count(value: Any, name: str, least: int) -> int:
    number = _structure_int(value, int)
    if not least <= number <= MAX_COUNT:
        raise ValueError(f"{name} = {number if number < 10**20 else 'a huge number'} is absurd")
    return number


def _page_meta(payload: Mapping[str, Any], n_items: int, page: int, limit: int) -> PageMeta:
    meta = payload.get("meta")
    if meta is None:
        meta = {}
    elif not isinstance(meta, Mapping):
        raise TypeError(f"expected an object, got {type(meta).__name__}")
    total_raw = _first(meta, "total", "totalItems", "total_items")
    if total_raw is None:
        total_raw = payload.get("count")
    # No count at all: this page is all there is.
    total = (page - 1) * limit + n_items if total_raw is None else _count(total_raw, "total", 0)
    page_raw = _first(meta, "page", "currentPage", "current_page")
    limit_raw = _first(meta, "limit", "itemsPerPage", "items_per_page", "per_page")
    got_page = page if page_raw is None else _structure_int(page_raw, int)
    got_limit = limit if limit_raw is None else _count(limit_raw, "limit", 1)
    pages_raw = _first(meta, "totalPages", "total_pages")
    if pages_raw is None:
        total_pages = -(-total // got_limit)
    else:
        total_pages = _count(pages_raw, "totalPages", 0)
    return PageMeta(page=got_page, limit=got_limit, total=total, total_pages=total_pages)


@attrs.frozen
class _Where:
    """The request an answer belongs to, for the error a decoding failure becomes."""

    method: str
    path: str
    status_code: int


def _fail(exc: Exception, payload: Any, what: str, where: _Where) -> NoReturn:
    if isinstance(exc, cattrs.BaseValidationError):
        detail = "; ".join(cattrs.transform_error(exc, path=what))
    else:
        detail = f"{exc} @ {what}"
    raise APIResponseValidationError(
        f"unexpected response shape: {detail}",
        body=payload,
        method=where.method,
        path=where.path,
        status_code=where.status_code,
    ) from exc


def decode(payload: Any, cls: type[T], *, method: str, path: str, status_code: int = 200) -> T:
    """Structure ``payload`` (envelope or not) as ``cls`` or raise a typed validation error
    naming the request and the field."""
    inner = payload if cls is Enrollment else unwrap(payload)
    try:
        return converter.structure(inner, cls)
    except Exception as exc:
        _fail(exc, payload, "$", _Where(method, path, status_code))


def decode_page(
    payload: Any,
    item_cls: type[T],
    *,
    page: int,
    limit: int,
    method: str = "GET",
    path: str,
    status_code: int = 200,
) -> Page[T]:
    """A :class:`Page` from a list answer of any known shape; ``page``/``limit`` fill gaps."""
    where = _Where(method, path, status_code)
    if not isinstance(payload, Mapping):
        _fail(TypeError(f"expected an object, got {type(payload).__name__}"), payload, "$", where)
    data = payload.get("data")
    if not isinstance(data, list):
        _fail(TypeError(f"expected a list, got {type(data).__name__}"), payload, "$.data", where)
    items: list[Any]
    try:
        # Item by item first (fast); on a failure, the list hook finds the failing index.
        if item_cls is WorkflowLead:
            try:
                items = [_fast_workflow_lead(item) for item in data]
            except _Unusual:
                items = [converter.structure(item, WorkflowLead) for item in data]
        else:
            structure_item = converter.get_structure_hook(item_cls)
            items = [structure_item(item, item_cls) for item in data]
    except Exception:
        try:
            items = converter.structure(data, list[item_cls])  # type: ignore[valid-type]
        except Exception as exc:
            _fail(exc, payload, "$.data", where)
    try:
        meta = _page_meta(payload, len(items), page, limit)
    except Exception as exc:
        _fail(exc, payload, "$.meta", where)
    return Page(data=items, meta=meta)
