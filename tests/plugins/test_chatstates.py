"""plugins/chatstates: XEP-0085 chat states routed, never stored, through the real
router, with plugins/offline and plugins/dialogs as the stores they stay out of."""

from __future__ import annotations

import pytest
import pytest_twisted
from sqlalchemy import func, select

from plugins.chatstates import standalone
from plugins.dialogs.tables import dialogs_messages
from plugins.offline import store
from tests.harness import DOMAIN, Harness, parse

NS = "http://jabber.org/protocol/chatstates"
STATES = ("active", "composing", "paused", "inactive", "gone")


def start(tmp_path):
    return Harness.start(
        tmp_path, plugins={"enabled": ["disco", "dialogs", "offline", "chatstates"]}
    )


def state(to: str, name: str = "composing", extra: str = "") -> str:
    return f"<message to='{to}' type='chat'><{name} xmlns='{NS}'/>{extra}</message>"


def saved(h: Harness):
    return h.server.db.run(
        lambda conn: conn.execute(select(func.count()).select_from(dialogs_messages)).scalar_one()
    )


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (f"<message><composing xmlns='{NS}'/></message>", True),
        (f"<message><thread>t1</thread><gone xmlns='{NS}'/></message>", True),
        (f"<message><paused xmlns='{NS}'/><no-store xmlns='urn:xmpp:hints'/></message>", True),
        (
            f"<message><composing xmlns='{NS}'/><extraParams><save_to_history>1"
            "</save_to_history><dialog_id>d</dialog_id></extraParams></message>",
            True,
        ),
        (f"<message><body>hi</body><active xmlns='{NS}'/></message>", False),
        (
            f"<message><active xmlns='{NS}'/><extraParams><attachment uid='u' type='image'/>"
            "</extraParams></message>",
            False,
        ),
        (f"<message><active xmlns='{NS}'/><x xmlns='urn:other'/></message>", False),
        ("<message><thread>t1</thread></message>", False),
    ],
)
def test_standalone_notification(xml, expected):
    """§2, §5.6: a standalone notification holds a chat state and no content."""
    assert standalone(parse(xml)) is expected


@pytest_twisted.inlineCallbacks
def test_every_state_is_routed(tmp_path):
    """§2, RFC 6121 §8.5: the five states reach the recipient's resource unchanged."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        for name in STATES:
            yield h.send(alice, state(h.jid_of("bob"), name))
        got = bob.take()
        assert [next(m.elements()).name for m in got] == list(STATES)
        assert all(next(m.elements()).uri == NS and m["from"] == alice.jid for m in got)
        yield h.send(alice, state(bob.jid, "paused"))  # to the full JID too
        assert [next(m.elements()).name for m in bob.take()] == ["paused"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_standalone_to_offline_user_is_dropped_silently(tmp_path):
    """§5.8 (XEP-0160 §3): not stored offline and no error to the sender; a
    content message with <active/> is stored as usual."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.user("bob")
        yield h.send(alice, state(h.jid_of("bob")))
        assert alice.take() == []
        assert (yield h.server.db.run(store.count, bob.id)) == 0
        yield h.send(alice, state(h.jid_of("bob"), "active", "<body>hi</body>"))
        assert alice.take() == []
        assert (yield h.server.db.run(store.count, bob.id)) == 1
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_standalone_is_never_saved_to_history(tmp_path):
    """Issue 4: a typing notice asking save_to_history is delivered without it and
    not saved by plugins/dialogs; a body message with it still is."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        extra = (
            "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>"
        )
        yield h.send(alice, state(h.jid_of("bob"), "composing", extra))
        [typing] = bob.take()
        assert typing.extraParams is not None and typing.extraParams.save_to_history is None
        assert (yield saved(h)) == 0
        yield h.send(alice, state(h.jid_of("bob"), "active", "<body>kept</body>" + extra))
        assert (yield saved(h)) == 1
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_disco_advertises_chatstates(tmp_path):
    """§4: the feature is advertised."""
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
