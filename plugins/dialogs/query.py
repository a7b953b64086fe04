"""The list of a user's dialogs: whitelisted ``{field}[op]`` filters as bound
parameters, sorting and paging (SDK-CONTRACT §2, §5.1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, func, or_, select

from plugins.dialogs.model import DEFAULT_LIMIT, MAX_LIMIT, OPEN_TYPES, InvalidError, ids_of
from plugins.dialogs.store import views
from plugins.dialogs.tables import dialogs_dialogs as dialogs
from plugins.dialogs.tables import dialogs_occupants as occupants

# Filterable and sortable fields (whitelist) and how their values are read.
_FIELDS: dict[str, tuple[Any, str]] = {
    "_id": (dialogs.c.id, "str"),
    "type": (dialogs.c.type, "int"),
    "name": (dialogs.c.name, "str"),
    "description": (dialogs.c.description, "str"),
    "user_id": (dialogs.c.user_id, "int"),
    "created_at": (dialogs.c.created_at, "date"),
    "updated_at": (dialogs.c.updated_at, "date"),
    "last_message_date_sent": (dialogs.c.last_message_date_sent, "int"),
    "last_message_user_id": (dialogs.c.last_message_user_id, "int"),
}
_OPS = ("eq", "lt", "lte", "gt", "gte", "ne", "in", "nin", "all", "ctn")  # eq: a plain `field=v`


def parse_value(kind: str, raw: Any, field: str) -> Any:
    text = str(raw).strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "date":  # unix seconds (SDK-CONTRACT §2), or ISO 8601
            try:
                return datetime.fromtimestamp(float(text), UTC)
            except ValueError:
                return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidError(f"bad value {text!r}", field) from None
    return text


def condition(field: str, op: str, raw: Any, fields: dict[str, tuple[Any, str]] = _FIELDS) -> Any:
    """``{field}[op]=raw`` as a SQL condition on a whitelisted field, values bound."""
    if op not in _OPS:
        raise InvalidError(f"unsupported operator {op!r}", field)
    items = raw if isinstance(raw, list) else str(raw).split(",")
    if field == "occupants_ids":  # a dialog's occupants contain: any of (eq/in), all of, none of
        wanted = ids_of(items, field)

        def has(user_id: int) -> Any:
            return exists().where(
                occupants.c.dialog_id == dialogs.c.id, occupants.c.user_id == user_id
            )

        if op in ("eq", "in", "all", "nin", "ne") and wanted:
            if op == "all":
                return and_(*(has(i) for i in wanted))
            if op in ("nin", "ne"):
                return and_(*(~has(i) for i in wanted))
            return or_(*(has(i) for i in wanted))
        raise InvalidError(f"unsupported operator {op!r}", field)
    column, kind = fields[field]
    if op in ("in", "nin"):
        values = [parse_value(kind, i, field) for i in items if str(i).strip()]
        return column.in_(values) if op == "in" else column.not_in(values)
    if op == "ctn":
        if kind != "str":
            raise InvalidError("ctn applies to text fields", field)
        text = str(raw).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(f"%{text}%", escape="\\")
    if op == "all":
        raise InvalidError("all applies to occupants_ids", field)
    value = parse_value(kind, raw, field)
    return {
        "eq": column == value,
        "ne": column != value,
        "lt": column < value,
        "lte": column <= value,
        "gt": column > value,
        "gte": column >= value,
    }[op]


def to_int(value: Any, default: int, field: str) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidError("must be an integer", field) from None


def listed_to(app_id: int, viewer: int) -> Any:
    """The condition on ``dialogs_dialogs`` of the viewer's list: his dialogs (not
    hidden) and the application's public and broadcast ones (not hidden by him)."""
    visible = exists().where(
        occupants.c.dialog_id == dialogs.c.id,
        occupants.c.user_id == viewer,
        occupants.c.hidden.is_(False),
    )
    hidden = exists().where(
        occupants.c.dialog_id == dialogs.c.id,
        occupants.c.user_id == viewer,
        occupants.c.hidden.is_(True),
    )
    return and_(
        dialogs.c.app_id == app_id, or_(visible, and_(dialogs.c.type.in_(OPEN_TYPES), ~hidden))
    )


def contains(column: Any, text: str) -> Any:
    """A case-insensitive substring match, ``%`` and ``_`` of ``text`` escaped
    (``lower(..) LIKE lower(..)`` on SQLite, ``ILIKE`` on PostgreSQL)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def list_dialogs(conn: Connection, app_id: int, viewer: int, params: dict[str, Any]) -> dict:
    """The viewer's dialogs (not hidden) plus the app's public and broadcast ones:
    ``{field}[op]`` filters on whitelisted fields (bound parameters), ``limit``
    (default and maximum 100), ``skip``, ``sort_asc``/``sort_desc``, ``count=1``
    (SDK-CONTRACT §2, §5.1). Returns ``{"total", "skip", "limit", "items"}``."""
    query = select(dialogs).where(listed_to(app_id, viewer))
    for field in (*_FIELDS, "occupants_ids"):
        if field not in params:
            continue
        value = params[field]
        if isinstance(value, dict):
            for op, arg in value.items():
                query = query.where(condition(field, str(op), arg))
        else:
            query = query.where(condition(field, "eq", value))
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    limit = min(max(to_int(params.get("limit"), DEFAULT_LIMIT, "limit"), 1), MAX_LIMIT)
    skip = max(to_int(params.get("skip"), 0, "skip"), 0)
    out: dict[str, Any] = {"total": total, "skip": skip, "limit": limit, "items": []}
    if str(params.get("count", "")) in ("1", "true"):
        return out
    order = [dialogs.c.updated_at.desc(), dialogs.c.id.desc()]
    for key, direction in (("sort_asc", "asc"), ("sort_desc", "desc")):
        if key in params:
            name = str(params[key])
            if name not in _FIELDS:
                raise InvalidError(f"cannot sort by {name!r}", key)
            order = [getattr(_FIELDS[name][0], direction)(), dialogs.c.id]
    rows = conn.execute(query.order_by(*order).limit(limit).offset(skip)).all()
    out["items"] = views(conn, rows, viewer)
    return out
