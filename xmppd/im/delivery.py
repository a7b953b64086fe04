"""RFC 6121 §8: what the server does with a stanza for each kind of address.

These handlers sit at ``Priority.DELIVER`` on the ``{kind}/{dest}`` events, after
every plugin has had its say. They never talk to a socket themselves: sessions
come from the :class:`~xmppd.sessions.SessionDirectory`, which may hold
resources on other nodes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from xmppd.events import Priority
from xmppd.router import Router, StanzaEvent, available_resources, message_recipients
from xmppd.stanza import bare_jid


class Delivery:
    """The core's default delivery rules."""

    def __init__(self, router: Router) -> None:
        self.router = router
        on = router.events.on
        for name, handler in (
            ("message/bare", self.message_to_bare),
            ("message/full", self.message_to_full),
            ("message/host", self.drop),
            ("presence/bare", self.presence_to_bare),
            ("presence/full", self.presence_to_full),
            ("presence/host", self.drop),
            ("iq/full", self.iq_to_full),
            ("iq/bare", self.iq_to_account),
            ("iq/self", self.iq_to_account),
            ("iq/host", self.iq_to_account),
            ("message/remote", self.remote),
            ("presence/remote", self.drop),
            ("iq/remote", self.remote),
            ("message/offline", self.no_offline_storage),
        ):
            on(name, handler, Priority.DELIVER, owner="core")

    def drop(self, event: StanzaEvent) -> bool:
        return True

    def remote(self, event: StanzaEvent) -> bool:
        # No server-to-server yet: RFC 6120 §8.3.3.15.
        self.router.bounce(event, "remote-server-not-found")
        return True

    def _send(self, sessions: list[Any], event: StanzaEvent) -> bool:
        stanza = event.stanza
        if len(sessions) == 1:
            sessions[0].send(stanza)
        else:
            for session in sessions:
                session.send(stanza)
        return True

    # -- message: RFC 6121 §8.5.2 (bare), §8.5.3 (full), §8.5.1 (no account) --

    def message_to_bare(self, event: StanzaEvent) -> Any:
        recipients = event.recipients
        if recipients is None:
            recipients = message_recipients(self.router, event)
        kind = event.type or "normal"
        if kind == "groupchat":
            self.router.bounce(event, "service-unavailable")  # §8.5.2.1.1
            return True
        if recipients:
            return self._send(recipients, event)
        if kind == "error" or kind == "headline":
            return True  # §8.5.2.2.1: silently ignored
        return self._offline(event)

    def _offline(self, event: StanzaEvent) -> Any:
        exists = self.router.account_exists(bare_jid(event.to))
        if isinstance(exists, Deferred):
            return exists.addCallback(self._offline_known, event)
        return self._offline_known(exists, event)

    def _offline_known(self, exists: bool, event: StanzaEvent) -> Any:
        if not exists:
            self.router.bounce(event, "service-unavailable")  # §8.5.1
            return True
        # §8.5.2.2.1: store offline (a plugin) or bounce.
        return self.router.events.fire("message/offline", event)

    def no_offline_storage(self, event: StanzaEvent) -> bool:
        self.router.bounce(event, "service-unavailable")
        return True

    def message_to_full(self, event: StanzaEvent) -> Any:
        session = self.router.sessions.get(event.to)
        if session is not None:
            session.send(event.stanza)
            return True
        kind = event.type or "normal"
        if kind in ("error", "headline"):
            return True  # §8.5.3.2.1: silently ignored
        if kind == "groupchat":
            self.router.bounce(event, "service-unavailable")
            return True
        # §8.5.3.2.1: normal and chat are treated as if sent to the bare JID.
        event.recipients = message_recipients(self.router, event)
        return self.message_to_bare(event)

    # -- presence: RFC 6121 §8.5.2.1.2, §8.5.3 --------------------------------
    # Subscription and probe presence are taken before this by xmppd.im.presence.

    def presence_to_bare(self, event: StanzaEvent) -> bool:
        if event.type in (None, "unavailable", "error"):
            self._send(available_resources(self.router, event.to), event)
        return True

    def presence_to_full(self, event: StanzaEvent) -> bool:
        session = self.router.sessions.get(event.to)
        if session is not None and event.type in (None, "unavailable", "error"):
            session.send(event.stanza)
        return True  # §8.5.3.2.3: otherwise silently ignored

    # -- iq: RFC 6121 §8.5.2.1.3, §8.5.3.1 --------------------------------------

    def iq_to_full(self, event: StanzaEvent) -> bool:
        session = self.router.sessions.get(event.to)
        if session is not None:
            session.send(event.stanza)
        elif event.type in ("get", "set"):
            self.router.bounce(event, "service-unavailable")  # §8.5.3.2.3
        return True

    def iq_to_account(self, event: StanzaEvent) -> bool:
        """An IQ to the server or an account that no handler took: RFC 6120
        §8.4 and RFC 6121 §8.5.2.1.3 answer ``service-unavailable``; results and
        errors are either replies to the server's own requests or ignored."""
        if event.type in ("get", "set"):
            self.router.bounce(event, "service-unavailable")
        elif event.dest in ("host", "self") and event.origin is not None:
            self.router.iq_reply_received(event)  # a reply to the server's own request
        return True
