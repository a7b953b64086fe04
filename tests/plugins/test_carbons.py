"""XEP-0280 Message Carbons (plugins/carbons) on the real core, with fake streams."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.xish import domish

from plugins.carbons import NS_CARBONS, eligible
from tests.harness import DOMAIN, Client, Harness, parse

NS_FORWARD = "urn:xmpp:forward:0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def start(tmp_path):
    return Harness.start(tmp_path, plugins={"enabled": ["disco", "carbons"]})


@pytest_twisted.inlineCallbacks
def two_resources_and_bob(h: Harness, laptop_enabled: bool = True, phone_priority: int = 1):
    """alice/phone (priority ``phone_priority``) and alice/laptop (0), both
    available with carbons on (laptop: ``laptop_enabled``); bob available."""
    phone = yield h.login("alice", "phone", available=True)
    laptop = yield h.login("alice", "laptop", available=True)
    bob = yield h.login("bob", "desk", available=True)
    yield h.send(phone, f"<presence><priority>{phone_priority}</priority></presence>")
    yield enable(h, phone)
    if laptop_enabled:
        yield enable(h, laptop)
    for client in (phone, laptop, bob):
        client.take()
    return phone, laptop, bob


@pytest_twisted.inlineCallbacks
def enable(h: Harness, client: Client, what: str = "enable"):
    yield h.send(client, f"<iq type='set' id='{what}1'><{what} xmlns='{NS_CARBONS}'/></iq>")
    [reply] = [s for s in client.take() if s.name == "iq"]
    assert reply["type"] == "result", reply.toXml()
    return reply


def is_carbon(stanza: domish.Element) -> bool:
    return any(c.uri == NS_CARBONS for c in stanza.elements())


def messages(client: Client) -> list[domish.Element]:
    return [s for s in client.take() if s.name == "message"]


def unwrap(carbon: domish.Element, direction: str) -> domish.Element:
    wrapped = next(carbon.elements(NS_CARBONS, direction))
    return next(
        next(wrapped.elements(NS_FORWARD, "forwarded")).elements("jabber:client", "message")
    )


def chat(to: str, body: str = "hi", extra: str = "", kind: str = "chat") -> str:
    return f"<message to='{to}' type='{kind}' id='m1'><body>{body}</body>{extra}</message>"


@pytest_twisted.inlineCallbacks
def test_enable_and_disable_are_answered_from_the_account(tmp_path):
    """§4, §5: an IQ-result from the bare JID; §10.1: a second enable is no error."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", "phone")
        for what in ("enable", "enable", "disable", "disable"):
            reply = yield enable(h, alice, what)
            assert reply["from"] == alice.bare and reply["to"] == alice.jid
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_enabling_for_another_account_is_not_allowed(tmp_path):
    """§5 (and §5.1): another account's carbons are not the sender's to change."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        yield h.login("bob")
        iq = f"<iq type='set' id='x' to='{h.jid_of('bob')}'><enable xmlns='{NS_CARBONS}'/></iq>"
        yield h.send(alice, iq)
        [reply] = alice.take()
        assert reply["type"] == "error"
        assert reply.error.firstChildElement().name == "not-allowed"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_disco_advertises_carbons_and_its_rules(tmp_path):
    """§3: the server's disco#info lists urn:xmpp:carbons:2 (and rules:0, §6)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        query = "<query xmlns='http://jabber.org/protocol/disco#info'/>"
        yield h.send(alice, f"<iq type='get' id='d' to='{DOMAIN}'>{query}</iq>")
        [reply] = alice.take()
        features = {
            f["var"]
            for f in reply.query.elements("http://jabber.org/protocol/disco#info", "feature")
        }
        assert {NS_CARBONS, "urn:xmpp:carbons:rules:0"} <= features
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_received_carbon_goes_only_where_the_original_did_not(tmp_path):
    """§7: a message to the bare JID reaches the top-priority resource (RFC 6121
    §8.5.2.1.1); the other enabled resource gets a <received/> copy from the bare
    JID, with the same type; the one that got the original gets no copy."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        yield h.send(bob, chat(phone.bare, "to the bare JID"))
        [original] = messages(phone)
        assert str(original.body) == "to the bare JID"
        [carbon] = messages(laptop)
        assert carbon["from"] == phone.bare and carbon["to"] == laptop.jid
        assert carbon["type"] == "chat"
        inner = unwrap(carbon, "received")
        assert inner["from"] == bob.jid and inner["to"] == phone.bare
        assert str(inner.body) == "to the bare JID"
        assert bob.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_bare_message_to_tied_resources_reaches_all_and_copies_none(tmp_path):
    """RFC 6121 §8.5.2.1.1: equal top priorities all get the message; §7: none
    of them gets a copy besides."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h, phone_priority=0)
        yield h.send(bob, chat(phone.bare))
        for client in (phone, laptop):
            [original] = messages(client)
            assert not is_carbon(original)
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_received_carbon_of_a_message_to_a_full_jid(tmp_path):
    """§7: to a full JID, the addressed resource gets the original, the others a copy."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        yield h.send(bob, chat(laptop.jid, "to the laptop"))
        [original] = messages(laptop)
        assert not is_carbon(original)
        [carbon] = messages(phone)
        assert str(unwrap(carbon, "received").body) == "to the laptop"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_message_to_a_gone_resource_is_copied_as_if_to_the_bare_jid(tmp_path):
    """RFC 6121 §8.5.3.2.1: a chat message to an unknown resource goes as to the
    bare JID; §7: the resource that gets it is not sent a copy too."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        yield h.send(bob, chat(f"{phone.bare}/gone", "where are you"))
        [original] = messages(phone)
        assert str(original.body) == "where are you"
        [carbon] = messages(laptop)
        assert str(unwrap(carbon, "received").body) == "where are you"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_sent_carbon_to_other_resources_not_the_sender(tmp_path):
    """§8: a sent message is copied as <sent/> to the sender's other enabled
    resources, never to the sending one, enabled or not."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        yield enable(h, laptop, "disable")
        yield h.send(laptop, chat(bob.bare, "from the laptop"))
        [original] = messages(bob)
        assert original["from"] == laptop.jid
        assert messages(laptop) == []
        [carbon] = messages(phone)
        assert carbon["from"] == phone.bare and carbon["to"] == phone.jid
        inner = unwrap(carbon, "sent")
        assert inner["from"] == laptop.jid and inner["to"] == bob.bare
        assert str(inner.body) == "from the laptop"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_resources_that_did_not_enable_get_no_copies(tmp_path):
    """§4: carbons go only to resources that enabled them; §5: disabling stops them."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h, laptop_enabled=False)
        yield h.send(bob, chat(phone.bare))
        yield h.send(phone, chat(bob.bare))
        assert messages(laptop) == []
        yield enable(h, laptop)
        yield enable(h, laptop, "disable")
        yield h.send(bob, chat(phone.bare))
        assert messages(laptop) == []
        assert len(messages(phone)) == 2
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_private_and_no_copy_messages_are_not_copied(tmp_path):
    """§9: <private/> (with or without XEP-0334 <no-copy/>) is never copied, sent
    or received, and the recipient gets the message without <private/>."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        private = f"<private xmlns='{NS_CARBONS}'/>"
        yield h.send(phone, chat(bob.bare, "secret", private + "<no-copy xmlns='urn:xmpp:hints'/>"))
        [delivered] = messages(bob)
        assert next(delivered.elements(NS_CARBONS, "private"), None) is None
        yield h.send(bob, chat(phone.bare, "secret too", private))
        [delivered] = messages(phone)
        assert next(delivered.elements(NS_CARBONS, "private"), None) is None
        yield h.send(bob, chat(phone.bare, "hint only", "<no-copy xmlns='urn:xmpp:hints'/>"))
        assert len(messages(phone)) == 1
        assert messages(laptop) == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_headlines_are_not_copied(tmp_path):
    """§6: only instant messages are copied; a headline (a ConnectyCube system
    message, SDK-CONTRACT §4.5) is not."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        yield h.send(bob, chat(phone.bare, "news", kind="headline"))
        assert len(messages(phone)) == 1  # RFC 6121 §8.5.2.1.1: to each non-negative one
        assert [is_carbon(m) for m in messages(laptop)] == [False]  # its own, no copy
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_nothing_is_copied_when_no_resource_gets_the_message(tmp_path):
    """§7 copies a delivery: a message that goes to offline storage (RFC 6121
    §8.5.2.2) reaches a resource later, so a connected but unavailable resource
    gets no copy now."""
    h = yield start(tmp_path)
    try:
        laptop = yield h.login("alice", "laptop")  # bound, no initial presence
        yield enable(h, laptop)
        bob = yield h.login("bob", "desk", available=True)
        yield h.send(bob, chat(laptop.bare))
        assert messages(laptop) == []
        [bounce] = messages(bob)  # no offline plugin loaded: §8.5.2.2.1 bounce
        assert bounce["type"] == "error"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_message_to_ones_own_account_is_copied_once(tmp_path):
    """§8: a message to one's own bare JID reaches the top resource; the other
    resource gets one <sent/> copy, not a second <received/> one."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        yield h.send(phone, chat(phone.bare, "note to self"))
        [original] = messages(phone)
        assert str(original.body) == "note to self"
        [carbon] = messages(laptop)
        assert str(unwrap(carbon, "sent").body) == "note to self"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_a_client_cannot_send_carbons(tmp_path):
    """§11 and SECURITY.md H58: a carbon that a client made up (CVE-2017-5589) is
    refused with not-allowed (XEP-0086 code 405) and reaches nobody."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        forged = (
            f"<message to='{phone.bare}' type='chat' id='f1'><received xmlns='{NS_CARBONS}'>"
            f"<forwarded xmlns='{NS_FORWARD}'><message xmlns='jabber:client' type='chat'"
            f" from='{h.jid_of('alice')}/phone' to='{DOMAIN}'><body>I owe you</body></message>"
            "</forwarded></received></message>"
        )
        yield h.send(bob, forged)
        [error] = bob.take()
        assert error["type"] == "error" and error["id"] == "f1"
        assert error.error["code"] == "405"
        assert next(error.error.elements(NS_STANZAS, "not-allowed"), None) is not None
        yield h.send(laptop, forged.replace("received", "sent"))
        assert laptop.take()[0]["type"] == "error"
        assert messages(phone) == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_carbon_serialises_the_original_in_jabber_client(tmp_path):
    """XEP-0297 §3: the forwarded stanza keeps its jabber:client namespace on the wire."""
    h = yield start(tmp_path)
    try:
        phone, laptop, bob = yield two_resources_and_bob(h)
        yield h.send(bob, chat(phone.bare, "wire"))
        [carbon] = messages(laptop)
        again = parse(carbon.toXml())
        assert str(unwrap(again, "received").body) == "wire"
    finally:
        yield h.stop()


def message(xml: str) -> domish.Element:
    return parse(xml)


@pytest.mark.parametrize(
    ("xml", "outgoing", "copied"),
    [
        ("<message type='chat'/>", False, True),
        ("<message><body>x</body></message>", False, True),
        ("<message type='normal'/>", False, False),
        ("<message type='headline'><body>x</body></message>", False, False),
        ("<message type='groupchat'><body>x</body></message>", True, False),
        (
            "<message><received xmlns='urn:xmpp:chat-markers:0' id='a'/></message>",
            False,
            True,
        ),
        ("<message><request xmlns='urn:xmpp:receipts'/></message>", False, True),
        (
            "<message><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
            True,
            True,
        ),
        (
            "<message type='chat'><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
            False,
            False,
        ),
        (
            "<message type='chat'><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
            True,
            True,
        ),
        (
            "<message><x xmlns='http://jabber.org/protocol/muc#user'><invite/></x></message>",
            False,
            True,
        ),
        ("<message><x xmlns='jabber:x:conference' jid='r@muc'/></message>", False, True),
        ("<message type='error' from='a@b'/>", False, True),
        ("<message type='error' from='a@b/c'/>", False, False),
        ("<message type='error'/>", True, False),
        ("<message type='chat'><private xmlns='urn:xmpp:carbons:2'/></message>", True, False),
        ("<message type='chat'><no-copy xmlns='urn:xmpp:hints'/></message>", False, False),
    ],
)
def test_eligibility_rules(xml, outgoing, copied):
    """§6 (urn:xmpp:carbons:rules:0) and §9: which messages are copied."""
    assert eligible(message(xml), outgoing) is copied
