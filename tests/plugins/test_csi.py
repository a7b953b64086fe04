"""XEP-0352 Client State Indication and Tigase mobile v2 (plugins/csi), on the real core."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from plugins.csi import NS_CSI, NS_MOBILE, ClientState, only_chat_states
from tests.harness import Client, Harness, parse

NS_CHATSTATES = "http://jabber.org/protocol/chatstates"


def start(tmp_path, **options):
    plugins = {"enabled": ["carbons", "csi"], **({"csi": options} if options else {})}
    return Harness.start(tmp_path, plugins=plugins)


def csi_plugin(h: Harness) -> ClientState:
    return next(p for p in h.server.plugins if p.name == "csi")


def nonza(h: Harness, client: Client, name: str):
    h.server.router.nonza(client.session, parse(f"<{name} xmlns='{NS_CSI}'/>"))
    return h.settle()


def mobile(h: Harness, client: Client, enable: str):
    iq = f"<iq type='set' id='mob'><mobile xmlns='{NS_MOBILE}' enable='{enable}'/></iq>"
    return h.send(client, iq)


def presence(h: Harness, sender: Client, to: Client, show: str | None = None):
    """Directed presence (RFC 6121 §4.6): reaches ``to`` whatever the roster says."""
    body = f"<show>{show}</show>" if show else ""
    return h.send(sender, f"<presence to='{to.jid}'>{body}</presence>")


def composing(h: Harness, sender: Client, to: Client):
    return h.send(
        sender, f"<message to='{to.jid}' type='chat'><composing xmlns='{NS_CHATSTATES}'/></message>"
    )


def describe(stanzas: list[domish.Element]) -> list[str]:
    out = []
    for s in stanzas:
        who = s.getAttribute("from", "").split("/")[-1]
        if s.name == "presence":
            show = next(s.elements("jabber:client", "show"), None)
            out.append(f"presence {who} {show or 'available'}")
        elif s.name == "message":
            body = next(s.elements("jabber:client", "body"), None)
            out.append(f"message {who} {body if body is not None else 'state'}")
        else:
            out.append(f"{s.name} {s.getAttribute('type')}")
    return out


@pytest_twisted.inlineCallbacks
def users(h: Harness):
    alice = yield h.login("alice", "phone", available=True)
    bob = yield h.login("bob", "bob", available=True)
    carol = yield h.login("carol", "carol", available=True)
    for client in (alice, bob, carol):
        client.take()
    return alice, bob, carol


@pytest_twisted.inlineCallbacks
def test_stream_feature_offered(tmp_path):
    """§4.1: <csi xmlns='urn:xmpp:csi:0'/> in the features after authentication;
    COMPAT: Tigase's <mobile/> feature beside it."""
    h = yield start(tmp_path)
    try:
        offered = []
        for found in h.server.events.fire_all("stream-features", None):
            offered += found if isinstance(found, list) else [found]
        names = {(e.uri, e.name) for e in offered}
        assert {(NS_CSI, "csi"), (NS_MOBILE, "mobile")} <= names
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_inactive_holds_the_latest_presence_per_contact_until_active(tmp_path):
    """§3.2: presence updates wait while inactive, the latest one per contact full
    JID, in the order of their latest update; §4.2: <active/> sends them, no reply."""
    h = yield start(tmp_path)
    try:
        alice, bob, carol = yield users(h)
        yield nonza(h, alice, "inactive")
        assert csi_plugin(h).is_inactive(alice.session)
        yield presence(h, bob, alice, "away")
        yield presence(h, carol, alice)
        yield presence(h, bob, alice, "dnd")
        assert alice.take() == []
        yield nonza(h, alice, "active")
        assert describe(alice.take()) == ["presence carol available", "presence bob dnd"]
        assert not csi_plugin(h).is_inactive(alice.session)
        yield presence(h, bob, alice, "xa")
        assert describe(alice.take()) == ["presence bob xa"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_a_message_with_a_body_goes_at_once_after_what_was_held(tmp_path):
    """§3.2: chat states (XEP-0085) wait; a message with a body goes at once, after
    everything held (RFC 6120 §10.1: 'composing' never after the message)."""
    h = yield start(tmp_path)
    try:
        alice, bob, carol = yield users(h)
        yield nonza(h, alice, "inactive")
        yield presence(h, carol, alice)
        yield composing(h, bob, alice)
        assert alice.take() == []
        yield h.send(bob, f"<message to='{alice.jid}' type='chat'><body>hi</body></message>")
        assert describe(alice.take()) == [
            "presence carol available",
            "message bob state",
            "message bob hi",
        ]
        yield composing(h, bob, alice)  # still inactive
        assert alice.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_own_presence_iq_and_subscriptions_are_not_held(tmp_path):
    """§3.2 holds updates only: the client's own presence echo (RFC 6121 §4.2.2),
    IQ replies and subscription requests (§3.1.2) go out at once."""
    h = yield start(tmp_path)
    try:
        alice, bob, carol = yield users(h)
        yield nonza(h, alice, "inactive")
        yield h.send(alice, "<presence><show>away</show></presence>")
        assert describe(alice.take()) == ["presence phone away"]
        yield h.send(alice, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        assert describe(alice.take()) == ["iq result"]
        request = parse(f"<presence type='subscribe' from='{bob.bare}' to='{alice.bare}'/>")
        alice.session.send(request)
        assert alice.take() == [request]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_chat_state_carbons_are_held_too(tmp_path):
    """XEP-0280 §7 copies of chat states are chat states: they wait like the originals."""
    h = yield start(tmp_path)
    try:
        alice, bob, carol = yield users(h)
        laptop = yield h.login("alice", "laptop", available=True)
        yield h.send(laptop, "<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
        yield nonza(h, laptop, "inactive")
        laptop.take()
        yield composing(h, bob, alice)
        assert laptop.take() == []
        yield nonza(h, laptop, "active")
        [carbon] = laptop.take()
        assert next(carbon.elements("urn:xmpp:carbons:2", "received"), None) is not None
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_more_than_max_held_sends_them_all(tmp_path):
    """SECURITY.md (CVE-2010-0305): the held queue has a cap; past it all is sent."""
    h = yield start(tmp_path, max_held=2)
    try:
        alice, bob, carol = yield users(h)
        yield nonza(h, alice, "inactive")
        yield presence(h, bob, alice)
        yield presence(h, carol, alice)
        assert alice.take() == []
        yield composing(h, bob, alice)
        assert describe(alice.take()) == [
            "presence bob available",
            "presence carol available",
            "message bob state",
        ]
        assert csi_plugin(h).is_inactive(alice.session)  # still inactive, queue empty
        yield presence(h, bob, alice, "away")
        assert alice.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_what_to_hold_is_configurable(tmp_path):
    """§3.2: 'it SHOULD provide a way for administrators to configure them'."""
    h = yield start(tmp_path, hold_presence=False, hold_chat_states=False)
    try:
        alice, bob, carol = yield users(h)
        yield nonza(h, alice, "inactive")
        yield presence(h, bob, alice)
        yield composing(h, bob, alice)
        assert describe(alice.take()) == ["presence bob available", "message bob state"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_mobile_v2_enable_true_is_inactive_and_false_flushes_before_the_result(tmp_path):
    """COMPAT (SDK-CONTRACT §4.8, Tigase MobileV2): enable='true' is the app in the
    background (inactive), answered with a result; enable='false' sends what was
    held, then the result (XEP-0352 §5.1: before the client's next request)."""
    h = yield start(tmp_path)
    try:
        alice, bob, carol = yield users(h)
        yield mobile(h, alice, "true")
        [reply] = alice.take()
        assert reply["type"] == "result" and reply["id"] == "mob"
        assert csi_plugin(h).is_inactive(alice.session)
        yield presence(h, bob, alice, "away")
        assert alice.take() == []
        yield mobile(h, alice, "false")
        assert describe(alice.take()) == ["presence bob away", "iq result"]
        assert not csi_plugin(h).is_inactive(alice.session)
        yield mobile(h, alice, "1")
        yield mobile(h, alice, "0")
        assert describe(alice.take()) == ["iq result", "iq result"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_mobile_v2_bad_enable_is_bad_request(tmp_path):
    """RFC 6120 §8.3.3.1: an enable value that is neither true nor false is refused."""
    h = yield start(tmp_path)
    try:
        alice, bob, carol = yield users(h)
        yield mobile(h, alice, "maybe")
        [reply] = alice.take()
        assert reply["type"] == "error"
        assert reply.error.firstChildElement().name == "bad-request"
        assert not csi_plugin(h).is_inactive(alice.session)
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_state_changes_fire_events_once(tmp_path):
    """csi/inactive and csi/active fire on a change only; a repeat is a no-op (§4.2)."""
    h = yield start(tmp_path)
    try:
        alice, bob, carol = yield users(h)
        seen: list[str] = []
        for name in ("csi/inactive", "csi/active"):
            h.server.events.on(name, lambda s, name=name: seen.append(name), owner="test")
        for name in ("inactive", "inactive", "active", "active"):
            yield nonza(h, alice, name)
        assert seen == ["csi/inactive", "csi/active"]
        assert alice.take() == []  # §4.2: no reply to either
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_a_new_stream_starts_active_and_held_stanzas_go_with_the_old(tmp_path):
    """§5: every stream starts active; what an ended session held is dropped."""
    h = yield start(tmp_path)
    try:
        alice, bob, carol = yield users(h)
        yield nonza(h, alice, "inactive")
        yield presence(h, bob, alice)
        yield h.disconnect(alice)
        assert alice.take() == []
        again = yield h.login("alice", "phone", available=True)
        assert not csi_plugin(h).is_inactive(again.session)
    finally:
        yield h.stop()


@pytest.mark.parametrize(
    ("xml", "held"),
    [
        (f"<message><composing xmlns='{NS_CHATSTATES}'/></message>", True),
        (
            f"<message><paused xmlns='{NS_CHATSTATES}'/><thread>t</thread>"
            "<extraParams><dialog_id>d</dialog_id></extraParams></message>",
            True,
        ),
        (f"<message><active xmlns='{NS_CHATSTATES}'/><body>x</body></message>", False),
        (
            f"<message><active xmlns='{NS_CHATSTATES}'/>"
            "<displayed xmlns='urn:xmpp:chat-markers:0' id='a'/></message>",
            False,
        ),
        (f"<message type='error'><composing xmlns='{NS_CHATSTATES}'/></message>", False),
        ("<message><thread>t</thread></message>", False),
        (
            "<message><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
            f"<message xmlns='jabber:client'><gone xmlns='{NS_CHATSTATES}'/></message>"
            "</forwarded></sent></message>",
            True,
        ),
        (
            "<message><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
            "<message xmlns='jabber:client'><body>x</body></message></forwarded></sent></message>",
            False,
        ),
    ],
)
def test_which_messages_are_only_chat_states(xml, held):
    """XEP-0085 §5: a standalone notification; anything more is worth sending."""
    assert only_chat_states(parse(xml)) is held
