"""plugins/system_messages end to end: the hosted SDKs' headline system message
(SDK-CONTRACT §4.5) sent and received by slixmpp against a real ``twistd xmppd``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from .conftest import DOMAIN, Client, XmppServer, login, logout, run, session

pytestmark = pytest.mark.e2e

PLUGINS = ("xep_0199", "xep_0203")
EXTRA = "{jabber:client}extraParams"


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {
        "plugins": {"enabled": ["disco", "ping", "time", "version", "offline", "system_messages"]}
    }


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "carol")


def record(client: Client) -> None:
    client.register_handler(
        Callback("every message", StanzaPath("message"), client._recorder("any_message"))
    )


def system_message(sender: Client, to: str, kind: str = "headline") -> Any:
    """What ``chat.sendSystemMessage(userId, {body, extension})`` sends (§4.5)."""
    message = sender.make_message(mto=to, mbody="new order", mtype=kind)
    extra = ET.SubElement(message.xml, EXTRA)
    ET.SubElement(extra, "{jabber:client}moduleIdentifier").text = "SystemNotifications"
    ET.SubElement(extra, "{jabber:client}order_id").text = "42"
    ET.SubElement(extra, "{jabber:client}save_to_history").text = "1"
    return message


def params(message: Any) -> dict[str, str | None]:
    extra = message.xml.find(EXTRA)
    return {child.tag.split("}")[1]: child.text for child in extra}


def test_delivered_to_every_resource(server: XmppServer) -> None:
    """§4.5, RFC 6121 §8.5.2.1.1: a headline to the user's JID reaches each online
    resource with its parameters; save_to_history is gone (never stored)."""
    bob = server.users["bob"].jid

    async def scenario() -> list[Any]:
        phone = await login(server, "bob", resource="phone", plugins=PLUGINS)
        laptop = await login(server, "bob", resource="laptop", plugins=PLUGINS)
        try:
            for c in (phone, laptop):
                record(c)
                c.send_presence()
                await c.expect("presence", lambda p, c=c: p["from"] == c.boundjid)
            async with session(server, "alice", plugins=PLUGINS) as a:
                system_message(a, bob).send()
                return [
                    await c.expect("any_message", lambda m: m["type"] == "headline")
                    for c in (phone, laptop)
                ]
        finally:
            await logout(phone, laptop)

    for got in run(scenario()):
        assert got["body"] == "new order"
        assert params(got) == {"moduleIdentifier": "SystemNotifications", "order_id": "42"}


def test_group_chat_address_is_refused(server: XmppServer) -> None:
    """FEATURES.md "1-1 only", SECURITY H65: a system message to a room at
    muc.{domain}, or as groupchat, gets not-allowed (RFC 6120 §8.3.3.9, code 405)."""

    async def scenario() -> list[Any]:
        async with session(server, "alice", plugins=PLUGINS) as a:
            record(a)
            system_message(a, f"1_65f0c0ffee0000000000abcd@muc.{DOMAIN}").send()
            system_message(a, server.users["bob"].jid, "groupchat").send()
            await a.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
            return a.seen("any_message")

    errors = run(scenario())
    assert [e["type"] for e in errors] == ["error", "error"]
    assert {(e["error"]["condition"], e["error"]["code"]) for e in errors} == {
        ("not-allowed", "405")
    }


def test_offline_user_gets_nothing_later(server: XmppServer) -> None:
    """RFC 6121 §8.5.2.2.1, XEP-0160 §3: for an offline user it is dropped without
    an error and not stored: nothing arrives when the user comes online."""
    carol = server.users["carol"].jid

    async def send() -> list[Any]:
        async with session(server, "alice", plugins=PLUGINS) as a:
            record(a)
            system_message(a, carol).send()
            a.send_message(mto=carol, mbody="marker", mtype="chat")  # stored, to wait for
            await a.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
            return a.seen("any_message")

    assert run(send()) == []

    async def receive() -> list[Any]:
        async with session(server, "carol", plugins=PLUGINS) as c:
            record(c)
            c.send_presence()
            await c.expect("any_message", lambda m: m["body"] == "marker")
            await c.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
            return c.seen("any_message")

    assert [m["body"] for m in run(receive())] == ["marker"]
