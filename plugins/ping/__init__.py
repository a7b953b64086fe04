"""XEP-0199: XMPP Ping (2.0.1).

Takes ``<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>`` to the server, or
to the sender's own bare JID or with no ``to`` ("equivalent to directing the
IQ-get to the server itself", §4.2), and answers with an empty result.

Pings idle clients (§4.1): every ``interval / 4`` seconds it looks through
this node's sessions, and sends a ping to each one silent for ``interval``
seconds (at most ``max_pings`` per look; the rest wait for the next one). Any
answer clears the ping: a result, or an error from a client without XEP-0199,
which still proves the stream alive (§3: "either an IQ-result ... or an
IQ-error"). No answer within ``timeout`` closes the stream with
``connection-timeout`` (RFC 6120 §4.9.3.4).

Stores, per session, the Deferred of the ping it is waiting for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.words.xish import domish

from xmppd.config import opt
from xmppd.plugin import Plugin, PluginContext, hook, iq_get
from xmppd.router import NS_CLIENT, StanzaEvent
from xmppd.sessions import Session

NS_PING = "urn:xmpp:ping"


class Ping(Plugin):
    name = "ping"
    implements = ("XEP-0199 2.0.1",)
    features = (NS_PING,)

    @dataclass(frozen=True)
    class Config:
        ping_clients: bool = opt(True, "Ping clients that have been silent for `interval`.")
        interval: float = opt(
            300.0, "Seconds a client may be silent before the server pings it.", min=5.0
        )
        timeout: float = opt(
            60.0, "Seconds to wait for the answer before closing the stream.", min=1.0
        )
        max_pings: int = opt(1000, "Most pings sent per look at the sessions.", min=1)

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: Ping.Config = ctx.config
        self.waiting = ctx.session_slot("waiting")  # Deferred of the unanswered ping
        self.looks = task.LoopingCall(self.ping_idle)
        self.looks.clock = ctx.clock

    def start(self) -> None:
        if self.config.ping_clients:
            done = self.looks.start(self.config.interval / 4, now=False)
            done.addErrback(lambda f: self.ctx.log.failure("idle client pings stopped", f))

    def stop(self) -> None:
        if self.looks.running:
            self.looks.stop()
        for session in self.ctx.sessions.local():
            self.forget(session)

    # -- pings from clients (§4.2) --------------------------------------------

    @iq_get(NS_PING, "ping", to="host")
    @iq_get(NS_PING, "ping", to="self")
    def pong(self, event: StanzaEvent) -> domish.Element:
        return event.result()

    # -- pings to clients (§4.1) ----------------------------------------------

    def ping_idle(self) -> None:
        now = self.ctx.clock.seconds()
        budget = self.config.max_pings
        for session in self.ctx.sessions.local():
            if budget == 0:
                break
            if session.closed or self.waiting.get(session) is not None:
                continue
            if now - session.last_received >= self.config.interval:
                budget -= 1
                try:
                    self.ping(session)
                except Exception:  # one broken stream must not stop the pings
                    self.ctx.log.failure("cannot ping {jid}", jid=session.jid.full())

    def ping(self, session: Session) -> None:
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "get"
        iq.addElement((NS_PING, "ping"))
        d = self.ctx.router.send_iq(session, iq, self.config.timeout)
        self.waiting.set(session, d)
        d.addCallbacks(
            self.answered, self.unanswered, callbackArgs=(session,), errbackArgs=(session,)
        )

    def answered(self, reply: domish.Element, session: Session) -> None:
        self.waiting.set(session, None)  # §3: a result or an error, the client is there

    def unanswered(self, failure: Failure, session: Session) -> Any:
        self.waiting.set(session, None)
        if failure.check(defer.TimeoutError):
            self.ctx.log.info("{jid} did not answer a ping", jid=session.jid.full())
            session.close("connection-timeout")  # RFC 6120 §4.9.3.4
            return None
        if failure.check(defer.CancelledError):  # forgotten: the session closed
            return None
        return failure

    @hook("session-closed")
    def forget(self, session: Session) -> None:
        """Stop waiting for a session that is gone (frees the timer)."""
        d = self.waiting.get(session)
        if d is not None:
            d.cancel()
