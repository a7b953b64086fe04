"""XEP-0280 Message Carbons end to end: slixmpp's xep_0280 on two resources of
alice, and bob as the third client, against a real ``twistd xmppd``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from .conftest import DOMAIN, Client, XmppServer, login, logout, run

pytestmark = pytest.mark.e2e

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
EVENTS = ("carbon_received", "carbon_sent", "message_error")


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {"plugins": {"enabled": ["disco", "ping", "carbons"]}}


async def connect(server: XmppServer, login_name: str, resource: str, priority: int) -> Client:
    client = await login(
        server, login_name, resource=resource, plugins=("xep_0030", "xep_0297", "xep_0280")
    )
    for event in EVENTS:
        client.add_event_handler(event, client._recorder(event))
    client.send_presence(ppriority=priority)
    return client


async def three_clients(server: XmppServer) -> tuple[Client, Client, Client]:
    """alice/phone (priority 1) and alice/laptop (0) with carbons on; bob."""
    phone = await connect(server, "alice", "phone", 1)
    laptop = await connect(server, "alice", "laptop", 0)
    bob = await connect(server, "bob", "desk", 0)
    await phone.plugin["xep_0280"].enable(timeout=10)  # §4: an IQ-result
    await laptop.plugin["xep_0280"].enable(timeout=10)
    for client in (phone, laptop, bob):  # the presences are through: a round trip
        await client.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)
    return phone, laptop, bob


def body_is(text: str):
    return lambda msg: msg["body"] == text


def inner_body_is(direction: str, text: str):
    return lambda msg: msg[direction]["body"] == text


def test_received_and_sent_carbons_reach_only_the_other_resource(server: XmppServer) -> None:
    """§7: bob's message to alice's bare JID reaches the top-priority phone, and the
    laptop a <received/> copy from alice's bare JID (slixmpp drops any other); the
    phone gets no copy of what it got. §8: what the phone sends, the laptop sees as
    <sent/>, the phone does not."""

    async def scenario() -> None:
        phone, laptop, bob = await three_clients(server)
        try:
            bob.send_message(mto=phone.boundjid.bare, mbody="one", mtype="chat")
            carbon = await laptop.expect("carbon_received", inner_body_is("carbon_received", "one"))
            assert carbon["from"] == phone.boundjid.bare
            assert carbon["to"] == laptop.boundjid.full
            assert carbon["carbon_received"]["from"] == bob.boundjid.full
            await phone.expect("message", body_is("one"))
            # The server writes a copy before the original it copies: none came.
            assert phone.seen("carbon_received") == []
            assert laptop.seen("message") == []

            phone.send_message(mto=bob.boundjid.bare, mbody="two", mtype="chat")
            await bob.expect("message", body_is("two"))
            sent = await laptop.expect("carbon_sent", inner_body_is("carbon_sent", "two"))
            assert sent["carbon_sent"]["to"] == bob.boundjid.bare
            bob.send_message(mto=phone.boundjid.full, mbody="three", mtype="chat")
            await phone.expect("message", body_is("three"))
            assert phone.seen("carbon_sent") == []
            await laptop.expect("carbon_received", inner_body_is("carbon_received", "three"))
        finally:
            await logout(phone, laptop, bob)

    run(scenario())


def test_private_messages_and_disabled_resources_get_no_copies(server: XmppServer) -> None:
    """§9: <private/> with <no-copy/> is not copied and reaches bob without
    <private/>; §5: after <disable/> the laptop gets no copies."""

    async def scenario() -> None:
        phone, laptop, bob = await three_clients(server)
        try:
            secret = phone.make_message(mto=bob.boundjid.bare, mbody="secret", mtype="chat")
            secret.xml.append(ET.Element(f"{{{NS_CARBONS}}}private"))
            secret.xml.append(ET.Element("{urn:xmpp:hints}no-copy"))
            secret.send()
            got = await bob.expect("message", body_is("secret"))
            assert got.xml.find(f"{{{NS_CARBONS}}}private") is None
            phone.send_message(mto=bob.boundjid.bare, mbody="public", mtype="chat")
            await bob.expect("message", body_is("public"))
            sent = await laptop.expect("carbon_sent")
            assert sent["carbon_sent"]["body"] == "public"

            await laptop.plugin["xep_0280"].disable(timeout=10)
            bob.send_message(mto=phone.boundjid.bare, mbody="not for the laptop", mtype="chat")
            await phone.expect("message", body_is("not for the laptop"))
            bob.send_message(mto=laptop.boundjid.full, mbody="for the laptop", mtype="chat")
            await laptop.expect("message", body_is("for the laptop"))
            assert len(laptop.seen("carbon_sent")) == 1
            assert laptop.seen("carbon_received") == []
        finally:
            await logout(phone, laptop, bob)

    run(scenario())


def test_a_client_cannot_forge_a_carbon(server: XmppServer) -> None:
    """§11, SECURITY.md H58: bob's made-up <received/> carbon for alice is refused
    with not-allowed and reaches neither of her resources."""

    async def scenario() -> None:
        phone, laptop, bob = await three_clients(server)
        try:
            forged = bob.make_message(mto=phone.boundjid.bare, mtype="chat")
            forged["id"] = "forged1"
            wrapper = ET.SubElement(forged.xml, f"{{{NS_CARBONS}}}received")
            inner = ET.SubElement(
                ET.SubElement(wrapper, f"{{{NS_FORWARD}}}forwarded"),
                "{jabber:client}message",
                {"from": phone.boundjid.full, "to": "x@" + DOMAIN, "type": "chat"},
            )
            ET.SubElement(inner, "{jabber:client}body").text = "I owe bob"
            forged.send()
            error = await bob.expect("message_error", lambda m: m["id"] == "forged1")
            assert error["error"]["condition"] == "not-allowed"
            assert error["error"]["code"] == "405"  # XEP-0086
            bob.send_message(mto=phone.boundjid.bare, mbody="after", mtype="chat")
            await phone.expect("message", body_is("after"))
            await laptop.expect("carbon_received", inner_body_is("carbon_received", "after"))
            assert len(laptop.seen("carbon_received")) == 1
            assert phone.seen("carbon_received") == []
        finally:
            await logout(phone, laptop, bob)

    run(scenario())


def test_disco_advertises_carbons(server: XmppServer) -> None:
    """§3: urn:xmpp:carbons:2 in the server's disco#info."""

    async def scenario() -> list[str]:
        client = await connect(server, "alice", "disco", 0)
        try:
            info = await client.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)
            return info["disco_info"]["features"]
        finally:
            await logout(client)

    features = run(scenario())
    assert "urn:xmpp:carbons:2" in features
    assert "urn:xmpp:carbons:rules:0" in features
