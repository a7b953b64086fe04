"""XEP-0045: Multi-User Chat (1.35.1), the service at ``muc.{domain}``; XEP-0421 occupant ids.

The core has no components: a stanza to the MUC host is classified ``remote``. The
service takes ``pre-{kind}/remote`` (from clients) and ``{kind}/remote`` (from the
server) at ``Priority.FILTER`` for its host and answers them, so the core never bounces
them as ``remote-server-not-found``:

- to the service itself: disco#info (identity ``conference/text``, §6.1) and
  disco#items (the public rooms, §6.3);
- to a room ``{app_id}_{dialog_id}`` (a group or public dialog of the dialogs plugin):
  handed to :class:`plugins.muc.dialog_rooms.DialogRooms` when ``dialogs`` is enabled,
  else ``item-not-found``;
- to any other room: the standard rooms of :mod:`plugins.muc.rooms` (presence to
  enter, leave, change nick or status, several sessions under one nick; groupchat and
  private messages; invitations; subject; the admin and owner IQs; room disco; IQs
  relayed between occupants, whose answers come back here).

Also adds the service to the server's disco#items (§6.1). Occupants whose session
goes unavailable or ends leave their rooms (§7.14).

Stores persistent rooms (configuration, subject, affiliations) in ``muc_rooms`` and
``muc_affiliations``, loaded at start; temporary rooms live in memory only and vanish
with their last occupant.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from plugins.muc import store
from plugins.muc.rooms import NS_MUC, Room
from plugins.muc.tables import muc_affiliations, muc_rooms
from xmppd.config import opt
from xmppd.plugin import Plugin, PluginContext, Priority, StanzaError, hook
from xmppd.router import StanzaEvent
from xmppd.sessions import Session
from xmppd.stanza import clone

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
RELAY_TIMEOUT = 120  # seconds a relayed IQ waits for its answer
DIALOG_ROOM = re.compile(r"^(\d+)_([0-9a-f]{24})$")  # {app_id}_{dialog_id} (issue 5)


class Muc(Plugin):
    """Fires no events of its own."""

    name = "muc"
    implements = ("XEP-0045 1.35.1", "XEP-0421 1.0.1")
    tables = (muc_rooms, muc_affiliations)
    migrations = "migrations"

    @dataclass(frozen=True)
    class Config:
        host: str = opt("", 'The MUC service\'s domain; empty means "muc." + the server domain.')
        name: str = opt("Chatrooms", "The service's name in disco (XEP-0045 §6.1).")
        create_rooms: Literal["all", "none"] = opt(
            "all", 'Who may create standard rooms: "all" local users, or "none".'
        )
        max_occupants: int = opt(200, "Default and highest `max users` of a room.", min=1)
        history_size: int = opt(50, "Messages a room keeps in memory for new occupants.", min=0)
        max_rooms_per_user: int = opt(
            100, "Rooms one user may own at once (created by them).", min=1
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: Muc.Config = ctx.config
        self.host = self.config.host or f"muc.{ctx.domain}"
        self.rooms: dict[str, Room] = {}  # localpart -> room (standard rooms)
        self.joined: dict[JID, set[str]] = {}  # an occupant's real full JID -> its rooms
        self.dialog_rooms: Any = None  # plugins.muc.dialog_rooms.DialogRooms, if dialogs
        self.privacy: Any = None  # plugins.privacy, if enabled
        self.writes = defer.DeferredLock()  # room writes, in order
        # IQs relayed to occupants: our id -> (asker's real full JID, its id, the
        # answerer's real full JID, the room JID the answer comes from, the expiry call)
        self.relayed: dict[str, tuple[JID, str | None, JID, JID, Any]] = {}

    def start(self) -> Any:
        self.privacy = self.ctx.loaded("privacy")
        if self.ctx.loaded("dialogs") is not None:
            from plugins.muc.dialog_rooms import DialogRooms  # the other face of issue 5

            self.dialog_rooms = DialogRooms(self)
        d = self.ctx.db.run(store.load_rooms)
        d.addCallback(self._loaded)
        return d

    def stop(self) -> Any:
        for *_, expiry in self.relayed.values():
            if expiry.active():
                expiry.cancel()
        self.relayed.clear()
        return self.writes.acquire().addCallback(lambda lock: lock.release())

    def write(self, fn: Any, *args: Any) -> None:
        """Run a store write after the ones before it (a later save must win)."""
        d = self.writes.run(self.ctx.db.run, fn, *args)
        d.addErrback(lambda f: self.ctx.log.failure("cannot store a room", f))

    def _loaded(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.rooms[row["name"]] = Room.restore(self, row)

    # -- routing ----------------------------------------------------------------

    @hook("pre-message/remote", "pre-presence/remote", "pre-iq/remote", priority=Priority.FILTER)
    @hook("message/remote", "presence/remote", "iq/remote", priority=Priority.FILTER)
    async def route(self, event: StanzaEvent) -> Any:
        if event.to.host != self.host:
            return None
        if event.kind == "iq" and event.type in ("result", "error"):
            self.relay_answer(event)
            return True
        if event.to.user is None:
            return self.service(event)
        dialog = DIALOG_ROOM.match(event.to.user)
        if dialog is not None:
            if self.dialog_rooms is None:
                if event.kind == "presence" and event.type in ("unavailable", "error"):
                    return True  # leaving a room that is not there: nothing to say
                raise StanzaError("item-not-found")
            app_id, dialog_id = int(dialog.group(1)), dialog.group(2)
            handle = getattr(self.dialog_rooms, event.kind)
            answered = await handle(event, app_id, dialog_id)
            if not answered and event.kind == "iq":
                raise StanzaError("service-unavailable")
            return True
        room = self.rooms.get(event.to.user)
        if event.kind == "presence":
            if room is None:
                room = self.create_room(event)
                if room is None:
                    return True
            room.presence(event)
        elif room is None or (room.locked and not room.is_occupant(event.sender)):
            # §10.1.1: a locked room is not there for anyone but its creator
            if event.type != "error":
                raise StanzaError("item-not-found")
        elif event.kind == "message":
            room.message(event)
        else:
            reply = room.iq(event)
            if reply is not None:
                return reply
        return True

    def create_room(self, event: StanzaEvent) -> Room | None:
        """§10.1.1: the first presence to an unknown room creates it, if allowed."""
        if event.type is not None or event.to.resource is None:
            if event.type is None:
                self.ctx.router.bounce(event, "jid-malformed")  # §7.2.2: a nick is required
            return None
        if event.origin is None or self.config.create_rooms == "none":
            self.ctx.router.bounce(event, "not-allowed")  # §10.1.1: creation restricted
            return None
        owner = event.sender.userhost()
        owned = sum(1 for r in self.rooms.values() if r.creator == owner)
        if owned >= self.config.max_rooms_per_user:
            self.ctx.router.bounce(event, "resource-constraint")
            return None
        room = Room.create(self, event.to.user, owner)
        self.rooms[room.name] = room
        return room

    # -- IQs relayed between occupants (Room.relay_iq) ----------------------------------

    def pending_iq(self, event: StanzaEvent, answerer: JID, room: str, nick: str) -> str:
        """Remember a relayed IQ; returns the id it goes out with."""
        relay_id = f"muc-{secrets.token_hex(8)}"
        expiry = self.ctx.clock.callLater(RELAY_TIMEOUT, self.relayed.pop, relay_id, None)
        asked = (event.sender, event.stanza.getAttribute("id"), answerer)
        self.relayed[relay_id] = (*asked, self.room_jid(room, nick), expiry)
        return relay_id

    def relay_answer(self, event: StanzaEvent) -> None:
        """The answer to a relayed IQ goes back to the asker from ``room/nick`` with its
        own id; an answer nobody waits for (or from someone else) is dropped."""
        pending = self.relayed.get(event.stanza.getAttribute("id") or "")
        if pending is None or pending[2] != event.sender:
            return
        asker, asked_id, _, answered_from, expiry = self.relayed.pop(event.stanza["id"])
        if expiry.active():
            expiry.cancel()
        out = clone(event.stanza)
        out["from"], out["to"] = answered_from.full(), asker.full()
        if asked_id is None:
            out.attributes.pop("id", None)
        else:
            out["id"] = asked_id
        self.send(out)

    def room_gone(self, room: Room) -> None:
        self.rooms.pop(room.name, None)

    def send(self, stanza: domish.Element) -> None:
        self.ctx.router.deliver(stanza)

    # -- the service (§6) ---------------------------------------------------------

    def service(self, event: StanzaEvent) -> Any:
        payload = event.stanza.firstChildElement() if event.kind == "iq" else None
        if payload is None or event.type != "get":
            if event.kind == "iq":
                raise StanzaError("service-unavailable")
            return True  # presence or message to the service: nothing to do
        if payload.getAttribute("node"):
            raise StanzaError("item-not-found")
        if (payload.uri, payload.name) == (NS_DISCO_INFO, "query"):
            # §6.2: the service's identity and features
            query = domish.Element((NS_DISCO_INFO, "query"))
            identity = query.addElement("identity")
            identity["category"], identity["type"] = "conference", "text"
            identity["name"] = self.config.name
            # XEP-0421 §4: not urn:xmpp:occupant-id:0, which dialog rooms do not give
            for var in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC):
                query.addElement("feature")["var"] = var
            return event.result(query)
        if (payload.uri, payload.name) == (NS_DISCO_ITEMS, "query"):
            # §6.3: the public rooms; hidden and locked ones are not listed
            query = domish.Element((NS_DISCO_ITEMS, "query"))
            for room in sorted(self.rooms.values(), key=lambda r: r.name):
                if room.config.public and not room.locked:
                    item = query.addElement("item")
                    item["jid"], item["name"] = room.jid.full(), room.title
            return event.result(query)
        raise StanzaError("service-unavailable")

    @hook("disco-items")
    def server_items(self, query: Any) -> Any:
        # §6.1: the service is an item of the server
        if query.dest == "host" and query.node is None:
            return [(self.host, self.config.name, None)]
        return None

    # -- occupants going away (§7.14) -----------------------------------------------

    @hook("session-unavailable", "session-closed")
    def session_gone(self, session: Session) -> None:
        for name in list(self.joined.get(session.jid, ())):
            room = self.rooms.get(name)
            if room is not None:
                room.gone(session.jid)

    def occupancy(self, jid: JID, room: str, present: bool) -> None:
        """Track which rooms a real full JID is in (for its session's end)."""
        rooms = self.joined.setdefault(jid, set())
        if present:
            rooms.add(room)
        else:
            rooms.discard(room)
            if not rooms:
                del self.joined[jid]

    def room_jid(self, name: str, nick: str | None = None) -> JID:
        return JID(tuple=(name, self.host, nick))
