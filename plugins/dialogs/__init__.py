"""Dialogs: the hosted services' conversations (private, group, public,
broadcast), one store shared by every front end.

The REST API (``plugins/chat_api/``), XMPP history (``save_to_history``
on 1-1 chat messages, handled here), chat markers and the MUC plugin's dialog
rooms (``save_groupchat``, ``dialogs/room-message``) use it (docs/dialogs.md).
Other plugins reach it with ``depends = ("dialogs",)`` and ``ctx.plugin("dialogs")``;
every method returns a Deferred and raises the errors of
:mod:`plugins.dialogs.model`, also reachable as attributes of the plugin
(``store.NotFoundError``...), so a front end needs no import of this package.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.words.xish import domish

from plugins.dialogs import history, query, reactions, search, store, xmpp
from plugins.dialogs.model import (
    PRIVATE,
    ROOM_TYPES,
    Dialog,
    DialogError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    RoomMessage,
    new_id,
)
from plugins.dialogs.tables import (
    dialogs_dialogs,
    dialogs_messages,
    dialogs_occupants,
    dialogs_reactions,
    dialogs_receipts,
)
from xmppd.accounts import parse_localpart
from xmppd.plugin import Plugin, PluginContext, Priority, StanzaError, hook
from xmppd.router import StanzaEvent


class Dialogs(Plugin):
    """The dialogs store; every call is scoped to one application.

    Fires ``dialogs/room-message`` (a :class:`~plugins.dialogs.model.RoomMessage`)
    for what a group or public dialog's room sends (issue 5: REST ``send_to_chat``,
    edit, delete and reaction notifications); the ``muc`` plugin's dialog rooms
    deliver it, and without a handler the private-style delivery applies."""

    name = "dialogs"
    implements = ("ConnectyCube/QuickBlox chat dialogs (store)",)
    tables = (
        dialogs_dialogs,
        dialogs_occupants,
        dialogs_messages,
        dialogs_receipts,
        dialogs_reactions,
    )
    migrations = "migrations"
    DialogError = DialogError
    NotFoundError = NotFoundError  # unknown id, or another application's dialog
    ForbiddenError = ForbiddenError  # the caller may not do this
    InvalidError = InvalidError  # a bad parameter; ``.field`` names it

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.db = ctx.db

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ctx.clock.seconds(), UTC)

    def room_jid(self, dialog: Dialog) -> str | None:
        """``{app_id}_{dialog_id}@muc.{domain}`` for public and group dialogs (the
        MUC plugin's ``host`` when it is loaded: issue 5)."""
        jid = dialog.room_jid(self.ctx.domain)
        muc = self.ctx.loaded("muc")
        if jid is None or muc is None:
            return jid
        return f"{dialog.app_id}_{dialog.id}@{muc.host}"

    def create(self, app_id: int, owner: int, fields: dict[str, Any]) -> Deferred:
        """-> ``(Dialog, created)``; a private pair's existing dialog is returned."""
        return self.db.run(store.create, app_id, owner, fields, self.now())

    def get(self, app_id: int, dialog_id: str, viewer: int | None = None) -> Deferred:
        return self.db.run(store.get, app_id, dialog_id, viewer)

    def list(self, app_id: int, viewer: int, params: dict[str, Any]) -> Deferred:
        return self.db.run(query.list_dialogs, app_id, viewer, params)

    def update(self, app_id: int, caller: int, dialog_id: str, changes: dict) -> Deferred:
        return self.db.run(store.update_dialog, app_id, caller, dialog_id, changes, self.now())

    def delete(self, app_id: int, caller: int, ids: list[str], force: bool = False) -> Deferred:
        return self.db.run(store.delete_dialogs, app_id, caller, ids, force)

    def subscribe(self, app_id: int, caller: int, dialog_id: str) -> Deferred:
        return self.db.run(store.subscribe, app_id, caller, dialog_id, self.now())

    def unsubscribe(self, app_id: int, caller: int, dialog_id: str) -> Deferred:
        return self.db.run(store.unsubscribe, app_id, caller, dialog_id)

    def public_occupants(self, app_id: int, dialog_id: str, limit: int, skip: int) -> Deferred:
        return self.db.run(store.public_occupants, app_id, dialog_id, limit, skip)

    def notifications(
        self, app_id: int, caller: int, dialog_id: str, enabled: bool | None = None
    ) -> Deferred:
        return self.db.run(store.notifications, app_id, caller, dialog_id, enabled)

    def save_message(self, app_id: int, message: history.NewMessage) -> Deferred:
        """-> ``(dialog_id, message_id)``; see :func:`plugins.dialogs.history.save`."""
        return self.db.run(history.save, app_id, message, self.now())

    def messages(self, app_id: int, viewer: int, dialog_id: str, params: dict) -> Deferred:
        """A dialog's history page, marked read for ``viewer`` (``history.list_messages``)."""
        return self.db.run(history.list_messages, app_id, viewer, dialog_id, params)

    def update_messages(
        self, app_id: int, caller: int, dialog_id: str, ids: list[str], changes: dict
    ) -> Deferred:
        """Mark read/delivered, or edit (``history.update_messages``); -> the edited
        messages, for :meth:`send_edited`."""
        return self.db.run(
            history.update_messages, app_id, caller, dialog_id, ids, changes, self.now()
        )

    def unread(self, app_id: int, viewer: int, dialog_ids: list[str]) -> Deferred:
        """``{"total": n, dialog_id: n...}`` (``history.unread``)."""
        return self.db.run(history.unread, app_id, viewer, dialog_ids)

    def create_message(self, app_id: int, caller: int, params: dict) -> Deferred:
        """-> ``(Message, Dialog)`` (``history.create_message``)."""
        return self.db.run(history.create_message, app_id, caller, params, self.now())

    def delete_messages(self, app_id: int, caller: int, ids: list[str], force: bool) -> Deferred:
        """-> ``(result, removed)`` (``history.delete_messages``)."""
        return self.db.run(history.delete_messages, app_id, caller, ids, force)

    def clear_history(self, app_id: int, caller: int, dialog_id: str) -> Deferred:
        return self.db.run(history.clear_history, app_id, caller, dialog_id)

    def reactions(self, app_id: int, caller: int, message_id: str) -> Deferred:
        """``{reaction: [user ids]}`` (``reactions.list_reactions``)."""
        return self.db.run(reactions.list_reactions, app_id, caller, message_id)

    def update_reactions(
        self, app_id: int, caller: int, message_id: str, add: Any, remove: Any
    ) -> Deferred:
        """-> a :class:`reactions.Change` (``reactions.update_reactions``)."""
        return self.db.run(reactions.update_reactions, app_id, caller, message_id, add, remove)

    def search(self, app_id: int, viewer: int, params: dict) -> Deferred:
        """-> ``{"dialogs": [Dialog], "messages": [Message]}`` (``search.search``)."""
        return self.db.run(search.search, app_id, viewer, params)

    def jid(self, app_id: int, user_id: int) -> str:
        return f"{user_id}-{app_id}@{self.ctx.domain}"

    def to_online(self, app_id: int, user_id: int, stanza: domish.Element) -> int:
        """Send ``stanza`` to the user's available resources (no offline storage
        yet: nothing is queued); -> how many got it."""
        sessions = [s for s in self.ctx.sessions.of(self.jid(app_id, user_id)) if s.available]
        for session in sessions:
            session.send(stanza)
        return len(sessions)

    def room_message(
        self,
        app_id: int,
        dialog_id: str,
        sender_id: int,
        stanza: domish.Element,
        recipients: list[int],
    ) -> bool:
        """Issue 5: hand a ``groupchat`` stanza (no ``from``/``to``) to the dialog's MUC
        room, which delivers it from ``{room}/{sender_id}`` to the recipients' online
        resources (``dialogs/room-message``, plugins/muc/dialog_rooms.py); -> whether
        a room took it (``False`` without the ``muc`` plugin)."""
        if not self.ctx.events.has("dialogs/room-message"):
            return False
        notice = RoomMessage(app_id, dialog_id, sender_id, stanza, recipients)
        return self.ctx.events.fire("dialogs/room-message", notice) is not None

    def send_saved(self, app_id: int, view: dict[str, Any], dialog: Dialog) -> None:
        """Route a stored message to the dialog's other occupant as a client's saved
        message is routed (§4.5; RFC 6121 §8.5.2): ``type='chat'``, private only;
        privacy lists, carbons and offline storage apply as to any message. A group
        or public dialog's goes through its room as ``groupchat`` to every occupant,
        the sender's resources included (issue 5; XEP-0045 §7.4 reflection)."""
        sender = self.jid(app_id, view["sender_id"])
        if dialog.type in ROOM_TYPES:
            stanza = self.saved_groupchat(view)
            self.room_message(app_id, dialog.id, view["sender_id"], stanza, dialog.occupants_ids)
            return
        for user_id in dialog.occupants_ids:
            if user_id != view["sender_id"] and dialog.type == PRIVATE:
                to = self.jid(app_id, user_id)
                self.ctx.router.deliver(xmpp.saved_stanza(view, sender, to))

    def send_removed(self, app_id: int, sender_id: int, removed: list) -> None:
        """The delete notification (§4.5) for ``history.delete_messages``'s ``removed``;
        a room dialog's as ``groupchat`` from the room (issue 5)."""
        sender = self.jid(app_id, sender_id)
        for dialog_id, message_id, others, room in removed:
            stanza = xmpp.remove_stanza(dialog_id, message_id, sender, sender)
            if room and self.room_message(app_id, dialog_id, sender_id, _group(stanza), others):
                continue
            for user_id in others:
                to = self.jid(app_id, user_id)
                self.to_online(
                    app_id, user_id, xmpp.remove_stanza(dialog_id, message_id, sender, to)
                )

    def send_edited(self, app_id: int, sender_id: int, text: str, edited: list) -> None:
        """The edit notification (§4.5 ``replace``) of ``history.update_messages``'s
        edited messages, to the other occupants' online resources; a room dialog's
        as ``groupchat`` from the room (issue 5)."""
        sender = self.jid(app_id, sender_id)
        for dialog_id, message_id, last, others, room in edited:
            if room:
                stanza = xmpp.edit_stanza(
                    dialog_id, message_id, text, last, sender, sender, new_id()
                )
                if self.room_message(app_id, dialog_id, sender_id, _group(stanza), others):
                    continue
            for user_id in others:
                stanza = xmpp.edit_stanza(
                    dialog_id, message_id, text, last, sender, self.jid(app_id, user_id), new_id()
                )
                self.to_online(app_id, user_id, stanza)

    def send_reactions(self, app_id: int, change: reactions.Change) -> None:
        """The reactions notification (§4.5) of ``update_reactions``'s change to the
        occupants' online resources, the reactor's own included (his other devices:
        a REST call has no resource of its own); nothing when nothing changed. A
        room dialog's goes as ``groupchat`` from the room (issue 5)."""
        changes = [("remove", change.removed)] if change.removed else []
        changes += [("add", change.added)] if change.added else []
        if not changes:
            return
        sender = self.jid(app_id, change.user_id)

        def stanza(to: str) -> domish.Element:
            return xmpp.reactions_stanza(
                change.dialog_id, change.message_id, change.user_id, changes, sender, to, new_id()
            )

        if change.room and self.room_message(
            app_id, change.dialog_id, change.user_id, _group(stanza(sender)), change.notified
        ):
            return
        for user_id in change.notified:
            self.to_online(app_id, user_id, stanza(self.jid(app_id, user_id)))

    def send_system(
        self, app_id: int, sender_id: int, recipient: int, body: str | None, params: dict
    ) -> str:
        """A system message (§4.5 headline), to the recipient's online resources,
        never stored; -> its id. :class:`InvalidError` for bad custom parameters."""
        history.check_params(params)
        message_id = new_id()
        stanza = xmpp.system_stanza(
            message_id, body, params, self.jid(app_id, sender_id), self.jid(app_id, recipient)
        )
        self.to_online(app_id, recipient, stanza)
        return message_id

    async def save_groupchat(
        self, app_id: int, sender_id: int, dialog_id: str, stanza: domish.Element
    ) -> str | None:
        """Issue 5: a ``groupchat`` message to the room of ``dialog_id`` (the MUC
        plugin checked the sender may post), stored as a 1-1 message is when it has
        ``extraParams/save_to_history`` (history, ``last_message*``, every other
        occupant's unread count) and stamped with the stored ids; an unsaved one
        gets ``extraParams/dialog_id`` only. -> the message id, or ``None``."""
        extra = xmpp.extra_params(stanza)  # drops a client message_id (H59)
        if extra is None:
            xmpp.stamp_dialog(stanza, dialog_id)
            return None
        message = xmpp.read_message(stanza, extra, sender_id, self.ctx.clock.seconds())
        message.dialog_id = dialog_id
        try:
            _, message_id = await self.save_message(app_id, message)
        except (ForbiddenError, NotFoundError):
            raise StanzaError("forbidden", text="not an occupant of this dialog") from None
        xmpp.stamp(extra, dialog_id, message_id, message.date_sent)
        return message_id

    def saved_groupchat(self, view: dict[str, Any]) -> domish.Element:
        """A stored Message as the ``groupchat`` stanza of its room (no ``from``/``to``),
        for a MUC history replay (XEP-0045 §7.2.15)."""
        return _group(xmpp.saved_stanza(view, "", "", "groupchat"))

    @hook("pre-message/bare", "pre-message/full", priority=Priority.ANNOTATE)
    async def save_to_history(self, event: StanzaEvent) -> None:
        """Issue 3 "History over XMPP", SDK-CONTRACT §4.5: a 1-1 chat message with
        ``extraParams/save_to_history`` is stored before it is delivered, and the
        delivered stanza carries the stored ``dialog_id`` and ``message_id``."""
        # Groupchat to a dialog's room is the MUC plugin's (dest "remote"): it saves
        # through save_groupchat (issue 5).
        origin = event.origin
        if origin is None or origin.app_id is None:
            return None
        extra = xmpp.extra_params(event.stanza)  # drops a client message_id (H59)
        if extra is None or event.type != "chat":
            return None  # without save_to_history nothing is stored (issue 3)
        ids = parse_localpart(event.to.user or "")
        if ids is None or ids[1] != origin.app_id or ids[0] == origin.user_id:
            return None  # oneself, or not a user of the sender's app: delivery only
        message = xmpp.read_message(event.stanza, extra, origin.user_id, self.ctx.clock.seconds())
        message.recipient_id = ids[0]
        try:
            dialog_id, message_id = await self.save_message(origin.app_id, message)
        except ForbiddenError:
            raise StanzaError("forbidden", text="not an occupant of this dialog") from None  # H60
        except InvalidError:
            return None  # the recipient is no user of this application: delivery bounces
        xmpp.stamp(extra, dialog_id, message_id, message.date_sent)
        return None


def _group(stanza: domish.Element) -> domish.Element:
    """A notification as its room sends it: ``groupchat``, addressed by the room."""
    stanza["type"] = "groupchat"
    for name in ("from", "to"):
        stanza.attributes.pop(name, None)
    return stanza


__all__ = ["Dialog", "DialogError", "Dialogs", "ForbiddenError", "InvalidError", "NotFoundError"]
