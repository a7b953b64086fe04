"""The server object and its service tree.

:class:`Server` wires the core together: storage, accounts, the session
directory and its fan-out, the event bus, the router with RFC 6121 delivery,
roster and presence, and the plugins. :class:`XmppService` is the ``IService``
``twistd`` runs: it starts plugins, then the listeners (c2s and HTTP), and on stop sends every
client ``<system-shutdown/>`` (RFC 6120 §4.9.3.20) before closing.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID

from xmppd.accounts import Accounts, User
from xmppd.cluster import InProcessFanOut
from xmppd.config import Config
from xmppd.events import EventBus
from xmppd.http import HttpSite, http_endpoints
from xmppd.im.delivery import Delivery
from xmppd.im.presence import Presence
from xmppd.im.roster import Roster
from xmppd.registry import PluginSet, check
from xmppd.router import Router
from xmppd.sessions import Session, SessionDirectory
from xmppd.storage import Database
from xmppd.stream.c2s import ClientStreamFactory
from xmppd.stream.throttle import LoginThrottle
from xmppd.stream.tls import server_tls
from xmppd.stream.websocket import PATH, websocket_resource

log = Logger()
SHUTDOWN_GRACE = 5.0  # seconds clients get to receive <system-shutdown/>


class Server:
    """Everything one xmppd node needs, built from a validated :class:`Config`."""

    def __init__(
        self, config: Config, reactor: Any = None, clock: Any = None, db: Database | None = None
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.clock = clock or reactor  # timers; tests pass a task.Clock
        self.domain = config.server.domain
        self.var_dir = config.resolve("var")
        self.db = db or Database(config.storage.url, config.storage.pool_size, reactor=reactor)
        self.accounts = Accounts(self.db)
        self.credentials = self.accounts
        self.events = EventBus()
        self.sessions = SessionDirectory(InProcessFanOut())
        self.router = Router(
            self.domain, self.sessions, self.events, self.clock, self.account_exists
        )
        self.delivery = Delivery(self.router)
        self.roster = Roster(self)
        self.presence = Presence(self)
        self.login_throttle = LoginThrottle(
            self.clock, max_failures=config.c2s.max_auth_failures, lockout=config.c2s.auth_lockout
        )
        self.streams: dict[Any, defer.Deferred] = {}  # open streams -> fires when closed
        self.streams_by_ip: Counter[str] = Counter()  # open streams per peer address
        self.tls = server_tls(
            self.domain,
            config.tls.cert and config.resolve(config.tls.cert),
            config.tls.key and config.resolve(config.tls.key),
            self.var_dir,
        )
        self.http = HttpSite(config.http.max_body_size)  # plugins mount on it
        if config.http.websocket:
            self.http.mount(PATH, websocket_resource(self))  # RFC 7395, a core transport
        self.plugins = PluginSet(self, check(config))
        self.accounts.deleted_listeners.append(self.user_deleted)

    def account_exists(self, bare: JID) -> Any:
        if bare.host != self.domain or bare.user is None:
            return False
        if self.sessions.count(bare):
            return True
        return self.accounts.localpart_exists(bare.user)

    @defer.inlineCallbacks
    def bind_session(self, session: Session):
        """Register a bound resource (RFC 6120 §7); an older stream with the
        same full JID is closed with ``<conflict/>`` (§7.7.2.2)."""
        yield self.roster.session_bound(session)
        old = self.sessions.add(session)
        if old is not None:
            old.close("conflict")
            old.closed = True
            self.presence.session_gone(old)
        yield self.events.fire("session-bound", session)

    def user_deleted(self, user: User) -> None:
        """An account was deleted through :meth:`Accounts.delete_user` (the REST
        API, a plugin): its streams end with ``<not-authorized/>`` (RFC 6120
        §4.9.3.12: it may no longer act as that entity), then every
        ``user-deleted`` handler drops what it cached for the user id."""
        for session in self.sessions.of(user.jid(self.domain)):
            session.close("not-authorized", "The account has been deleted")
        self.events.fire_all("user-deleted", user.id)

    def session_closed(self, session: Session) -> None:
        """The stream ended: unavailable presence (RFC 6121 §4.5.2), forget it."""
        self.sessions.remove(session)
        self.presence.session_gone(session)
        self.roster.session_gone(session)
        self.events.fire_all("session-closed", session)


class XmppService(service.MultiService):
    """The ``IService`` behind ``twistd xmppd``."""

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server
        self.ports: list[Any] = []

    @defer.inlineCallbacks
    def startService(self):
        super().startService()
        server = self.server
        server.db.start()
        yield server.plugins.start()
        c2s = server.config.c2s
        listeners = []
        if c2s.port:
            listeners.append(
                (
                    "c2s (STARTTLS)",
                    endpoints.TCP4ServerEndpoint(server.reactor, c2s.port, interface=c2s.interface),
                    False,
                )
            )
        if c2s.tls_port:
            listeners.append(
                (
                    "c2s (direct TLS)",
                    endpoints.SSL4ServerEndpoint(
                        server.reactor, c2s.tls_port, server.tls, interface=c2s.interface
                    ),
                    True,
                )
            )
        factories = [
            (label, endpoint, ClientStreamFactory(server, direct_tls=direct))
            for label, endpoint, direct in listeners
        ]
        factories += [
            (label, endpoint, server.http)
            for label, endpoint in http_endpoints(server.reactor, server.config, server.tls)
        ]
        for label, endpoint, factory in factories:
            port = yield endpoint.listen(factory)
            self.ports.append(port)
            address = port.getHost()
            log.info(
                "{label} listening on {host}:{port}",
                label=label,
                host=address.host,
                port=address.port,
            )
        log.info(
            "xmppd serving {domain} (storage: {url})",
            domain=server.domain,
            url=_redact(server.config.storage.url),
        )

    @defer.inlineCallbacks
    def stopService(self):
        for port in self.ports:
            yield port.stopListening()
        self.ports.clear()
        streams = dict(self.server.streams)
        for stream in streams:
            stream.close_with_error("system-shutdown")  # RFC 6120 §4.9.3.20
        if streams:
            # Let the errors reach the clients before the reactor drops sockets.
            closed = defer.DeferredList(list(streams.values()))
            closed.addTimeout(SHUTDOWN_GRACE, self.server.reactor)
            yield closed.addErrback(lambda _: None)
        yield self.server.plugins.stop()
        yield super().stopService()
        self.server.db.stop()


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


def var_path(config: Config, *parts: str) -> str:
    return os.path.join(config.resolve("var"), *parts)
