"""Markers, corrections and deletes end to end: slixmpp's own XEP-0333, XEP-0308 and
XEP-0424 plugins on both sides, the exact ConnectyCube stanzas (SDK-CONTRACT §4.5),
and the history and unread counts the running server's REST API (chat_api) reports.

Bob's client is the receiving side of every scenario; Alice's saved message is the
one marked, corrected or deleted.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from xmppd.accounts import issue_token
from xmppd.storage import Database

from .conftest import HOST, Client, XmppServer, free_port, login, logout, port_open, run

pytestmark = pytest.mark.e2e

PLUGINS = ("xep_0333", "xep_0308", "xep_0424")
NS_CLIENT = "jabber:client"
NS_DELETE = "urn:xmpp:message-delete:0"  # ConnectyCube's delete (§4.5)


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    enabled = ["disco", "ping", "dialogs", "chat_api", "markers", "correction", "message_delete"]
    return {"plugins": {"enabled": enabled}, "http": {"port": free_port()}}


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob")


@pytest.fixture(scope="module")
def rest(server: XmppServer):
    """``rest(login, path, **query)``: a GET on the server's REST API with a user
    session token issued in its database (docs/auth.md) -> the JSON answer."""
    deadline = time.monotonic() + 20
    port = server.config["http"]["port"]
    while not port_open(port):
        assert time.monotonic() < deadline, "the HTTP listener did not open"
        time.sleep(0.05)
    db = Database(server.config["storage"]["url"], 1)
    tokens = {}
    for name, user in server.users.items():
        user_id, app_id = (int(n) for n in user.localpart.split("-"))
        tokens[name] = db.run_sync(issue_token, app_id, user_id)
    db.engine.dispose()

    def get(login_name: str, path: str, **query: str) -> Any:
        url = f"http://{HOST}:{port}{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers={"CB-Token": tokens[login_name]})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    return get


def uid(server: XmppServer, login_name: str) -> int:
    return int(server.users[login_name].localpart.split("-")[0])


def extra_params(**children: str) -> ET.Element:
    extra = ET.Element(f"{{{NS_CLIENT}}}extraParams")
    for name, value in children.items():
        ET.SubElement(extra, f"{{{NS_CLIENT}}}{name}").text = value
    return extra


def dialog_of(msg: slixmpp.Message) -> str:
    return msg.xml.find(f"{{{NS_CLIENT}}}extraParams/{{{NS_CLIENT}}}dialog_id").text


async def pair(server: XmppServer) -> tuple[Client, Client]:
    alice = await login(server, "alice", plugins=PLUGINS)
    bob = await login(server, "bob", plugins=PLUGINS)
    for client in (alice, bob):
        for event in ("marker_received", "marker_displayed", "message_correction"):
            client.add_event_handler(event, client._recorder(event))
        for event in ("message_retract", "message_error"):
            client.add_event_handler(event, client._recorder(event))
        removed = MatchXPath(f"{{{NS_CLIENT}}}message/{{{NS_DELETE}}}remove")
        client.register_handler(Callback("remove", removed, client._recorder("remove")))
        client.send_presence()
    return alice, bob


async def send_saved(alice: Client, bob: Client, mid: str, body: str) -> str:
    """Alice's markable saved chat message (§4.5 with XEP-0333 <markable/>); the
    dialog id Bob receives with it."""
    msg = alice.make_message(mto=bob.boundjid.bare, mbody=body, mtype="chat")
    msg["id"] = mid
    msg.enable("markable")
    msg.append(extra_params(save_to_history="1"))
    msg.send()
    got = await bob.expect("message", lambda m: m["id"] == mid)
    return dialog_of(got)


async def barrier(sender: Client, receiver: Client, text: str) -> None:
    """A plain message after the one under test: a session's stanzas are handled in
    order (RFC 6120 §10.1), so once it arrives the earlier one was handled too."""
    sender.send_message(mto=receiver.boundjid.bare, mbody=text, mtype="chat")
    await receiver.expect("message", lambda m: m["body"] == text)


def test_markers_update_history_read_state_and_unread_counts(server: XmppServer, rest) -> None:
    """§4.5 and XEP-0333: the ConnectyCube received and displayed markers reach
    Alice and show in REST history (delivered_ids, read_ids), Bob's unread count
    and last_message_status; a plain XEP-0333 marker is routed and changes nothing."""
    mid = "65f0c0ffee0000000000a001"

    async def scenario() -> str:
        alice, bob = await pair(server)
        try:
            dialog = await send_saved(alice, bob, mid, "mark me")
            assert rest("bob", "/chat/Message/unread.json", chat_dialog_ids=dialog)[dialog] == 1
            received = bob.make_message(mto=alice.boundjid.bare, mtype="chat")
            received["received"]["id"] = mid
            received.append(extra_params(dialog_id=dialog))
            received.send()
            await alice.expect("marker_received", lambda m: m["received"]["id"] == mid)
            page = rest("alice", "/chat/Message.json", chat_dialog_id=dialog, mark_as_read="0")
            [m] = [m for m in page["items"] if m["_id"] == mid]
            assert (m["delivered_ids"], m["read_ids"]) == ([uid(server, "bob")], [])
            bob.plugin["xep_0333"].send_marker(alice.boundjid.bare, mid, "displayed", mtype="chat")
            await alice.expect("marker_displayed")
            assert rest("bob", "/chat/Message/unread.json", chat_dialog_ids=dialog)[dialog] == 1
            displayed = bob.make_message(mto=alice.boundjid.bare, mtype="chat")
            displayed["displayed"]["id"] = mid
            displayed.append(extra_params(dialog_id=dialog))
            displayed.send()
            await alice.expect(
                "marker_displayed", lambda m: m.xml.find(f"{{{NS_CLIENT}}}extraParams") is not None
            )
            return dialog
        finally:
            await logout(alice, bob)

    dialog = run(scenario())
    assert rest("bob", "/chat/Message/unread.json", chat_dialog_ids=dialog)[dialog] == 0
    page = rest("alice", "/chat/Message.json", chat_dialog_id=dialog, mark_as_read="0")
    [m] = [m for m in page["items"] if m["_id"] == mid]
    assert m["read_ids"] == [uid(server, "bob")]
    [d] = [d for d in rest("alice", "/chat/Dialog.json")["items"] if d["_id"] == dialog]
    assert (d["last_message_id"], d["last_message_status"]) == (mid, "read")


def test_correction_edits_history_and_a_forged_one_is_refused(server: XmppServer, rest) -> None:
    """XEP-0308 with the ConnectyCube edit shape (replace last='true' + dialog_id):
    Bob gets the correction and REST history has the new text; Bob correcting
    Alice's message gets forbidden (code 403, H61) and Alice nothing."""
    mid = "65f0c0ffee0000000000a002"

    async def scenario() -> str:
        alice, bob = await pair(server)
        try:
            dialog = await send_saved(alice, bob, mid, "helo")
            fix = alice.plugin["xep_0308"].build_correction(mid, bob.boundjid.bare, mbody="hello")
            fix["replace"].xml.set("last", "true")
            fix.append(extra_params(dialog_id=dialog))
            fix.send()
            got = await bob.expect("message_correction")
            assert (got["replace"]["id"], got["body"]) == (mid, "hello")
            forged = bob.plugin["xep_0308"].build_correction(mid, alice.boundjid.bare, mbody="x")
            forged.append(extra_params(dialog_id=dialog))
            forged.send()
            error = await bob.expect("message_error", lambda m: m["id"] == forged["id"])
            assert (error["error"]["condition"], error["error"].xml.get("code")) == (
                "forbidden",
                "403",
            )
            await barrier(bob, alice, "after the forged correction")
            assert alice.seen("message_correction") == []
            return dialog
        finally:
            await logout(alice, bob)

    dialog = run(scenario())
    page = rest("bob", "/chat/Message.json", chat_dialog_id=dialog, mark_as_read="0")
    [m] = [m for m in page["items"] if m["_id"] == mid]
    assert m["message"] == "hello"
    assert [m["_id"] for m in page["items"] if m["message"] == "hello"] == [mid]  # no new one


def test_retraction_and_hosted_delete_remove_history(server: XmppServer, rest) -> None:
    """XEP-0424 (slixmpp's send_retraction, fallback body included) and the
    ConnectyCube remove: Bob gets each, the messages are gone from REST history
    and Bob's unread count drops; Bob deleting Alice's message is forbidden."""
    first, second, third = (f"65f0c0ffee0000000000b00{i}" for i in range(3))
    before: list[int] = []  # Bob's unread count once the first one is in (the module's
    # tests share Alice and Bob's private dialog)

    def unread(login_name: str, dialog: str) -> int:
        return rest(login_name, "/chat/Message/unread.json", chat_dialog_ids=dialog)[dialog]

    async def scenario() -> str:
        alice, bob = await pair(server)
        try:
            dialog = await send_saved(alice, bob, first, "one")
            before.append(unread("bob", dialog))
            for mid in (second, third):
                await send_saved(alice, bob, mid, "more")
            alice.plugin["xep_0424"].send_retraction(bob.boundjid.bare, id=second)
            got = await bob.expect("message_retract")
            assert got["retract"]["id"] == second
            remove = alice.make_message(mto=bob.boundjid.bare, mtype="chat")
            ET.SubElement(remove.xml, f"{{{NS_DELETE}}}remove", id=third)
            remove.append(extra_params(dialog_id=dialog))
            remove.send()
            got = await bob.expect("remove")
            assert got.xml.find(f"{{{NS_DELETE}}}remove").get("id") == third
            forged = bob.make_message(mto=alice.boundjid.bare, mtype="chat")
            ET.SubElement(forged.xml, f"{{{NS_DELETE}}}remove", id=first)
            forged.append(extra_params(dialog_id=dialog))
            forged.send()
            error = await bob.expect("message_error", lambda m: m["id"] == forged["id"])
            assert error["error"]["condition"] == "forbidden"
            return dialog
        finally:
            await logout(alice, bob)

    dialog = run(scenario())
    page = rest("alice", "/chat/Message.json", chat_dialog_id=dialog, mark_as_read="0")
    assert [m["_id"] for m in page["items"] if m["_id"] in (first, second, third)] == [first]
    assert unread("bob", dialog) == before[0]  # second and third were unread: both gone


def test_disco_lists_the_three_features(server: XmppServer) -> None:
    """XEP-0333 §4, XEP-0308 §2, XEP-0424 §2: the server's disco#info lists them."""

    async def scenario() -> set[str]:
        alice = await login(server, "alice", plugins=("xep_0030",))
        try:
            info = await asyncio.wait_for(
                alice.plugin["xep_0030"].get_info(jid=alice.boundjid.domain), 10
            )
            return set(info["disco_info"]["features"])
        finally:
            await logout(alice)

    features = run(scenario())
    assert {
        "urn:xmpp:chat-markers:0",
        "urn:xmpp:message-correct:0",
        "urn:xmpp:message-retract:1",
    } <= features
