"""XEP-0352 Client State Indication end to end: slixmpp's xep_0352 (and the
ConnectyCube SDK's Tigase mobile v2 IQ) against a real ``twistd xmppd``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from .conftest import DOMAIN, Client, XmppServer, login, logout, run

pytestmark = pytest.mark.e2e

NS_MOBILE = "http://tigase.org/protocol/mobile#v2"
PLUGINS = ("xep_0030", "xep_0085", "xep_0199", "xep_0352")


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {"plugins": {"enabled": ["disco", "ping", "csi"]}}


async def connect(server: XmppServer, name: str) -> Client:
    client = await login(server, name, plugins=PLUGINS)
    client.add_event_handler("chatstate", client._recorder("chatstate"))
    client.send_presence()
    await round_trip(client)
    return client


async def round_trip(client: Client) -> None:
    """A ping answered: the server has handled everything this client sent before."""
    await client.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)


def from_bob(bob: Client):
    return lambda stanza: stanza["from"] == bob.boundjid.full


def kinds(client: Client, start: int, bob: Client) -> list[str]:
    """What ``client`` received from ``bob`` since ``start``, by kind."""
    return [
        name
        for name, data in client.received[start:]
        if name in ("presence", "chatstate", "message") and data["from"] == bob.boundjid.full
    ]


async def mobile(client: Client, enable: str) -> None:
    iq = client.make_iq_set()
    iq.xml.append(ET.Element(f"{{{NS_MOBILE}}}mobile", {"enable": enable}))
    await iq.send(timeout=10)


def test_inactive_client_gets_presence_and_chat_states_when_active(server: XmppServer) -> None:
    """§4.1: slixmpp sees the <csi/> feature; §4.2, §3.2: while alice is inactive,
    bob's presence update and chat state wait, and <active/> sends them, in order,
    before the answer to alice's next request (§5.1)."""

    async def scenario() -> None:
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        try:
            assert alice.plugin["xep_0352"].enabled  # the stream feature was offered
            alice.plugin["xep_0352"].send_inactive()
            await round_trip(alice)
            mark = len(alice.received)
            bob.send_presence(pto=alice.boundjid.full, pshow="away")
            state = bob.make_message(mto=alice.boundjid.full, mtype="chat")
            state["chat_state"] = "composing"
            state.send()
            await round_trip(bob)  # handled, so held or already on their way to alice
            assert kinds(alice, mark, bob) == []
            alice.plugin["xep_0352"].send_active()
            await round_trip(alice)
            assert kinds(alice, mark, bob) == ["presence", "chatstate"]
            presence = alice.seen("presence")[-1]
            assert presence["show"] == "away"
        finally:
            await logout(alice, bob)

    run(scenario())


def test_a_message_with_a_body_is_not_held(server: XmppServer) -> None:
    """§3.2: an inactive client still gets messages at once, after what was held."""

    async def scenario() -> None:
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        try:
            alice.plugin["xep_0352"].send_inactive()
            await round_trip(alice)
            mark = len(alice.received)
            bob.send_presence(pto=alice.boundjid.full, pshow="dnd")
            bob.send_message(mto=alice.boundjid.full, mbody="wake up", mtype="chat")
            await alice.expect("message", lambda m: m["body"] == "wake up")
            assert kinds(alice, mark, bob) == ["presence", "message"]
        finally:
            await logout(alice, bob)

    run(scenario())


def test_connectycube_mobile_iq(server: XmppServer) -> None:
    """COMPAT (SDK-CONTRACT §4.8): markInactive's <mobile enable='true'/> holds
    presence like <inactive/>; markActive's enable='false' sends it before its
    result; another value is bad-request."""

    async def scenario() -> None:
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        try:
            await mobile(alice, "true")
            mark = len(alice.received)
            bob.send_presence(pto=alice.boundjid.full, pshow="xa")
            await round_trip(bob)
            assert kinds(alice, mark, bob) == []
            await mobile(alice, "false")
            assert kinds(alice, mark, bob) == ["presence"]
            with pytest.raises(IqError) as caught:
                await mobile(alice, "sometimes")
            assert caught.value.condition == "bad-request"
        finally:
            await logout(alice, bob)

    run(scenario())
