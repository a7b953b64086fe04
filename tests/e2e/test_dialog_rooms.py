"""Dialog rooms end to end (issue 5): a real twistd with dialogs, chat_api and muc;
dialogs made and changed over the REST API; the hosted services' raw groupchat
stanzas (SDK-CONTRACT §4.5, §4.6) sent and received by slixmpp clients; history
and unread counts read back over REST."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from xmppd.accounts import issue_token
from xmppd.storage import Database

from .conftest import HOST, Client, XmppServer, free_port, login, logout, port_open, run

pytestmark = pytest.mark.e2e

NS_CLIENT = "jabber:client"
NS_MUC = "http://jabber.org/protocol/muc"


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    enabled = ["disco", "ping", "dialogs", "chat_api", "muc"]
    return {"plugins": {"enabled": enabled}, "http": {"port": free_port()}}


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("ann", "bob", "cat")


@pytest.fixture(scope="module")
def rest(server: XmppServer):
    """``rest(login, method, path, body=None, **query)``: a call on the server's REST
    API with a user session token issued in its database -> the JSON answer."""
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

    def call(login_name: str, method: str, path: str, body: Any = None, **query: str) -> Any:
        url = f"http://{HOST}:{port}{path}?{urllib.parse.urlencode(query)}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"CB-Token": tokens[login_name], "Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read()
        return json.loads(text) if text.strip() else None

    return call


def uid(server: XmppServer, login_name: str) -> int:
    return int(server.users[login_name].localpart.split("-")[0])


def extra_of(msg: Any) -> dict[str, str]:
    extra = msg.xml.find(f"{{{NS_CLIENT}}}extraParams")
    return {} if extra is None else {c.tag.split("}")[1]: c.text for c in extra}


def groupchat(sender: Client, room: str, body: str, mid: str) -> None:
    """The ConnectyCube SDK's group message (§4.5): groupchat to the room JID with
    extraParams/save_to_history."""
    msg = sender.make_message(mto=room, mbody=body, mtype="groupchat")
    msg["id"] = mid
    extra = ET.Element(f"{{{NS_CLIENT}}}extraParams")
    ET.SubElement(extra, f"{{{NS_CLIENT}}}save_to_history").text = "1"
    msg.append(extra)
    msg.send()


async def online(server: XmppServer, *names: str) -> dict[str, Client]:
    """Logged in and available (initial presence, RFC 6121 §4.2)."""
    clients = {}
    for name in names:
        client = clients[name] = await login(server, name)
        client.send_presence()
        # RFC 6121 §4.2.2: available once its own presence comes back.
        own = client.boundjid
        await client.expect("presence", lambda p, own=own: p["from"] == own)
    return clients


async def barrier(sender: Client, receiver: Client, text: str) -> None:
    """A 1-1 message after the one under test: a session's stanzas are handled in
    order (RFC 6120 §10.1), so once it arrives the earlier one was handled too."""
    sender.send_message(mto=receiver.boundjid.bare, mbody=text, mtype="chat")
    await receiver.expect("message", lambda m: m["body"] == text)


def bodies(client: Client, room: str) -> list[str]:
    return [
        m["body"]
        for m in client.seen("message")
        if m["type"] == "groupchat" and m["from"].bare == room and m["body"]
    ]


def test_three_user_group_one_never_joins(server: XmppServer, rest) -> None:
    """Issue 5: Ann's group message reaches Bob (joined with presence) and Cat (never
    joined) and is reflected to Ann, from {room}/{ann's id} with the dialog and
    message ids; REST history and unread counts agree."""
    made = rest(
        "ann",
        "POST",
        "/chat/Dialog.json",
        {"type": 2, "name": "trio", "occupants_ids": f"{uid(server, 'bob')}, {uid(server, 'cat')}"},
    )
    room, dialog = made["xmpp_room_jid"], made["_id"]
    mid = "65f0c0ffee0000000000d001"

    async def scenario() -> None:
        c = await online(server, "ann", "bob", "cat")
        try:
            join = c["bob"].make_presence(pto=f"{room}/{uid(server, 'bob')}")
            join["id"] = "j:join"
            join.append(ET.Element(f"{{{NS_MUC}}}x"))
            join.send()
            await c["bob"].expect("presence", lambda p: p["id"] == "j:join")
            groupchat(c["ann"], room, "hello trio", mid)
            for name in ("ann", "bob", "cat"):
                got = await c[name].expect("message", lambda m: m["id"] == mid)
                assert got["type"] == "groupchat"
                assert got["from"].full == f"{room}/{uid(server, 'ann')}"
                fields = extra_of(got)
                assert (fields["dialog_id"], fields["message_id"]) == (dialog, mid)
        finally:
            await logout(*c.values())

    run(scenario())
    unread = {
        name: rest(name, "GET", "/chat/Message/unread.json", chat_dialog_ids=dialog)[dialog]
        for name in ("ann", "bob", "cat")
    }
    assert unread == {"ann": 0, "bob": 1, "cat": 1}
    page = rest("cat", "GET", "/chat/Message.json", chat_dialog_id=dialog)
    assert [(m["_id"], m["message"]) for m in page["items"]] == [(mid, "hello trio")]
    assert rest("cat", "GET", "/chat/Message/unread.json", chat_dialog_ids=dialog)[dialog] == 0
    [d] = [d for d in rest("ann", "GET", "/chat/Dialog.json")["items"] if d["_id"] == dialog]
    assert (d["last_message"], d["last_message_id"]) == ("hello trio", mid)


def test_removed_occupant_stops_receiving(server: XmppServer, rest) -> None:
    """Issue 5: after Ann removes Cat over REST (pull_all), Cat gets none of the
    dialog's messages and Bob still does."""
    made = rest(
        "ann",
        "POST",
        "/chat/Dialog.json",
        {
            "type": 2,
            "name": "shrink",
            "occupants_ids": f"{uid(server, 'bob')}, {uid(server, 'cat')}",
        },
    )
    room, dialog = made["xmpp_room_jid"], made["_id"]

    async def scenario() -> None:
        c = await online(server, "ann", "bob", "cat")
        try:
            groupchat(c["ann"], room, "before", "65f0c0ffee0000000000d101")
            await c["cat"].expect("message", lambda m: m["body"] == "before")
            rest(
                "ann",
                "PUT",
                f"/chat/Dialog/{dialog}.json",
                {"pull_all": {"occupants_ids": [uid(server, "cat")]}},
            )
            groupchat(c["ann"], room, "after", "65f0c0ffee0000000000d102")
            await c["bob"].expect("message", lambda m: m["body"] == "after")
            await barrier(c["ann"], c["cat"], "barrier")
            assert bodies(c["cat"], room) == ["before"]
        finally:
            await logout(*c.values())

    run(scenario())


def test_public_dialog_subscribed_over_rest(server: XmppServer, rest) -> None:
    """Issue 5: Cat subscribes to Ann's public dialog over REST and then receives its
    messages without joining; Bob, not subscribed, does not."""
    made = rest("ann", "POST", "/chat/Dialog.json", {"type": 1, "name": "town square"})
    room, dialog = made["xmpp_room_jid"], made["_id"]
    rest("cat", "POST", f"/chat/Dialog/{dialog}/subscribe.json")

    async def scenario() -> None:
        c = await online(server, "ann", "bob", "cat")
        try:
            groupchat(c["ann"], room, "hear ye", "65f0c0ffee0000000000d201")
            got = await c["cat"].expect("message", lambda m: m["body"] == "hear ye")
            assert got["from"].full == f"{room}/{uid(server, 'ann')}"
            await barrier(c["ann"], c["bob"], "barrier")
            assert bodies(c["bob"], room) == []
        finally:
            await logout(*c.values())

    run(scenario())
    page = rest("cat", "GET", "/chat/Message.json", chat_dialog_id=dialog)
    assert [m["message"] for m in page["items"]] == ["hear ye"]


def test_rest_send_to_chat_goes_through_the_room(server: XmppServer, rest) -> None:
    """Issue 5 in plugins/dialogs: POST /chat/Message with send_to_chat=1 on a group
    dialog reaches every occupant's resources (the sender's devices too) as a
    groupchat from {room}/{sender id} carrying the stored message id."""
    made = rest(
        "ann",
        "POST",
        "/chat/Dialog.json",
        {"type": 2, "name": "rest", "occupants_ids": f"{uid(server, 'bob')}"},
    )
    room, dialog = made["xmpp_room_jid"], made["_id"]

    async def scenario() -> None:
        c = await online(server, "ann", "bob")
        try:
            body = {"chat_dialog_id": dialog, "message": "from rest", "send_to_chat": 1}
            sent = rest("ann", "POST", "/chat/Message.json", body)
            for name in ("ann", "bob"):
                got = await c[name].expect("message", lambda m: m["body"] == "from rest")
                assert (got["type"], got["from"].full) == (
                    "groupchat",
                    f"{room}/{uid(server, 'ann')}",
                )
                assert extra_of(got)["message_id"] == sent["_id"]
        finally:
            await logout(*c.values())

    run(scenario())
