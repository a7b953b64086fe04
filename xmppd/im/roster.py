"""RFC 6121 §2-§3: the roster IQ and presence subscriptions.

The rosters of accounts with a bound resource are cached here (presence
broadcast reads them on every change); every change is written through to the
database first, in one transaction that reads, decides with
:mod:`xmppd.im.subscription` and writes. Roster versioning is XEP-0237.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from xmppd.accounts import parse_localpart
from xmppd.errors import StanzaError
from xmppd.events import Priority
from xmppd.im import roster_store, subscription
from xmppd.im.subscription import Outcome, RosterError, RosterItem, RosterSetItem
from xmppd.router import StanzaEvent
from xmppd.sessions import Session
from xmppd.stanza import bare_jid

if TYPE_CHECKING:
    from xmppd.service import Server

NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"
SUBSCRIPTION_TYPES = frozenset(("subscribe", "subscribed", "unsubscribe", "unsubscribed"))


@dataclass
class CachedRoster:
    version: int
    items: dict[str, RosterItem] = field(default_factory=dict)
    sessions: int = 0


def user_id_of(bare: JID, domain: str) -> int | None:
    """The user id of a local ``{user_id}-{app_id}`` JID, else None."""
    ids = parse_localpart(bare.user) if bare.host == domain and bare.user else None
    return ids[0] if ids else None


def item_element(item: RosterItem | None, contact: str) -> domish.Element:
    """RFC 6121 §2.1.2: an ``<item/>``; ``None`` is a removal push (§2.5.2)."""
    element = domish.Element((NS_ROSTER, "item"))
    element["jid"] = contact
    if item is None:
        element["subscription"] = "remove"
        return element
    element["subscription"] = item.subscription
    if item.name:
        element["name"] = item.name
    if item.ask:
        element["ask"] = "subscribe"
    if item.approved:
        element["approved"] = "true"
    for group in item.groups:
        element.addElement("group", content=group)
    return element


class Roster:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.domain = server.domain
        self.db = server.db
        self.router = server.router
        self.max_items = server.config.roster.max_items
        self.versioning = server.config.roster.versioning
        self.cache: dict[str, CachedRoster] = {}
        on = server.events.on
        on(f"iq-get/self/{NS_ROSTER}:query", self.get, Priority.DEFAULT, owner="core")
        on(f"iq-set/self/{NS_ROSTER}:query", self.set, Priority.DEFAULT, owner="core")
        on(f"iq-get/bare/{NS_ROSTER}:query", self.foreign, Priority.DEFAULT, owner="core")
        on(f"iq-set/bare/{NS_ROSTER}:query", self.foreign, Priority.DEFAULT, owner="core")
        on("pre-presence/bare", self.outbound, Priority.DEFAULT, owner="core")
        on("pre-presence/full", self.outbound, Priority.DEFAULT, owner="core")
        on("presence/bare", self.inbound, Priority.DEFAULT, owner="core")
        on("presence/full", self.inbound, Priority.DEFAULT, owner="core")
        on("stream-features", self.stream_features, Priority.DEFAULT, owner="core")

    def stream_features(self, stream: Any) -> list[domish.Element]:
        """RFC 6121 §3.4 pre-approval and XEP-0237 §2.1 versioning, after auth."""
        features = [domish.Element((NS_PREAPPROVAL, "sub"))]
        if self.versioning:
            features.append(domish.Element((NS_ROSTERVER, "ver")))
        return features

    # -- cache of online accounts' rosters --------------------------------------

    @defer.inlineCallbacks
    def session_bound(self, session: Session):
        key = session.bare.userhost()
        cached = self.cache.get(key)
        if cached is None:
            if session.user_id is None:
                cached = CachedRoster(0)  # anonymous: no stored roster
            else:
                version, items = yield self.db.run(roster_store.load_roster, session.user_id)
                cached = self.cache.get(key) or CachedRoster(version, {i.contact: i for i in items})
            self.cache[key] = cached
        cached.sessions += 1

    def session_gone(self, session: Session) -> None:
        key = session.bare.userhost()
        cached = self.cache.get(key)
        if cached is not None:
            cached.sessions -= 1
            if cached.sessions <= 0:
                del self.cache[key]

    def subscribers(self, bare: JID | str) -> list[str]:
        """Contacts that receive the account's presence (subscription from/both)."""
        cached = self.cache.get(bare if isinstance(bare, str) else bare.userhost())
        return [c for c, i in cached.items.items() if i.from_] if cached else []

    def subscriptions(self, bare: JID | str) -> list[str]:
        """Contacts whose presence the account receives (to/both)."""
        cached = self.cache.get(bare if isinstance(bare, str) else bare.userhost())
        return [c for c, i in cached.items.items() if i.to] if cached else []

    def _remember(self, bare: str, version: int, contact: str, item: RosterItem | None) -> None:
        cached = self.cache.get(bare)
        if cached is None:
            return
        cached.version = max(cached.version, version)
        if item is None:
            cached.items.pop(contact, None)
        else:
            cached.items[contact] = item

    # -- roster get (§2.2, XEP-0237) ----------------------------------------------

    def get(self, event: StanzaEvent) -> Any:
        session = event.origin
        if session is None:
            return None
        session.interested = True  # §2.1.6: pushes go to resources that asked
        cached = self.cache.get(session.bare.userhost()) or CachedRoster(0)
        query = event.stanza.firstChildElement()
        requested = query.getAttribute("ver") if self.versioning else None
        current = str(cached.version)
        if requested is not None and requested == current:
            return event.result()  # XEP-0237 §2.3: unchanged, an empty result
        result = domish.Element((NS_ROSTER, "query"))
        if self.versioning:
            result["ver"] = current
        for contact, item in sorted(cached.items.items()):
            if item.in_roster:
                result.addChild(item_element(item, contact))
        return event.result(result)

    def foreign(self, event: StanzaEvent) -> None:
        # RFC 6121 §2.1.5 / SECURITY H57: nobody reads or writes another's roster.
        raise StanzaError("forbidden")

    # -- roster set (§2.3-§2.5) --------------------------------------------------

    def set(self, event: StanzaEvent) -> Any:
        session = event.origin
        if session is None:
            return None
        if session.user_id is None:
            raise StanzaError("not-allowed", text="anonymous accounts have no stored roster")
        query = event.stanza.firstChildElement()
        parsed = []
        for element in query.elements(NS_ROSTER, "item"):
            parsed.append(self._parse_item(element))
        try:
            item = subscription.check_roster_set(parsed, session.bare.userhost())
        except RosterError as e:
            raise StanzaError(e.condition, type=e.type, text=e.text) from None
        return self._apply(session, item, event)

    def _parse_item(self, element: domish.Element) -> RosterSetItem:
        raw = element.getAttribute("jid")
        try:
            contact = JID(raw).userhost() if raw else None
        except (InvalidFormat, UnicodeError, ValueError):
            raise StanzaError("jid-malformed") from None
        groups = tuple(str(g) for g in element.elements(NS_ROSTER, "group"))
        return RosterSetItem(
            contact=contact,
            name=element.getAttribute("name"),
            groups=groups,
            remove=element.getAttribute("subscription") == "remove",
        )

    @defer.inlineCallbacks
    def _apply(self, session: Session, item: RosterSetItem, event: StanzaEvent):
        def transaction(conn: Any) -> tuple[Outcome, int]:
            existing = roster_store.get_item(conn, session.user_id, item.contact)
            if item.remove:
                outcome = subscription.remove_item(existing)
            else:
                outcome = subscription.set_item(existing, item.contact, item.name, item.groups)
                if outcome.added:
                    subscription.check_roster_size(
                        roster_store.count_items(conn, session.user_id), self.max_items
                    )
            return outcome, self._write(conn, session.user_id, item.contact, outcome)

        try:
            outcome, version = yield self.db.run(transaction)
        except RosterError as e:
            raise StanzaError(e.condition, type=e.type, text=e.text) from None
        bare = session.bare.userhost()
        self._remember(bare, version, item.contact, outcome.item)
        if outcome.changed:
            self.push(bare, version, item.contact, outcome.item)
        if item.remove:
            # §2.5.2: end the subscriptions both ways.
            if outcome.send_unavailable:
                self._unavailable_to(session.bare, item.contact)
            for kind in outcome.send:
                self._send_subscription(bare, item.contact, kind)
        return event.result()

    @staticmethod
    def _write(conn: Any, user_id: int, contact: str, outcome: Outcome) -> int:
        if not outcome.write:
            return roster_store.roster_version(conn, user_id)
        if outcome.item is None:
            return roster_store.delete_item(conn, user_id, contact, bump=outcome.changed)
        return roster_store.save_item(conn, user_id, outcome.item, bump=outcome.changed)

    def push(self, bare: str, version: int, contact: str, item: RosterItem | None) -> None:
        """§2.1.6: a roster push to each interested resource, from the bare JID."""
        for session in self.server.sessions.of(bare):
            if not session.interested:
                continue
            iq = domish.Element((None, "iq"))
            iq["type"] = "set"
            iq["id"] = f"push{version}"
            iq["to"] = session.jid.full()
            query = iq.addElement((NS_ROSTER, "query"))
            if self.versioning:
                query["ver"] = str(version)
            query.addChild(item_element(item, contact))
            session.send(iq)

    # -- subscriptions (§3) -------------------------------------------------------

    def outbound(self, event: StanzaEvent) -> Any:
        """A local user's client sends a subscription presence (Appendix A.2)."""
        kind = event.type
        session = event.origin
        if kind not in SUBSCRIPTION_TYPES or session is None:
            return None
        contact = event.to.userhost()
        bare = session.bare.userhost()
        if contact == bare:
            return True  # nothing to subscribe to
        event.stanza["from"] = bare  # §3.1.1: stamped with the bare JID
        event.stanza["to"] = contact
        if session.user_id is None:
            return True
        return self._transition(
            session.user_id, bare, contact, subscription.OUTBOUND[kind]
        ).addCallback(self._after_outbound, event, bare, contact)

    def _after_outbound(
        self, outcome: Outcome, event: StanzaEvent, bare: str, contact: str
    ) -> bool:
        if outcome.send_unavailable:
            self._unavailable_to(JID(bare), contact)
        routed = defer.maybeDeferred(self.router.deliver, event.stanza) if outcome.route else None
        if outcome.send_presence:
            # §3.1.5: the approval first, then the approver's presence.
            presence = defer.maybeDeferred(lambda: None) if routed is None else routed
            return presence.addCallback(lambda _: self._presence_to(bare, contact) or True)
        return True

    def _presence_to(self, bare: str, contact: str) -> None:
        for session in self.server.sessions.of(bare):
            if session.available and session.presence is not None:
                self.server.presence.send_presence_of(session, contact)

    def inbound(self, event: StanzaEvent) -> Any:
        """A subscription presence arrives for a local account (Appendix A.3)."""
        kind = event.type
        if kind not in SUBSCRIPTION_TYPES:
            return None
        user = bare_jid(event.to)
        user_id = user_id_of(user, self.domain)
        contact = event.sender.userhost()
        if user_id is None:
            return True
        d = defer.maybeDeferred(self.server.account_exists, user)
        d.addCallback(self._inbound_known, user_id, user.userhost(), contact, kind, event)
        return d

    def _inbound_known(
        self, exists: bool, user_id: int, bare: str, contact: str, kind: str, event: StanzaEvent
    ) -> Any:
        if not exists:
            return True  # RFC 6121 §3.1.3: silently ignored (no existence oracle)
        return self._transition(user_id, bare, contact, subscription.INBOUND[kind]).addCallback(
            self._after_inbound, event, bare, contact
        )

    def _after_inbound(self, outcome: Outcome, event: StanzaEvent, bare: str, contact: str) -> bool:
        if outcome.route:
            stanza = event.stanza
            stanza["to"] = bare
            for session in self.server.sessions.of(bare):
                if session.available:
                    session.send(stanza)
        if outcome.auto_reply:
            self._send_subscription(bare, contact, outcome.auto_reply)
        if outcome.send_presence:
            self._presence_to(bare, contact)
        if outcome.send_unavailable:
            self._unavailable_to(JID(bare), contact)
        return True

    def _transition(self, user_id: int, bare: str, contact: str, step: Any) -> defer.Deferred:
        def transaction(conn: Any) -> tuple[Outcome, int]:
            existing = roster_store.get_item(conn, user_id, contact)
            outcome = step(existing, contact)
            if outcome.added:
                subscription.check_roster_size(
                    roster_store.count_items(conn, user_id), self.max_items
                )
            return outcome, self._write(conn, user_id, contact, outcome)

        d = self.db.run(transaction)

        def applied(result: tuple[Outcome, int]) -> Outcome:
            outcome, version = result
            self._remember(bare, version, contact, outcome.item)
            if outcome.changed:
                self.push(bare, version, contact, outcome.item)
            return outcome

        def refused(failure: Any) -> Any:
            failure.trap(RosterError)
            raise StanzaError(
                failure.value.condition, type=failure.value.type, text=failure.value.text
            )

        return d.addCallbacks(applied, refused)

    def _send_subscription(self, bare: str, contact: str, kind: str) -> None:
        presence = domish.Element(("jabber:client", "presence"))
        presence["from"] = bare
        presence["to"] = contact
        presence["type"] = kind
        self.router.deliver(presence)

    def _unavailable_to(self, user: JID, contact: str) -> None:
        for session in self.server.sessions.of(user):
            if session.available:
                presence = domish.Element(("jabber:client", "presence"))
                presence["from"] = session.jid.full()
                presence["to"] = contact
                presence["type"] = "unavailable"
                self.router.deliver(presence)
