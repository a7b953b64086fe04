"""Privacy lists (XEP-0016), blocking (XEP-0191), last activity (XEP-0012) and
ConnectyCube's status streaming against a real ``twistd xmppd``: slixmpp's own
xep_0016, xep_0191 and xep_0012 plugins as the other side, and the ConnectyCube
SDK's exact stanzas sent raw (SDK-CONTRACT §4.7, §4.8)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from slixmpp import Iq
from slixmpp.exceptions import IqError

from .conftest import DOMAIN, Client, XmppServer, run, session

pytestmark = pytest.mark.e2e

NS_PRIVACY = "jabber:iq:privacy"
NS_LAST = "jabber:iq:last"
NS_STATUS = "https://connectycube.com/protocol/status_streaming"
ONE_WAY = "<message/><presence-in/><presence-out/><iq/>"


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {"plugins": {"enabled": ["disco", "ping", "privacy", "last_activity"]}}


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")


def user_id(server: XmppServer, login: str) -> str:
    return server.users[login].localpart.split("-")[0]


def raw_iq(client: Client, xml: str) -> Iq:
    """An IQ exactly as written (the SDK's stanzas), ready to ``send()``."""
    return client.Iq(xml=ET.fromstring(xml.replace("<iq ", "<iq xmlns='jabber:client' ", 1)))


def sdk_create(server: XmppServer, name: str, users: list[tuple[str, bool]]) -> str:
    """chat.privacylist.create({name, items: [{user_id, action: 'deny', mutualBlock}]}):
    order 2k+1 the bare JID, 2k+2 muc.{chat}/{id}; children unless mutualBlock."""
    items = []
    for k, (login, mutual) in enumerate(users):
        children = "" if mutual else ONE_WAY
        values = (server.users[login].jid, f"muc.{DOMAIN}/{user_id(server, login)}")
        for order, value in enumerate(values, 2 * k + 1):
            items.append(
                f'<item type="jid" value="{value}" action="deny" order="{order}">{children}</item>'
            )
    return (
        f'<iq type="set" id="e2e:edit"><query xmlns="{NS_PRIVACY}"><list name="{name}">'
        + "".join(items)
        + "</list></query></iq>"
    )


def sdk_default(name: str) -> str:
    return f'<iq type="set" id="e2e:default"><query xmlns="{NS_PRIVACY}"><default name="{name}"/></query></iq>'


def record(client: Client, *events: str) -> None:
    for event in events:
        client.add_event_handler(event, client._recorder(event))


async def available(*clients: Client) -> None:
    for c in clients:
        c.send_presence()
        await c.expect("presence", lambda p, c=c: p["from"] == c.boundjid)


def test_disco_advertises_privacy_blocking_last(server: XmppServer) -> None:
    """XEP-0191 §3.1, XEP-0012 §6 (disco): the server's features."""

    async def scenario() -> Any:
        async with session(server, "alice", plugins=("xep_0030",)) as c:
            return await c.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)

    features = set(run(scenario())["disco_info"]["features"])
    assert {NS_PRIVACY, "urn:xmpp:blocking", NS_LAST, NS_STATUS} <= features


def test_blocking_command_with_slixmpp(server: XmppServer) -> None:
    """XEP-0191 §3.2-§3.4: block, the push to a resource that fetched the blocklist,
    the blocked contact's message bounces service-unavailable, the blocker's own is
    not-acceptable; unblock restores delivery."""

    async def scenario() -> None:
        async with (
            session(server, "alice", resource="one", plugins=("xep_0191",)) as one,
            session(server, "alice", resource="two", plugins=("xep_0191",)) as two,
            session(server, "bob") as bob,
        ):
            record(one, "blocked", "unblocked")
            record(bob, "message_error")
            record(one, "message_error")
            await available(one, bob)
            assert await one.plugin["xep_0191"].get_blocked_jids(timeout=10) == set()
            bob_jid = server.users["bob"].jid
            await two.plugin["xep_0191"].block(bob_jid, timeout=10)
            push = await one.expect("blocked")
            assert [str(i["jid"]) for i in push["block"]] == [bob_jid]
            assert {str(j) for j in await one.plugin["xep_0191"].get_blocked_jids(timeout=10)} == {
                bob_jid
            }
            bob.send_message(mto=one.boundjid.bare, mbody="let me in", mtype="chat")
            error = await bob.expect("message_error")
            assert (error["error"]["condition"], error["error"]["code"]) == (
                "service-unavailable",
                "503",
            )
            one.send_message(mto=bob_jid, mbody="nope", mtype="chat")
            error = await one.expect("message_error")
            assert error["error"]["condition"] == "not-acceptable"
            assert error.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None
            await two.plugin["xep_0191"].unblock(bob_jid, timeout=10)
            await one.expect("unblocked")
            bob.send_message(mto=one.boundjid.bare, mbody="hello again", mtype="chat")
            await one.expect("message", lambda m: m["body"] == "hello again")
            assert not bob.seen("message") or all(m["body"] != "nope" for m in bob.seen("message"))

    run(scenario())


def test_privacy_lists_with_slixmpp(server: XmppServer) -> None:
    """XEP-0016 §2.3-§2.8 through slixmpp's xep_0016: edit, default, read back in
    order, active per session, item-not-found and conflict."""

    async def scenario() -> None:
        plugins = ("xep_0030", "xep_0016")
        async with (
            session(server, "carol", resource="a", plugins=plugins) as a,
            session(server, "carol", resource="b", plugins=plugins) as b,
            session(server, "dave") as dave,
        ):
            privacy = a.plugin["xep_0016"]
            rules = [
                {
                    "type": "jid",
                    "value": server.users["dave"].jid,
                    "action": "deny",
                    "order": "20",  # slixmpp serialises only strings
                    "message": True,
                },
                {
                    "type": "subscription",
                    "value": "none",
                    "action": "allow",
                    "order": "10",
                    "iq": True,
                },
            ]
            await privacy.edit_list("work", rules, timeout=10)
            lists = await privacy.get_privacy_lists(timeout=10)
            assert [x["name"] for x in lists["privacy"]["lists"]] == ["work"]
            got = await privacy.get_list("work", timeout=10)
            items = got.xml.findall(f".//{{{NS_PRIVACY}}}item")
            assert [i.get("order") for i in items] == ["10", "20"]
            with pytest.raises(IqError) as caught:
                await privacy.get_list("missing", timeout=10)
            assert caught.value.iq["error"]["condition"] == "item-not-found"
            await privacy.activate("work", timeout=10)
            await available(a, b)
            record(dave, "message_error")
            dave.send_message(mto=a.boundjid.full, mbody="to a", mtype="chat")
            assert (await dave.expect("message_error"))["error"]["condition"] == (
                "service-unavailable"
            )
            dave.send_message(mto=b.boundjid.full, mbody="to b", mtype="chat")
            await b.expect("message", lambda m: m["body"] == "to b")
            with pytest.raises(IqError) as caught:
                await b.plugin["xep_0016"].remove_list("work", timeout=10)
            assert caught.value.iq["error"]["condition"] == "conflict"

    run(scenario())


def test_connectycube_stanzas(server: XmppServer) -> None:
    """SDK-CONTRACT §4.7 with the SDK's exact stanzas: create (two items per user),
    setAsDefault applies at once (no <active/>), getNames, getList in order; one-way:
    the blocked user's message bounces 503, the blocker's still goes out; mutual:
    both ways refused."""

    async def scenario() -> None:
        async with (
            session(server, "erin") as erin,
            session(server, "frank") as frank,
            session(server, "grace") as grace,
        ):
            await available(erin, frank, grace)
            record(frank, "message_error")
            record(grace, "message_error")
            record(erin, "message_error")
            create = sdk_create(server, "cc", [("frank", False), ("grace", True)])
            await raw_iq(erin, create).send(timeout=10)
            await raw_iq(erin, sdk_default("cc")).send(timeout=10)
            names = await raw_iq(
                erin, f'<iq type="get" id="e2e:getNames"><query xmlns="{NS_PRIVACY}"/></iq>'
            ).send(timeout=10)
            query = names.xml.find(f"{{{NS_PRIVACY}}}query")
            assert [(c.tag.split("}")[1], c.get("name")) for c in query] == [
                ("default", "cc"),
                ("list", "cc"),
            ]
            got = await raw_iq(
                erin,
                f'<iq type="get" id="e2e:getlist"><query xmlns="{NS_PRIVACY}">'
                '<list name="cc"/></query></iq>',
            ).send(timeout=10)
            items = got.xml.findall(f".//{{{NS_PRIVACY}}}item")
            assert [i.get("order") for i in items] == ["1", "2", "3", "4"]
            assert [i.get("value") for i in items[::2]] == [
                server.users["frank"].jid,
                server.users["grace"].jid,
            ]
            frank.send_message(mto=server.users["erin"].jid, mbody="one-way", mtype="chat")
            error = await frank.expect("message_error")
            assert error["error"]["code"] == "503"
            erin.send_message(mto=server.users["frank"].jid, mbody="I can write", mtype="chat")
            await frank.expect("message", lambda m: m["body"] == "I can write")
            grace.send_message(mto=server.users["erin"].jid, mbody="mutual", mtype="chat")
            assert (await grace.expect("message_error"))["error"]["code"] == "503"
            erin.send_message(mto=server.users["grace"].jid, mbody="no", mtype="chat")
            error = await erin.expect("message_error")
            assert (error["error"]["condition"], error["error"]["code"]) == (
                "not-acceptable",
                "406",
            )
            await asyncio.sleep(0.2)  # nothing else arrives for the blocked directions
            assert [m["body"] for m in erin.seen("message") if m["type"] == "chat"] == []
            assert [m["body"] for m in grace.seen("message") if m["type"] == "chat"] == []

    run(scenario())
