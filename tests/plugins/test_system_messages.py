"""plugins/system_messages: the hosted services' headline system messages
(SDK-CONTRACT §4.5) routed to one user's online resources, never stored."""

from __future__ import annotations

import pytest_twisted
from sqlalchemy import func, select

from plugins.dialogs.tables import dialogs_messages
from plugins.offline import store
from tests.harness import DOMAIN, Harness

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def start(tmp_path):
    return Harness.start(tmp_path, plugins={"enabled": ["dialogs", "offline", "system_messages"]})


def system(to: str, kind: str = "headline", extra: str = "") -> str:
    return (
        f"<message to='{to}' type='{kind}' id='s1'><body>ping</body>"
        "<extraParams xmlns='jabber:client'><moduleIdentifier>SystemNotifications"
        f"</moduleIdentifier><level>7</level>{extra}</extraParams></message>"
    )


def condition(stanza) -> str:
    assert stanza["type"] == "error", stanza.toXml()
    return next(c.name for c in stanza.error.elements() if c.uri == NS_STANZAS)


@pytest_twisted.inlineCallbacks
def test_delivered_to_every_online_resource_never_saved(tmp_path):
    """§4.5 "route, never store"; RFC 6121 §8.5.2.1.1: a headline reaches every
    non-negative resource; save_to_history is removed and nothing is saved."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        phone = yield h.login("bob", "phone", available=True)
        laptop = yield h.login("bob", "laptop", available=True)
        phone.take()  # the laptop's presence
        yield h.send(alice, system(h.jid_of("bob"), extra="<save_to_history>1</save_to_history>"))
        for client in (phone, laptop):
            [got] = client.take()
            assert got["type"] == "headline" and str(got.body) == "ping"
            assert str(got.extraParams.moduleIdentifier) == "SystemNotifications"
            assert str(got.extraParams.level) == "7"
            assert got.extraParams.save_to_history is None
        assert alice.take() == []
        count = yield h.server.db.run(
            lambda c: c.execute(select(func.count()).select_from(dialogs_messages)).scalar_one()
        )
        assert count == 0
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_offline_recipient_nothing_stored_no_error(tmp_path):
    """RFC 6121 §8.5.2.2.1, XEP-0160 §3: a headline for no resource is dropped."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.user("bob")
        yield h.send(alice, system(h.jid_of("bob")))
        assert alice.take() == []
        assert (yield h.server.db.run(store.count, bob.id)) == 0
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_group_chat_address_is_not_allowed(tmp_path):
    """FEATURES.md "1-1 only", SECURITY H65: to a room at muc.{domain} or as
    groupchat, refused with not-allowed (RFC 6120 §8.3.3.9, legacy code 405)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        room = f"1_65f0c0ffee0000000000abcd@muc.{DOMAIN}"
        for stanza in (system(room), system(room, "groupchat"), system(bob.jid, "groupchat")):
            yield h.send(alice, stanza)
            [error] = alice.take()
            assert condition(error) == "not-allowed" and error.error["code"] == "405"
        assert bob.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_other_headlines_pass_untouched(tmp_path):
    """Only SystemNotifications messages are taken: another headline keeps its
    extraParams as sent."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        yield h.send(
            alice,
            f"<message to='{h.jid_of('bob')}' type='headline'><body>x</body>"
            "<extraParams xmlns='jabber:client'><moduleIdentifier>WebRTCVideoChat"
            "</moduleIdentifier></extraParams></message>",
        )
        [got] = bob.take()
        assert str(got.extraParams.moduleIdentifier) == "WebRTCVideoChat"
    finally:
        yield h.stop()
