"""Where privacy lists act on routing (XEP-0016 §2.2, §2.9-§2.14; XEP-0191 §3.3).

Mixed into :class:`plugins.privacy.Privacy`, whose cache it reads (``with_lists``,
``list_for``); every check runs at ``Priority.FILTER`` and, for users whose lists are in
memory, without waiting.
"""

from __future__ import annotations

from typing import Any

from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from plugins.privacy.lists import NS_BLOCKING_ERRORS, OTHER
from plugins.privacy.store import UserPrivacy
from xmppd.plugin import PluginContext, Priority, StanzaError, hook
from xmppd.router import StanzaEvent
from xmppd.sessions import Session
from xmppd.stanza import parse_jid


def notification(stanza: domish.Element) -> bool:
    """XEP-0016 §2: presence notifications are presence without a type or 'unavailable'."""
    return stanza.getAttribute("type") in (None, "unavailable")


def inbound_kind(stanza: domish.Element) -> str:
    if stanza.name == "presence":
        return "presence-in" if notification(stanza) else OTHER
    return stanza.name  # message | iq


def outbound_kind(stanza: domish.Element) -> str:
    # §2.1: <message/>, <iq/>, <presence-in/> name inbound stanzas only.
    if stanza.name == "presence" and notification(stanza):
        return "presence-out"
    return OTHER


class Routing:
    """The privacy checks on stanzas; see the module docstring of plugins.privacy."""

    ctx: PluginContext
    domain: str
    cache: dict[int, UserPrivacy]
    with_lists: Any
    list_for: Any

    # -- enforcement ------------------------------------------------------------------

    def _exempt(self, a: JID, b: JID) -> bool:
        """Never filtered: one's own resources (§2.1 note) and the server itself."""
        return a.userhost() == b.userhost() or a.user is None and a.host == self.domain

    def keep(self, session: Session, stanza: domish.Element) -> domish.Element | None:
        """The session's outgoing filter: its own list on what reaches it (§2.2 rule 1)."""
        state = self.cache.get(session.user_id) if session.user_id is not None else None
        if not state or not state.lists:
            return stanza
        sender = stanza.getAttribute("from")
        try:
            other = parse_jid(sender) if sender else None
        except (InvalidFormat, UnicodeError, ValueError):
            return stanza
        if other is None or self._exempt(other, session.bare):
            return stanza
        if state.denies(self.list_for(session, state), other, inbound_kind(stanza)):
            return None
        return stanza

    @hook(
        "pre-message/full",
        "pre-message/bare",
        "pre-message/remote",
        "pre-iq/full",
        "pre-iq/bare",
        "pre-iq/remote",
        "pre-presence/full",
        "pre-presence/bare",
        "pre-presence/remote",
        priority=Priority.FILTER,
    )
    def outbound(self, event: StanzaEvent) -> Any:
        """§2.13: an item with no child refuses the user's own stanzas to that JID."""
        session = event.origin
        if session is None or self._exempt(event.to, session.bare):
            return None

        def decide(state: UserPrivacy) -> Any:
            if not state.denies(self.list_for(session, state), event.to, OTHER):
                return None
            if event.kind != "presence":
                self.refuse_own(event)
            return True

        return self.with_lists(session.bare, decide)

    def refuse_own(self, event: StanzaEvent) -> None:
        """XEP-0016 §2.14, XEP-0191 §3.3: ``not-acceptable`` with ``<blocked/>``,
        written past the session's filters (its list would hide an error 'from'
        the blocked JID)."""
        if event.type in ("error", "result") or event.origin is None:
            return
        blocked = domish.Element((NS_BLOCKING_ERRORS, "blocked"))
        reply = StanzaError("not-acceptable", appCondition=blocked).toResponse(event.stanza)
        reply["to"] = event.origin.jid.full()
        event.origin.stream.send(reply)

    @hook(
        "message/full",
        "message/bare",
        "iq/full",
        "iq/bare",
        "pre-iq/bare",
        priority=Priority.FILTER,
    )
    def inbound(self, event: StanzaEvent) -> Any:
        """§2.9, §2.12, §2.14: messages and IQs for a user, from someone refused."""
        if self._exempt(event.sender, event.to):
            return None
        kind = event.kind
        target = self.ctx.sessions.get(event.to) if event.dest == "full" else None

        def decide(state: UserPrivacy) -> Any:
            if not state.lists:
                return None
            if event.kind == "message" and event.dest == "bare" and event.recipients:
                allowed = [s for s in event.recipients if not self._refuses(s, state, event)]
                if allowed:
                    event.recipients = allowed  # the others' lists refuse it
                    return None
            elif not self._refuses(target, state, event):
                return None
            # §2.14: the user appears offline; never an error to a room or to an error.
            if kind == "iq" or event.type not in ("groupchat", "error"):
                self.ctx.router.bounce(event, "service-unavailable")
            return True

        return self.with_lists(event.to, decide)

    def _refuses(self, session: Session | None, state: UserPrivacy, event: StanzaEvent) -> bool:
        plist = self.list_for(session, state)
        return state.denies(plist, event.sender, inbound_kind(event.stanza))

    @hook("presence/full", "presence/bare", priority=Priority.FILTER)
    def presence(self, event: StanzaEvent) -> Any:
        """§2.11: the sender's presence-out; §2.13: subscriptions and probes from
        someone refused (notifications in: per session, in :meth:`keep`). Silent."""
        if self._exempt(event.sender, event.to):
            return None
        sender_session = self.ctx.sessions.get(event.sender) if event.sender.resource else None

        def sender_refuses(state: UserPrivacy) -> Any:
            plist = self.list_for(sender_session, state)
            if state.denies(plist, event.to, outbound_kind(event.stanza)):
                return True
            if notification(event.stanza):
                return None
            return self.with_lists(event.to, recipient_refuses)

        def recipient_refuses(state: UserPrivacy) -> Any:
            return True if state.denies(state.default_list, event.sender, OTHER) else None

        return self.with_lists(event.sender, sender_refuses)
