"""plugins/muc/dialog_rooms.py: group, public and broadcast dialogs as MUC rooms
through the real router (tests/harness.py), with the hosted services' raw stanzas
(issue 5; SDK-CONTRACT §4.5, §4.6; XEP-0045 §7.2, §7.4, §7.14)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.words.protocols.jabber.jid import JID

from plugins.muc.dialog_rooms import DEFAULT_HISTORY, MAX_HISTORY, history_request
from tests.harness import DOMAIN, Client, FakeStream, Harness, parse
from xmppd.plugin import StanzaError
from xmppd.sessions import Session

MUC = f"muc.{DOMAIN}"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


async def start(tmp_path, *logins, privacy=False):
    enabled = ["dialogs", "muc"] + (["privacy"] if privacy else [])
    h = await Harness.start(tmp_path, plugins={"enabled": enabled})
    clients = {}
    for login in logins:
        clients[login] = await h.login(login, f"res-{login}-0123456789", available=True)
    return h, clients


def store(h):
    return h.server.plugins.plugins["dialogs"]


def uid(h, login):
    return h.users[login].id


async def group(h, owner, *others, kind=2):
    d, _ = await store(h).create(
        h.app_id,
        uid(h, owner),
        {"type": kind, "name": "team", "occupants_ids": [uid(h, o) for o in others]},
    )
    return d


def room(h, d, nick=None):
    return f"{h.app_id}_{d.id}@{MUC}" + (f"/{nick}" if nick is not None else "")


def say(h, d, body, saved=True, id_="65f0c0ffee0000000000abcd"):
    extra = "<save_to_history>1</save_to_history>" if saved else "<custom>v</custom>"
    return (
        f"<message type='groupchat' to='{room(h, d)}' id='{id_}'><body>{body}</body>"
        f"<extraParams xmlns='jabber:client'>{extra}</extraParams></message>"
    )


def messages(client):
    return [s for s in client.take() if s.name == "message"]


def extra(stanza):
    found = next(stanza.elements("jabber:client", "extraParams"))
    return {c.name: str(c) for c in found.elements()}


def error_of(stanza):
    error = next(stanza.elements(None, "error"))
    return next(c.name for c in error.elements() if c.uri == STANZAS)


@pytest_twisted.ensureDeferred
async def test_group_message_reaches_every_online_occupant_joined_or_not(tmp_path):
    """Issue 5: a groupchat to the room goes to every available resource of every
    occupant, joined or not, the sender's own included (XEP-0045 §7.4 reflection),
    from {room}/{sender id} with extraParams/dialog_id and the stored message_id;
    saved first: history, last_message*, the others' unread counts."""
    h, c = await start(tmp_path, "ann", "bob", "cat", "dan")
    try:
        d = await group(h, "ann", "bob", "cat")
        await h.send(c["ann"], say(h, d, "hello all"))
        got = {login: messages(c[login]) for login in c}
        assert got["dan"] == []
        for login in ("ann", "bob", "cat"):
            [m] = got[login]
            assert (m["type"], m["from"], m["to"]) == (
                "groupchat",
                room(h, d, uid(h, "ann")),
                c[login].jid,
            )
            assert str(next(m.elements("jabber:client", "body"))) == "hello all"
            fields = extra(m)
            assert fields["dialog_id"] == d.id
            assert fields["message_id"] == "65f0c0ffee0000000000abcd"
        page = await store(h).messages(h.app_id, uid(h, "bob"), d.id, {"mark_as_read": "0"})
        assert [(m["_id"], m["message"]) for m in page["items"]] == [
            ("65f0c0ffee0000000000abcd", "hello all")
        ]
        unread = {
            login: (await store(h).unread(h.app_id, uid(h, login), [d.id]))[d.id]
            for login in ("ann", "bob", "cat")
        }
        assert unread == {"ann": 0, "bob": 1, "cat": 1}
        seen = await store(h).get(h.app_id, d.id)
        assert (seen.last_message, seen.last_message_user_id) == ("hello all", uid(h, "ann"))
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_unsaved_message_carries_dialog_id_and_is_not_stored(tmp_path):
    """SDK-CONTRACT §4.5: without save_to_history nothing is stored; the delivered
    stanza still names the dialog (extraParams/dialog_id), no message_id."""
    h, c = await start(tmp_path, "ann", "bob")
    try:
        d = await group(h, "ann", "bob")
        await h.send(c["ann"], say(h, d, "typing-ish", saved=False))
        [m] = messages(c["bob"])
        assert extra(m) == {"custom": "v", "dialog_id": d.id}
        page = await store(h).messages(h.app_id, uid(h, "bob"), d.id, {})
        assert page["items"] == []
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_refusals(tmp_path):
    """Issue 5: a non-occupant of a group gets forbidden (nothing stored or sent); an
    unknown dialog, or a user of another application, item-not-found; a private
    dialog has no room (item-not-found)."""
    h, c = await start(tmp_path, "ann", "bob", "dan")
    try:
        d = await group(h, "ann", "bob")
        await h.send(c["dan"], say(h, d, "let me in"))
        [error] = messages(c["dan"])
        assert (error["type"], error_of(error)) == ("error", "forbidden")
        assert messages(c["ann"]) == messages(c["bob"]) == []
        unknown = f"<message type='groupchat' to='{h.app_id}_{'ab' * 12}@{MUC}'><body>x</body>"
        await h.send(c["ann"], unknown + "</message>")
        assert error_of(messages(c["ann"])[0]) == "item-not-found"
        other = await h.accounts.create_app("other")
        stranger = await h.accounts.create_user(other.id, "eve", "secret")
        stream = FakeStream()
        session = Session(
            JID(f"{stranger.id}-{other.id}@{DOMAIN}/r"), stream, stranger.id, other.id
        )
        await h.server.bind_session(session)
        eve = Client(session, stream)
        await h.send(eve, say(h, d, "hi"))
        assert error_of(messages(eve)[0]) == "item-not-found"
        private, _ = await store(h).create(
            h.app_id, uid(h, "ann"), {"type": 3, "occupants_ids": [uid(h, "bob")]}
        )
        await h.send(c["ann"], say(h, private, "no room"))
        assert error_of(messages(c["ann"])[0]) == "item-not-found"
        assert messages(c["bob"]) == []
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_removed_occupant_stops_receiving_at_once(tmp_path):
    """Issue 5: a REST change of occupants_ids takes effect for routing at once."""
    h, c = await start(tmp_path, "ann", "bob", "cat")
    try:
        d = await group(h, "ann", "bob", "cat")
        await h.send(c["ann"], say(h, d, "one", id_="65f0c0ffee0000000000aaa1"))
        assert len(messages(c["cat"])) == 1
        await store(h).update(
            h.app_id, uid(h, "ann"), d.id, {"pull_all": {"occupants_ids": [uid(h, "cat")]}}
        )
        await h.send(c["ann"], say(h, d, "two", id_="65f0c0ffee0000000000aaa2"))
        assert messages(c["cat"]) == []
        assert len(messages(c["bob"])) == 2
        await h.send(c["cat"], say(h, d, "still here?"))
        assert error_of(messages(c["cat"])[0]) == "forbidden"
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_blocker_does_not_receive(tmp_path):
    """Issue 5 with XEP-0191 §3.2: a user who blocked the sender gets none of his
    group messages; the others do."""
    h, c = await start(tmp_path, "ann", "bob", "cat", privacy=True)
    try:
        d = await group(h, "ann", "bob", "cat")
        block = (
            "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>"
            f"<item jid='{h.jid_of('ann')}'/></block></iq>"
        )
        await h.send(c["cat"], block)
        c["cat"].take()
        await h.send(c["ann"], say(h, d, "hi"))
        assert messages(c["cat"]) == []
        assert len(messages(c["bob"])) == 1
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_join_presence_history_and_leave(tmp_path):
    """XEP-0045 §7.2.3: the joined occupants' presence to the newcomer, his to them,
    the self-presence with 110 (the join id echoed, SDK-CONTRACT §4.6); §7.2.15 the
    stored history honouring maxstanzas, with a XEP-0203 delay; §7.2.16 the subject;
    §7.14 leaving sends unavailable presence, and the leaver still gets messages
    as an occupant (issue 5)."""
    h, c = await start(tmp_path, "ann", "bob", "cat")
    try:
        d = await group(h, "ann", "bob", "cat")
        for n in range(3):
            await h.send(c["ann"], say(h, d, f"m{n}", id_=f"65f0c0ffee0000000000bb0{n}"))
            h.clock.advance(1)
        for login in c:
            c[login].take()
        join = (
            f"<presence id='j1:join' to='{room(h, d, uid(h, 'cat'))}'>"
            "<x xmlns='http://jabber.org/protocol/muc'/></presence>"
        )
        await h.send(c["cat"], join)
        c["cat"].take()
        await h.send(
            c["bob"],
            f"<presence id='j2:join' to='{room(h, d, 'bobby')}'>"
            "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='2'/></x></presence>",
        )
        got = c["bob"].take()
        presences = [s for s in got if s.name == "presence"]
        assert [p["from"] for p in presences] == [
            room(h, d, uid(h, "cat")),
            room(h, d, uid(h, "bob")),
        ]
        own = presences[1]
        assert own["id"] == "j2:join"
        codes = {
            s["code"] for s in next(own.elements(NS_MUC_USER, "x")).elements(NS_MUC_USER, "status")
        }
        assert codes == {"100", "110", "210"}  # 210: the nick is the user id (§7.2.9)
        history = [s for s in got if s.name == "message" and s.firstChildElement().name == "body"]
        assert [str(m.body) for m in history] == ["m1", "m2"]
        assert all(next(m.elements("urn:xmpp:delay", "delay"), None) for m in history)
        assert history[0]["from"] == room(h, d, uid(h, "ann"))
        subject = got[-1]
        assert (subject.name, str(subject.subject)) == ("message", "team")
        [seen] = c["cat"].take()
        assert (seen.name, seen["from"]) == ("presence", room(h, d, uid(h, "bob")))
        await h.send(c["bob"], f"<presence type='unavailable' to='{room(h, d, uid(h, 'bob'))}'/>")
        [gone] = c["bob"].take()
        assert (gone["type"], gone["id"] if gone.hasAttribute("id") else None) == (
            "unavailable",
            None,
        )
        [left] = c["cat"].take()
        assert (left["type"], left["from"]) == ("unavailable", room(h, d, uid(h, "bob")))
        await h.send(c["ann"], say(h, d, "after", id_="65f0c0ffee0000000000bb09"))
        assert [str(m.body) for m in messages(c["bob"])] == ["after"]
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_public_subscriber_and_broadcast(tmp_path):
    """Issue 5: a public dialog's subscribers receive (and a presence join
    subscribes); a broadcast dialog reaches every user of the application and only
    the owner (and admins) post."""
    h, c = await start(tmp_path, "ann", "bob", "cat")
    try:
        public = await group(h, "ann", kind=1)
        await store(h).subscribe(h.app_id, uid(h, "bob"), public.id)
        await h.send(
            c["cat"],
            f"<presence to='{room(h, public, uid(h, 'cat'))}'>"
            "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>",
        )
        c["cat"].take()
        await h.send(c["bob"], say(h, public, "pub"))
        assert [len(messages(c[x])) for x in ("ann", "bob", "cat")] == [1, 1, 1]
        broadcast = await group(h, "ann", kind=4)
        await h.send(c["ann"], say(h, broadcast, "news", id_="65f0c0ffee0000000000cc01"))
        assert [len(messages(c[x])) for x in ("ann", "bob", "cat")] == [1, 1, 1]
        await h.send(c["bob"], say(h, broadcast, "me too"))
        assert error_of(messages(c["bob"])[0]) == "forbidden"
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_rest_send_edit_reaction_delete_go_through_the_room(tmp_path):
    """Issue 5 in plugins/dialogs: REST send_to_chat of a group message, and the
    edit, reaction and delete notifications of a room dialog, arrive as groupchat
    from {room}/{sender id} (SDK-CONTRACT §4.5: the SDK reads the dialog from the
    room JID and the user from the resource)."""
    h, c = await start(tmp_path, "ann", "bob")
    try:
        d = await group(h, "ann", "bob")
        dialogs = store(h)
        view, dialog = await dialogs.create_message(
            h.app_id, uid(h, "ann"), {"chat_dialog_id": d.id, "message": "via rest"}
        )
        dialogs.send_saved(h.app_id, view, dialog)
        await h.settle()
        for login in ("ann", "bob"):
            [m] = messages(c[login])
            assert (m["type"], m["from"]) == ("groupchat", room(h, d, uid(h, "ann")))
            assert extra(m)["message_id"] == view["_id"]
        edited = await dialogs.update_messages(
            h.app_id, uid(h, "ann"), d.id, [view["_id"]], {"message": "fixed"}
        )
        dialogs.send_edited(h.app_id, uid(h, "ann"), "fixed", edited)
        change = await dialogs.update_reactions(h.app_id, uid(h, "bob"), view["_id"], "ok", None)
        dialogs.send_reactions(h.app_id, change)
        _, removed = await dialogs.delete_messages(h.app_id, uid(h, "ann"), [view["_id"]], True)
        dialogs.send_removed(h.app_id, uid(h, "ann"), removed)
        await h.settle()
        got = messages(c["bob"])
        assert [next(m.elements()).name for m in got][:1] == ["body"]
        kinds = [[e.name for e in m.elements()] for m in got]
        assert ["body", "replace", "extraParams"] in kinds
        assert ["reactions", "extraParams"] in kinds
        assert ["remove", "extraParams"] in kinds
        assert {m["type"] for m in got} == {"groupchat"}
        assert {m["from"] for m in got} == {
            room(h, d, uid(h, "ann")),
            room(h, d, uid(h, "bob")),
        }
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_joined_occupant_removed_over_rest_leaves_with_321(tmp_path):
    """Issue 5 with XEP-0045 §9.5: a joined user removed from the dialog leaves the
    room at the next message (unavailable, 321) and gets nothing more; a presence
    change of a joined occupant is passed on (§7.7), with no second history."""
    h, c = await start(tmp_path, "ann", "bob")
    try:
        d = await group(h, "ann", "bob")
        for login in ("ann", "bob"):
            to = room(h, d, uid(h, login))
            await h.send(
                c[login],
                f"<presence to='{to}'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
            )
        c["ann"].take(), c["bob"].take()
        await h.send(
            c["bob"], f"<presence to='{room(h, d, uid(h, 'bob'))}'><show>away</show></presence>"
        )
        [seen] = c["ann"].take()
        assert (seen["from"], str(seen.show)) == (room(h, d, uid(h, "bob")), "away")
        assert [s.name for s in c["bob"].take()] == ["presence"]
        await store(h).update(
            h.app_id, uid(h, "ann"), d.id, {"pull_all": {"occupants_ids": [uid(h, "bob")]}}
        )
        await h.send(c["ann"], say(h, d, "bye bob"))
        [gone] = c["bob"].take()
        codes = {
            s["code"] for s in next(gone.elements(NS_MUC_USER, "x")).elements(NS_MUC_USER, "status")
        }
        assert (gone.name, gone["type"], codes) == ("presence", "unavailable", {"110", "321"})
        got = c["ann"].take()
        assert [(s.name, s.getAttribute("type")) for s in got] == [
            ("presence", "unavailable"),
            ("message", "groupchat"),
        ]
    finally:
        await h.stop()


def test_history_request():
    """XEP-0045 §7.2.15: maxstanzas, seconds, since (the later bound wins),
    maxchars='0'; no <history/>: the default; bad values: bad-request."""

    def ask(history):
        x = f"<x xmlns='http://jabber.org/protocol/muc'>{history}</x>"
        return history_request(parse(f"<presence>{x}</presence>"), 1_800_000_000)

    assert ask("") == (DEFAULT_HISTORY, None)
    assert ask("<history maxstanzas='3'/>") == (3, None)
    assert ask("<history maxstanzas='1000'/>") == (MAX_HISTORY, None)
    assert ask("<history maxchars='0'/>") == (0, None)
    assert ask("<history seconds='60'/>") == (MAX_HISTORY, 1_800_000_000 - 60)
    assert ask("<history since='2027-01-15T07:59:00Z'/>") == (MAX_HISTORY, 1_800_000_000 - 60)
    both = "<history seconds='6000' since='2027-01-15T07:59:00Z'/>"
    assert ask(both) == (MAX_HISTORY, 1_800_000_000 - 60)
    for bad in ("<history maxstanzas='x'/>", "<history since='yesterday'/>"):
        with pytest.raises(StanzaError):
            ask(bad)


@pytest_twisted.ensureDeferred
async def test_room_edit_and_delete_apply_to_history(tmp_path):
    """SDK-CONTRACT §4.5: the SDK's edit (replace) and delete (remove) of a group
    message go to the room; with correction and message_delete loaded they change
    history (the sender's own message only: another's is forbidden, H61) and are
    relayed as groupchat, never saved as messages of their own."""
    h = await Harness.start(
        tmp_path,
        plugins={"enabled": ["dialogs", "muc", "correction", "message_delete"]},
    )
    try:
        c = {n: await h.login(n, f"res-{n}-0123456789", available=True) for n in ("ann", "bob")}
        d = await group(h, "ann", "bob")
        mid = "65f0c0ffee0000000000ee01"
        await h.send(c["ann"], say(h, d, "tpyo", id_=mid))
        c["ann"].take(), c["bob"].take()
        saved = "<save_to_history>1</save_to_history>"
        edit = (
            f"<message type='groupchat' to='{room(h, d)}' id='e1'><body>typo</body>"
            f"<replace xmlns='urn:xmpp:message-correct:0' id='{mid}' last='true'/>"
            f"<extraParams xmlns='jabber:client'><dialog_id>{d.id}</dialog_id>{saved}"
            "</extraParams></message>"
        )
        await h.send(c["bob"], edit.replace("typo", "mine now"))
        assert error_of(messages(c["bob"])[0]) == "forbidden"
        await h.send(c["ann"], edit)
        [relayed] = messages(c["bob"])
        assert relayed["from"] == room(h, d, uid(h, "ann"))
        assert "save_to_history" not in extra(relayed)
        page = await store(h).messages(h.app_id, uid(h, "bob"), d.id, {"mark_as_read": "0"})
        assert [m["message"] for m in page["items"]] == ["typo"]
        remove = (
            f"<message type='groupchat' to='{room(h, d)}' id='r1'>"
            f"<remove xmlns='urn:xmpp:message-delete:0' id='{mid}'/>"
            f"<extraParams xmlns='jabber:client'><dialog_id>{d.id}</dialog_id></extraParams>"
            "</message>"
        )
        await h.send(c["bob"], remove)
        assert error_of(messages(c["bob"])[0]) == "forbidden"
        await h.send(c["ann"], remove)
        assert len(messages(c["bob"])) == 1
        page = await store(h).messages(h.app_id, uid(h, "bob"), d.id, {"mark_as_read": "0"})
        assert page["items"] == []
    finally:
        await h.stop()
