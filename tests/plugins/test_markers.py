"""plugins/markers: XEP-0333 chat markers routed, and recorded on stored history
for the hosted services (SDK-CONTRACT §4.5): received -> delivered_ids,
displayed/acknowledged -> read_ids, unread count, last_message_status."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.harness import DOMAIN, Harness
from tests.plugins.message_state_support import (
    MID,
    SAVE,
    child_names,
    dialog,
    extra,
    history,
    message,
    saved,
    start,
    store,
)

NS = "urn:xmpp:chat-markers:0"


def marker(kind: str, to: str, dialog_id: str | None, mid: str = MID, more: str = "") -> str:
    return message(to, f"<{kind} xmlns='{NS}' id='{mid}'/>" + extra(dialog_id, more))


@pytest.fixture
def h(tmp_path):
    harness = start(tmp_path, "markers")
    yield harness
    pytest_twisted.blockon(harness.stop())


@pytest_twisted.inlineCallbacks
def test_received_marks_delivered_and_is_routed(h):
    """§4.5: the SDK's automatic received marker (type chat, to the sender's user
    JID, extraParams/dialog_id) reaches the sender unchanged and puts the receiver
    in delivered_ids; last_message_status becomes delivered; unread stays."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    yield h.send(bob, marker("received", h.jid_of("alice"), dialog_id))
    [got] = alice.take()
    assert got["from"] == bob.jid and next(got.elements(NS, "received"))["id"] == MID
    m = (yield history(h, "alice", dialog_id))[MID]
    assert (m["delivered_ids"], m["read_ids"]) == ([h.users["bob"].id], [])
    d = yield dialog(h, "bob", dialog_id)
    assert (d.last_message_status, d.unread_messages_count) == ("delivered", 1)


@pytest.mark.parametrize("kind", ["displayed", "acknowledged"])
@pytest_twisted.inlineCallbacks
def test_displayed_and_acknowledged_mark_read(h, kind):
    """XEP-0333 0.4 §6: acknowledged outranks displayed, so both are a read: read_ids
    (and delivered_ids), the reader's unread count drops, last_message_status read."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    assert (yield dialog(h, "bob", dialog_id)).unread_messages_count == 1
    yield h.send(bob, marker(kind, h.jid_of("alice"), dialog_id))
    assert [c.name for c in alice.take()[0].elements() if c.uri == NS] == [kind]
    m = (yield history(h, "alice", dialog_id))[MID]
    b = h.users["bob"].id
    assert (m["read_ids"], m["delivered_ids"]) == ([b], [b])
    d = yield dialog(h, "bob", dialog_id)
    assert (d.unread_messages_count, d.last_message_status) == (0, "read")
    yield h.send(bob, marker(kind, h.jid_of("alice"), dialog_id))  # again: no change
    assert (yield dialog(h, "bob", dialog_id)).unread_messages_count == 0


@pytest_twisted.inlineCallbacks
def test_displayed_marks_only_the_named_message(h):
    """docs/message-state.md: the hosted read status is per message (not XEP-0333's
    "up to and including"): an earlier unread message stays unread."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"), "first", "65f0c0ffee00000000000001")
    yield saved(h, alice, h.jid_of("bob"), "second", MID)
    yield h.send(bob, marker("displayed", h.jid_of("alice"), dialog_id))
    seen = yield history(h, "alice", dialog_id)
    assert seen["65f0c0ffee00000000000001"]["read_ids"] == [] and seen[MID]["read_ids"]
    assert (yield dialog(h, "bob", dialog_id)).unread_messages_count == 1


@pytest_twisted.inlineCallbacks
def test_marker_for_a_group_message_goes_to_the_senders_user_jid(h):
    """§4.5: markers for group messages too are type='chat' to the sender's user JID
    with the group's dialog_id: the reader's receipt and unread count only."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    carol = yield h.user("carol")
    dialogs = store(h)
    fields = {"type": 2, "name": "team", "occupants_ids": [h.users["bob"].id, carol.id]}
    group, _ = yield dialogs.create(h.app_id, h.users["alice"].id, fields)
    view, _ = yield dialogs.create_message(
        h.app_id, h.users["alice"].id, {"chat_dialog_id": group.id, "message": "all"}
    )
    yield h.send(bob, marker("displayed", h.jid_of("alice"), group.id, view["_id"]))
    assert len(alice.take()) == 1
    assert (yield history(h, "alice", group.id))[view["_id"]]["read_ids"] == [h.users["bob"].id]
    assert (yield dialog(h, "bob", group.id)).unread_messages_count == 0
    assert (yield dialog(h, "carol", group.id)).unread_messages_count == 1


@pytest_twisted.inlineCallbacks
def test_markers_that_change_nothing_are_still_routed(h):
    """XEP-0333 0.4 §7 "Chat Markers for unknown messages MUST be ignored": an
    unknown id, an unknown or foreign dialog, one's own message, a non-occupant
    and a plain marker without dialog_id change nothing and are delivered."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    carol = yield h.login("carol", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    cases = [
        (bob, "alice", marker("displayed", h.jid_of("alice"), dialog_id, "0" * 24)),
        (bob, "alice", marker("displayed", h.jid_of("alice"), "f" * 24)),
        (bob, "alice", marker("displayed", h.jid_of("alice"), None)),
        (alice, "bob", marker("displayed", h.jid_of("bob"), dialog_id)),  # her own
        (carol, "alice", marker("displayed", h.jid_of("alice"), dialog_id)),  # not in it
    ]
    clients = {"alice": alice, "bob": bob}
    bob.take()
    for sender, to, stanza in cases:
        yield h.send(sender, stanza)
        assert len(clients[to].take()) == 1 and sender.take() == []
    m = (yield history(h, "alice", dialog_id))[MID]
    assert (m["read_ids"], m["delivered_ids"]) == ([], [])
    assert (yield dialog(h, "bob", dialog_id)).unread_messages_count == 1


@pytest_twisted.inlineCallbacks
def test_a_marker_is_never_saved_as_a_message(h):
    """§4.5: a marker carrying save_to_history is not stored (nor counted unread);
    it is delivered without that child."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    yield h.send(bob, marker("received", h.jid_of("alice"), dialog_id, more=SAVE))
    [got] = alice.take()
    assert "extraParams/save_to_history" not in child_names(got)
    assert list((yield history(h, "alice", dialog_id))) == [MID]
    d = yield dialog(h, "alice", dialog_id)
    assert (d.unread_messages_count, d.last_message_id) == (0, MID)


@pytest_twisted.inlineCallbacks
def test_a_marker_riding_on_a_message_leaves_it_saved(h):
    """XEP-0333 0.4 §6 wants a marker alone; a body with a marker is still a chat
    message: saved when it asks, and the marker applied too."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    reply = "65f0c0ffee00000000000002"
    payload = f"<body>seen it</body><displayed xmlns='{NS}' id='{MID}'/>"
    yield h.send(bob, message(h.jid_of("alice"), payload + extra(dialog_id, SAVE), reply))
    seen = yield history(h, "alice", dialog_id)
    assert seen[reply]["message"] == "seen it" and seen[MID]["read_ids"] == [h.users["bob"].id]


@pytest_twisted.inlineCallbacks
def test_markable_message_is_an_ordinary_saved_message(h):
    """XEP-0333 §6 (0.4): a markable message is a content message: saved when asked."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    body = f"<body>hi</body><markable xmlns='{NS}'/>{extra(more=SAVE)}"
    yield h.send(alice, message(h.jid_of("bob"), body, MID))
    [got] = bob.take()
    assert "markable" in child_names(got)
    assert "extraParams/dialog_id" in child_names(got)


@pytest_twisted.inlineCallbacks
def test_error_bounce_of_a_marker_changes_nothing(h):
    """RFC 6120 §8.3: a type='error' message carrying a marker is not a marker."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bounced = message(
        h.jid_of("alice"),
        f"<displayed xmlns='{NS}' id='{MID}'/>{extra(dialog_id)}",
        kind="error",
    )
    yield h.send(bob, bounced)
    assert (yield dialog(h, "bob", dialog_id)).unread_messages_count == 1


@pytest_twisted.inlineCallbacks
def test_marker_to_an_offline_user_is_dropped_without_error(h):
    """A lone marker for a user with no available resource is not stored (XEP-0160
    §3) and not bounced: the SDK's automatic received marker would reach its error
    callback. The history still records it."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    yield h.disconnect(alice)
    yield h.send(bob, marker("displayed", h.jid_of("alice"), dialog_id))
    assert bob.take() == []  # no service-unavailable error
    m = (yield history(h, "bob", dialog_id))[MID]
    assert m["read_ids"] == [h.users["bob"].id]


@pytest_twisted.inlineCallbacks
def test_disco_advertises_chat_markers(tmp_path):
    """XEP-0333 §4 (0.4): the server lists urn:xmpp:chat-markers:0."""
    h = yield Harness.start(tmp_path, plugins={"enabled": ["dialogs", "disco", "markers"]})
    try:
        alice = yield h.login("alice")
        yield h.send(
            alice,
            f"<iq type='get' id='d1' to='{DOMAIN}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        [reply] = alice.take()
        features = {f["var"] for f in reply.firstChildElement().elements() if f.name == "feature"}
        assert NS in features
    finally:
        yield h.stop()
