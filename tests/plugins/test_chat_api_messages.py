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
async def sign_up(web, *logins):
    """Users signed up over REST and known to the harness, for XMPP logins."""
    ids, tok = await people(web, *logins)
    for login in logins:
        web.h.users[login] = SimpleNamespace(id=ids[login])
    return ids, tok


async def two_saved_messages(web, ann, bob):
    """Ann sends Bob two saved messages (the first with a fresh client id); Bob's
    two copies and the private dialog's id the server stamped on them."""
    await send(web, ann, "bob", MID, "one", NOW - 1)
    await send(web, ann, "bob", "x1", "two")
    first, second = await received(web, bob, 2)
    return first, second, str(child(child(first, "extraParams"), "dialog_id"))


async def test_history_list_marks_read_and_unread_agree(tmp_path, db_url):
    """§5.2 message.list / unreadCount and §5.1 Dialog after two saved XMPP messages:
    Message fields with custom params top-level; mark_as_read=0 leaves the count;
    a plain list marks read (read_ids, read) and the counts drop to 0."""
    web = await start_web(tmp_path, db_url)
    try:
        ids, tok = await sign_up(web, "ann", "bob")
        ann = await web.h.login("ann", available=True)
        bob = await web.h.login("bob", available=True)
        first, second, dialog_id = await two_saved_messages(web, ann, bob)

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
        ids, tok = await sign_up(web, "ann", "bob", "cat")
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
        ids, tok = await sign_up(web, "ann", "bob")
        ann = await web.h.login("ann", available=True)
        bob = await web.h.login("bob", available=True)
        first, _, dialog_id = await two_saved_messages(web, ann, bob)
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


async def pair(web, *logins):
    """Users signed up, known to the harness, online; ann's private dialog with bob."""
    ids, tok = await sign_up(web, *logins)
    online = {login: await web.h.login(login, available=True) for login in logins}
    body = {"type": 3, "occupants_ids": str(ids["bob"])}
    r = await web.request("POST", "/chat/Dialog.json", json_body=body, headers=cc(tok["ann"]))
    assert r.code == 201, r.body
    return ids, tok, online, r.json["_id"]


async def post(web, token, dialog_id, text, **extra):
    """§5.2 message.create; the clock moves on so that the order is certain."""
    web.h.clock.advance(1)
    body = {"chat_dialog_id": dialog_id, "message": text, **extra}
    r = await web.request("POST", "/chat/Message.json", json_body=body, headers=cc(token))
    assert r.code == 201, r.body
    return r.json


def child(element, name):
    return next(c for c in element.elements() if c.name == name)


@pytest_twisted.ensureDeferred
async def test_send_to_chat_for_an_offline_occupant_waits_in_offline_storage(tmp_path):
    """send_to_chat routes like any message (RFC 6121 §8.5.2): an occupant with no
    available resource gets it from offline storage (XEP-0160) at his next presence."""
    web = await start_web(tmp_path, also=("offline",))
    try:
        ids, tok, online, dialog_id = await pair(web, "ann", "bob")
        await web.h.disconnect(online["bob"])
        sent = await post(web, tok["ann"], dialog_id, "while away", send_to_chat=1)
        bob = await web.h.login("bob", resource="back")
        await web.h.send(bob, "<presence/>")
        [stanza] = [s for s in bob.take() if s.name == "message"]
        assert (stanza["id"], str(child(stanza, "body"))) == (sent["_id"], "while away")
        assert child(stanza, "delay") is not None
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_create_stores_and_send_to_chat_delivers(tmp_path, db_url):
    """§5.2 message.create stores like XMPP; send_to_chat=1 delivers the §4.5 saved stanza."""
    web = await start_web(tmp_path, db_url)
    try:
        ids, tok, online, dialog_id = await pair(web, "ann", "bob", "cat")
        attachment = {"uid": "u1", "type": "image", "size": 7}
        m = await post(web, tok["ann"], dialog_id, "hi", mood="good", attachments=[attachment])
        assert (m["chat_dialog_id"], m["message"], m["sender_id"]) == (dialog_id, "hi", ids["ann"])
        assert (m["recipient_id"], m["mood"], m["attachments"]) == (
            ids["bob"],
            "good",
            [attachment],
        )
        assert len(m["_id"]) == 24 and m["created_at"].endswith("Z")
        await web.h.settle()
        assert online["bob"].take() == []  # stored only
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        d = r.json["items"][0]
        assert (d["last_message"], d["last_message_id"], d["unread_messages_count"]) == (
            "hi",
            m["_id"],
            1,
        )

        sent = await post(web, tok["ann"], dialog_id, "there", send_to_chat=1, mood="ok")
        [stanza] = await received(web, online["bob"], 1)
        assert (stanza["type"], stanza["id"], stanza["from"]) == (
            "chat",
            sent["_id"],
            web.h.jid_of("ann"),
        )
        assert str(child(stanza, "body")) == "there"
        extra = child(stanza, "extraParams")
        assert str(child(extra, "dialog_id")) == dialog_id
        assert str(child(extra, "message_id")) == sent["_id"]
        assert str(child(extra, "mood")) == "ok"
        assert online["ann"].take() == [] and online["cat"].take() == []

        assert (
            await web.request(
                "POST",
                "/chat/Message.json",
                json_body={"chat_dialog_id": dialog_id, "message": "x"},
                headers=cc(tok["cat"]),
            )
        ).code == 403
        missing = {"chat_dialog_id": "0123456789abcdef01234567", "message": "x"}
        r = await web.request(
            "POST", "/chat/Message.json", json_body=missing, headers=cc(tok["ann"])
        )
        assert r.code == 404
        r = await web.request(
            "POST", "/chat/Message.json", json_body={"message": "x"}, headers=cc(tok["ann"])
        )
        assert r.code == 422
        bad = {"chat_dialog_id": dialog_id, "message": "x", "k'/><body>": "1"}
        r = await web.request("POST", "/chat/Message.json", json_body=bad, headers=cc(tok["ann"]))
        assert r.code == 422  # custom names become extraParams elements
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_delete_for_me_and_for_everyone(tmp_path, db_url):
    """§5.2 message.delete: hide for me; force=1 by the sender, §4.5 remove notification."""
    web = await start_web(tmp_path, db_url)
    try:
        ids, tok, online, dialog_id = await pair(web, "ann", "bob")
        one = await post(web, tok["ann"], dialog_id, "one")
        two = await post(web, tok["ann"], dialog_id, "two")
        path = f"/chat/Message.json?chat_dialog_id={dialog_id}&mark_as_read=0"
        unread = f"/chat/Message/unread.json?chat_dialog_ids={dialog_id}"

        r = await web.request("DELETE", f"/chat/Message/{one['_id']}.json", headers=cc(tok["bob"]))
        assert (r.code, r.json) == (200, {})
        r = await web.request("GET", path, headers=cc(tok["bob"]))
        assert [m["message"] for m in r.json["items"]] == ["two"]
        r = await web.request("GET", path, headers=cc(tok["ann"]))
        assert [m["message"] for m in r.json["items"]] == ["one", "two"]
        assert (await web.request("GET", unread, headers=cc(tok["bob"]))).json[dialog_id] == 1

        gone = f"/chat/Message/{two['_id']}.json"
        r = await web.request("DELETE", gone, form={"force": "1"}, headers=cc(tok["bob"]))
        assert r.code == 403
        online["bob"].take()
        r = await web.request("DELETE", gone, form={"force": "1"}, headers=cc(tok["ann"]))
        assert r.code == 200, r.body
        [note] = await received(web, online["bob"], 1)
        remove = child(note, "remove")
        assert (note["type"], remove.uri, remove["id"]) == (
            "chat",
            "urn:xmpp:message-delete:0",
            two["_id"],
        )
        assert str(child(child(note, "extraParams"), "dialog_id")) == dialog_id
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        d = r.json["items"][0]
        assert (d["last_message"], d["last_message_id"], d["unread_messages_count"]) == (
            "one",
            one["_id"],
            0,
        )
        r = await web.request("GET", path, headers=cc(tok["ann"]))
        assert [m["message"] for m in r.json["items"]] == ["one"]

        mine = f"/chat/Message/{one['_id']}.json"
        assert (await web.request("DELETE", mine, headers=cc(tok["ann"]))).code == 200
        assert (await web.request("DELETE", mine, headers=cc(tok["ann"]))).code == 404
        hers = await post(web, tok["bob"], dialog_id, "hers")
        unknown = "0123456789abcdef01234567"
        several = f"/chat/Message/{one['_id']},{hers['_id']},{unknown}.json"
        r = await web.request("DELETE", several, form={"force": "1"}, headers=cc(tok["ann"]))
        assert r.json == {
            "SuccessfullyDeleted": {"ids": [one["_id"]]},
            "NotFound": {"ids": [unknown]},
            "WrongPermissions": {"ids": [hers["_id"]]},
        }
        assert (
            await web.request("DELETE", f"/chat/Message/{unknown}.json", headers=cc(tok["ann"]))
        ).code == 404
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_clear_history_for_the_caller(tmp_path):
    """§5.1 dialog.clearHistory hides the history for the caller only; unread 0."""
    web = await start_web(tmp_path)
    try:
        ids, tok, online, dialog_id = await pair(web, "ann", "bob", "cat")
        await post(web, tok["ann"], dialog_id, "one")
        await post(web, tok["ann"], dialog_id, "two")
        clear = f"/chat/Dialog/clearHistory/{dialog_id}.json"
        assert (await web.request("DELETE", clear, headers=cc(tok["cat"]))).code == 403
        r = await web.request("DELETE", clear, headers=cc(tok["bob"]))
        assert (r.code, r.json) == (200, {})
        path = f"/chat/Message.json?chat_dialog_id={dialog_id}"
        assert (await web.request("GET", path, headers=cc(tok["bob"]))).json["items"] == []
        assert len((await web.request("GET", path, headers=cc(tok["ann"]))).json["items"]) == 2
        r = await web.request("GET", "/chat/Message/unread.json", headers=cc(tok["bob"]))
        assert r.json == {"total": 0}
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_system_message_is_a_headline_never_stored(tmp_path):
    """§5.2 message.createSystem: a §4.5 SystemNotifications headline, never stored."""
    web = await start_web(tmp_path)
    try:
        ids, tok = await sign_up(web, "ann", "bob")
        bob = await web.h.login("bob", available=True)
        body = {"recipientId": ids["bob"], "kind": "invite"}
        r = await web.request(
            "POST", "/chat/Message/system.json", json_body=body, headers=cc(tok["ann"])
        )
        assert r.code == 200, r.body
        assert r.json["recipientId"] == ids["bob"] and len(r.json["messageId"]) == 24
        assert r.json["extensionParams"] == {
            "moduleIdentifier": "SystemNotifications",
            "kind": "invite",
        }
        [stanza] = await received(web, bob, 1)
        assert (stanza["type"], stanza["id"], stanza["from"]) == (
            "headline",
            r.json["messageId"],
            web.h.jid_of("ann"),
        )
        extra = child(stanza, "extraParams")
        assert (str(child(extra, "moduleIdentifier")), str(child(extra, "kind"))) == (
            "SystemNotifications",
            "invite",
        )
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        assert r.json["items"] == []
        missing = {"recipientId": 999999}
        r = await web.request(
            "POST", "/chat/Message/system.json", json_body=missing, headers=cc(tok["ann"])
        )
        assert r.code == 404
    finally:
        await web.stop()


def reactions_of(stanza):
    """``(message_id, user_id, [(change, type)], dialog_id)`` of a §4.5 reactions stanza."""
    element = child(stanza, "reactions")
    changes = [
        ("add" if r.getAttribute("add") == "true" else "remove", r["type"])
        for r in element.elements()
    ]
    dialog_id = str(child(child(stanza, "extraParams"), "dialog_id"))
    return element["message_id"], int(element["user_id"]), changes, dialog_id


@pytest_twisted.ensureDeferred
async def test_reactions_list_update_and_notify(tmp_path, db_url):
    """§5.2 listReactions / addReaction / removeReaction: occupants only; the Message
    object's reactions {own, total}; each change is the §4.5 <reactions/> stanza to
    every occupant's online resources (the reactor's too); no change, no stanza."""
    web = await start_web(tmp_path, db_url)
    try:
        ids, tok, online, dialog_id = await pair(web, "ann", "bob", "cat")
        m = await post(web, tok["ann"], dialog_id, "react to me")
        path = f"/chat/Message/{m['_id']}/reactions.json"
        r = await web.request("PUT", path, json_body={"add": "👍"}, headers=cc(tok["bob"]))
        assert (r.code, r.json) == (200, {})
        for login in ("ann", "bob"):
            [note] = await received(web, online[login], 1)
            assert (note["type"], note["from"]) == ("chat", web.h.jid_of("bob"))
            assert child(note, "reactions").uri == "jabber:client"
            assert reactions_of(note) == (m["_id"], ids["bob"], [("add", "👍")], dialog_id)
        r = await web.request("PUT", path, json_body={"add": "👍"}, headers=cc(tok["bob"]))
        assert r.code == 200
        await web.h.settle()
        assert online["ann"].take() == [] and online["bob"].take() == []  # nothing changed

        replace = {"add": "❤️", "remove": "👍"}
        r = await web.request("PUT", path, form=replace, headers=cc(tok["bob"]))
        assert r.code == 200
        [note] = await received(web, online["ann"], 1)
        assert reactions_of(note)[2] == [("remove", "👍"), ("add", "❤️")]
        r = await web.request("PUT", path, json_body={"add": "❤️"}, headers=cc(tok["ann"]))
        r = await web.request("PUT", path, json_body={"add": "😂"}, headers=cc(tok["ann"]))
        r = await web.request("GET", path, headers=cc(tok["bob"]))
        assert (r.code, r.json) == (
            200,
            {"❤️": sorted([ids["ann"], ids["bob"]]), "😂": [ids["ann"]]},
        )
        listing = f"/chat/Message.json?chat_dialog_id={dialog_id}&mark_as_read=0"
        [mine] = (await web.request("GET", listing, headers=cc(tok["bob"]))).json["items"]
        assert mine["reactions"] == {"own": ["❤️"], "total": {"❤️": 2, "😂": 1}}
        [hers] = (await web.request("GET", listing, headers=cc(tok["ann"]))).json["items"]
        assert hers["reactions"] == {"own": ["❤️", "😂"], "total": {"❤️": 2, "😂": 1}}
        assert (await web.request("GET", path, headers=cc(tok["cat"]))).code == 403
        r = await web.request("PUT", path, json_body={"add": "👀"}, headers=cc(tok["cat"]))
        assert r.code == 403
        assert online["cat"].take() == []

        for bad in ({}, {"add": "x" * 33}, {"add": "a\x07"}, {"remove": "   "}, {"add": ["a"]}):
            r = await web.request("PUT", path, json_body=bad, headers=cc(tok["bob"]))
            assert r.code == 422, (bad, r.body)
        unknown = "/chat/Message/0123456789abcdef01234567/reactions.json"
        assert (await web.request("GET", unknown, headers=cc(tok["bob"]))).code == 404
        r = await web.request("PUT", unknown, json_body={"add": "x"}, headers=cc(tok["bob"]))
        assert r.code == 404
        r = await web.request(
            "DELETE", f"/chat/Message/{m['_id']}.json", form={"force": "1"}, headers=cc(tok["ann"])
        )
        assert r.code == 200
        assert (await web.request("GET", path, headers=cc(tok["bob"]))).code == 404

        # A public dialog: anyone of the app reacts, and is told on his resources too.
        await web.h.settle()
        for client in online.values():
            client.take()
        body = {"type": 1, "name": "Town square"}
        r = await web.request("POST", "/chat/Dialog.json", json_body=body, headers=cc(tok["ann"]))
        square = r.json["_id"]
        m = await post(web, tok["ann"], square, "hello all")
        path = f"/chat/Message/{m['_id']}/reactions.json"
        r = await web.request("PUT", path, json_body={"add": "🎉"}, headers=cc(tok["cat"]))
        assert r.code == 200, r.body
        for login in ("ann", "cat"):
            [note] = await received(web, online[login], 1)
            assert reactions_of(note) == (m["_id"], ids["cat"], [("add", "🎉")], square)
        assert online["bob"].take() == []
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_edit_notifies_the_other_occupants(tmp_path, db_url):
    """§5.2 message.update with ``message`` sends the §4.5 edit stanza (<replace
    xmlns='urn:xmpp:message-correct:0' id last/>, the new body, extraParams/dialog_id)
    to the other occupants' online resources; read=1 sends nothing."""
    web = await start_web(tmp_path, db_url)
    try:
        ids, tok, online, dialog_id = await pair(web, "ann", "bob")
        first = await post(web, tok["ann"], dialog_id, "frist")
        last = await post(web, tok["ann"], dialog_id, "lsat")
        for m, text, is_last in ((first, "first", "false"), (last, "last", "true")):
            body = {"chat_dialog_id": dialog_id, "message": text}
            r = await web.request(
                "PUT", f"/chat/Message/{m['_id']}.json", json_body=body, headers=cc(tok["ann"])
            )
            assert (r.code, r.json) == (200, {})
            [note] = await received(web, online["bob"], 1)
            replace = child(note, "replace")
            assert (note["type"], note["from"], str(child(note, "body"))) == (
                "chat",
                web.h.jid_of("ann"),
                text,
            )
            assert (replace.uri, replace["id"], replace["last"]) == (
                "urn:xmpp:message-correct:0",
                m["_id"],
                is_last,
            )
            assert str(child(child(note, "extraParams"), "dialog_id")) == dialog_id
            assert online["ann"].take() == []
        body = {"chat_dialog_id": dialog_id, "message": "bell\x07"}  # no XML character
        r = await web.request(
            "PUT", f"/chat/Message/{last['_id']}.json", json_body=body, headers=cc(tok["ann"])
        )
        assert r.code == 422
        body = {"chat_dialog_id": dialog_id, "read": 1}
        r = await web.request("PUT", "/chat/Message.json", json_body=body, headers=cc(tok["bob"]))
        assert r.code == 200
        await web.h.settle()
        assert online["ann"].take() == [] and online["bob"].take() == []
        r = await web.request("GET", "/chat/Dialog.json", headers=cc(tok["bob"]))
        assert r.json["items"][0]["last_message"] == "last"
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_attachments_type_filter(tmp_path, db_url):
    """§5.2 message.list ``attachments.type`` (eq, in, nin) in SQL: paging counts
    only the matching messages; a bad operator is 422."""
    web = await start_web(tmp_path, db_url)
    try:
        ids, tok, online, dialog_id = await pair(web, "ann", "bob")
        kinds = [["image"], [], ["video"], ["audio", "image"], ["image"], ["file"]]
        for n, types in enumerate(kinds):
            attachments = [{"uid": f"u{n}{t}", "type": t} for t in types]
            await post(web, tok["ann"], dialog_id, f"m{n}", attachments=attachments)
        base = f"/chat/Message.json?chat_dialog_id={dialog_id}&mark_as_read=0"

        async def texts(query):
            r = await web.request("GET", f"{base}&{query}", headers=cc(tok["bob"]))
            assert r.code == 200, r.body
            return [m["message"] for m in r.json["items"]]

        assert await texts("attachments.type=image") == ["m0", "m3", "m4"]
        assert await texts("attachments.type=image&limit=1&skip=1") == ["m3"]
        assert await texts("attachments.type%5Bin%5D=image,video&sort_desc=date_sent&limit=2") == [
            "m4",
            "m3",
        ]
        assert await texts("attachments.type[nin]=image,video") == ["m1", "m5"]
        assert await texts("attachments.type=vid%25") == []  # no wildcards
        r = await web.request("GET", f"{base}&attachments.type[gt]=a", headers=cc(tok["bob"]))
        assert r.code == 422
    finally:
        await web.stop()
