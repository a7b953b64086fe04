"""XEP-0079 Advanced Message Processing against a real ``twistd xmppd`` with
slixmpp's own xep_0079 plugin on the client side: discovery, the stream
feature, notify/alert/error events for messages delivered now or kept offline,
expire-at in offline storage, and the refusals (§6, §9)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from .conftest import (
    HOST,
    NS_STREAMS,
    Client,
    XmppServer,
    login,
    logout,
    make_client,
    run,
)

pytestmark = pytest.mark.e2e

NS_AMP = "http://jabber.org/protocol/amp"
NS_AMP_FEATURE = "http://jabber.org/features/amp"
AMP_EVENTS = ("amp_notify", "amp_alert", "amp_error")


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {"plugins": {"enabled": ["disco", "offline", "amp"]}}


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "carol", "dave", "erin")


async def amp_client(server: XmppServer, user: str, **options: Any) -> Client:
    """Logged in with slixmpp's xep_0079, roster fetched and available (RFC 6121
    §2.2, §4.2): subscription requests and offline messages reach it."""
    client = await login(server, user, plugins=("xep_0030", "xep_0079"), **options)
    for event in AMP_EVENTS:  # slixmpp's xep_0079 events, recorded for expect()
        client.add_event_handler(event, client._recorder(event))
    await client.get_roster(timeout=10)
    client.send_presence()
    return client


def send_amp(
    sender: Client, to: str, mid: str, *rules: tuple[str, str, str], body: str = "hi"
) -> None:
    msg = sender.make_message(mto=to, mbody=body, mtype="chat")
    msg["id"] = mid
    for action, condition, value in rules:
        msg["amp"].add_rule(action, condition, value)
    msg.send()


def rules_of(element: Any) -> list[tuple[str, str, str]]:
    return [(r["action"], r["condition"], r["value"]) for r in element["rules"]]


async def befriend(a: Client, b: Client) -> None:
    """``a`` subscribes to ``b``'s presence; ``b`` approves (RFC 6121 §3.1)."""
    a.send_presence(pto=b.boundjid.bare, ptype="subscribe")
    await b.expect("presence", lambda p: p["type"] == "subscribe")
    b.send_presence(pto=a.boundjid.bare, ptype="subscribed")
    await a.expect("presence", lambda p: p["type"] == "subscribed")


async def gone(watcher: Client, contact: str) -> None:
    """Wait (bounded) until the server has ``contact`` unavailable (RFC 6121 §4.5)."""
    await watcher.expect(
        "presence", lambda p: p["from"].bare == contact and p["type"] == "unavailable"
    )


def test_discovery_and_stream_feature(server: XmppServer) -> None:
    """§2.1.1: the feature and the node of actions and conditions (slixmpp's
    discover_support asks it); §8: <amp xmlns='http://jabber.org/features/amp'/>
    among the features after authentication."""

    async def scenario() -> tuple[list[Any], set[str], set[str]]:
        c = make_client(server, "erin", plugins=("xep_0030", "xep_0079"))
        features: list[Any] = []  # slixmpp's AMPFeature has no plugin_attrib: keep the XML
        c.register_handler(
            Callback("features", MatchXPath(f"{{{NS_STREAMS}}}features"), features.append)
        )
        c.connect(HOST, c.server_port)
        try:
            event, _ = await c.first_of("session_start", "failed_auth", "disconnected")
            assert event == "session_start"
            root = await c.plugin["xep_0030"].get_info(jid=c.boundjid.host, timeout=10)
            node = await c.plugin["xep_0079"].discover_support(timeout=10)
            return (
                features,
                set(root["disco_info"]["features"]),
                set(node["disco_info"]["features"]),
            )
        finally:
            await logout(c)

    features, root, node = run(scenario())
    assert features[-1].xml.find(f"{{{NS_AMP_FEATURE}}}amp") is not None  # after auth
    assert all(f.xml.find(f"{{{NS_AMP_FEATURE}}}amp") is None for f in features[:-2])
    assert NS_AMP in root
    assert {f"{NS_AMP}?action={a}" for a in ("alert", "drop", "error", "notify")} <= node
    assert {f"{NS_AMP}?condition={c}" for c in ("deliver", "expire-at", "match-resource")} <= node


def test_notify_alert_error_between_subscribed_users(server: XmppServer) -> None:
    """§3.4.4 notify then delivery; §3.4.1 alert instead of offline storage; §3.4.3
    error with <failed-rules/> for match-resource 'other'; §3.3.1 'stored' with
    notify: kept offline and delivered at the next login with a delay stamp."""

    async def scenario() -> None:
        alice = await amp_client(server, "alice")
        bob = await amp_client(server, "bob", resource="laptop")
        try:
            await befriend(alice, bob)
            bob_jid = bob.boundjid.bare

            send_amp(alice, bob_jid, "n1", ("notify", "deliver", "direct"))
            note = await alice.expect("amp_notify", lambda m: m["id"] == "n1")
            assert rules_of(note["amp"]) == [("notify", "deliver", "direct")]
            assert note["amp"]["from"] == alice.boundjid  # §4.1: the original sender
            got = await bob.expect("message", lambda m: m["id"] == "n1")
            assert got["body"] == "hi"

            # To a resource bob does not have: delivered to 'laptop' instead, so
            # 'other' is met and the error action stops it.
            send_amp(alice, f"{bob_jid}/phone", "e1", ("error", "match-resource", "other"))
            error = await alice.expect("amp_error", lambda m: m["id"] == "e1")
            assert error["type"] == "error"
            assert error["error"]["condition"] == "undefined-condition"
            assert rules_of(error["error"]["failed_rules"]) == [
                ("error", "match-resource", "other")
            ]

            await logout(bob)
            await gone(alice, bob_jid)
            send_amp(alice, bob_jid, "a1", ("alert", "deliver", "stored"))
            alert = await alice.expect("amp_alert", lambda m: m["id"] == "a1")
            assert rules_of(alert["amp"]) == [("alert", "deliver", "stored")]

            send_amp(
                alice,
                bob_jid,
                "s1",
                ("drop", "expire-at", "2999-01-01T00:00:00Z"),
                ("notify", "deliver", "stored"),
                body="later",
            )
            await alice.expect("amp_notify", lambda m: m["id"] == "s1")
            bob = await amp_client(server, "bob", resource="laptop")
            stored = await bob.expect("message", lambda m: m["id"] == "s1")
            assert stored["body"] == "later"
            assert stored.xml.find("{urn:xmpp:delay}delay") is not None  # XEP-0160 §2
            await asyncio.sleep(0.5)  # bounded: nothing else is on its way
            ids = [m["id"] for m in bob.seen("message")]
            assert "a1" not in ids and ids.count("s1") == 1
        finally:
            await logout(alice, bob)

    run(scenario())


def test_expired_in_offline_storage_is_dropped_with_an_alert(server: XmppServer) -> None:
    """§3.3.2, §7: a message kept offline past its expire-at is not delivered; the
    alert action tells the sender when the recipient comes back."""

    async def scenario() -> None:
        dave = await amp_client(server, "dave")
        carol = await amp_client(server, "carol")
        try:
            await befriend(dave, carol)
            await logout(carol)
            await gone(dave, carol.boundjid.bare)
            # Expires two seconds from now, while carol is away.
            expiry = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
            send_amp(dave, carol.boundjid.bare, "x1", ("alert", "expire-at", expiry))
            await asyncio.sleep(3.0)  # bounded: past the expiry
            assert dave.seen("amp_alert") == []  # still stored: checked when it leaves
            carol = await amp_client(server, "carol")
            alert = await dave.expect("amp_alert", lambda m: m["id"] == "x1")
            assert rules_of(alert["amp"]) == [("alert", "expire-at", expiry)]
            await asyncio.sleep(0.5)  # bounded: the expired message does not follow
            assert [m for m in carol.seen("message") if m["id"] == "x1"] == []
        finally:
            await logout(dave, carol)

    run(scenario())


def test_refusals(server: XmppServer) -> None:
    """§6.2: an unsupported action gets bad-request with <unsupported-actions/>; §9: a
    notify rule from a stranger gets not-acceptable with <invalid-rules/>. Neither
    message is delivered."""

    async def scenario() -> None:
        erin = await amp_client(server, "erin")
        bob = await amp_client(server, "bob", resource="desk")
        try:
            send_amp(erin, bob.boundjid.bare, "u1", ("bounce", "deliver", "direct"))
            unsupported = await erin.expect("amp_error", lambda m: m["id"] == "u1")
            assert unsupported["error"]["condition"] == "bad-request"
            assert rules_of(unsupported["error"]["unsupported_actions"]) == [
                ("bounce", "deliver", "direct")
            ]

            send_amp(erin, bob.boundjid.bare, "p1", ("notify", "deliver", "direct"))
            refused = await erin.expect("amp_error", lambda m: m["id"] == "p1")
            assert refused["error"]["condition"] == "not-acceptable"
            assert rules_of(refused["error"]["invalid_rules"]) == [("notify", "deliver", "direct")]
            await asyncio.sleep(0.5)  # bounded: nothing reaches bob
            assert [m["id"] for m in bob.seen("message")] == []
        finally:
            await logout(erin, bob)

    run(scenario())
