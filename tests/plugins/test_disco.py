"""XEP-0030: Service Discovery, through the real router with the built-in plugins."""

import pytest
import pytest_twisted
from twisted.words.xish import domish

from tests.harness import DOMAIN, Harness
from xmppd.plugin import Identity

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"


@pytest.fixture
def harness(tmp_path):
    h = pytest_twisted.blockon(Harness.start(tmp_path))  # disco, ping, time, version
    yield h
    pytest_twisted.blockon(h.stop())


def ask(h, client, namespace, to=DOMAIN, node=None):
    to = f" to='{to}'" if to else ""
    node = f" node='{node}'" if node else ""
    return h.send(client, f"<iq type='get' id='d1'{to}><query xmlns='{namespace}'{node}/></iq>")


def answer(client):
    [reply] = client.take()
    assert reply["id"] == "d1"
    return reply


def info(reply):
    assert reply["type"] == "result", reply.toXml()
    query = reply.firstChildElement()
    identities = {
        (i["category"], i["type"], i.getAttribute("name"))
        for i in query.elements(NS_INFO, "identity")
    }
    features = [f["var"] for f in query.elements(NS_INFO, "feature")]
    return identities, features


def items(reply):
    assert reply["type"] == "result", reply.toXml()
    query = reply.firstChildElement()
    return [(i["jid"], i.getAttribute("name"), i.getAttribute("node")) for i in query.elements()]


def condition(reply):
    assert reply["type"] == "error"
    return reply.error.firstChildElement().name


@pytest_twisted.inlineCallbacks
def test_server_info_lists_every_loaded_plugin(harness):
    """§3.1: the server's identity and the features of every loaded plugin, each once."""
    alice = yield harness.login("alice")
    yield ask(harness, alice, NS_INFO)
    reply = answer(alice)
    assert reply["from"] == DOMAIN
    identities, features = info(reply)
    assert identities == {("server", "im", "xmppd")}
    assert features == sorted(
        [NS_INFO, NS_ITEMS, "jabber:iq:version", "urn:xmpp:ping", "urn:xmpp:time"]
    )


@pytest_twisted.inlineCallbacks
def test_disco_info_event_adds_features_identities_and_forms(harness):
    """§3.1 and XEP-0128: plugins add to the answer through the disco-info event."""
    form = domish.Element(("jabber:x:data", "x"))
    form["type"] = "result"
    seen = []

    def extra(query):
        seen.append(query)
        return ["urn:example:extra", Identity("pubsub", "pep"), form]

    harness.server.events.on("disco-info", extra)
    harness.server.events.on("disco-info", lambda query: None)  # not its query
    alice = yield harness.login("alice")
    yield ask(harness, alice, NS_INFO)
    reply = answer(alice)
    identities, features = info(reply)
    assert ("pubsub", "pep", None) in identities and "urn:example:extra" in features
    assert reply.firstChildElement().firstChildElement().name == "identity"
    assert [x.uri for x in reply.firstChildElement().elements() if x.name == "x"] == [
        "jabber:x:data"
    ]
    assert (seen[0].dest, seen[0].to.full(), seen[0].node) == ("host", DOMAIN, None)


@pytest_twisted.inlineCallbacks
def test_unknown_node_is_item_not_found(harness):
    """§7: a JID+node that does not exist is item-not-found, for info and items."""
    alice = yield harness.login("alice")
    for namespace in (NS_INFO, NS_ITEMS):
        yield ask(harness, alice, namespace, node="nowhere")
        assert condition(answer(alice)) == "item-not-found"


@pytest_twisted.inlineCallbacks
def test_known_node_is_answered_by_its_owner(harness):
    """§3.2, §4.2: a node's answer comes from its owner and mirrors the node."""

    def commands(query):
        if query.node == "http://jabber.org/protocol/commands":
            return [Identity("automation", "command-list")]
        return None

    def command_items(query):
        if query.node == "http://jabber.org/protocol/commands":
            return [(DOMAIN, "Uptime", "uptime")]
        return None

    harness.server.events.on("disco-info", commands)
    harness.server.events.on("disco-items", command_items)
    alice = yield harness.login("alice")
    yield ask(harness, alice, NS_INFO, node="http://jabber.org/protocol/commands")
    reply = answer(alice)
    assert reply.firstChildElement()["node"] == "http://jabber.org/protocol/commands"
    assert info(reply) == ({("automation", "command-list", None)}, [])
    yield ask(harness, alice, NS_ITEMS, node="http://jabber.org/protocol/commands")
    assert items(answer(alice)) == [(DOMAIN, "Uptime", "uptime")]


@pytest_twisted.inlineCallbacks
def test_server_items_are_empty_by_default_and_contributed(harness):
    """§4.1: no items is an empty query element; plugins add items via disco-items."""
    alice = yield harness.login("alice")
    yield ask(harness, alice, NS_ITEMS)
    assert items(answer(alice)) == []
    harness.server.events.on("disco-items", lambda q: [(f"conference.{DOMAIN}", "Rooms", None)])
    yield ask(harness, alice, NS_ITEMS)
    assert items(answer(alice)) == [(f"conference.{DOMAIN}", "Rooms", None)]


@pytest.mark.parametrize("to", ["bare", None])
@pytest_twisted.inlineCallbacks
def test_own_account_info(harness, to):
    """§3.1: the server answers for the account: identity account/registered."""
    alice = yield harness.login("alice")
    yield ask(harness, alice, NS_INFO, to=alice.bare if to else None)
    reply = answer(alice)
    assert reply["from"] == alice.bare
    assert info(reply) == ({("account", "registered", None)}, [NS_INFO])


@pytest_twisted.inlineCallbacks
def test_own_account_items_are_available_resources(harness):
    """§4.1: for the account, its available resources."""
    phone = yield harness.login("alice", "phone", available=True)
    yield harness.login("alice", "laptop")  # bound, no presence: not listed
    yield ask(harness, phone, NS_ITEMS, to=phone.bare)
    assert items(answer(phone)) == [(phone.jid, None, None)]


@pytest_twisted.inlineCallbacks
def test_other_accounts_leak_nothing(harness):
    """§8: info is service-unavailable and items empty, whether the account exists or not."""
    alice = yield harness.login("alice")
    yield harness.login("bob", available=True)
    for target in (harness.jid_of("bob"), f"nobody@{DOMAIN}"):
        yield ask(harness, alice, NS_INFO, to=target)
        assert condition(answer(alice)) == "service-unavailable"
        yield ask(harness, alice, NS_ITEMS, to=target)
        assert items(answer(alice)) == []
