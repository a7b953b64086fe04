"""plugins/destroy: self-destroying messages (``urn:xmpp:message-destroy-after:0``)
routed, never saved to history, bounded; offline copies expire (plugins/offline)."""

from __future__ import annotations

import pytest_twisted
from sqlalchemy import func, select

from plugins.dialogs.tables import dialogs_messages
from plugins.offline import store
from tests.harness import DOMAIN, Harness

NS = "urn:xmpp:message-destroy-after:0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SAVE = "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>"


def start(tmp_path, **options):
    return Harness.start(
        tmp_path,
        plugins={"enabled": ["disco", "dialogs", "offline", "destroy"], **options},
    )


def burning(to: str, after: str = "5", extra: str = SAVE) -> str:
    return (
        f"<message to='{to}' type='chat' id='b1'><body>secret</body>{extra}"
        f"<destroy xmlns='{NS}' after='{after}'/></message>"
    )


def saved(h: Harness):
    return h.server.db.run(
        lambda c: c.execute(select(func.count()).select_from(dialogs_messages)).scalar_one()
    )


@pytest_twisted.inlineCallbacks
def test_routed_with_destroy_and_never_saved(tmp_path):
    """Routed with its <destroy/>; its save_to_history is removed, so plugins/dialogs
    keeps no copy (the server keeps none past N seconds)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        yield h.send(alice, burning(h.jid_of("bob")))
        [got] = bob.take()
        [destroy] = list(got.elements(NS, "destroy"))
        assert destroy["after"] == "5" and str(got.body) == "secret"
        assert got.extraParams.save_to_history is None
        assert alice.take() == []
        assert (yield saved(h)) == 0
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_bad_after_is_bad_request(tmp_path):
    """RFC 6120 §8.3.3.1: 'after' outside 1..max_after, not a whole number, or two
    <destroy/> elements: bad-request (legacy code 400), nothing delivered."""
    h = yield start(tmp_path, destroy={"max_after": 60})
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        twice = f"<destroy xmlns='{NS}' after='5'/>"
        for stanza in (
            burning(h.jid_of("bob"), "0"),
            burning(h.jid_of("bob"), "61"),
            burning(h.jid_of("bob"), "1.5"),
            burning(h.jid_of("bob"), "-3"),
            burning(h.jid_of("bob"), "\u00b2"),
            burning(h.jid_of("bob"), "5", twice),
            f"<message to='{h.jid_of('bob')}' type='chat'><body>x</body><destroy xmlns='{NS}'/>"
            "</message>",
        ):
            yield h.send(alice, stanza)
            [error] = alice.take()
            assert error["type"] == "error", stanza
            names = [c.name for c in error.error.elements() if c.uri == NS_STANZAS][:1]
            assert names == ["bad-request"] and error.error["code"] == "400"
        assert bob.take() == []
        yield h.send(alice, burning(h.jid_of("bob"), "60"))
        assert len(bob.take()) == 1
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_offline_copy_expires_after_n_seconds(tmp_path):
    """The offline copy is deleted N seconds after it was stored (plugins/offline)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.user("bob")
        yield h.send(alice, burning(h.jid_of("bob"), "30"))
        assert alice.take() == []
        assert (yield h.server.db.run(store.count, bob.id)) == 1
        assert (yield saved(h)) == 0
        h.clock.advance(30)
        yield h.settle()
        assert (yield h.server.db.run(store.count, bob.id)) == 0
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_disco_advertises_the_namespace(tmp_path):
    """The feature is advertised, so a client can tell the server honours it."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        yield h.send(
            alice,
            f"<iq type='get' id='d1' to='{DOMAIN}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        [reply] = alice.take()
        features = [f["var"] for f in reply.firstChildElement().elements() if f.name == "feature"]
        assert NS in features
    finally:
        yield h.stop()
