"""The dialogs store: sync functions taking a SQLAlchemy connection, run through
``ctx.db.run`` (SQLite and PostgreSQL). The rules are the hosted services' (their
dialog documents; SDK-CONTRACT §5.1); errors are :class:`DialogError` subclasses
that each front end (REST now, XMPP and MUC later) maps to its own answer. The
list with its filters is in ``query.py``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from plugins.dialogs.model import (
    BROADCAST,
    GROUP,
    MAX_ADMINS,
    OPEN_TYPES,
    PRIVATE,
    PUBLIC,
    TYPES,
    Dialog,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ids_of,
    new_id,
)
from plugins.dialogs.tables import dialogs_dialogs as dialogs
from plugins.dialogs.tables import dialogs_occupants as occupants
from xmppd.storage.tables import users


def _json(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def views(conn: Connection, rows: list[Any], viewer: int | None) -> list[Dialog]:
    """Dialog objects for rows, with their occupants, in one extra query."""
    members: dict[str, list[Any]] = {r.id: [] for r in rows}
    if rows:
        query = select(occupants).where(occupants.c.dialog_id.in_(list(members)))
        for o in conn.execute(query.order_by(occupants.c.joined_at, occupants.c.user_id)):
            members[o.dialog_id].append(o)
    out = []
    for r in rows:
        mine = next((o for o in members[r.id] if o.user_id == viewer), None)
        out.append(
            Dialog(
                id=r.id,
                app_id=r.app_id,
                type=r.type,
                user_id=r.user_id,
                name=r.name,
                photo=r.photo,
                description=r.description,
                extensions=json.loads(r.extensions) if r.extensions else None,
                pinned_messages_ids=json.loads(r.pinned_messages_ids or "[]"),
                is_join_required=bool(r.is_join_required),
                occupants_ids=[o.user_id for o in members[r.id]],
                admins_ids=[o.user_id for o in members[r.id] if o.is_admin],
                last_message=r.last_message,
                last_message_date_sent=r.last_message_date_sent,
                last_message_id=r.last_message_id,
                last_message_user_id=r.last_message_user_id,
                last_message_status=r.last_message_status,
                created_at=r.created_at,
                updated_at=r.updated_at,
                unread_messages_count=mine.unread_count if mine else 0,
                notifications=bool(mine.notifications) if mine else True,
            )
        )
    return out


def get(conn: Connection, app_id: int, dialog_id: str, viewer: int | None = None) -> Dialog:
    """One dialog of the application; :class:`NotFoundError` otherwise (another app's too)."""
    row = conn.execute(
        select(dialogs).where(dialogs.c.id == str(dialog_id), dialogs.c.app_id == app_id)
    ).first()
    if row is None:
        raise NotFoundError("Entity you are looking for was not found")
    return views(conn, [row], viewer)[0]


def _check_users(conn: Connection, app_id: int, ids: list[int], field: str) -> None:
    if not ids:
        return
    found = conn.execute(select(users.c.id).where(users.c.app_id == app_id, users.c.id.in_(ids)))
    missing = set(ids) - {r.id for r in found}
    if missing:
        raise InvalidError(f"users not found: {sorted(missing)}", field)


def _add(conn: Connection, dialog_id: str, ids: list[int], now: datetime) -> None:
    have = {
        r.user_id
        for r in conn.execute(select(occupants.c.user_id).where(occupants.c.dialog_id == dialog_id))
    }
    rows = [
        {
            "dialog_id": dialog_id,
            "user_id": i,
            "is_admin": False,
            "unread_count": 0,
            "notifications": True,
            "hidden": False,
            "joined_at": now,
        }
        for i in ids
        if i not in have
    ]
    for row in rows:
        try:
            with conn.begin_nested():  # a savepoint: another call may add him meanwhile
                conn.execute(insert(occupants).values(**row))
        except IntegrityError:
            pass  # already an occupant (or the account was deleted meanwhile)


def _existing_private(conn: Connection, app_id: int, owner: int, key: str) -> Dialog | None:
    """The pair's private dialog, shown again to ``owner`` if he had hidden it."""
    row = conn.execute(
        select(dialogs).where(dialogs.c.app_id == app_id, dialogs.c.private_key == key)
    ).first()
    if row is None:
        return None
    conn.execute(
        update(occupants)
        .where(occupants.c.dialog_id == row.id, occupants.c.user_id == owner)
        .values(hidden=False)
    )
    return get(conn, app_id, row.id, owner)


def create(
    conn: Connection, app_id: int, owner: int, fields: dict[str, Any], now: datetime
) -> tuple[Dialog, bool]:
    """Create a dialog; ``(dialog, created)``. A private dialog of a pair that has
    one already returns it (shown again to the owner if hidden) (SDK-CONTRACT §5.1)."""
    try:
        kind = int(fields.get("type") or 0)
    except (TypeError, ValueError):
        kind = 0
    if kind not in TYPES:
        raise InvalidError("must be 1 (public), 2 (group), 3 (private) or 4 (broadcast)", "type")
    others = [i for i in ids_of(fields.get("occupants_ids"), "occupants_ids") if i != owner]
    name = fields.get("name") or None
    private_key = None
    if kind == PRIVATE:
        if len(others) != 1:
            raise InvalidError("a private dialog has exactly one other occupant", "occupants_ids")
        private_key = f"{min(owner, others[0])}:{max(owner, others[0])}"
        found = _existing_private(conn, app_id, owner, private_key)
        if found is not None:
            return found, False
    elif not name:
        raise InvalidError("can't be blank", "name")
    if kind == PUBLIC:
        others = []  # a public dialog's occupants are its subscribers
    _check_users(conn, app_id, others, "occupants_ids")
    dialog_id = new_id()
    row = dict(
        id=dialog_id,
        app_id=app_id,
        type=kind,
        user_id=owner,
        private_key=private_key,
        name=name if kind != PRIVATE else None,
        photo=fields.get("photo") or None,
        description=fields.get("description") or None,
        extensions=_json(fields.get("extensions") or fields.get("data")),
        pinned_messages_ids="[]",
        is_join_required=str(fields.get("is_join_required", "0")).lower() in ("1", "true"),
        created_at=now,
        updated_at=now,
    )
    try:
        with conn.begin_nested():  # a savepoint: the pair's dialog may be made meanwhile
            conn.execute(insert(dialogs).values(**row))
    except IntegrityError:
        found = _existing_private(conn, app_id, owner, private_key) if private_key else None
        if found is None:
            raise
        return found, False
    _add(conn, dialog_id, [owner, *others], now)
    admins = ids_of(fields.get("admins_ids"), "admins_ids")
    if admins and kind in (GROUP, PUBLIC, BROADCAST):
        _set_admins(conn, dialog_id, owner, admins, [])
    return get(conn, app_id, dialog_id, owner), True


def _set_admins(
    conn: Connection, dialog_id: str, owner: int, push: list[int], pull: list[int]
) -> None:
    """Admins are occupants, at most MAX_ADMINS, the owner excluded (SDK-CONTRACT §5.1)."""
    where = occupants.c.dialog_id == dialog_id
    if pull:
        conn.execute(
            update(occupants).where(where, occupants.c.user_id.in_(pull)).values(is_admin=False)
        )
    push = [i for i in push if i != owner]
    if not push:
        return
    present = {r.user_id for r in conn.execute(select(occupants.c.user_id).where(where))}
    if set(push) - present:
        raise InvalidError("admins must be occupants", "admins_ids")
    conn.execute(
        update(occupants).where(where, occupants.c.user_id.in_(push)).values(is_admin=True)
    )
    count = conn.execute(
        select(func.count()).where(where, occupants.c.is_admin.is_(True))
    ).scalar_one()
    if count > MAX_ADMINS:
        raise InvalidError(f"at most {MAX_ADMINS} admins", "admins_ids")


def _member(d: Dialog, user_id: int) -> None:
    if user_id not in d.occupants_ids:
        raise ForbiddenError("You are not an occupant of this dialog")


def update_dialog(
    conn: Connection,
    app_id: int,
    caller: int,
    dialog_id: str,
    changes: dict[str, Any],
    now: datetime,
) -> Dialog:
    """Name, photo, description, extensions and ``push_all``/``pull_all`` of
    ``occupants_ids``, ``admins_ids``, ``pinned_messages_ids`` (SDK-CONTRACT §5.1).

    Any occupant may add occupants; an occupant may remove only himself; only the
    owner removes others, changes admins or updates a public dialog; admins and the
    owner pin messages."""
    d = get(conn, app_id, dialog_id, caller)
    owner = caller == d.user_id
    if d.type in OPEN_TYPES and not owner:
        raise ForbiddenError("Only the owner may update this dialog")
    if d.type not in OPEN_TYPES:
        _member(d, caller)
    push = changes.get("push_all") or {}
    pull = changes.get("pull_all") or {}
    if not isinstance(push, dict) or not isinstance(pull, dict):
        raise InvalidError("must be an object", "push_all")
    values: dict[str, Any] = {}
    for name in ("name", "photo", "description"):
        if name in changes:
            values[name] = changes[name] or None
    if "extensions" in changes or "data" in changes:
        values["extensions"] = _json(changes.get("extensions", changes.get("data")))
    if d.type != PRIVATE and "name" in values and not values["name"]:
        raise InvalidError("can't be blank", "name")
    add = ids_of(push.get("occupants_ids"), "occupants_ids")
    remove = ids_of(pull.get("occupants_ids"), "occupants_ids")
    if (add or remove) and d.type in (PRIVATE, PUBLIC):
        raise ForbiddenError("The occupants of this dialog cannot be changed")
    if remove and not owner and set(remove) != {caller}:
        raise ForbiddenError("Only the owner may remove other occupants")
    add_admins = ids_of(push.get("admins_ids"), "admins_ids")
    drop_admins = ids_of(pull.get("admins_ids"), "admins_ids")
    if (add_admins or drop_admins) and not owner:
        raise ForbiddenError("Only the owner may change admins")
    pin, unpin = push.get("pinned_messages_ids"), pull.get("pinned_messages_ids")
    if (pin or unpin) and not (owner or caller in d.admins_ids):
        raise ForbiddenError("Only the owner and admins may pin messages")
    _check_users(conn, app_id, add, "occupants_ids")
    _add(conn, d.id, add, now)
    if remove:
        conn.execute(
            delete(occupants).where(occupants.c.dialog_id == d.id, occupants.c.user_id.in_(remove))
        )
    if add_admins or drop_admins:
        _set_admins(conn, d.id, d.user_id, add_admins, drop_admins)
    if pin or unpin:
        pins = list(d.pinned_messages_ids)
        pins += [str(p) for p in _strs(pin) if str(p) not in pins]
        pins = [p for p in pins if p not in _strs(unpin)]
        values["pinned_messages_ids"] = json.dumps(pins)
    conn.execute(update(dialogs).where(dialogs.c.id == d.id).values(updated_at=now, **values))
    return get(conn, app_id, d.id, caller)


def _strs(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def delete_dialogs(
    conn: Connection, app_id: int, caller: int, ids: list[str], force: bool
) -> dict[str, list[str]]:
    """Delete for the caller only, or with ``force`` (the owner) for everyone;
    ``{"SuccessfullyDeleted", "NotFound", "WrongPermissions"}`` (SDK-CONTRACT §5.1).

    For the caller only: a private or broadcast dialog is hidden from his list; he
    leaves (unsubscribes from) a group (public) dialog; the owner of a public
    dialog can only delete it with ``force``."""
    result: dict[str, list[str]] = {
        "SuccessfullyDeleted": [],
        "NotFound": [],
        "WrongPermissions": [],
    }
    for dialog_id in ids:
        try:
            d = get(conn, app_id, dialog_id, caller)
        except NotFoundError:
            result["NotFound"].append(dialog_id)
            continue
        mine = and_(occupants.c.dialog_id == d.id, occupants.c.user_id == caller)
        if force:
            if caller != d.user_id:
                result["WrongPermissions"].append(d.id)
                continue
            conn.execute(delete(dialogs).where(dialogs.c.id == d.id))
        elif d.type == PUBLIC and caller == d.user_id:
            result["WrongPermissions"].append(d.id)
            continue
        elif caller not in d.occupants_ids:
            # TODO(issue 5): let a user hide a broadcast dialog he does not occupy.
            result["WrongPermissions"].append(d.id)
            continue
        elif d.type in (PRIVATE, BROADCAST):
            conn.execute(update(occupants).where(mine).values(hidden=True))
        else:
            conn.execute(delete(occupants).where(mine))
        result["SuccessfullyDeleted"].append(d.id)
    return result


def subscribe(conn: Connection, app_id: int, caller: int, dialog_id: str, now: datetime) -> Dialog:
    """Join a public dialog as a subscriber (SDK-CONTRACT §5.1 ``dialog.subscribe``)."""
    d = get(conn, app_id, dialog_id, caller)
    if d.type != PUBLIC:
        raise ForbiddenError("Only public dialogs can be subscribed to")
    _add(conn, d.id, [caller], now)
    return get(conn, app_id, d.id, caller)


def unsubscribe(conn: Connection, app_id: int, caller: int, dialog_id: str) -> None:
    """Leave a public dialog (the owner stays: he deletes it with ``force``)."""
    d = get(conn, app_id, dialog_id, caller)
    if d.type != PUBLIC:
        raise ForbiddenError("Only public dialogs can be unsubscribed from")
    if caller != d.user_id:
        conn.execute(
            delete(occupants).where(occupants.c.dialog_id == d.id, occupants.c.user_id == caller)
        )


def public_occupants(
    conn: Connection, app_id: int, dialog_id: str, limit: int, skip: int
) -> list[int]:
    """The subscribers of a public dialog, in joining order, paged."""
    d = get(conn, app_id, dialog_id)
    if d.type != PUBLIC:
        raise ForbiddenError("Only a public dialog lists its occupants this way")
    return d.occupants_ids[skip : skip + limit]


def notifications(
    conn: Connection, app_id: int, caller: int, dialog_id: str, enabled: bool | None = None
) -> bool:
    """The caller's notifications setting of a dialog he is in; set it if given."""
    d = get(conn, app_id, dialog_id, caller)
    _member(d, caller)
    if enabled is not None:
        conn.execute(
            update(occupants)
            .where(occupants.c.dialog_id == d.id, occupants.c.user_id == caller)
            .values(notifications=enabled)
        )
        return enabled
    return d.notifications
