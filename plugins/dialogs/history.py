"""Message history in the dialogs store (issue 3 "History over XMPP" and
"Messages"; SDK-CONTRACT §4.5, §5.2): sync functions taking a connection, like
``store.py``. Saving a message sets the dialog's ``last_message*`` columns, bumps
every other occupant's unread count and shows the dialog again to whoever had
hidden it, in the caller's transaction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, insert, select, update
from sqlalchemy.exc import IntegrityError

from plugins.dialogs import store
from plugins.dialogs.model import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    OPEN_TYPES,
    PRIVATE,
    ForbiddenError,
    InvalidError,
    new_id,
)
from plugins.dialogs.query import condition, to_int
from plugins.dialogs.tables import dialogs_dialogs as dialogs
from plugins.dialogs.tables import dialogs_messages as messages
from plugins.dialogs.tables import dialogs_occupants as occupants
from plugins.dialogs.tables import dialogs_receipts as receipts

MESSAGE_ID = re.compile(r"[0-9a-f]{24}")


@dataclass
class NewMessage:
    """A message to save: 1-1 (``recipient_id``) into ``dialog_id`` or the pair's
    private dialog; ``id`` is the client's proposal, kept when fresh (§4.5)."""

    sender_id: int
    date_sent: int
    body: str | None = None
    recipient_id: int | None = None
    dialog_id: str | None = None
    id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)


def _dialog_for(conn: Connection, app_id: int, m: NewMessage, now: datetime) -> str:
    """The dialog the message goes to; H60: a given ``dialog_id`` must be one the
    sender (and, 1-1, the recipient) occupies, else :class:`ForbiddenError`."""
    if m.dialog_id is None:
        fields = {"type": PRIVATE, "occupants_ids": [m.recipient_id]}
        return store.create(conn, app_id, m.sender_id, fields, now)[0].id
    try:
        d = store.get(conn, app_id, m.dialog_id)
    except store.NotFoundError:
        raise ForbiddenError("You are not an occupant of this dialog") from None
    needed = {m.sender_id} | ({m.recipient_id} if m.recipient_id is not None else set())
    if not needed <= set(d.occupants_ids):
        raise ForbiddenError("You are not an occupant of this dialog")
    return d.id


def save(conn: Connection, app_id: int, m: NewMessage, now: datetime) -> tuple[str, str]:
    """Store ``m``; -> ``(dialog_id, message_id)``. The client's id is kept when it
    is 24 lowercase hex digits and unused, else the server makes one (H59)."""
    dialog_id = _dialog_for(conn, app_id, m, now)
    row = dict(
        app_id=app_id,
        dialog_id=dialog_id,
        sender_id=m.sender_id,
        recipient_id=m.recipient_id,
        body=m.body,
        date_sent=m.date_sent,
        params=json.dumps(m.params),
        attachments=json.dumps(m.attachments),
        created_at=now,
        updated_at=now,
    )
    message_id = m.id if m.id and MESSAGE_ID.fullmatch(m.id) else new_id()
    try:
        with conn.begin_nested():  # a savepoint: the client's id may be taken
            conn.execute(insert(messages).values(id=message_id, **row))
    except IntegrityError:
        message_id = new_id()
        conn.execute(insert(messages).values(id=message_id, **row))
    conn.execute(
        update(dialogs)
        .where(dialogs.c.id == dialog_id)
        .values(
            last_message=m.body,
            last_message_date_sent=m.date_sent,
            last_message_id=message_id,
            last_message_user_id=m.sender_id,
            last_message_status="sent",
            updated_at=now,
        )
    )
    mine = occupants.c.dialog_id == dialog_id
    conn.execute(
        update(occupants)
        .where(mine, occupants.c.user_id != m.sender_id)
        .values(unread_count=occupants.c.unread_count + 1)
    )
    conn.execute(update(occupants).where(mine).values(hidden=False))
    return dialog_id, message_id


def _views(conn: Connection, rows: list[Any], viewer: int) -> list[dict[str, Any]]:
    """Message objects (SDK-CONTRACT §5.2) for rows, receipts in one extra query."""
    seen: dict[str, dict[str, list[int]]] = {r.id: {"read": [], "delivered": []} for r in rows}
    if rows:
        query = select(receipts).where(receipts.c.message_id.in_(list(seen)))
        for r in conn.execute(query.order_by(receipts.c.user_id)):
            seen[r.message_id][r.kind].append(r.user_id)
    out = []
    for r in rows:
        read = seen[r.id]["read"]
        out.append(
            {
                **json.loads(r.params),  # custom parameters as top-level fields (§5.2)
                "_id": r.id,
                "chat_dialog_id": r.dialog_id,
                "message": r.body,
                "date_sent": r.date_sent,
                "sender_id": r.sender_id,
                "recipient_id": r.recipient_id,
                "read_ids": read,
                "delivered_ids": seen[r.id]["delivered"],
                "attachments": json.loads(r.attachments),
                "read": int(viewer in read or viewer == r.sender_id),
                "created_at": r.created_at,
                "updated_at": r.updated_at,
            }
        )
    return out


_FIELDS = {
    "_id": (messages.c.id, "str"),
    "message": (messages.c.body, "str"),
    "date_sent": (messages.c.date_sent, "int"),
    "sender_id": (messages.c.sender_id, "int"),
    "recipient_id": (messages.c.recipient_id, "int"),
    "updated_at": (messages.c.updated_at, "date"),
}


def mark_read(
    conn: Connection, dialog_id: str, viewer: int, ids: list[str], kinds: tuple = ("read",)
) -> int:
    """Add ``viewer``'s receipts for ``ids`` sent by others (read implies delivered)
    and lower his unread count by the newly read ones; -> how many (issue 3, §5.2)."""
    fresh = 0
    if "read" in kinds:
        kinds = ("delivered", "read")
    elif ids:
        conn.execute(
            update(dialogs)
            .where(dialogs.c.id == dialog_id, dialogs.c.last_message_id.in_(ids))
            .where(dialogs.c.last_message_status == "sent")
            .values(last_message_status="delivered")
        )
    for message_id in ids:
        for kind in kinds:
            try:
                with conn.begin_nested():  # the primary key makes marking race-safe
                    conn.execute(
                        insert(receipts).values(message_id=message_id, user_id=viewer, kind=kind)
                    )
                fresh += kind == "read"
            except IntegrityError:
                pass
    if fresh:
        count = occupants.c.unread_count
        conn.execute(
            update(occupants)
            .where(occupants.c.dialog_id == dialog_id, occupants.c.user_id == viewer)
            .values(unread_count=case((count > fresh, count - fresh), else_=0))
        )
        conn.execute(
            update(dialogs)
            .where(dialogs.c.id == dialog_id, dialogs.c.last_message_id.in_(ids))
            .values(last_message_status="read")
        )
    return fresh


def list_messages(
    conn: Connection, app_id: int, viewer: int, dialog_id: str, params: dict[str, Any]
) -> dict[str, Any]:
    """A dialog's history for an occupant (anyone, for a dialog listed to the whole
    app): whitelisted ``{field}[op]`` filters, ``sort_asc``/``sort_desc`` (default
    ``date_sent`` ascending), ``limit``/``skip``; the returned messages from others
    are marked read unless ``mark_as_read=0`` (SDK-CONTRACT §5.2)."""
    d = store.get(conn, app_id, dialog_id, viewer)
    member = viewer in d.occupants_ids
    if not member and d.type not in OPEN_TYPES:
        raise ForbiddenError("You are not an occupant of this dialog")
    query = select(messages).where(messages.c.dialog_id == d.id)
    for name in _FIELDS:
        value = params.get(name)
        for op, arg in value.items() if isinstance(value, dict) else [("eq", value)]:
            if arg is not None:
                query = query.where(condition(name, str(op), arg, _FIELDS))
    limit = min(max(to_int(params.get("limit"), DEFAULT_LIMIT, "limit"), 1), MAX_LIMIT)
    skip = max(to_int(params.get("skip"), 0, "skip"), 0)
    order = [messages.c.date_sent, messages.c.created_at, messages.c.id]
    for key, direction in (("sort_asc", "asc"), ("sort_desc", "desc")):
        if key in params:
            name = str(params[key])
            if name not in _FIELDS:
                raise InvalidError(f"cannot sort by {name!r}", key)
            order = [getattr(_FIELDS[name][0], direction)(), getattr(messages.c.id, direction)()]
    rows = conn.execute(query.order_by(*order).limit(limit).offset(skip)).all()
    if member and str(params.get("mark_as_read", "1")).strip().lower() not in ("0", "false"):
        mark_read(conn, d.id, viewer, [r.id for r in rows if r.sender_id != viewer])
    return {"skip": skip, "limit": limit, "items": _views(conn, rows, viewer)}


def unread(conn: Connection, app_id: int, viewer: int, dialog_ids: list[str]) -> dict[str, int]:
    """``{"total": n, dialog_id: n...}``: the viewer's unread messages in all his
    dialogs, and in each of ``dialog_ids`` (0 for one he is not in) (§5.2)."""
    rows = conn.execute(
        select(occupants.c.dialog_id, occupants.c.unread_count)
        .join(dialogs, dialogs.c.id == occupants.c.dialog_id)
        .where(dialogs.c.app_id == app_id, occupants.c.user_id == viewer)
    ).all()
    counts = {r.dialog_id: r.unread_count for r in rows}
    return {"total": sum(counts.values()), **{i: counts.get(i, 0) for i in dialog_ids}}


def update_messages(
    conn: Connection,
    app_id: int,
    caller: int,
    dialog_id: str,
    ids: list[str],
    changes: dict[str, Any],
    now: datetime,
) -> None:
    """§5.2 ``message.update``: ``read=1`` / ``delivered=1`` for the caller on
    ``ids`` (none: the whole dialog); ``message``, a new text, by its sender only
    (SECURITY H61)."""
    d = store.get(conn, app_id, dialog_id, caller)
    if caller not in d.occupants_ids:
        raise ForbiddenError("You are not an occupant of this dialog")
    query = select(messages.c.id, messages.c.sender_id).where(messages.c.dialog_id == d.id)
    rows = conn.execute(query.where(messages.c.id.in_(ids)) if ids else query).all()
    others = [r.id for r in rows if r.sender_id != caller]
    for kind in ("read", "delivered"):
        if str(changes.get(kind, "")).strip().lower() in ("1", "true"):
            mark_read(conn, d.id, caller, others, (kind,))
    if "message" in changes:
        if not ids or not rows or any(r.sender_id != caller for r in rows):
            raise ForbiddenError("Only the sender may edit a message")
        text = str(changes["message"])
        edited = [r.id for r in rows]
        conn.execute(
            update(messages).where(messages.c.id.in_(edited)).values(body=text, updated_at=now)
        )
        conn.execute(
            update(dialogs)
            .where(dialogs.c.id == d.id, dialogs.c.last_message_id.in_(edited))
            .values(last_message=text)
        )
