"""plugins/offline end to end: slixmpp clients (XEP-0203 ``xep_0203``, XEP-0334
``xep_0334``) against a real ``twistd xmppd``, including a restart in between."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from .conftest import DOMAIN, Client, XmppServer, login, logout, run, session

pytestmark = pytest.mark.e2e

PLUGINS = ("xep_0030", "xep_0199", "xep_0203", "xep_0334")
MAX_MESSAGES = 3


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {
        "plugins": {
            "enabled": ["disco", "ping", "time", "version", "offline"],
            "offline": {"max_messages": MAX_MESSAGES},
        }
    }


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "carol", "dave", "erin", "frank")


def record_messages(client: Client) -> None:
    """Every <message/>, errors and body-less ones included, as "any_message"."""
    client.register_handler(
        Callback("every message", StanzaPath("message"), client._recorder("any_message"))
    )


async def settled(client: Client) -> None:
    """A ping round trip: the server has handled everything the client sent before
    (RFC 6120 §10.1, in order), bounces included."""
    await client.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)


async def come_online(server: XmppServer, login_name: str) -> Client:
    client = await login(server, login_name, plugins=PLUGINS)
    record_messages(client)
    client.send_presence()  # XEP-0160 §2 step 5: the stored messages follow
    return client


def test_stored_and_delivered_in_order_with_delay(server: XmppServer) -> None:
    """XEP-0160 §2, XEP-0203: messages to an offline user arrive at its next
    presence, in order, each with <delay from='{domain}' stamp=.../>, once."""
    bob = server.users["bob"].jid

    async def scenario() -> None:
        async with session(server, "alice", plugins=PLUGINS) as a:
            record_messages(a)
            before = datetime.now(UTC) - timedelta(seconds=1)
            for text in ("first", "second"):
                a.send_message(mto=bob, mbody=text, mtype="chat")
            await settled(a)
            assert a.seen("any_message") == []  # stored, no bounce
        b = await come_online(server, "bob")
        try:
            got = [
                await b.expect("message", lambda m, t=t: m["body"] == t)
                for t in ("first", "second")
            ]
            assert [m["body"] for m in b.seen("message")] == ["first", "second"]
            for message in got:
                assert message["delay"]["from"] == DOMAIN
                assert before <= message["delay"]["stamp"] <= datetime.now(UTC)
                assert message["from"].bare == server.users["alice"].jid
        finally:
            await logout(b)
        again = await come_online(server, "bob")
        try:
            await settled(again)
            assert again.seen("message") == []  # delivered once
        finally:
            await logout(again)

    run(scenario())


def test_storage_survives_a_restart(server: XmppServer) -> None:
    """Offline messages are in the database: a restarted server delivers them."""
    carol = server.users["carol"].jid

    async def send() -> None:
        async with session(server, "alice", plugins=PLUGINS) as a:
            a.send_message(mto=carol, mbody="across a restart", mtype="chat")
            await settled(a)

    async def receive() -> str:
        c = await come_online(server, "carol")
        try:
            return (await c.expect("message"))["body"]
        finally:
            await logout(c)

    run(send())
    server.stop()  # SIGTERM, bounded wait
    server.start()
    assert run(receive()) == "across a restart"


def test_full_queue_bounces_service_unavailable(server: XmppServer) -> None:
    """XEP-0160 §2 step 3: beyond max_messages the sender gets service-unavailable
    with the legacy code 503 (SDK-CONTRACT §4.5)."""
    dave = server.users["dave"].jid

    async def scenario() -> Any:
        async with session(server, "alice", plugins=PLUGINS) as a:
            record_messages(a)
            for n in range(MAX_MESSAGES + 1):
                a.send_message(mto=dave, mbody=f"n{n}", mtype="chat")
            return await a.expect("any_message", lambda m: m["type"] == "error")

    error = run(scenario())
    assert error["body"] == f"n{MAX_MESSAGES}"
    assert error["error"]["condition"] == "service-unavailable"
    assert error["error"]["code"] == "503"


def test_hints_decide_what_is_stored(server: XmppServer) -> None:
    """XEP-0334 §4.2, §4.4: <no-store/> bounces (RFC 6121 §8.5.2.2.1), <store/>
    keeps a body-less message; a headline vanishes (XEP-0160 §3)."""
    erin = server.users["erin"].jid

    async def send() -> Any:
        async with session(server, "alice", plugins=PLUGINS) as a:
            record_messages(a)
            secret = a.make_message(mto=erin, mbody="not kept", mtype="chat")
            secret.enable("no-store")
            secret.send()
            keep = a.make_message(mto=erin, mtype="chat")
            keep.enable("store")
            keep["id"] = "bodyless"
            keep.send()
            a.send_message(mto=erin, mbody="news", mtype="headline")
            bounce = await a.expect("any_message", lambda m: m["type"] == "error")
            await settled(a)
            assert len(a.seen("any_message")) == 1
            return bounce

    bounce = run(send())
    assert bounce["body"] == "not kept"
    assert bounce["error"]["condition"] == "service-unavailable"

    async def receive() -> list[Any]:
        e = await come_online(server, "erin")
        try:
            await e.expect("any_message", lambda m: m["id"] == "bodyless")
            await settled(e)
            return e.seen("any_message")
        finally:
            await logout(e)

    got = run(receive())
    assert [m["id"] for m in got] == ["bodyless"]


def test_disco_lists_msgoffline(server: XmppServer) -> None:
    """XEP-0160 §4: the server advertises msgoffline."""

    async def scenario() -> Any:
        async with session(server, "frank", plugins=PLUGINS) as c:
            return await c.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)

    assert "msgoffline" in run(scenario())["disco_info"]["features"]


def test_sent_while_coming_online_is_not_lost(server: XmppServer) -> None:
    """XEP-0160 §2: messages racing the recipient's initial presence arrive once."""
    frank = server.users["frank"].jid

    async def scenario() -> list[str]:
        async with session(server, "alice", plugins=PLUGINS) as a:
            f = await login(server, "frank", plugins=PLUGINS)
            try:
                for n in range(3):
                    a.send_message(mto=frank, mbody=f"race{n}", mtype="chat")
                f.send_presence()
                for n in range(3, 6):
                    a.send_message(mto=frank, mbody=f"race{n}", mtype="chat")
                await settled(a)
                for n in range(6):
                    await f.expect("message", lambda m, n=n: m["body"] == f"race{n}")
                await asyncio.sleep(0.3)  # room for a duplicate to show up
                return [m["body"] for m in f.seen("message")]
            finally:
                await logout(f)

    assert sorted(run(scenario())) == [f"race{n}" for n in range(6)]
