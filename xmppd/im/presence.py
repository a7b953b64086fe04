"""RFC 6121 §4: presence broadcast, probes, directed presence.

Subscription states come from :class:`xmppd.im.roster.Roster`'s cache of the
rosters of online accounts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.words.xish import domish

from xmppd.events import Priority
from xmppd.router import StanzaEvent
from xmppd.sessions import Session
from xmppd.stanza import bare_jid, clone

if TYPE_CHECKING:
    from xmppd.service import Server


def presence_priority(stanza: domish.Element) -> int:
    """RFC 6121 §4.7.2.3: an integer in -128..127; anything else counts as 0."""
    for child in stanza.elements(stanza.uri, "priority"):
        try:
            value = int(str(child).strip())
        except ValueError:
            return 0
        return value if -128 <= value <= 127 else 0
    return 0


class Presence:
    """The core's presence logic."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.router = server.router
        self.roster = server.roster
        on = server.events.on
        on("presence/self", self.broadcast, Priority.DELIVER, owner="core")
        on("pre-presence/bare", self.directed, Priority.DEFAULT, owner="core")
        on("pre-presence/full", self.directed, Priority.DEFAULT, owner="core")
        on("presence/bare", self.probe, Priority.DEFAULT, owner="core")
        on("presence/full", self.probe, Priority.DEFAULT, owner="core")

    # -- a client's own presence (RFC 6121 §4.2, §4.4, §4.5) --------------------

    def broadcast(self, event: StanzaEvent) -> bool:
        session, stanza = event.origin, event.stanza
        if session is None:
            return True
        kind = stanza.getAttribute("type")
        if kind is None:
            initial = not session.available
            session.available = True
            session.priority = presence_priority(stanza)
            session.presence = stanza
            self._to_subscribers_and_self(session, stanza)
            if initial:
                self._initial(session)
                self.server.events.fire_all("session-available", session)
        elif kind == "unavailable":
            self._unavailable(session, stanza)
        elif kind == "error":
            pass  # RFC 6121 §4.7.1: nothing to broadcast
        return True

    def _initial(self, session: Session) -> None:
        """§4.2.2: the new resource learns its contacts' and its own other
        resources' presence (local probes, answered at once)."""
        for contact in self.roster.subscriptions(session.bare):
            for other in self.server.sessions.of(contact):
                if other.available and other.presence is not None:
                    self.send_presence_of(other, session.jid.full())
        for other in self.server.sessions.of(session.bare):
            if other is not session and other.available and other.presence is not None:
                self.send_presence_of(other, session.jid.full())

    def send_presence_of(self, source: Any, to: str) -> None:
        copy = clone(source.presence)
        copy["from"] = source.jid.full()
        copy["to"] = to
        self.router.deliver(copy)

    def _to_subscribers_and_self(self, session: Session, stanza: domish.Element) -> None:
        sender = session.jid.full()
        for contact in self.roster.subscribers(session.bare):
            copy = clone(stanza)
            copy["from"] = sender
            copy["to"] = contact
            self.router.deliver(copy)
        for other in self.server.sessions.of(session.bare):
            if other.available or other is session:
                copy = clone(stanza)
                copy["from"] = sender
                copy["to"] = other.jid.full()
                other.send(copy)

    def _unavailable(self, session: Session, stanza: domish.Element) -> None:
        was_available = session.available
        session.available = False
        session.presence = None
        if was_available:
            self._to_subscribers_and_self(session, stanza)
        subscribers = set(self.roster.subscribers(session.bare))
        for target in session.directed:  # §4.6.3: directed presence ends too
            if target.split("/")[0] not in subscribers:
                copy = clone(stanza)
                copy["from"] = session.jid.full()
                copy["to"] = target
                self.router.deliver(copy)
        session.directed.clear()
        if was_available:
            self.server.events.fire_all("session-unavailable", session)

    def session_gone(self, session: Session) -> None:
        """§4.5.2: a stream that ends without unavailable presence gets one."""
        if session.available or session.directed:
            stanza = domish.Element(("jabber:client", "presence"))
            stanza["type"] = "unavailable"
            self._unavailable(session, stanza)

    # -- directed presence (§4.6) and probes (§4.3) ------------------------------

    def directed(self, event: StanzaEvent) -> None:
        session, kind = event.origin, event.type
        if session is None or kind not in (None, "unavailable"):
            return None
        target = event.to.full()
        if kind is None:
            if event.to.userhost() not in self.roster.subscribers(session.bare):
                session.directed.add(target)
        else:
            session.directed.discard(target)
        return None

    def probe(self, event: StanzaEvent) -> Any:
        """§4.3.2: answer a probe for a local account on its behalf."""
        if event.type != "probe":
            return None
        owner = bare_jid(event.to)
        prober = event.sender.userhost()
        if prober == owner.userhost() or prober in self.roster.subscribers(owner):
            for session in self.server.sessions.of(owner):
                if session.available and session.presence is not None:
                    self.send_presence_of(session, event.sender.full())
        return True  # probes never reach clients (§4.3.2)
