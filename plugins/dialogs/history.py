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

from sqlalchemy import Connection, case, cast, delete, exists, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from plugins.dialogs import store
from plugins.dialogs.model import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    OPEN_TYPES,
    PRIVATE,
    ROOM_TYPES,
    ForbiddenError,
    InvalidError,
    new_id,
    xml_text,
)
from plugins.dialogs.query import condition, to_int
from plugins.dialogs.tables import dialogs_dialogs as dialogs
from plugins.dialogs.tables import dialogs_messages as messages
from plugins.dialogs.tables import dialogs_occupants as occupants
from plugins.dialogs.tables import dialogs_reactions as reactions
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


def message_views(conn: Connection, rows: list[Any], viewer: int) -> list[dict[str, Any]]:
    """Message objects (SDK-CONTRACT §5.2) for rows; receipts and reactions in
    one extra query each."""
    seen: dict[str, dict[str, list[int]]] = {r.id: {"read": [], "delivered": []} for r in rows}
    felt: dict[str, dict[str, Any]] = {r.id: {"own": [], "total": {}} for r in rows}
    if rows:
        query = select(receipts).where(
            receipts.c.message_id.in_(list(seen)), receipts.c.kind.in_(("read", "delivered"))
        )
        for r in conn.execute(query.order_by(receipts.c.user_id)):
            seen[r.message_id][r.kind].append(r.user_id)
        query = select(reactions).where(reactions.c.message_id.in_(list(felt)))
        for r in conn.execute(query.order_by(reactions.c.reaction, reactions.c.user_id)):
            total = felt[r.message_id]["total"]
            total[r.reaction] = total.get(r.reaction, 0) + 1
            if r.user_id == viewer:
                felt[r.message_id]["own"].append(r.reaction)
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
                "reactions": felt[r.id],  # {"own": [the viewer's], "total": {reaction: n}}
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


ATTACHMENT_TYPE = "attachments.type"  # a filter on the types of a message's attachments


def _attachment_type(conn: Connection, op: str, raw: Any) -> Any:
    """``attachments.type[op]=v`` in SQL: the message has an attachment of one of
    the types (``eq``, ``in``) or none of them (``ne``, ``nin``), read from the
    stored JSON list with the database's JSON functions, so paging stays exact."""
    if op not in ("eq", "in", "ne", "nin"):
        raise InvalidError(f"unsupported operator {op!r}", ATTACHMENT_TYPE)
    items = raw if isinstance(raw, list) else str(raw).split(",") if op in ("in", "nin") else [raw]
    kinds = [str(i).strip() for i in items if str(i).strip()]
    if not kinds:
        raise InvalidError("is required", ATTACHMENT_TYPE)
    if conn.dialect.name == "postgresql":
        each = func.jsonb_array_elements(cast(messages.c.attachments, JSONB))
        element = each.table_valued("value").alias("attachment")
        kind = element.c.value.op("->>")("type")
    else:  # SQLite's JSON1 functions
        element = func.json_each(messages.c.attachments).table_valued("value").alias("attachment")
        kind = func.json_extract(element.c.value, "$.type")
    found = exists(select(literal(1)).select_from(element).where(kind.in_(kinds)))
    return found if op in ("eq", "in") else ~found


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
    query = select(messages).where(
        messages.c.dialog_id == d.id, messages.c.id.not_in(hidden_by(viewer))
    )
    for name in _FIELDS:
        value = params.get(name)
        for op, arg in value.items() if isinstance(value, dict) else [("eq", value)]:
            if arg is not None:
                query = query.where(condition(name, str(op), arg, _FIELDS))
    value = params.get(ATTACHMENT_TYPE)
    for op, arg in value.items() if isinstance(value, dict) else [("eq", value)]:
        if arg is not None:
            query = query.where(_attachment_type(conn, str(op), arg))
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
    return {"skip": skip, "limit": limit, "items": message_views(conn, rows, viewer)}


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
) -> list[tuple[str, str, bool, list[int], bool]]:
    """§5.2 ``message.update``: ``read=1`` / ``delivered=1`` for the caller on
    ``ids`` (none: the whole dialog); ``message``, a new text, by its sender only
    (SECURITY H61). -> ``[(dialog_id, message_id, is the dialog's last message,
    other occupants, a room dialog)]`` of the edited messages, for the edit
    notification (§4.5)."""
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
        text = xml_text(changes["message"], "message")
        edited = [r.id for r in rows]
        conn.execute(
            update(messages).where(messages.c.id.in_(edited)).values(body=text, updated_at=now)
        )
        conn.execute(
            update(dialogs)
            .where(dialogs.c.id == d.id, dialogs.c.last_message_id.in_(edited))
            .values(last_message=text)
        )
        others_ids = [u for u in d.occupants_ids if u != caller]
        room = d.type in ROOM_TYPES  # issue 5: notified through the room
        return [(d.id, i, i == d.last_message_id, others_ids, room) for i in edited]
    return []


# Create, delete, clear (issue 3 "Messages", SDK-CONTRACT §5.2). A message deleted
# "for me" is a ``hidden`` row in ``dialogs_receipts`` (the caller's own mark, like
# ``read``): the list leaves it out for him only.
HIDDEN = "hidden"
MAX_CREATE_ATTACHMENTS = 32  # as over XMPP (H66)
MAX_CREATE_PARAMS = 64 * 1024
# Parameters of POST /chat/Message.json that are not custom fields.
CREATE_KEYS = frozenset(
    ("chat_dialog_id", "recipient_id", "message", "attachments", "send_to_chat", "markable")
    + ("_id", "date_sent", "sender_id", "read_ids", "delivered_ids", "read", "dialog_id")
    + ("save_to_history", "message_id", "created_at", "updated_at")
)


def check_params(custom: dict[str, Any]) -> None:
    """Custom parameters a REST caller sends: at most 64 KiB, names that are plain
    XML element names (they travel as ``extraParams`` children, §4.5)."""
    from plugins.dialogs.xmpp import check_names  # xmpp imports this module

    if len(json.dumps(custom)) > MAX_CREATE_PARAMS:
        raise InvalidError("too large", "base")
    check_names(custom)


def hidden_by(viewer: int) -> Any:
    """The ids of the messages ``viewer`` hid (deleted for him, or cleared)."""
    return select(receipts.c.message_id).where(
        receipts.c.user_id == viewer, receipts.c.kind == HIDDEN
    )


def _attachments(value: Any) -> list[dict[str, Any]]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidError("must be a list of objects", "attachments") from None
    if isinstance(value, dict):  # form data: attachments[0][uid]=...
        value = [value[k] for k in sorted(value, key=lambda k: to_int(k, 0, "attachments"))]
    if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
        raise InvalidError("must be a list of objects", "attachments")
    if len(value) > MAX_CREATE_ATTACHMENTS:
        raise InvalidError(f"at most {MAX_CREATE_ATTACHMENTS}", "attachments")
    return value


def create_message(
    conn: Connection, app_id: int, caller: int, params: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], Any]:
    """§5.2 ``message.create``: store a message from ``caller`` into
    ``chat_dialog_id`` (an occupant only) or his private dialog with
    ``recipient_id``, through :func:`save` (``last_message*``, unread counts);
    -> ``(Message, Dialog)``."""
    dialog_id = str(params.get("chat_dialog_id") or "").strip() or None
    recipient: int | None = None
    if dialog_id is not None:
        d = store.get(conn, app_id, dialog_id, caller)
        if caller not in d.occupants_ids:
            raise ForbiddenError("You are not an occupant of this dialog")
        if d.type == PRIVATE:
            recipient = next((u for u in d.occupants_ids if u != caller), None)
    elif params.get("recipient_id") not in (None, ""):
        recipient = to_int(params.get("recipient_id"), 0, "recipient_id")
    else:
        raise InvalidError("is required", "chat_dialog_id")
    custom = {k: v for k, v in params.items() if k not in CREATE_KEYS}
    check_params(custom)
    body = params.get("message")
    m = NewMessage(
        sender_id=caller,
        date_sent=int(now.timestamp()),
        body=None if body is None else xml_text(body, "message"),
        recipient_id=recipient,
        dialog_id=dialog_id,
        params=custom,
        attachments=_attachments(params.get("attachments")),
    )
    dialog_id, message_id = save(conn, app_id, m, now)
    row = conn.execute(select(messages).where(messages.c.id == message_id)).one()
    return message_views(conn, [row], caller)[0], store.get(conn, app_id, dialog_id, caller)


def _last_message(conn: Connection, dialog_id: str) -> None:
    """Set the dialog's ``last_message*`` from its newest remaining message."""
    last = conn.execute(
        select(messages)
        .where(messages.c.dialog_id == dialog_id)
        .order_by(messages.c.date_sent.desc(), messages.c.created_at.desc(), messages.c.id.desc())
        .limit(1)
    ).first()
    status = None
    if last is not None:
        kinds = set(
            conn.execute(
                select(receipts.c.kind).where(
                    receipts.c.message_id == last.id, receipts.c.user_id != last.sender_id
                )
            ).scalars()
        )
        status = "read" if "read" in kinds else "delivered" if "delivered" in kinds else "sent"
    conn.execute(
        update(dialogs)
        .where(dialogs.c.id == dialog_id)
        .values(
            last_message=last.body if last else None,
            last_message_date_sent=last.date_sent if last else None,
            last_message_id=last.id if last else None,
            last_message_user_id=last.sender_id if last else None,
            last_message_status=status,
        )
    )


def delete_messages(
    conn: Connection, app_id: int, caller: int, ids: list[str], force: bool
) -> tuple[dict[str, list[str]], list[tuple[str, str, list[int], bool]]]:
    """§5.2 ``message.delete``: hide ``ids`` for the caller (an occupant), or with
    ``force`` delete them for everyone (the sender only), lowering the unread
    counts of those who had not read them and recomputing ``last_message*``;
    -> ``({SuccessfullyDeleted, NotFound, WrongPermissions}, [(dialog_id,
    message_id, other occupants, a room dialog)] removed for everyone)``."""
    result: dict[str, list[str]] = {
        "SuccessfullyDeleted": [],
        "NotFound": [],
        "WrongPermissions": [],
    }
    removed: list[tuple[str, str, list[int], bool]] = []
    for message_id in dict.fromkeys(ids):
        row = conn.execute(
            select(messages).where(messages.c.id == message_id, messages.c.app_id == app_id)
        ).first()
        hidden = (
            row is not None
            and conn.execute(hidden_by(caller).where(receipts.c.message_id == message_id)).first()
        )
        if row is None or (hidden and not force):
            result["NotFound"].append(message_id)
            continue
        d = store.get(conn, app_id, row.dialog_id, caller)
        if caller not in d.occupants_ids or (force and row.sender_id != caller):
            result["WrongPermissions"].append(message_id)
            continue
        if force:
            readers = select(receipts.c.user_id).where(
                receipts.c.message_id == message_id, receipts.c.kind == "read"
            )
            count = occupants.c.unread_count
            conn.execute(
                update(occupants)
                .where(occupants.c.dialog_id == d.id, occupants.c.user_id != row.sender_id)
                .where(occupants.c.user_id.not_in(readers))
                .values(unread_count=case((count > 0, count - 1), else_=0))
            )
            conn.execute(delete(receipts).where(receipts.c.message_id == message_id))
            conn.execute(delete(messages).where(messages.c.id == message_id))
            last = select(dialogs.c.last_message_id).where(dialogs.c.id == d.id)
            if conn.execute(last).scalar() == message_id:
                _last_message(conn, d.id)
            others = [u for u in d.occupants_ids if u != caller]
            removed.append((d.id, message_id, others, d.type in ROOM_TYPES))
        else:
            if row.sender_id != caller:
                mark_read(conn, d.id, caller, [message_id])
            conn.execute(
                insert(receipts).values(message_id=message_id, user_id=caller, kind=HIDDEN)
            )
        result["SuccessfullyDeleted"].append(message_id)
    return result, removed


def clear_history(conn: Connection, app_id: int, caller: int, dialog_id: str) -> None:
    """§5.1 ``dialog.clearHistory``: hide every message of the dialog for the
    caller (an occupant) and set his unread count to 0."""
    d = store.get(conn, app_id, dialog_id, caller)
    if caller not in d.occupants_ids:
        raise ForbiddenError("You are not an occupant of this dialog")
    fresh = select(messages.c.id, literal(caller), literal(HIDDEN)).where(
        messages.c.dialog_id == d.id, messages.c.id.not_in(hidden_by(caller))
    )
    conn.execute(insert(receipts).from_select(["message_id", "user_id", "kind"], fresh))
    conn.execute(
        update(occupants)
        .where(occupants.c.dialog_id == d.id, occupants.c.user_id == caller)
        .values(unread_count=0)
    )
