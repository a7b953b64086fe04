"""plugins/message_delete: XEP-0424 retraction and the hosted delete
(``urn:xmpp:message-delete:0``) routed, and the stored message deleted for
everyone by its sender only (SDK-CONTRACT §4.5; SECURITY H60, H61)."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.harness import DOMAIN, Harness
from tests.plugins.message_state_support import (
    MID,
    SAVE,
    child_names,
    condition,
    dialog,
    extra,
    history,
    message,
    saved,
    start,
)

NS_RETRACT = "urn:xmpp:message-retract:1"
NS_DELETE = "urn:xmpp:message-delete:0"
FALLBACK = (
    "<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/>"
    "<body>This person attempted to retract a previous message.</body>"
    "<store xmlns='urn:xmpp:hints'/>"
)


def remove(to: str, dialog_id: str | None, mid: str = MID, more: str = "") -> str:
    """The ConnectyCube SDK's ``chat.deleteMessage`` stanza (§4.5)."""
    return message(to, f"<remove xmlns='{NS_DELETE}' id='{mid}'/>" + extra(dialog_id, more))


def retract(to: str, mid: str = MID, more: str = "") -> str:
    """XEP-0424 §3: a retraction with its fallback body and store hint."""
    return message(to, f"<retract xmlns='{NS_RETRACT}' id='{mid}'/>{FALLBACK}{more}")


@pytest.fixture
def h(tmp_path):
    harness = start(tmp_path, "message_delete")
    yield harness
    pytest_twisted.blockon(harness.stop())


@pytest.mark.parametrize("form", ["remove", "retract"])
@pytest_twisted.inlineCallbacks
def test_sender_deletes_for_everyone_and_it_is_routed(h, form):
    """§4.5 delete / XEP-0424 §3: the sender's stored message is gone for everyone,
    the reader's unread count drops, last_message falls back to the previous one;
    the request reaches the other side and is not saved as a message."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    first = "65f0c0ffee00000000000001"
    dialog_id = yield saved(h, alice, h.jid_of("bob"), "first", first)
    yield saved(h, alice, h.jid_of("bob"), "oops", MID)
    bob.take()
    assert (yield dialog(h, "bob", dialog_id)).unread_messages_count == 2
    to = h.jid_of("bob")
    stanza = (
        remove(to, dialog_id, more=SAVE) if form == "remove" else retract(to, more=extra(more=SAVE))
    )
    yield h.send(alice, stanza)
    [got] = bob.take()
    assert form in child_names(got) and "extraParams/save_to_history" not in child_names(got)
    assert alice.take() == []
    assert list((yield history(h, "bob", dialog_id))) == [first]
    d = yield dialog(h, "bob", dialog_id)
    assert (d.unread_messages_count, d.last_message, d.last_message_id) == (1, "first", first)


@pytest.mark.parametrize("form", ["remove", "retract"])
@pytest_twisted.inlineCallbacks
def test_deleting_another_users_message_is_forbidden(h, form):
    """H61, XEP-0424 §6: Bob deleting Alice's stored message gets forbidden (legacy
    code 403); nothing is deleted and Alice receives nothing."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    to = h.jid_of("alice")
    yield h.send(bob, remove(to, dialog_id) if form == "remove" else retract(to))
    [error] = bob.take()
    assert condition(error) == ("403", "forbidden")
    assert alice.take() == []
    assert list((yield history(h, "alice", dialog_id))) == [MID]


@pytest_twisted.inlineCallbacks
def test_delete_naming_a_dialog_one_does_not_occupy_is_forbidden(h):
    """H60: a dialog_id the sender does not occupy, or an unknown one, is forbidden
    (the same answer); nothing is deleted or delivered."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    carol = yield h.login("carol", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    for named in (dialog_id, "f" * 24):
        yield h.send(carol, remove(h.jid_of("bob"), named, "0" * 24))
        [error] = carol.take()
        assert condition(error) == ("403", "forbidden")
    assert bob.take() == []
    assert list((yield history(h, "bob", dialog_id))) == [MID]


@pytest_twisted.inlineCallbacks
def test_delete_of_a_message_not_in_history_is_routed(h):
    """XEP-0424 §5 (receivers decide): an id never saved changes nothing and is
    delivered; deleting twice is the same (the second finds nothing)."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    yield h.send(alice, retract(h.jid_of("bob"), "0" * 24))
    yield h.send(alice, remove(h.jid_of("bob"), dialog_id))
    yield h.send(alice, remove(h.jid_of("bob"), dialog_id))
    assert len(bob.take()) == 3 and alice.take() == []
    assert list((yield history(h, "bob", dialog_id))) == []


@pytest_twisted.inlineCallbacks
def test_disco_advertises_message_retract(tmp_path):
    """XEP-0424 §2: the server lists urn:xmpp:message-retract:1 (and not the
    ConnectyCube namespace, which has no disco feature)."""
    h = yield Harness.start(tmp_path, plugins={"enabled": ["dialogs", "disco", "message_delete"]})
    try:
        alice = yield h.login("alice")
        yield h.send(
            alice,
            f"<iq type='get' id='d1' to='{DOMAIN}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        [reply] = alice.take()
        features = {f["var"] for f in reply.firstChildElement().elements() if f.name == "feature"}
        assert NS_RETRACT in features and NS_DELETE not in features
    finally:
        yield h.stop()
