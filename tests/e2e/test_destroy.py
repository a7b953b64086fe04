"""plugins/destroy end to end: self-destroying messages (``<destroy
xmlns='urn:xmpp:message-destroy-after:0' after='N'/>``) between slixmpp clients
through a real ``twistd xmppd`` with plugins/offline."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from .conftest import DOMAIN, Client, XmppServer, login, logout, run, session

pytestmark = pytest.mark.e2e

NS = "urn:xmpp:message-destroy-after:0"
PLUGINS = ("xep_0030", "xep_0199")


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {
        "plugins": {
            "enabled": ["disco", "ping", "time", "version", "offline", "destroy"],
            "destroy": {"max_after": 3600},
        }
    }


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "carol")


def record(client: Client) -> None:
    client.register_handler(
        Callback("every message", StanzaPath("message"), client._recorder("any_message"))
    )


def burning(sender: Client, to: str, after: str, body: str = "secret") -> Any:
    message = sender.make_message(mto=to, mbody=body, mtype="chat")
    ET.SubElement(message.xml, f"{{{NS}}}destroy", after=after)
    return message


def test_routed_with_its_destroy_element(server: XmppServer) -> None:
    """Delivered to an online recipient with <destroy after='N'/> as sent."""

    async def scenario() -> Any:
        b = await login(server, "bob", plugins=PLUGINS)
        try:
            record(b)
            b.send_presence()
            await b.expect("presence", lambda p: p["from"] == b.boundjid)
            async with session(server, "alice", plugins=PLUGINS) as a:
                burning(a, b.boundjid.bare, "5").send()
                return await b.expect("any_message", lambda m: m["body"] == "secret")
        finally:
            await logout(b)

    got = run(scenario())
    assert got.xml.find(f"{{{NS}}}destroy").get("after") == "5"


def test_out_of_bounds_after_is_bad_request(server: XmppServer) -> None:
    """RFC 6120 §8.3.3.1: after='0' or beyond max_after: bad-request, code 400."""

    async def scenario() -> list[Any]:
        async with session(server, "alice", plugins=PLUGINS) as a:
            record(a)
            bob = server.users["bob"].jid
            burning(a, bob, "0", "zero").send()
            burning(a, bob, "3601", "too long").send()
            await a.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
            return a.seen("any_message")

    errors = run(scenario())
    assert [e["body"] for e in errors] == ["zero", "too long"]
    assert {(e["error"]["condition"], e["error"]["code"]) for e in errors} == {
        ("bad-request", "400")
    }


def test_offline_copy_is_gone_after_n_seconds(server: XmppServer) -> None:
    """The server keeps no copy past N seconds: an offline recipient who comes
    online later gets the ordinary message, not the expired one."""
    carol = server.users["carol"].jid

    async def send() -> None:
        async with session(server, "alice", plugins=PLUGINS) as a:
            record(a)
            burning(a, carol, "1", "burnt").send()
            a.send_message(mto=carol, mbody="kept", mtype="chat")
            await a.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
            assert a.seen("any_message") == []

    async def receive() -> list[str]:
        async with session(server, "carol", plugins=PLUGINS) as c:
            record(c)
            c.send_presence()
            await c.expect("any_message", lambda m: m["body"] == "kept")
            await c.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
            return [m["body"] for m in c.seen("any_message")]

    run(send())
    run(asyncio.sleep(1.5))  # past the one-second deadline
    assert run(receive()) == ["kept"]


def test_disco_lists_the_namespace(server: XmppServer) -> None:
    """The server advertises urn:xmpp:message-destroy-after:0."""

    async def scenario() -> Any:
        async with session(server, "bob", plugins=PLUGINS) as c:
            return await c.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)

    assert NS in run(scenario())["disco_info"]["features"]
