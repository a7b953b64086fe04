"""Reactions to stored messages (issue 3 "Messages"; SDK-CONTRACT §5.2
``message.listReactions`` / ``addReaction`` / ``removeReaction``): sync functions
taking a connection, like ``history.py``. A reaction is a short string (an emoji,
usually) a user puts on a message, at most once each (the primary key of
``dialogs_reactions``); rows go with their message or user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from plugins.dialogs import store
from plugins.dialogs.history import hidden_by
from plugins.dialogs.model import (
    OPEN_TYPES,
    PUBLIC,
    ROOM_TYPES,
    Dialog,
    ForbiddenError,
    InvalidError,
)
from plugins.dialogs.model import NotFoundError as NotFound
from plugins.dialogs.tables import MAX_REACTION
from plugins.dialogs.tables import dialogs_messages as messages
from plugins.dialogs.tables import dialogs_reactions as reactions
from plugins.dialogs.tables import dialogs_receipts as receipts

MAX_OWN = 20  # different reactions one user may put on one message
BAD = (0xFFFE, 0xFFFF)  # not XML 1.0 characters (§2.2), like C0 controls and surrogates


@dataclass(frozen=True)
class Change:
    """What one ``update_reactions`` call changed (``None``: nothing of that kind),
    and who is told: the dialog's occupants and the reactor."""

    dialog_id: str
    message_id: str
    user_id: int
    added: str | None
    removed: str | None
    notified: list[int]
    room: bool = False  # a group or public dialog: notified through its room (issue 5)


def reaction(value: Any, field: str) -> str | None:
    """A reaction as sent (``None`` when absent): 1 to MAX_REACTION characters, none
    of them a control character or one XML 1.0 cannot carry (it travels as an
    attribute of the §4.5 notification)."""
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        raise InvalidError("must be one reaction", field)
    text = str(value)
    if len(text) > MAX_REACTION or not text.strip():
        raise InvalidError(f"must be 1 to {MAX_REACTION} characters", field)
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code in BAD:
            raise InvalidError("contains a character that is not allowed", field)
    return text


def _message(conn: Connection, app_id: int, caller: int, message_id: str) -> tuple[Any, Dialog]:
    """The message and its dialog; unknown, another app's, or hidden (deleted for
    him) by the caller: :class:`NotFoundError`."""
    row = conn.execute(
        select(messages).where(messages.c.id == str(message_id), messages.c.app_id == app_id)
    ).first()
    mine = hidden_by(caller)
    hidden = row is not None and conn.execute(mine.where(receipts.c.message_id == row.id)).first()
    if row is None or hidden:
        raise NotFound("Entity you are looking for was not found")
    return row, store.get(conn, app_id, row.dialog_id, caller)


def list_reactions(
    conn: Connection, app_id: int, caller: int, message_id: str
) -> dict[str, list[int]]:
    """``{reaction: [user ids]}`` of a message whose history the caller may read
    (an occupant; anyone for a public or broadcast dialog)."""
    row, d = _message(conn, app_id, caller, message_id)
    if caller not in d.occupants_ids and d.type not in OPEN_TYPES:
        raise ForbiddenError("You are not an occupant of this dialog")
    query = select(reactions.c.reaction, reactions.c.user_id).where(
        reactions.c.message_id == row.id
    )
    out: dict[str, list[int]] = {}
    for r in conn.execute(query.order_by(reactions.c.reaction, reactions.c.user_id)):
        out.setdefault(r.reaction, []).append(r.user_id)
    return out


def update_reactions(
    conn: Connection, app_id: int, caller: int, message_id: str, add: Any, remove: Any
) -> Change:
    """Remove then add one reaction of the caller (an occupant; anyone for a public
    dialog); a repeated add or the removal of an absent one changes nothing."""
    wanted, unwanted = reaction(add, "add"), reaction(remove, "remove")
    if wanted is None and unwanted is None:
        raise InvalidError("add or remove is required", "base")
    row, d = _message(conn, app_id, caller, message_id)
    if caller not in d.occupants_ids and d.type != PUBLIC:
        raise ForbiddenError("You are not an occupant of this dialog")
    mine = (reactions.c.message_id == row.id, reactions.c.user_id == caller)
    removed = added = None
    if unwanted is not None:
        gone = conn.execute(delete(reactions).where(*mine, reactions.c.reaction == unwanted))
        removed = unwanted if gone.rowcount else None
    if wanted is not None:
        others = select(func.count()).where(*mine, reactions.c.reaction != wanted)
        count = conn.execute(others).scalar_one()
        if count >= MAX_OWN:
            raise InvalidError(f"at most {MAX_OWN} reactions per message", "add")
        try:
            with conn.begin_nested():  # the primary key: a second add is a no-op
                conn.execute(
                    insert(reactions).values(message_id=row.id, user_id=caller, reaction=wanted)
                )
            added = wanted
        except IntegrityError:
            pass
    notified = [*d.occupants_ids, *([] if caller in d.occupants_ids else [caller])]
    return Change(d.id, row.id, caller, added, removed, notified, d.type in ROOM_TYPES)
