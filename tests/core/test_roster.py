"""Roster and presence (RFC 6121 §2-§4) through the real core and storage."""

import pytest
import pytest_twisted

from tests.harness import Harness

NS_ROSTER = "jabber:iq:roster"


@pytest.fixture
def harness(tmp_path):
    h = pytest_twisted.blockon(Harness.start(tmp_path, roster={"max_items": 2}))
    yield h
    pytest_twisted.blockon(h.stop())


def roster_items(stanza):
    query = stanza.firstChildElement()
    return {i["jid"]: i for i in query.elements(NS_ROSTER, "item")}


@pytest_twisted.inlineCallbacks
def test_roster_set_get_remove_with_pushes_and_versions(harness):
    """RFC 6121 §2.1.6, §2.3, §2.5; XEP-0237: pushes to interested resources, versions."""
    yield harness.user("bob")
    a1 = yield harness.login("alice", "one")
    a2 = yield harness.login("alice", "two")
    yield harness.send(a1, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>")
    yield harness.send(a2, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>")
    [empty] = a1.take()
    ver0 = empty.firstChildElement()["ver"]
    a2.take()
    bob = harness.jid_of("bob")
    yield harness.send(
        a1,
        f"<iq type='set' id='s'><query xmlns='jabber:iq:roster'><item jid='{bob}' name='Bob'>"
        "<group>Friends</group></item></query></iq>",
    )
    out1, out2 = a1.take(), a2.take()
    push = next(s for s in out1 if s["type"] == "set")
    assert [s["type"] for s in out1] == ["set", "result"]
    assert [s["type"] for s in out2] == ["set"]
    item = roster_items(push)[bob]
    assert item["subscription"] == "none" and item["name"] == "Bob"
    ver1 = push.firstChildElement()["ver"]
    assert ver1 != ver0
    # XEP-0237 §2.3: an unchanged version gets an empty result.
    yield harness.send(
        a1, f"<iq type='get' id='v'><query xmlns='jabber:iq:roster' ver='{ver1}'/></iq>"
    )
    [same] = a1.take()
    assert same.firstChildElement() is None
    yield harness.send(
        a1, f"<iq type='get' id='v'><query xmlns='jabber:iq:roster' ver='{ver0}'/></iq>"
    )
    [full] = a1.take()
    assert list(roster_items(full)) == [bob]
    yield harness.send(
        a1,
        f"<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='{bob}' subscription='remove'/></query></iq>",
    )
    push = next(s for s in a1.take() if s["type"] == "set")
    assert roster_items(push)[bob]["subscription"] == "remove"


@pytest_twisted.inlineCallbacks
def test_roster_limit_is_enforced(harness):
    """RFC 6121 §2.3.3 and the configured max_items: not-allowed beyond it."""
    alice = yield harness.login("alice")
    for n in range(3):
        yield harness.send(
            alice,
            f"<iq type='set' id='s{n}'><query xmlns='jabber:iq:roster'><item jid='c{n}@example.net'/></query></iq>",
        )
    results = [s for s in alice.take() if s.getAttribute("id", "").startswith("s")]
    assert [s["type"] for s in results] == ["result", "result", "error"]
    assert results[2].error.firstChildElement().name == "not-allowed"


@pytest_twisted.inlineCallbacks
def test_subscription_handshake_and_presence(harness):
    """RFC 6121 §3.1: subscribe, approve, then presence flows to the subscriber."""
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    for c in (alice, bob):
        yield harness.send(c, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>")
        c.take()
    yield harness.send(alice, f"<presence to='{bob.bare}' type='subscribe'/>")
    pushes = alice.take()
    assert roster_items(pushes[0])[bob.bare]["ask"] == "subscribe"
    request = [s for s in bob.take() if s.name == "presence"]
    assert request[0]["type"] == "subscribe" and request[0]["from"] == alice.bare
    yield harness.send(bob, f"<presence to='{alice.bare}' type='subscribed'/>")
    bob_push = [s for s in bob.take() if s.name == "iq"]
    assert roster_items(bob_push[0])[alice.bare]["subscription"] == "from"
    got = alice.take()
    kinds = [(s.name, s.getAttribute("type")) for s in got]
    assert ("presence", "subscribed") in kinds
    assert ("presence", None) in kinds  # §3.1.5: bob's current presence follows
    push = next(s for s in got if s.name == "iq")
    assert roster_items(push)[bob.bare]["subscription"] == "to"
    # Bob's presence changes reach Alice now; Alice's do not reach Bob.
    yield harness.send(bob, "<presence><show>away</show></presence>")
    assert [str(s.show) for s in alice.take() if s.name == "presence"] == ["away"]
    assert [s["to"] for s in bob.take()] == [bob.jid]  # §4.4.2: own resources too
    yield harness.send(alice, "<presence><show>dnd</show></presence>")
    assert [s["from"] for s in bob.take() if s.name == "presence"] == []
    alice.take()
    # §4.5.2: a stream that ends sends unavailable to subscribers.
    yield harness.disconnect(bob)
    gone = [s for s in alice.take() if s.name == "presence"]
    assert gone and gone[0]["type"] == "unavailable"


@pytest_twisted.inlineCallbacks
def test_preapproval_answers_subscribe_on_users_behalf(harness):
    """RFC 6121 §3.4: a pre-approved request is approved by the server."""
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(bob, f"<presence to='{alice.bare}' type='subscribed'/>")
    bob.take()
    yield harness.send(alice, f"<presence to='{bob.bare}' type='subscribe'/>")
    assert [s for s in bob.take() if s.name == "presence"] == []
    assert ("presence", "subscribed") in [(s.name, s.getAttribute("type")) for s in alice.take()]


@pytest_twisted.inlineCallbacks
def test_initial_presence_gets_contacts_presence(harness):
    """RFC 6121 §4.2.2: a new available resource learns subscribed contacts' presence."""
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(alice, f"<presence to='{bob.bare}' type='subscribe'/>")
    yield harness.send(bob, f"<presence to='{alice.bare}' type='subscribed'/>")
    late = yield harness.login("alice", "late")
    yield harness.send(late, "<presence/>")
    got = [s for s in late.take() if s.name == "presence"]
    senders = {s["from"] for s in got}
    assert bob.jid in senders and alice.jid in senders and late.jid in senders


@pytest_twisted.inlineCallbacks
def test_directed_presence_and_its_unavailable(harness):
    """RFC 6121 §4.6: directed presence reaches a non-subscriber; unavailable follows it."""
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(alice, f"<presence to='{bob.jid}'/>")
    assert [s["from"] for s in bob.take()] == [alice.jid]
    yield harness.send(alice, "<presence type='unavailable'/>")
    assert [s.getAttribute("type") for s in bob.take()] == ["unavailable"]


@pytest_twisted.inlineCallbacks
def test_roster_set_to_another_user_is_forbidden(harness):
    """SECURITY H57 / RFC 6121 §2.1.5: a roster query to someone else's JID changes nothing."""
    alice = yield harness.login("alice", available=True)
    bob = yield harness.login("bob", available=True)
    yield harness.send(
        alice,
        f"<iq type='set' id='x' to='{bob.bare}'><query xmlns='jabber:iq:roster'><item jid='evil@x'/></query></iq>",
    )
    [error] = alice.take()
    assert error["type"] == "error"
    assert bob.take() == []
