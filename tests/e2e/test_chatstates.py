"""plugins/chatstates end to end: slixmpp's XEP-0085 plugin (``xep_0085``) on both
sides against a real ``twistd xmppd`` with plugins/offline."""

from __future__ import annotations

from typing import Any

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from .conftest import DOMAIN, Client, XmppServer, login, logout, run, session

pytestmark = pytest.mark.e2e

NS = "http://jabber.org/protocol/chatstates"
PLUGINS = ("xep_0030", "xep_0085", "xep_0199")
STATES = ("active", "composing", "paused", "inactive", "gone")


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {"plugins": {"enabled": ["disco", "ping", "time", "version", "offline", "chatstates"]}}


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "carol")


def record(client: Client) -> None:
    """Every <message/> as "any_message", every chat state as "chatstate"."""
    client.register_handler(
        Callback("every message", StanzaPath("message"), client._recorder("any_message"))
    )
    client.add_event_handler("chatstate", client._recorder("chatstate"))


async def online(server: XmppServer, name: str) -> Client:
    client = await login(server, name, plugins=PLUGINS)
    record(client)
    client.send_presence()
    await client.expect("presence", lambda p: p["from"] == client.boundjid)
    return client


def test_every_state_is_routed(server: XmppServer) -> None:
    """§2, RFC 6121 §8.5: each of the five standalone states reaches the contact."""

    async def scenario() -> list[str]:
        a, b = await online(server, "alice"), await online(server, "bob")
        try:
            for state in STATES:
                message = a.make_message(mto=b.boundjid.bare, mtype="chat")
                message["chat_state"] = state
                message.send()
            for state in STATES:
                await b.expect("chatstate", lambda m, s=state: m["chat_state"] == s)
            return [m["chat_state"] for m in b.seen("chatstate")]
        finally:
            await logout(a, b)

    assert run(scenario()) == list(STATES)


def test_content_message_keeps_its_active_state(server: XmppServer) -> None:
    """§5.6: a content message carries <active/>; both arrive together."""

    async def scenario() -> Any:
        a, b = await online(server, "alice"), await online(server, "bob")
        try:
            message = a.make_message(mto=b.boundjid.full, mbody="hello", mtype="chat")
            message["chat_state"] = "active"
            message.send()
            return await b.expect("message", lambda m: m["body"] == "hello")
        finally:
            await logout(a, b)

    got = run(scenario())
    assert got["chat_state"] == "active"


def test_standalone_to_offline_user_dropped_without_error(server: XmppServer) -> None:
    """§5.8, XEP-0160 §3: a typing notice for an offline user is neither stored nor
    bounced; a content message sent after it is stored and is all that arrives."""
    carol = server.users["carol"].jid

    async def send() -> list[Any]:
        async with session(server, "alice", plugins=PLUGINS) as a:
            record(a)
            typing = a.make_message(mto=carol, mtype="chat")
            typing["chat_state"] = "composing"
            typing.send()
            a.send_message(mto=carol, mbody="are you there?", mtype="chat")
            await a.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)  # all handled (§10.1)
            return a.seen("any_message")

    assert run(send()) == []  # no error for either

    async def receive() -> list[Any]:
        c = await online(server, "carol")
        try:
            await c.expect("message", lambda m: m["body"] == "are you there?")
            await c.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
            return c.seen("any_message")
        finally:
            await logout(c)

    [stored] = run(receive())
    assert stored["body"] == "are you there?"
    assert stored.xml.find("{urn:xmpp:delay}delay").get("from") == DOMAIN  # XEP-0203


def test_disco_lists_chatstates(server: XmppServer) -> None:
    """§4: the server advertises http://jabber.org/protocol/chatstates."""

    async def scenario() -> Any:
        async with session(server, "bob", plugins=PLUGINS) as c:
            return await c.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)

    assert NS in run(scenario())["disco_info"]["features"]
