"""XEP-0160: Best Practices for Handling Offline Messages (1.0.1), stamped with
XEP-0203: Delayed Delivery (2.0).

Takes ``message/offline``, the core's hand-off of a message for an account with
no available resource of non-negative priority (RFC 6121 §8.5.2.2.1, XEP-0160 §2
steps 1-2), and stores it when it is worth storing (:func:`storable`): type
``normal`` or ``chat`` (XEP-0160 §3) with a ``<body/>`` or an XEP-0334 ``<store/>``
hint, never with ``<no-store/>``, never a standalone chat state. Anything else
goes back to the core, which bounces it ``service-unavailable``; so does a message
beyond ``max_messages`` waiting for one user ("queue is full", XEP-0160 §2 step 3).

Sends what is stored, oldest first, to the first resource of the user that sends
initial presence with a non-negative priority (``session-available``, §2 step 5)
or raises its priority from negative to non-negative,
each with ``<delay xmlns='urn:xmpp:delay' from='{domain}' stamp='...'>`` (§2,
XEP-0203 §3; the stamp is when the server stored it).

Stores one row per message in ``offline_messages`` (tables.py): the stanza as
received and, for a self-destroying message (``<destroy
xmlns='urn:xmpp:message-destroy-after:0' after='N'/>``, plugins/destroy), a
deadline ``N`` seconds after it was stored: never delivered after it, deleted at
it (one timer on ``ctx.clock`` for the earliest deadline; all expired rows again
at start-up). A deleted user's rows go with it (ON DELETE CASCADE).

Delivery is at most once: the messages are taken out of the store in one
transaction (``DELETE ... RETURNING``, so two resources coming online together
never both get one) and then written to the session; messages whose session
ended in between are put back. A crash after that transaction and before the
bytes leave loses them; nothing is ever delivered twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from twisted.internet.defer import Deferred
from twisted.words.xish import domish

from plugins.offline import store
from plugins.offline.stanzas import destroy_after, parse_stored, xep0082
from plugins.offline.tables import offline_messages
from xmppd.accounts import parse_localpart
from xmppd.config import opt
from xmppd.im.presence import presence_priority
from xmppd.plugin import Plugin, PluginContext, Priority, StanzaError, hook
from xmppd.router import StanzaEvent
from xmppd.sessions import Session

NS_DELAY = "urn:xmpp:delay"
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"


def storable(stanza: domish.Element) -> bool:
    """Whether a message for an offline user is stored (XEP-0160 §3, XEP-0334 §4)."""
    if stanza.getAttribute("type", "normal") not in ("normal", "chat"):
        return False  # XEP-0160 §3: groupchat, headline and error are not stored
    hints = {child.name for child in stanza.elements(NS_HINTS)}
    if "no-store" in hints:
        return False  # XEP-0334 §4.2
    children = list(stanza.elements())
    if any(c.uri == NS_CHATSTATES for c in children) and all(
        c.uri in (NS_CHATSTATES, NS_HINTS) or c.name == "thread" for c in children
    ):
        return False  # XEP-0160 §3, XEP-0085 §5.8: standalone chat states are not stored
    # XEP-0334 §3.4, §4.4: "usually only ... messages that contain a body", or <store/>.
    return "store" in hints or any(c.name == "body" and c.uri == stanza.uri for c in children)


class OfflineMessages(Plugin):
    name = "offline"
    implements = ("XEP-0160 1.0.1", "XEP-0203 2.0")
    features = ("msgoffline",)  # XEP-0160 §4
    tables = (offline_messages,)
    migrations = "migrations"

    @dataclass(frozen=True)
    class Config:
        max_messages: int = opt(
            1000,
            "Most messages stored for one user; beyond it a message bounces with"
            " service-unavailable (XEP-0160 §2).",
            min=1,
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: OfflineMessages.Config = ctx.config
        self.purge_call: Any = None  # the DelayedCall of the next deadline
        self.running = False

    def start(self) -> Deferred:
        self.running = True
        return self.purge()  # deadlines that passed while the server was down

    def stop(self) -> None:
        self.running = False
        if self.purge_call is not None and self.purge_call.active():
            self.purge_call.cancel()

    # -- storing (XEP-0160 §2 steps 3-4) -----------------------------------------

    @hook("message/offline")
    async def store_message(self, event: StanzaEvent) -> bool | None:
        stanza = event.stanza
        ids = parse_localpart(event.to.user or "")
        if ids is None or not storable(stanza):
            return None  # the core bounces it (RFC 6121 §8.5.2.2.1)
        now = self.ctx.clock.seconds()
        after = destroy_after(stanza)
        expires_at = now + after if after is not None else None
        try:
            stored = await self.ctx.db.run(
                store.store, ids[0], stanza.toXml(), now, expires_at, self.config.max_messages
            )
        except IntegrityError:  # the account was deleted meanwhile
            raise StanzaError("service-unavailable") from None  # RFC 6121 §8.5.1
        if not stored:
            # XEP-0160 §2 step 3: the queue is full.
            raise StanzaError("service-unavailable", text="offline storage is full")
        if expires_at is not None:
            self.purge_at(expires_at)
        self.flush_if_online(event.to.userhost())
        return True

    def flush_if_online(self, bare: str) -> None:
        """The recipient came online while the message was being written: the
        ``session-available`` flush may have run before it, so send it now."""
        for session in self.ctx.sessions.of(bare):
            if session.available and session.priority >= 0:
                self.flush(session)
                return

    # -- delivering (XEP-0160 §2 step 5) ----------------------------------------

    @hook("session-available")
    def came_online(self, session: Session) -> None:
        if session.priority >= 0:  # XEP-0160 §2 step 5: "non-negative available presence"
            self.flush(session)

    @hook("presence/self", priority=Priority.OBSERVE)
    def priority_raised(self, event: StanzaEvent) -> None:
        """An available resource going from negative to non-negative priority is
        now one messages are delivered to (RFC 6121 §8.5.2.1.1): it gets the stored
        ones too. Runs before the core records the new priority."""
        session = event.origin
        if session is None or event.type is not None or not session.available:
            return None  # initial presence: session-available does it
        if session.priority < 0 <= presence_priority(event.stanza):
            self.flush(session)
        return None

    def flush(self, session: Session) -> Deferred | None:
        ids = parse_localpart(session.bare.user or "")
        if ids is None:
            return None
        d = self.ctx.db.run(store.claim, ids[0], self.ctx.clock.seconds())
        d.addCallback(self.send_claimed, session, ids[0])
        d.addErrback(lambda f: self.ctx.log.failure("offline delivery failed", f))
        return d

    def send_claimed(
        self, messages: list[store.Stored], session: Session, user_id: int
    ) -> Deferred | None:
        if not messages:
            return None
        if session.closed or not session.available:
            return self.ctx.db.run(store.put_back, user_id, messages)  # not sent: kept
        for message in messages:
            session.send(self.stamped(parse_stored(message.stanza), message.stored_at))
        return None

    def stamped(self, stanza: domish.Element, stored_at: float) -> domish.Element:
        """XEP-0160 §2, XEP-0203 §3: ``<delay from='{domain}' stamp=.../>``; a copy
        claiming to come from this server already (a sender's forgery) is dropped."""
        for old in list(stanza.elements(NS_DELAY, "delay")):
            if old.getAttribute("from") == self.ctx.domain:
                stanza.children.remove(old)
        delay = stanza.addElement((NS_DELAY, "delay"), content="Offline Storage")
        delay["from"] = self.ctx.domain
        delay["stamp"] = xep0082(stored_at)
        return stanza

    # -- deadlines of self-destroying messages ------------------------------------

    def purge(self) -> Deferred:
        self.purge_call = None
        d = self.ctx.db.run(store.purge, self.ctx.clock.seconds())
        d.addCallback(self.purge_at)
        d.addErrback(lambda f: self.ctx.log.failure("offline purge failed", f))
        return d

    def purge_at(self, deadline: float | None) -> None:
        """Run :meth:`purge` at ``deadline`` unless it already runs before."""
        if deadline is None or not self.running:
            return
        if self.purge_call is not None and self.purge_call.active():
            if self.purge_call.getTime() <= deadline:
                return
            self.purge_call.cancel()
        delay = max(0.0, deadline - self.ctx.clock.seconds())
        self.purge_call = self.ctx.clock.callLater(delay, self.purge)
