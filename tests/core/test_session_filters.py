"""Outgoing session filters and the available/unavailable events (docs/plugins.md)."""

import pytest_twisted

from tests.harness import Harness
from xmppd.stanza import clone


@pytest_twisted.inlineCallbacks
def test_filters_run_highest_priority_first_and_may_hold_back(tmp_path):
    h = yield Harness.start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        seen: list[str] = []

        def tag(stanza):
            seen.append("tag")
            copy = clone(stanza)
            copy["tagged"] = "1"
            return copy

        def hold(stanza):
            seen.append("hold")
            return None if str(stanza.body) == "secret" else stanza

        bob.session.add_filter(hold, priority=-50)
        bob.session.add_filter(tag, priority=100)
        yield h.send(
            alice, f"<message to='{h.jid_of('bob')}' type='chat'><body>hi</body></message>"
        )
        yield h.send(
            alice, f"<message to='{h.jid_of('bob')}' type='chat'><body>secret</body></message>"
        )
        got = bob.take()
        assert [str(m.body) for m in got] == ["hi"]
        assert got[0]["tagged"] == "1"
        assert seen == ["tag", "hold", "tag", "hold"]

        bob.session.remove_filter(hold)
        yield h.send(
            alice, f"<message to='{h.jid_of('bob')}' type='chat'><body>secret</body></message>"
        )
        assert [str(m.body) for m in bob.take()] == ["secret"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_available_and_unavailable_fire_once_per_change(tmp_path):
    h = yield Harness.start(tmp_path)
    try:
        fired: list[tuple[str, str]] = []
        events = h.server.events
        events.on("session-available", lambda s: fired.append(("on", s.jid.resource)), owner="test")
        events.on(
            "session-unavailable", lambda s: fired.append(("off", s.jid.resource)), owner="test"
        )
        alice = yield h.login("alice", resource="phone")
        assert fired == []
        yield h.send(alice, "<presence/>")
        yield h.send(alice, "<presence><show>away</show></presence>")  # an update, not initial
        assert fired == [("on", "phone")]
        yield h.send(alice, "<presence type='unavailable'/>")
        assert fired == [("on", "phone"), ("off", "phone")]
        yield h.send(alice, "<presence/>")
        yield h.disconnect(alice)  # RFC 6121 §4.5.2: the stream's end makes it unavailable
        assert fired == [("on", "phone"), ("off", "phone"), ("on", "phone"), ("off", "phone")]
    finally:
        yield h.stop()
