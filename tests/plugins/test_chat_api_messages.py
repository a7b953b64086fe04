"""chat_api ``/chat/Message`` (SDK-CONTRACT §5.2) over what XMPP saved to history
(§4.5, issue 3 "Messages"): the Message object, listing marks read, unread counts
and the Dialog's ``last_message*`` agree."""

from __future__ import annotations

from types import SimpleNamespace

import pytest_twisted

from tests.plugins.chat_api_support import NOW, cc
from tests.plugins.chat_api_support import start as start_web
from tests.plugins.test_chat_api_dialogs import people

MID = "65f0c0ffee0000000000abcd"


async def send(web, sender, to_login, mid, body, date_sent=NOW):
    """A saved 1-1 chat message over XMPP (§4.5); returns the delivered stanza."""
    h = web.h
    extra = (
        f"<save_to_history>1</save_to_history><date_sent>{date_sent}</date_sent>"
        "<attachment uid='u1' type='image' size='7'/><mood>good</mood>"
    )
    xml = (
        f"<message to='{h.jid_of(to_login)}' type='chat' id='{mid}'><body>{body}</body>"
        f"<extraParams xmlns='jabber:client'>{extra}</extraParams></message>"
    )
    await h.send(sender, xml)


async def received(web, client, count):
    """What ``client`` got once ``count`` stanzas arrived (PostgreSQL round trips
    may outlast one ``settle``)."""
    for _ in range(100):
        if len(client.out) >= count:
            break
        await web.h.settle()
    return client.take()


@pytest_twisted.ensureDeferred
async def test_history_list_marks_read_and_unread_agree(tmp_path, db_url):
    """§5.2 message.list / unreadCount and §5.1 Dialog after two saved XMPP messages:
    Message fields with custom params top-level; mark_as_read=0 leaves the count;
    a plain list marks read (read_ids, read) and the counts drop to 0."""
    web = await start_web(tmp_path, db_url)
    try:
        ids, tok = await people(web, "ann", "bob")
        for login in ("ann", "bob"):
            web.h.users[login] = SimpleNamespace(id=ids[login])
        ann = await web.h.login("ann", available=True)
        bob = await web.h.login("bob", available=True)
        await send(web, ann, "bob", MID, "one", NOW - 1)
        await send(web, ann, "bob", "x1", "two")
        [first, second] = await received(web, bob, 2)
        extra = next(c for c in first.elements() if c.name == "extraParams")
        dialog_id = str(next(c for c in extra.elements() if c.name == "dialog_id"))

        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        [d] = r.json["items"]
        assert (d["_id"], d["last_message"], d["last_message_user_id"]) == (
            dialog_id,
            "two",
            ids["ann"],
        )
        assert (d["last_message_date_sent"], d["unread_messages_count"]) == (NOW, 2)
        r = await web.request(
            "GET", f"/chat/Message/unread.json?chat_dialog_ids={dialog_id}", headers=cc(tok["bob"])
        )
        assert r.json == {"total": 2, dialog_id: 2}

        path = f"/chat/Message.json?chat_dialog_id={dialog_id}"
        r = await web.request("GET", f"{path}&mark_as_read=0", headers=cc(tok["bob"]))
        assert r.code == 200, r.body
        one, two = r.json["items"]
        assert (one["_id"], one["message"], one["date_sent"]) == (MID, "one", NOW - 1)
        assert (one["sender_id"], one["recipient_id"], one["chat_dialog_id"]) == (
            ids["ann"],
            ids["bob"],
            dialog_id,
        )
        assert one["attachments"] == [{"uid": "u1", "type": "image", "size": 7}]
        assert (one["mood"], one["read"], one["read_ids"]) == ("good", 0, [])
        assert one["created_at"].endswith("Z") and len(two["_id"]) == 24 and two["_id"] != "x1"

        r = await web.request("GET", f"{path}&sort_desc=date_sent", headers=cc(tok["bob"]))
        assert [m["message"] for m in r.json["items"]] == ["two", "one"]
        assert all(m["read"] == 1 and m["read_ids"] == [ids["bob"]] for m in r.json["items"])
        r = await web.request("GET", "/chat/Message/unread.json", headers=cc(tok["bob"]))
        assert r.json == {"total": 0}
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        assert r.json["items"][0]["unread_messages_count"] == 0
        assert r.json["items"][0]["last_message_status"] == "read"
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_history_needs_an_occupant(tmp_path):
    """§5.2: only occupants read a private dialog's history (403); an unknown
    dialog is 404; chat_dialog_id is required (422)."""
    web = await start_web(tmp_path)
    try:
        ids, tok = await people(web, "ann", "bob", "cat")
        for login in ("ann", "bob"):
            web.h.users[login] = SimpleNamespace(id=ids[login])
        ann = await web.h.login("ann", available=True)
        bob = await web.h.login("bob", available=True)
        await send(web, ann, "bob", MID, "secret")
        await received(web, bob, 1)
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["ann"]))
        dialog_id = r.json["items"][0]["_id"]
        path = f"/chat/Message.json?chat_dialog_id={dialog_id}"
        assert (await web.request("GET", path, headers=cc(tok["cat"]))).code == 403
        missing = "/chat/Message.json?chat_dialog_id=0123456789abcdef01234567"
        assert (await web.request("GET", missing, headers=cc(tok["cat"]))).code == 404
        assert (await web.request("GET", "/chat/Message.json", headers=cc(tok["cat"]))).code == 422
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_update_marks_read_delivered_and_edits(tmp_path):
    """§5.2 message.update: read=1 on ids lowers the unread count, no ids = the whole
    dialog; delivered=1 adds delivered_ids; only the sender edits the text (H61)."""
    web = await start_web(tmp_path)
    try:
        ids, tok = await people(web, "ann", "bob")
        for login in ("ann", "bob"):
            web.h.users[login] = SimpleNamespace(id=ids[login])
        ann = await web.h.login("ann", available=True)
        bob = await web.h.login("bob", available=True)
        await send(web, ann, "bob", MID, "one", NOW - 1)
        await send(web, ann, "bob", "x1", "two")
        [first, _] = await received(web, bob, 2)
        extra = next(c for c in first.elements() if c.name == "extraParams")
        dialog_id = str(next(c for c in extra.elements() if c.name == "dialog_id"))
        body = {"chat_dialog_id": dialog_id}
        unread = f"/chat/Message/unread.json?chat_dialog_ids={dialog_id}"
        r = await web.request(
            "PUT",
            f"/chat/Message/{MID}.json",
            json_body={**body, "delivered": 1},
            headers=cc(tok["bob"]),
        )
        assert r.code == 200 and r.json == {}
        assert (await web.request("GET", unread, headers=cc(tok["bob"]))).json[dialog_id] == 2
        r = await web.request(
            "PUT", f"/chat/Message/{MID}.json", form={**body, "read": "1"}, headers=cc(tok["bob"])
        )
        assert (await web.request("GET", unread, headers=cc(tok["bob"]))).json[dialog_id] == 1
        edit = {**body, "message": "uno"}
        r = await web.request(
            "PUT", f"/chat/Message/{MID}.json", json_body=edit, headers=cc(tok["bob"])
        )
        assert r.code == 403
        r = await web.request(
            "PUT", f"/chat/Message/{MID}.json", json_body=edit, headers=cc(tok["ann"])
        )
        assert r.code == 200
        r = await web.request(
            "PUT", "/chat/Message.json", json_body={**body, "read": 1}, headers=cc(tok["bob"])
        )
        assert (await web.request("GET", unread, headers=cc(tok["bob"]))).json[dialog_id] == 0
        path = f"/chat/Message.json?chat_dialog_id={dialog_id}&mark_as_read=0"
        one, two = (await web.request("GET", path, headers=cc(tok["ann"]))).json["items"]
        assert (one["message"], one["delivered_ids"], one["read_ids"]) == (
            "uno",
            [ids["bob"]],
            [ids["bob"]],
        )
        assert two["read_ids"] == [ids["bob"]]
    finally:
        await web.stop()
