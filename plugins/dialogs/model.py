"""The dialog model shared by the store and its front ends: the types (the SDKs'
enum), the errors, the :class:`Dialog` view and its ids (SDK-CONTRACT §5.1)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The SDKs' enum (SDK-CONTRACT §5.1, issue 3). COMPAT: issue 5 notes that current
# ConnectyCube documents number public 4 and broadcast 1; the SDK enum is kept.
PUBLIC, GROUP, PRIVATE, BROADCAST = 1, 2, 3, 4
TYPES = (PUBLIC, GROUP, PRIVATE, BROADCAST)
ROOM_TYPES = (PUBLIC, GROUP)  # those with an xmpp_room_jid
OPEN_TYPES = (PUBLIC, BROADCAST)  # listed to every user of the application
MAX_ADMINS = 5
DEFAULT_LIMIT = MAX_LIMIT = 100


class DialogError(Exception):
    """A refused dialog operation; ``field`` names the parameter at fault."""

    def __init__(self, message: str, field: str = "base") -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFoundError(DialogError):
    """No such dialog in this application."""


class ForbiddenError(DialogError):
    """The dialog exists but the caller may not do this."""


class InvalidError(DialogError):
    """A bad or missing parameter."""


@dataclass(frozen=True)
class Dialog:
    """A dialog as one user sees it (``unread_messages_count``, ``notifications``)."""

    id: str
    app_id: int
    type: int
    user_id: int
    name: str | None
    photo: str | None
    description: str | None
    extensions: Any
    pinned_messages_ids: list[str]
    is_join_required: bool
    occupants_ids: list[int]
    admins_ids: list[int]
    last_message: str | None
    last_message_date_sent: int | None
    last_message_id: str | None
    last_message_user_id: int | None
    last_message_status: str | None
    created_at: datetime
    updated_at: datetime
    unread_messages_count: int = 0
    notifications: bool = True

    def room_jid(self, domain: str) -> str | None:
        """``{app_id}_{dialog_id}@muc.{domain}`` for public and group (issue 3)."""
        return f"{self.app_id}_{self.id}@muc.{domain}" if self.type in ROOM_TYPES else None


@dataclass
class RoomMessage:
    """The ``dialogs/room-message`` event (issue 5): ``stanza``, a ``groupchat`` with
    no ``from``/``to``, from ``sender_id`` in the room of ``dialog_id``, for the
    users ``recipients``; the MUC plugin's dialog rooms deliver it."""

    app_id: int
    dialog_id: str
    sender_id: int
    stanza: Any
    recipients: list[int]


# Characters XML 1.0 cannot carry (§2.2 Char): text that the server puts into a
# stanza (an edited body, a reaction) must not have them, or the receiving
# client's parser fails and its stream ends.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any, field: str) -> str:
    """``value`` as text, :class:`InvalidError` when it has a character XML 1.0
    cannot carry."""
    text = str(value)
    if NOT_XML.search(text):
        raise InvalidError("contains a character that is not allowed", field)
    return text


def new_id() -> str:
    """24 hex digits from a CSPRNG; never all digits (the SDKs take those for user ids)."""
    while True:
        value = secrets.token_hex(12)
        if not value.isdigit():
            return value


def ids_of(value: Any, field: str) -> list[int]:
    """User ids sent as ``"2, 3"`` (create, SDK-CONTRACT §5.1), ``[2, 3]`` or ``2``."""
    items = value if isinstance(value, list) else str(value if value is not None else "").split(",")
    try:
        out = [int(str(i).strip()) for i in items if str(i).strip()]
    except ValueError:
        raise InvalidError("must be user ids", field) from None
    return list(dict.fromkeys(out))
