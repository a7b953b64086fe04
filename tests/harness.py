"""A real xmppd core for fast tests: real router, storage (SQLite file) and
plugins; fake client streams instead of sockets; a ``task.Clock`` for timers.

    h = yield Harness.start(tmp_path)
    alice = yield h.login("alice")          # a bound Session; alice.out holds what it received
    h.send(alice, "<message to='...' type='chat'><body>hi</body></message>")
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.words.xish import domish

from xmppd.accounts import Accounts
from xmppd.config import parse_config
from xmppd.registry import migrate
from xmppd.service import Server
from xmppd.sessions import Session
from xmppd.stream.parser import StreamParser

DOMAIN = "example.test"


def parse(xml: str) -> domish.Element:
    """One stanza from text, in the jabber:client namespace."""
    found: list[domish.Element] = []
    parser = StreamParser(lambda h: None, found.append, lambda: None)
    parser.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        b" to='x' version='1.0'>" + xml.encode()
    )
    assert len(found) == 1, xml
    return found[0]


class FakeStream:
    """Stands in for a client connection: records what the server sends."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.peer_address = address
        self.out: list[domish.Element] = []
        self.closed_with: str | None = None

    def send(self, element: domish.Element) -> None:
        self.out.append(element)

    def close_with_error(self, condition: str, text: str | None = None) -> None:
        self.closed_with = condition


class Client:
    """A bound test session and what it has received."""

    def __init__(self, session: Session, stream: FakeStream) -> None:
        self.session = session
        self.stream = stream

    @property
    def jid(self) -> str:
        return self.session.jid.full()

    @property
    def bare(self) -> str:
        return self.session.bare.userhost()

    @property
    def out(self) -> list[domish.Element]:
        return self.stream.out

    def take(self) -> list[domish.Element]:
        received, self.stream.out[:] = list(self.stream.out), []
        return received


class Harness:
    def __init__(self, server: Server, clock: task.Clock, app_id: int) -> None:
        self.server = server
        self.clock = clock
        self.app_id = app_id
        self.users: dict[str, Any] = {}

    @classmethod
    @defer.inlineCallbacks
    def start(cls, tmp_path: Any, **sections: Any):
        raw = {
            "server": {"domain": DOMAIN},
            # The core alone unless a test enables plugins: core tests test RFC rules
            # (e.g. no offline storage: service-unavailable), not the default plugins.
            "plugins": {"enabled": ["disco", "ping", "time", "version"]},
            "storage": {"url": f"sqlite:///{os.path.join(str(tmp_path), 'xmppd.sqlite3')}"},
            **sections,
        }
        config = parse_config(raw, base_dir=str(tmp_path))
        clock = task.Clock()
        server = Server(config, reactor=reactor, clock=clock)
        server.db.start()
        migrate(server.db, config)
        yield server.plugins.start()
        app = yield server.accounts.create_app("test")
        return cls(server, clock, app.id)

    @defer.inlineCallbacks
    def stop(self):
        yield self.server.plugins.stop()
        self.server.db.stop()

    @property
    def accounts(self) -> Accounts:
        return self.server.accounts

    @defer.inlineCallbacks
    def user(self, login: str):
        if login not in self.users:
            self.users[login] = yield self.accounts.create_user(self.app_id, login, "secret")
        return self.users[login]

    def jid_of(self, login: str) -> str:
        user = self.users[login]
        return f"{user.id}-{self.app_id}@{DOMAIN}"

    @defer.inlineCallbacks
    def login(self, login: str, resource: str = "res", available: bool = False):
        from twisted.words.protocols.jabber.jid import JID

        user = yield self.user(login)
        stream = FakeStream()
        session = Session(
            JID(f"{user.id}-{self.app_id}@{DOMAIN}/{resource}"), stream, user.id, self.app_id
        )
        yield self.server.bind_session(session)
        client = Client(session, stream)
        if available:
            yield self.send(client, "<presence/>")
            client.take()
        return client

    def send(self, client: Client, xml: str | domish.Element) -> defer.Deferred:
        """Route a stanza from ``client``; the Deferred fires once it is handled."""
        stanza = parse(xml) if isinstance(xml, str) else xml
        self.server.router.receive(client.session, stanza)
        return self.settle()

    @defer.inlineCallbacks
    def settle(self):
        """Let database round trips finish (they run on the real thread pool)."""
        for _ in range(6):
            yield self.server.db.run(lambda conn: None)
            yield task.deferLater(reactor, 0, lambda: None)

    def disconnect(self, client: Client) -> defer.Deferred:
        client.session.closed = True
        self.server.session_closed(client.session)
        return self.settle()
