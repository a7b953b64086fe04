"""A real third-party client (slixmpp) against a real ``twistd xmppd``.

Login over STARTTLS and direct TLS with each SASL mechanism, resource binding,
the roster, subscriptions and presence, messages, the server's disco, ping,
time and version, resource conflicts and failed logins.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from .conftest import DOMAIN, HOST, Client, XmppServer, login, logout, make_client, run, session

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")


def tls_version(client: Client) -> str | None:
    ssl_object = client.transport.get_extra_info("ssl_object") if client.transport else None
    return ssl_object.version() if ssl_object is not None else None


def mechanism(client: Client) -> str:
    return client.plugin["feature_mechanisms"].mech.name


def check_login(server: XmppServer, **options: Any) -> None:
    async def scenario() -> None:
        async with session(server, "grace", **options) as c:
            assert tls_version(c) in ("TLSv1.2", "TLSv1.3")
            assert mechanism(c) == options.get("mech", "SCRAM-SHA-256")
            assert c.boundjid.bare == server.users["grace"].jid
            assert c.boundjid.resource

    run(scenario())


def test_login_starttls_scram_sha_256(server: XmppServer) -> None:
    """RFC 6120 §5, §6 and RFC 7677: STARTTLS, then SCRAM-SHA-256, then bind."""
    check_login(server, direct=False, mech="SCRAM-SHA-256")


def test_login_direct_tls_scram_sha_256(server: XmppServer) -> None:
    """XEP-0368 §3: TLS from the first byte on the direct-TLS port, then SCRAM-SHA-256."""
    check_login(server, direct=True, mech="SCRAM-SHA-256")


def test_login_scram_sha_1(server: XmppServer) -> None:
    """RFC 6120 §13.8 and RFC 5802: SCRAM-SHA-1, mandatory to implement, logs in."""
    check_login(server, direct=False, mech="SCRAM-SHA-1")


def test_login_plain_over_tls(server: XmppServer) -> None:
    """RFC 6120 §13.8 and RFC 4616 §6: PLAIN is offered and accepted under TLS."""
    check_login(server, direct=True, mech="PLAIN")


def test_bind_server_generated_resource(server: XmppServer) -> None:
    """RFC 6120 §7.6: a resource the server makes is long, random and unique."""

    async def scenario() -> list[str]:
        first = await login(server, "alice")
        second = await login(server, "alice")
        try:
            return [first.boundjid.resource, second.boundjid.resource]
        finally:
            await logout(first, second)

    resources = run(scenario())
    assert all(len(r) >= 32 for r in resources), resources
    assert resources[0] != resources[1]


def test_bind_client_resource_kept(server: XmppServer) -> None:
    """RFC 6120 §7.7: the resource the client asks for is the one bound."""

    async def scenario() -> str:
        async with session(server, "alice", resource="laptop-é") as c:
            return c.boundjid.full

    assert run(scenario()) == f"{server.users['alice'].jid}/laptop-é"


def test_roster_get_set(server: XmppServer) -> None:
    """RFC 6121 §2.1.3, §2.3, §2.5: set pushes the item, get returns it, remove drops it."""
    dave = server.users["dave"].jid

    async def roster(c: Client) -> dict[str, Any]:
        iq = c.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        result = await iq.send(timeout=10)
        return {str(jid): item for jid, item in result["roster"]["items"].items()}

    async def scenario() -> None:
        async with session(server, "carol") as c:
            assert dave not in await roster(c)
            await c.update_roster(dave, name="Dave", groups=["Friends"], timeout=10)
            push = await c.expect(
                "roster_update", lambda iq: iq["type"] == "set" and dave in str(iq)
            )
            assert push["from"].bare in ("", server.users["carol"].jid)  # §2.1.6
            item = (await roster(c))[dave]
            assert item["name"] == "Dave"
            assert list(item["groups"]) == ["Friends"]
            assert item["subscription"] == "none"
            await c.del_roster_item(dave)
            await c.expect(
                "roster_update",
                lambda iq: iq["type"] == "set" and "remove" in str(iq) and dave in str(iq),
            )
            assert dave not in await roster(c)

    run(scenario())


def test_subscription_both_ways_with_presence(server: XmppServer) -> None:
    """RFC 6121 §3.1, §4.2, §4.5: approved subscriptions carry presence, then unavailable."""
    alice_jid, bob_jid = server.users["alice"].jid, server.users["bob"].jid

    def presence_from(jid: str, kind: str) -> Any:
        return lambda p: p["from"].bare == jid and p["type"] == kind

    async def scenario() -> None:
        a = await login(server, "alice", resource="a")
        b = await login(server, "bob", resource="b")
        try:
            for c in (a, b):  # interested (§2.2) and available (§4.2) resources
                await c.get_roster(timeout=10)
                c.send_presence()
            # A subscribes to B; B approves (RFC 6121 §3.1.1-§3.1.5).
            a.send_presence(pto=bob_jid, ptype="subscribe")
            await b.expect("presence", presence_from(alice_jid, "subscribe"))
            b.send_presence(pto=alice_jid, ptype="subscribed")
            await a.expect("presence", presence_from(bob_jid, "subscribed"))
            online = await a.expect("presence", presence_from(bob_jid, "available"))
            assert online["from"].full == b.boundjid.full  # §4.2.3: from the resource
            # And back: B subscribes to A; A approves.
            b.send_presence(pto=alice_jid, ptype="subscribe")
            await a.expect("presence", presence_from(bob_jid, "subscribe"))
            a.send_presence(pto=bob_jid, ptype="subscribed")
            await b.expect("presence", presence_from(alice_jid, "subscribed"))
            await b.expect("presence", presence_from(alice_jid, "available"))
            for c, contact in ((a, bob_jid), (b, alice_jid)):
                await c.expect(
                    "roster_update",
                    lambda iq, contact=contact: (
                        iq["type"] == "set"
                        and iq["roster"]["items"].get(contact, {}).get("subscription") == "both"
                    ),
                )
            # B goes offline: A sees B's resource unavailable (§4.5.2).
            await logout(b)
            gone = await a.expect("presence", presence_from(bob_jid, "unavailable"))
            assert gone["from"].full == b.boundjid.full
        finally:
            await logout(a, b)

    run(scenario())


def test_subscription_approval_arrives_before_contact_presence(server: XmppServer) -> None:
    """RFC 6121 §3.1.5, §3.1.6: the user gets the approval, then the contact's presence."""
    ivan_jid, judy_jid = server.users["ivan"].jid, server.users["judy"].jid

    async def scenario() -> list[str]:
        async with session(server, "ivan") as i, session(server, "judy") as j:
            for c in (i, j):
                await c.get_roster(timeout=10)
                c.send_presence()
            i.send_presence(pto=judy_jid, ptype="subscribe")
            await j.expect("presence", lambda p: p["type"] == "subscribe")
            j.send_presence(pto=ivan_jid, ptype="subscribed")
            await i.expect("presence", lambda p: p["type"] == "subscribed")
            await i.expect("presence", lambda p: p["from"] == j.boundjid)
            return [p["type"] for p in i.seen("presence") if p["from"].bare == judy_jid]

    assert run(scenario())[:2] == ["subscribed", "available"]


def test_messages_both_ways(server: XmppServer) -> None:
    """RFC 6121 §8.5.2.1.1, §8.5.3.1, RFC 6120 §8.1.2.1: messages both ways, sender stamped."""

    def body(text: str) -> Any:
        return lambda m: m["body"] == text

    async def scenario() -> None:
        async with session(server, "erin") as e, session(server, "frank") as f:
            for c in (e, f):
                c.send_presence()  # §8.5.2.1.1: a bare JID reaches available resources
                await c.expect("presence", lambda p, c=c: p["from"] == c.boundjid)
            e.send_message(mto=f.boundjid.bare, mbody="hello frank", mtype="chat")
            got = await f.expect("message", body("hello frank"))
            assert got["from"].full == e.boundjid.full
            assert got["type"] == "chat"
            f.send_message(mto=e.boundjid.full, mbody="hello erin", mtype="chat")
            got = await e.expect("message", body("hello erin"))
            assert got["from"].full == f.boundjid.full

    run(scenario())


SERVICE_PLUGINS = ("xep_0030", "xep_0092", "xep_0199", "xep_0202")


def test_disco_info_server(server: XmppServer) -> None:
    """XEP-0030 §3.1: the server's identity and features, including the loaded plugins'."""

    async def scenario() -> Any:
        async with session(server, "erin", plugins=SERVICE_PLUGINS) as c:
            return await c.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=10)

    info = run(scenario())["disco_info"]
    assert {"urn:xmpp:ping", "urn:xmpp:time", "jabber:iq:version"} <= set(info["features"])
    assert "http://jabber.org/protocol/disco#info" in info["features"]
    assert any(i[0] == "server" and i[1] == "im" for i in info["identities"])


def test_ping_server(server: XmppServer) -> None:
    """XEP-0199 §4.2: the server answers a ping with an empty result."""

    async def scenario() -> Any:
        async with session(server, "erin", plugins=SERVICE_PLUGINS) as c:
            return await c.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)

    result = run(scenario())
    assert result["type"] == "result"
    assert result["from"] == DOMAIN


def test_entity_time(server: XmppServer) -> None:
    """XEP-0202 §2: the server's UTC time (XEP-0082 format) and offset."""

    async def scenario() -> Any:
        async with session(server, "erin", plugins=SERVICE_PLUGINS) as c:
            return await c.plugin["xep_0202"].get_entity_time(DOMAIN, timeout=10)

    time = run(scenario()).xml.find("{urn:xmpp:time}time")
    # Read the text: slixmpp 1.17's get_utc() appends a second "Z" to a correct value.
    utc = datetime.strptime(time.findtext("{urn:xmpp:time}utc"), "%Y-%m-%dT%H:%M:%S%z")
    assert utc.tzinfo is not None and utc.utcoffset().total_seconds() == 0  # XEP-0082 §3.2
    assert abs((utc - datetime.now(UTC)).total_seconds()) < 60
    assert re.fullmatch(r"Z|[+-]\d\d:\d\d", time.findtext("{urn:xmpp:time}tzo"))


def test_software_version(server: XmppServer) -> None:
    """XEP-0092 §2, §5: the server's software name and version, without the OS."""

    async def scenario() -> Any:
        async with session(server, "erin", plugins=SERVICE_PLUGINS) as c:
            return await c.plugin["xep_0092"].get_version(DOMAIN, timeout=10)

    version = run(scenario())["software_version"]
    assert version["name"] == "xmppd"
    assert version["version"]
    assert version["os"] == ""  # hidden by default


def test_resource_conflict(server: XmppServer) -> None:
    """RFC 6120 §7.7.2.2, §4.9.3.3: a new login with the same resource closes the old one."""

    async def scenario() -> None:
        old = await login(server, "heidi", resource="phone")
        try:
            new = await login(server, "heidi", resource="phone")
            try:
                error = await old.expect("stream_error")
                assert error["condition"] == "conflict"
                await old.expect("disconnected")
                assert new.boundjid.full == f"{server.users['heidi'].jid}/phone"
                # The new session is the one that works.
                new.send_message(mto=new.boundjid.full, mbody="still here")
                await new.expect("message", lambda m: m["body"] == "still here")
            finally:
                await logout(new)
        finally:
            await logout(old)

    run(scenario())


def test_failed_login_same_for_wrong_password_and_unknown_user(server: XmppServer) -> None:
    """RFC 6120 §6.5.10: a wrong password and an unknown user get the same not-authorized."""

    async def failure(c: Client) -> str:
        c.connect(HOST, c.server_port)
        try:
            event, data = await c.first_of("failed_auth", "session_start")
            assert event == "failed_auth", "logged in with a wrong password"
            return str(data)
        finally:
            await logout(c)

    async def scenario() -> list[str]:
        wrong = make_client(server, "grace", password="not-the-password")
        unknown_jid = f"999999-{server.app_id}@{DOMAIN}"
        unknown = make_client(server, "grace", jid=unknown_jid, password="whatever")
        return [await failure(wrong), await failure(unknown)]

    wrong, unknown = run(scenario())
    assert "not-authorized" in wrong
    assert wrong == unknown


def test_iq_error_for_unknown_namespace_to_server(server: XmppServer) -> None:
    """RFC 6120 §8.4: an IQ the server does not understand gets service-unavailable."""

    async def scenario() -> None:
        async with session(server, "erin") as c:
            iq = c.Iq()
            iq["type"] = "get"
            iq["to"] = DOMAIN
            iq.append(ET.Element("{urn:example:nothing}query"))
            with pytest.raises(IqError) as caught:
                await iq.send(timeout=10)
            assert caught.value.iq["error"]["condition"] == "service-unavailable"

    run(scenario())
