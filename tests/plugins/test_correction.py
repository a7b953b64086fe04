"""plugins/correction: XEP-0308 corrections routed, and the hosted edit applied to
stored history by its sender only (SDK-CONTRACT §4.5; SECURITY H60, H61)."""

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

NS = "urn:xmpp:message-correct:0"


def edit(to: str, dialog_id: str | None, body: str = "fixed", mid: str = MID, more: str = ""):
    """The ConnectyCube SDK's ``chat.editMessage`` stanza (§4.5)."""
    payload = f"<body>{body}</body><replace xmlns='{NS}' id='{mid}' last='true'/>"
    return message(to, payload + extra(dialog_id, more), "c0rrection1")


@pytest.fixture
def h(tmp_path):
    harness = start(tmp_path, "correction")
    yield harness
    pytest_twisted.blockon(harness.stop())


@pytest_twisted.inlineCallbacks
def test_sender_edit_updates_history_and_is_routed(h):
    """§4.5 edit: the sender's own stored message gets the new text, updated_at and
    the dialog's last_message; the edit reaches the other side; it is not saved as
    a new message even with save_to_history (nor counted unread)."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"), "helo")
    bob.take()
    before = (yield history(h, "bob", dialog_id))[MID]["updated_at"]
    h.clock.advance(30)
    yield h.send(alice, edit(h.jid_of("bob"), dialog_id, more=SAVE))
    [got] = bob.take()
    assert next(got.elements(NS, "replace"))["id"] == MID and str(got.body) == "fixed"
    assert "extraParams/save_to_history" not in child_names(got)
    assert alice.take() == []
    seen = yield history(h, "bob", dialog_id)
    assert list(seen) == [MID]
    assert seen[MID]["message"] == "fixed" and seen[MID]["updated_at"] > before
    d = yield dialog(h, "bob", dialog_id)
    assert (d.last_message, d.last_message_id, d.unread_messages_count) == ("fixed", MID, 1)


@pytest_twisted.inlineCallbacks
def test_edit_of_another_users_message_is_forbidden(h):
    """H61 (Gajim CVE-2022-39835 class), XEP-0308 §4 "same sender": Bob editing
    Alice's stored message gets forbidden (legacy code 403); history unchanged;
    Alice receives nothing."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    yield h.send(bob, edit(h.jid_of("alice"), dialog_id, "forged"))
    [error] = bob.take()
    assert condition(error) == ("403", "forbidden") and error["id"] == "c0rrection1"
    assert alice.take() == []
    assert (yield history(h, "bob", dialog_id))[MID]["message"] == "hello"


@pytest_twisted.inlineCallbacks
def test_edit_naming_a_dialog_one_does_not_occupy_is_forbidden(h):
    """H60: a dialog_id the sender does not occupy, or an unknown one (the same
    answer), is forbidden; nothing changes, nothing is delivered."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    carol = yield h.login("carol", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    for named in (dialog_id, "f" * 24):
        yield h.send(carol, edit(h.jid_of("bob"), named))
        [error] = carol.take()
        assert condition(error) == ("403", "forbidden")
    assert bob.take() == []
    assert (yield history(h, "bob", dialog_id))[MID]["message"] == "hello"


@pytest_twisted.inlineCallbacks
def test_edit_of_a_message_not_in_history_is_routed(h):
    """XEP-0308 §4: an id not in the dialog's history (never saved) and a plain
    correction without dialog_id are delivered; history is unchanged."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    yield h.send(alice, edit(h.jid_of("bob"), dialog_id, mid="0" * 24))
    yield h.send(alice, edit(h.jid_of("bob"), None))
    assert len(bob.take()) == 2 and alice.take() == []
    assert (yield history(h, "bob", dialog_id))[MID]["message"] == "hello"


@pytest_twisted.inlineCallbacks
def test_error_bounce_of_a_correction_is_not_a_correction(h):
    """RFC 6120 §8.3: Bob's client bouncing Alice's correction (type='error', the
    payload kept) is neither refused nor applied."""
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    dialog_id = yield saved(h, alice, h.jid_of("bob"))
    bob.take()
    bounce = edit(h.jid_of("alice"), dialog_id, "x").replace("type='chat'", "type='error'")
    yield h.send(bob, bounce)
    assert bob.take() == []
    assert (yield history(h, "bob", dialog_id))[MID]["message"] == "hello"


@pytest_twisted.inlineCallbacks
def test_disco_advertises_message_correct(tmp_path):
    """XEP-0308 §2: the server lists urn:xmpp:message-correct:0."""
    h = yield Harness.start(tmp_path, plugins={"enabled": ["dialogs", "disco", "correction"]})
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
