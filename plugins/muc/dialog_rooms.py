"""Dialog rooms (issue 5): the group, public and broadcast dialogs of
``plugins/dialogs`` seen as XEP-0045 rooms at ``{app_id}_{dialog_id}@{muc host}``.

The hosted services' model decides delivery, not presence: a ``groupchat`` message
from an occupant goes to every available resource of every occupant, joined or not,
the sender's own included (XEP-0045 §7.4 reflection), ``from`` ``{room}/{sender id}``
with ``extraParams/dialog_id`` (and ``message_id`` when saved) (SDK-CONTRACT §4.5,
§4.6). Who receives, read from the dialogs store for every message (a REST change
of ``occupants_ids`` counts at once):

- group (2): the dialog's ``occupants_ids``; only they post (else ``forbidden``);
- public (1): the owner and the subscribers (REST subscribe, or a join by presence);
  only they post;
- broadcast (4): every user of the application with an available resource on this
  node; only the owner and the admins post.

A user whose privacy list refuses the sender's messages (``plugins/privacy``
``is_blocked``) gets nothing. ``save_to_history`` messages are stored through the
dialogs plugin (``save_groupchat``: history, ``last_message*``, unread counts)
before delivery.

Joining with presence (§7.2) still works for clients that do it: the nick is the
user id (§7.2.9: another one is changed, status 210), occupants' presence goes to
the joined occupants, the self-presence carries 110 and echoes the join's ``id``,
history is replayed from the store (§7.2.15), then the subject (the dialog's name,
§7.2.16). Leaving (§7.14) ends presence only: occupants keep receiving messages.

The SDK's edit (``replace``) and delete (``remove``) of a group message come to the
room; with the ``correction`` and ``message_delete`` plugins loaded they are applied
to history first (the sender's own message only, SECURITY H61), then relayed.

Handles ``dialogs/room-message`` (fired by ``plugins/dialogs`` for REST
``send_to_chat`` and the edit, delete and reaction notifications of room dialogs):
delivered from the room like a message. Fires no events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from plugins.common.extra_params import NS_CLIENT, child, keep_out_of_history
from plugins.dialogs.model import BROADCAST, GROUP, PUBLIC, RoomMessage
from xmppd.plugin import Priority, StanzaError
from xmppd.router import StanzaEvent
from xmppd.sessions import Session
from xmppd.stanza import clone

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DELAY = "urn:xmpp:delay"
NS_CORRECT = "urn:xmpp:message-correct:0"  # the SDK's edit (XEP-0308 0.x)
NS_DELETE = "urn:xmpp:message-delete:0"  # COMPAT: ConnectyCube's delete
NS_RETRACT = "urn:xmpp:message-retract:1"  # XEP-0424
ROOM_KINDS = (GROUP, PUBLIC, BROADCAST)
DEFAULT_HISTORY = 20  # §7.2.15: messages replayed when the join asks for no limit
MAX_HISTORY = 100  # the store's page size


class DialogRooms:
    """The dialog rooms of the MUC service ``muc`` (plugins/muc/__init__.py)."""

    def __init__(self, muc: Any) -> None:
        self.muc = muc
        self.ctx = muc.ctx
        self.dialogs = self.ctx.loaded("dialogs")
        self.privacy = self.ctx.loaded("privacy")
        # Presence-joined resources (§7.2): (app_id, dialog_id) -> user id -> full JIDs.
        self.joined: dict[tuple[int, str], dict[int, set[str]]] = {}
        on = self.ctx.events.on
        on("dialogs/room-message", self.room_message, Priority.DEFAULT, owner=muc.name)
        on("session-unavailable", self.session_gone, Priority.DEFAULT, owner=muc.name)
        on("session-closed", self.session_gone, Priority.DEFAULT, owner=muc.name)

    def room(self, app_id: int, dialog_id: str, nick: int | str | None = None) -> JID:
        return JID(
            tuple=(f"{app_id}_{dialog_id}", self.muc.host, None if nick is None else str(nick))
        )

    def user_jid(self, app_id: int, user_id: int) -> str:
        return f"{user_id}-{app_id}@{self.ctx.domain}"

    async def dialog(self, event: StanzaEvent, app_id: int, dialog_id: str) -> Any:
        """The room's dialog for a local user of its application, else ``item-not-found``
        (another application's dialog does not exist for him: docs/dialogs.md)."""
        origin = event.origin
        if origin is None or origin.app_id != app_id:
            raise StanzaError("item-not-found")
        try:
            d = await self.dialogs.get(app_id, dialog_id, origin.user_id)
        except self.dialogs.NotFoundError:
            raise StanzaError("item-not-found") from None
        if d.type not in ROOM_KINDS:
            raise StanzaError("item-not-found")  # a private dialog has no room
        return d

    # -- messages (§7.4) ----------------------------------------------------------

    async def message(self, event: StanzaEvent, app_id: int, dialog_id: str) -> bool:
        if event.origin is None or event.type == "error":
            return True  # nothing the room answers (RFC 6120 §8.3.1)
        if event.type == "groupchat" and event.to.resource is not None:
            raise StanzaError("bad-request", text="groupchat goes to the room")  # §7.5
        if event.type != "groupchat":
            # §7.5 private messages and §7.8 invitations: not in the hosted model.
            raise StanzaError("feature-not-implemented", text="dialog rooms take groupchat only")
        d = await self.dialog(event, app_id, dialog_id)
        sender = event.origin.user_id
        self.prune(d)
        if not may_post(d, sender):
            raise StanzaError("forbidden", text="not allowed to post in this dialog")
        stanza = event.stanza
        await self.apply_to_history(app_id, sender, d, stanza)
        await self.dialogs.save_groupchat(app_id, sender, d.id, stanza)
        for name in ("from", "to"):
            stanza.attributes.pop(name, None)
        recipients = self.recipients(d)
        await self.deliver(RoomMessage(app_id, d.id, sender, stanza, recipients))
        return True

    async def apply_to_history(self, app_id: int, sender: int, d: Any, stanza: Any) -> None:
        """SDK-CONTRACT §4.5: the SDK sends a group dialog's edit (``replace``) and
        delete (``remove``; XEP-0424 ``retract``) to the room; with the ``correction``
        and ``message_delete`` plugins loaded, the room applies them to history as
        those plugins do for 1-1 ones: the sender's own stored message only, another's
        is ``forbidden`` (SECURITY H61); an id not in history changes nothing. Such a
        notification is never saved as a message."""
        edit = child(stanza, NS_CORRECT, ("replace",))
        if edit is not None and self.ctx.loaded("correction") is not None:
            keep_out_of_history(stanza)
            query = {"_id": edit.getAttribute("id", ""), "mark_as_read": "0"}
            try:
                found = await self.dialogs.messages(app_id, sender, d.id, query)
            except self.dialogs.DialogError:
                found = {"items": []}  # not an id the store can look up: routed as is
            body = next(stanza.elements(NS_CLIENT, "body"), None)
            if found["items"] and found["items"][0]["sender_id"] != sender:
                raise StanzaError("forbidden", text="only the sender may correct a message")
            if found["items"] and body is not None:
                await self.dialogs.update_messages(
                    app_id, sender, d.id, [edit["id"]], {"message": str(body)}
                )
        removal = child(stanza, NS_DELETE, ("remove",)) or child(stanza, NS_RETRACT, ("retract",))
        if removal is not None and self.ctx.loaded("message_delete") is not None:
            keep_out_of_history(stanza)
            if removal.getAttribute("id"):
                result, _ = await self.dialogs.delete_messages(
                    app_id, sender, [removal["id"]], True
                )
                if result["WrongPermissions"]:
                    raise StanzaError("forbidden", text="only the sender may delete a message")

    def recipients(self, d: Any) -> list[int]:
        """The users a room message goes to (see the module docstring)."""
        if d.type != BROADCAST:
            return list(d.occupants_ids)
        online = {s.user_id for s in self.ctx.sessions.local() if s.app_id == d.app_id}
        return sorted(u for u in online if u is not None)

    def room_message(self, notice: RoomMessage) -> Any:
        """``dialogs/room-message``: delivered from the room (and handled: not ``None``)."""
        d = Deferred.fromCoroutine(self.deliver(notice))
        d.addErrback(lambda f: self.ctx.log.failure("room message", f))
        return True

    async def deliver(self, m: RoomMessage) -> None:
        """``m`` to every available resource of each recipient that does not block the
        sender (privacy), ``from`` the sender's occupant JID (§7.4)."""
        sender = self.room(m.app_id, m.dialog_id, m.sender_id)
        real = self.user_jid(m.app_id, m.sender_id)
        for user_id in dict.fromkeys(m.recipients):
            bare = self.user_jid(m.app_id, user_id)
            sessions = [s for s in self.ctx.sessions.of(bare) if s.available]
            if not sessions or await self.blocked(bare, real, sender):
                continue
            for session in sessions:
                copy = clone(m.stanza)
                copy["from"], copy["to"] = sender.full(), session.jid.full()
                self.ctx.router.deliver(copy)

    async def blocked(self, user: str, real: str, occupant: JID) -> bool:
        """XEP-0016 §2.9 with the hosted extension (SDK-CONTRACT §4.7): the user's list
        refuses the sender's real JID, or his nick in any room (``muc.{domain}/{id}``)."""
        if self.privacy is None:
            return False
        for sender in (real, occupant.full()):
            answer = self.privacy.is_blocked(user, sender, "message")
            if isinstance(answer, Deferred):
                answer = await answer
            if answer:
                return True
        return False

    # -- presence: join, leave (§7.2, §7.14) --------------------------------------------

    async def presence(self, event: StanzaEvent, app_id: int, dialog_id: str) -> bool:
        origin = event.origin
        if origin is None or event.type == "error":
            return True
        if event.type not in (None, "unavailable"):
            return True  # subscriptions and probes mean nothing to a room
        if event.to.resource is None:
            if event.type is None:
                raise StanzaError("jid-malformed", text="a nickname is required")  # §7.2.1
            return True
        key = (app_id, dialog_id)
        if event.type == "unavailable":
            self.leave(key, origin.user_id, origin.jid.full(), event.stanza.getAttribute("id"))
            return True
        d = await self.dialog(event, app_id, dialog_id)
        user = origin.user_id
        if d.type == PUBLIC and user not in d.occupants_ids:
            d = await self.dialogs.subscribe(app_id, user, d.id)  # issue 5: join = subscribe
        elif d.type == GROUP and user not in d.occupants_ids:
            # §7.2.7: a members-only room; the members are the dialog's occupants.
            raise StanzaError("registration-required", text="not an occupant of this dialog")
        members = self.joined.setdefault(key, {})
        full = origin.jid.full()
        status = presence_status(event.stanza)
        if full in members.get(user, ()):
            # §7.7: a joined occupant's presence change goes to everyone joined.
            for resources in members.values():
                for to in resources:
                    self.muc.send(self.occupant_presence(d, user, to, status=status))
            return True
        # §7.2.3: the occupants already joined, to the new resource first.
        for other in members:
            if other != user:
                origin.send(self.occupant_presence(d, other, full))
        members.setdefault(user, set()).add(full)
        # §7.2.3: the new occupant's presence to everyone else joined.
        for other, resources in members.items():
            for to in resources if other != user else ():
                self.muc.send(self.occupant_presence(d, user, to, status=status))
        # §7.2.3 self-presence: 110 (it is you), 100 (real JIDs: the ids are them),
        # 210 when the asked nick was not the user id (§7.2.9); the join id echoed
        # (SDK-CONTRACT §4.6).
        codes = ["100", "110"] + (["210"] if event.to.resource != str(user) else [])
        own = self.occupant_presence(d, user, full, codes, status=status)
        if event.stanza.getAttribute("id"):
            own["id"] = event.stanza["id"]
        origin.send(own)
        await self.replay(event, d, origin)
        return True

    def prune(self, d: Any) -> None:
        """Issue 5: a user removed from the dialog over REST leaves its room at once;
        §9.5 his unavailable presence carries 321 (removed by an affiliation change)."""
        members = self.joined.get((d.app_id, d.id), {})
        if d.type == BROADCAST:
            return
        for user in [u for u in members if u not in d.occupants_ids]:
            for full in list(members.get(user, ())):
                self.leave((d.app_id, d.id), user, full, None, ["321"])

    def occupant_presence(
        self,
        d: Any,
        user_id: int,
        to: str,
        codes: list[str] | None = None,
        gone: bool = False,
        status: list[domish.Element] = (),
    ) -> domish.Element:
        """§7.2.3 an occupant's presence: affiliation from the dialog (owner, admin,
        member for an occupant, none for a joined broadcast reader), role to match;
        the occupant's own ``show``/``status`` (§7.7)."""
        p = domish.Element((NS_CLIENT, "presence"))
        p["from"], p["to"] = self.room(d.app_id, d.id, user_id).full(), to
        if gone:
            p["type"] = "unavailable"
        for element in status:
            p.addChild(clone(element))
        x = p.addElement((NS_MUC_USER, "x"))
        item = x.addElement("item")
        if user_id == d.user_id:
            item["affiliation"], item["role"] = "owner", "moderator"
        elif user_id in d.admins_ids:
            item["affiliation"], item["role"] = "admin", "moderator"
        elif user_id in d.occupants_ids:
            item["affiliation"], item["role"] = "member", "participant"
        else:
            item["affiliation"], item["role"] = "none", "visitor"
        if gone:
            item["role"] = "none"  # §7.14
        for code in codes or ():
            x.addElement("status")["code"] = code
        return p

    def leave(
        self,
        key: tuple[int, str],
        user: int,
        full: str,
        stanza_id: str | None,
        codes: list[str] = (),
    ) -> None:
        """§7.14: the resource leaves; when it was the user's last, everyone joined
        (and the resource itself, with 110) gets his unavailable presence."""
        members = self.joined.get(key, {})
        resources = members.get(user)
        if not resources or full not in resources:
            return
        resources.discard(full)
        d = _Gone(key[0], key[1])
        own = self.occupant_presence(d, user, full, ["110", *codes], gone=True)
        if stanza_id:
            own["id"] = stanza_id
        self.muc.send(own)
        if resources:
            return
        del members[user]
        for other in members.values():
            for to in other:
                self.muc.send(self.occupant_presence(d, user, to, list(codes), gone=True))
        if not members:
            self.joined.pop(key, None)

    def session_gone(self, session: Session) -> None:
        """§7.14: an occupant whose session goes unavailable or ends leaves every room."""
        full = session.jid.full()
        for key, members in list(self.joined.items()):
            if full in members.get(session.user_id, ()):
                self.leave(key, session.user_id, full, None)

    # -- history (§7.2.15) and subject (§7.2.16) ----------------------------------------

    async def replay(self, event: StanzaEvent, d: Any, origin: Session) -> None:
        """§7.2.15: the stored history the join asks for (``maxstanzas``, ``seconds``,
        ``since``; ``maxchars='0'`` none), oldest first, each with a XEP-0203 delay;
        then §7.2.16 the subject (the dialog's name), always."""
        limit, since = history_request(event.stanza, self.ctx.clock.seconds())
        if limit:
            params: dict[str, Any] = {"sort_desc": "date_sent", "limit": limit}
            params["mark_as_read"] = "0"
            if since is not None:
                params["date_sent"] = {"gte": since}
            page = await self.dialogs.messages(d.app_id, origin.user_id, d.id, params)
            for view in reversed(page["items"]):
                origin.send(self.history_stanza(d, view, origin.jid.full()))
        subject = domish.Element((NS_CLIENT, "message"))
        subject["from"], subject["to"] = self.room(d.app_id, d.id).full(), origin.jid.full()
        subject["type"] = "groupchat"
        subject.addElement("subject", content=d.name or "")
        origin.send(subject)

    def history_stanza(self, d: Any, view: dict[str, Any], to: str) -> domish.Element:
        msg = self.dialogs.saved_groupchat(view)
        msg["from"], msg["to"] = self.room(d.app_id, d.id, view["sender_id"]).full(), to
        delay = msg.addElement((NS_DELAY, "delay"))
        stamp = datetime.fromtimestamp(int(view["date_sent"]), UTC)
        delay["stamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        delay["from"] = self.room(d.app_id, d.id).full()
        return msg

    # -- IQs: disco of the room (§6.4, §6.5) -------------------------------------------

    async def iq(self, event: StanzaEvent, app_id: int, dialog_id: str) -> Any:
        if event.type not in ("get", "set"):
            return True
        payload = event.stanza.firstChildElement()
        d = await self.dialog(event, app_id, dialog_id)
        if event.type != "get" or payload is None or event.to.resource is not None:
            raise StanzaError("feature-not-implemented")
        if payload.getAttribute("node"):
            raise StanzaError("item-not-found")
        if (payload.uri, payload.name) == (NS_DISCO_INFO, "query"):
            # §6.4: the room's identity and features
            query = domish.Element((NS_DISCO_INFO, "query"))
            identity = query.addElement("identity")
            identity["category"], identity["type"] = "conference", "text"
            identity["name"] = d.name or d.id
            features = [NS_MUC, "muc_persistent", "muc_nonanonymous", "muc_unmoderated"]
            features.append("muc_membersonly" if d.type == GROUP else "muc_open")
            for var in features:
                query.addElement("feature")["var"] = var
            return event.result(query)
        if (payload.uri, payload.name) == (NS_DISCO_ITEMS, "query"):
            # §6.5: the occupants, to an occupant only (SDK-CONTRACT §4.6
            # listOnlineUsers): the joined users and the occupants with a resource on.
            query = domish.Element((NS_DISCO_ITEMS, "query"))
            user = event.origin.user_id
            if may_read(d, user) or user in self.joined.get((app_id, d.id), {}):
                online = set(self.joined.get((app_id, d.id), {}))
                for uid in d.occupants_ids:
                    bare = self.user_jid(app_id, uid)
                    if any(s.available for s in self.ctx.sessions.of(bare)):
                        online.add(uid)
                for uid in sorted(online):
                    query.addElement("item")["jid"] = self.room(app_id, d.id, uid).full()
            return event.result(query)
        raise StanzaError("feature-not-implemented")


@dataclass(frozen=True)
class _Gone:
    """Enough of a dialog for an unavailable presence (affiliation ``none``)."""

    app_id: int
    id: str
    user_id: int = 0
    admins_ids: tuple = ()
    occupants_ids: tuple = ()


def may_post(d: Any, user_id: int) -> bool:
    """Group and public: occupants (subscribers); broadcast: the owner and admins."""
    if d.type == BROADCAST:
        return user_id == d.user_id or user_id in d.admins_ids
    return user_id in d.occupants_ids


def may_read(d: Any, user_id: int) -> bool:
    return d.type == BROADCAST or user_id in d.occupants_ids


def presence_status(presence: domish.Element) -> list[domish.Element]:
    """The ``show`` and ``status`` children a room passes on (§7.7)."""
    return [c for c in presence.elements() if c.name in ("show", "status")]


def history_request(presence: domish.Element, now: float) -> tuple[int, int | None]:
    """§7.2.15: ``(how many, since unix seconds or None)`` from the join's
    ``<x xmlns='…muc'><history/></x>``; no element: the service's default."""
    x = next(presence.elements(NS_MUC, "x"), None)
    history = next(x.elements(NS_MUC, "history"), None) if x is not None else None
    if history is None:
        return DEFAULT_HISTORY, None
    limit, since = MAX_HISTORY, None
    if history.getAttribute("maxchars") == "0":
        return 0, None
    if history.getAttribute("maxstanzas") is not None:
        limit = min(_int(history["maxstanzas"]), MAX_HISTORY)
    if history.getAttribute("seconds") is not None:
        since = int(now) - _int(history["seconds"])
    if history.getAttribute("since") is not None:
        try:
            stamp = datetime.fromisoformat(history["since"].replace("Z", "+00:00"))
        except ValueError:
            raise StanzaError("bad-request", text="since must be a XEP-0082 date-time") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        since = max(since or 0, int(stamp.timestamp()))
    return limit, since


def _int(value: str) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        raise StanzaError("bad-request", text="history limits are integers") from None
