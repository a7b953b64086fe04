"""The router's delivery rules (RFC 6120 §8, RFC 6121 §8) through the real core."""

import pytest
import pytest_twisted

from tests.harness import DOMAIN, Harness

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture
def harness(tmp_path):
    h = pytest_twisted.blockon(Harness.start(tmp_path))
    yield h
    pytest_twisted.blockon(h.stop())


def condition(stanza):
    error = next(stanza.elements(None, "error"), None) or next(
        (c for c in stanza.elements() if c.name == "error"), None
    )
    assert error is not None, stanza.toXml()
    return next(c.name for c in error.elements() if c.uri == NS_STANZAS), error.getAttribute("code")


@pytest_twisted.inlineCallbacks
def test_message_to_full_jid_is_delivered_with_stamped_from(harness):
    """RFC 6120 §8.1.2.1: the server stamps 'from'; a forged one is rewritten."""
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(
        alice,
        f"<message to='{bob.jid}' from='mallory@{DOMAIN}/x' type='chat'><body>hi</body></message>",
    )
    [got] = bob.take()
    assert got["from"] == alice.jid
    assert str(got.body) == "hi"


@pytest_twisted.inlineCallbacks
def test_chat_to_bare_jid_goes_to_highest_priority_resources(harness):
    """RFC 6121 §8.5.2.1.1: chat to a bare JID reaches the highest non-negative priority."""
    alice = yield harness.login("alice", available=True)
    phone = yield harness.login("bob", "phone")
    desk = yield harness.login("bob", "desk")
    hidden = yield harness.login("bob", "hidden")
    yield harness.send(phone, "<presence><priority>1</priority></presence>")
    yield harness.send(desk, "<presence><priority>5</priority></presence>")
    yield harness.send(hidden, "<presence><priority>-1</priority></presence>")
    for c in (phone, desk, hidden):
        c.take()
    bare = harness.jid_of("bob")
    yield harness.send(alice, f"<message to='{bare}' type='chat'><body>x</body></message>")
    assert [m.name for m in desk.take()] == ["message"]
    assert phone.take() == [] and hidden.take() == []


@pytest_twisted.inlineCallbacks
def test_message_to_offline_user_without_offline_storage_bounces(harness):
    """RFC 6121 §8.5.2.2.1: no available resource and no offline storage: service-unavailable."""
    alice = yield harness.login("alice", available=True)
    yield harness.user("bob")
    yield harness.send(
        alice, f"<message id='m1' to='{harness.jid_of('bob')}' type='chat'><body>x</body></message>"
    )
    [error] = alice.take()
    assert error["type"] == "error" and error["from"] == harness.jid_of("bob")
    assert condition(error) == ("service-unavailable", "503")


@pytest_twisted.inlineCallbacks
def test_message_to_unknown_user_bounces_like_offline(harness):
    """RFC 6121 §8.5.1: no such account: service-unavailable (the same as offline)."""
    alice = yield harness.login("alice", available=True)
    yield harness.send(
        alice, f"<message to='999-{harness.app_id}@{DOMAIN}' type='chat'><body>x</body></message>"
    )
    [error] = alice.take()
    assert condition(error)[0] == "service-unavailable"


@pytest_twisted.inlineCallbacks
def test_iq_to_offline_full_jid_is_service_unavailable(harness):
    """RFC 6121 §8.5.3.2.3: an IQ to a full JID with no such resource."""
    alice = yield harness.login("alice", available=True)
    yield harness.user("bob")
    yield harness.send(
        alice,
        f"<iq id='q' type='get' to='{harness.jid_of('bob')}/none'><query xmlns='urn:x'/></iq>",
    )
    [error] = alice.take()
    assert condition(error) == ("service-unavailable", "503")


@pytest_twisted.inlineCallbacks
def test_unknown_iq_to_server_and_bare_jid_is_service_unavailable(harness):
    """RFC 6120 §8.4 / RFC 6121 §8.5.2.1.3: the server answers unknown IQs itself."""
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(alice, f"<iq id='a' type='get' to='{DOMAIN}'><query xmlns='urn:x'/></iq>")
    yield harness.send(alice, f"<iq id='b' type='get' to='{bob.bare}'><query xmlns='urn:x'/></iq>")
    errors = alice.take()
    assert [condition(e)[0] for e in errors] == ["service-unavailable"] * 2
    assert bob.take() == []  # never forwarded to a resource


@pytest_twisted.inlineCallbacks
def test_iq_without_id_or_with_two_children_is_bad_request(harness):
    """RFC 6120 §8.2.3: an IQ needs an id, a valid type and one payload."""
    alice = yield harness.login("alice", available=True)
    yield harness.send(
        alice, f"<iq id='x' type='get' to='{DOMAIN}'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>"
    )
    yield harness.send(alice, f"<iq id='y' type='foo' to='{DOMAIN}'><a xmlns='urn:a'/></iq>")
    assert [condition(e)[0] for e in alice.take()] == ["bad-request", "bad-request"]


@pytest_twisted.inlineCallbacks
def test_malformed_to_is_jid_malformed(harness):
    """RFC 6120 §8.3.3.8: an unparseable 'to' gets jid-malformed."""
    alice = yield harness.login("alice", available=True)
    yield harness.send(alice, "<message to='a@b@c' type='chat'><body>x</body></message>")
    [error] = alice.take()
    assert condition(error)[0] == "jid-malformed"


@pytest_twisted.inlineCallbacks
def test_error_is_never_answered_with_an_error(harness):
    """RFC 6120 §8.3.1: no error in reply to an error (no loops)."""
    alice = yield harness.login("alice", available=True)
    yield harness.send(alice, f"<message to='999-1@{DOMAIN}' type='error'><body>x</body></message>")
    yield harness.send(alice, f"<iq id='r' type='result' to='{DOMAIN}'/>")
    assert alice.take() == []


@pytest_twisted.inlineCallbacks
def test_remote_domain_without_s2s_is_remote_server_not_found(harness):
    """RFC 6120 §8.3.3.15: no server-to-server yet."""
    alice = yield harness.login("alice", available=True)
    yield harness.send(
        alice, "<message to='x@elsewhere.example' type='chat'><body>x</body></message>"
    )
    [error] = alice.take()
    assert condition(error) == ("remote-server-not-found", "404")


@pytest_twisted.inlineCallbacks
def test_groupchat_to_bare_jid_is_service_unavailable(harness):
    """RFC 6121 §8.5.2.1.1: groupchat to a bare JID is an error."""
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(alice, f"<message to='{bob.bare}' type='groupchat'><body>x</body></message>")
    assert bob.take() == []
    assert condition(alice.take()[0])[0] == "service-unavailable"


@pytest_twisted.inlineCallbacks
def test_plugin_handler_can_stop_and_raise(harness):
    """Higher priority runs first; a returned value stops; StanzaError answers (RFC 6120 §8.3)."""
    from xmppd.errors import StanzaError

    seen = []
    harness.server.events.on("pre-message/full", lambda e: seen.append("low"), priority=-10)

    def filter_(event):
        if str(event.stanza.body) == "blocked":
            raise StanzaError("not-acceptable")

    harness.server.events.on("pre-message/full", filter_, priority=100)
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(alice, f"<message to='{bob.jid}' type='chat'><body>blocked</body></message>")
    assert bob.take() == [] and seen == []
    assert condition(alice.take()[0]) == ("not-acceptable", "406")
    yield harness.send(alice, f"<message to='{bob.jid}' type='chat'><body>fine</body></message>")
    assert len(bob.take()) == 1 and seen == ["low"]


@pytest_twisted.inlineCallbacks
def test_crashing_plugin_gives_internal_server_error_and_router_goes_on(harness):
    """A crashing IQ handler answers internal-server-error; other stanzas still flow."""

    def crash(event):
        raise RuntimeError("boom")

    harness.server.events.on("iq-get/host/urn:crash:query", crash)
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(
        alice, f"<iq id='c' type='get' to='{DOMAIN}'><query xmlns='urn:crash'/></iq>"
    )
    assert condition(alice.take()[0])[0] == "internal-server-error"
    yield harness.send(alice, f"<message to='{bob.jid}' type='chat'><body>still</body></message>")
    assert len(bob.take()) == 1
