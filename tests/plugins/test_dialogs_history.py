"""plugins/dialogs history: the store on SQLite and PostgreSQL (``db_url``), and
XMPP ``save_to_history`` through the real router (issue 3 "History over XMPP";
SDK-CONTRACT §4.5, §5.2; SECURITY H59, H60, H66)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import pytest_twisted
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, select

from plugins.dialogs import history, reactions, store
from plugins.dialogs.history import NewMessage
from plugins.dialogs.model import ForbiddenError
from plugins.dialogs.tables import dialogs_messages, dialogs_reactions, dialogs_receipts
from tests.harness import Harness
from xmppd import accounts
from xmppd.storage import Database
from xmppd.storage.tables import metadata

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOW = 1_800_000_000
MID = "65f0c0ffee0000000000abcd"


@pytest.fixture
def users(db: Database):
    """App id and users a, b, c of one app."""

    def make(conn):
        app = accounts.create_app(conn, "one")
        return app.id, {n: accounts.create_user(conn, app.id, n, "password1").id for n in "abc"}

    return db.run_sync(make)


def test_migration_matches_tables(db):
    """docs/storage.md: dialogs_0001-0003 create exactly the tables the plugin declares."""
    assert db.current_revisions() == ("dialogs_0003",)
    mine = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(mine)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), mine)
    assert [d for d in diff if "dialogs_" in repr(d)] == []


def test_save_creates_private_dialog_and_updates_counters(db, users):
    """Issue 3: the first 1-1 message makes the pair's private dialog; each saved
    message sets last_message* and bumps the other occupant's unread count; the
    client's fresh 24-hex id is the _id, a used or malformed one is replaced (H59)."""
    app_id, u = users
    m = NewMessage(u["a"], NOW, "hi", u["b"], id=MID, params={"k": "v"})
    dialog_id, message_id = db.run_sync(history.save, app_id, m, T0)
    assert message_id == MID
    again = NewMessage(u["a"], NOW + 1, "again", u["b"], id=MID)
    assert db.run_sync(history.save, app_id, again, T0)[0] == dialog_id
    bad = NewMessage(u["b"], NOW + 2, "back", u["a"], dialog_id=dialog_id, id="ZZ")
    _, third = db.run_sync(history.save, app_id, bad, T0)
    assert len({MID, third, db.run_sync(store.get, app_id, dialog_id).last_message_id}) == 2
    seen_by_a = db.run_sync(store.get, app_id, dialog_id, u["a"])
    seen_by_b = db.run_sync(store.get, app_id, dialog_id, u["b"])
    assert (seen_by_a.type, sorted(seen_by_a.occupants_ids)) == (3, sorted([u["a"], u["b"]]))
    assert (seen_by_a.last_message, seen_by_a.last_message_date_sent) == ("back", NOW + 2)
    assert (seen_by_a.last_message_user_id, seen_by_a.last_message_status) == (u["b"], "sent")
    assert (seen_by_a.unread_messages_count, seen_by_b.unread_messages_count) == (1, 2)
    count = db.run_sync(
        lambda c: len(c.execute(select(dialogs_messages.c.id)).all()),
    )
    assert count == 3


def test_history_goes_with_its_dialog_and_sender(db, users):
    """docs/dialogs.md: messages and receipts go with their dialog (force delete)
    and with their sender's account (ON DELETE CASCADE)."""
    app_id, u = users
    dialog_id, _ = db.run_sync(history.save, app_id, NewMessage(u["a"], NOW, "x", u["b"]), T0)
    db.run_sync(history.list_messages, app_id, u["b"], dialog_id, {})
    db.run_sync(history.save, app_id, NewMessage(u["c"], NOW, "y", u["b"]), T0)
    db.run_sync(accounts.delete_user, u["c"])
    assert db.run_sync(lambda c: len(c.execute(select(dialogs_messages)).all())) == 1
    db.run_sync(store.delete_dialogs, app_id, u["a"], [dialog_id], True)
    assert db.run_sync(lambda c: c.execute(select(dialogs_messages)).all()) == []
    assert db.run_sync(lambda c: c.execute(select(dialogs_receipts)).all()) == []


def test_reactions_go_with_their_user_and_message(db, users):
    """docs/dialogs.md: a reaction row goes with its reactor's account and with its
    message (ON DELETE CASCADE); a second add of the same reaction is no change."""
    app_id, u = users
    dialog_id, mid = db.run_sync(history.save, app_id, NewMessage(u["a"], NOW, "x", u["b"]), T0)
    first = db.run_sync(reactions.update_reactions, app_id, u["b"], mid, "ok", None)
    assert first == reactions.Change(dialog_id, mid, u["b"], "ok", None, [u["a"], u["b"]])
    assert db.run_sync(reactions.update_reactions, app_id, u["b"], mid, "ok", None).added is None
    db.run_sync(reactions.update_reactions, app_id, u["a"], mid, "ok", None)
    db.run_sync(accounts.delete_user, u["b"])
    assert db.run_sync(reactions.list_reactions, app_id, u["a"], mid) == {"ok": [u["a"]]}
    db.run_sync(history.delete_messages, app_id, u["a"], [mid], True)
    assert db.run_sync(lambda c: c.execute(select(dialogs_reactions)).all()) == []


def test_foreign_dialog_id_is_forbidden_and_nothing_stored(db, users):
    """H60: a dialog_id the sender (or, 1-1, the recipient) does not occupy, or an
    unknown one, is ForbiddenError and stores nothing."""
    app_id, u = users
    fields = {"type": 3, "occupants_ids": [u["b"]]}
    private_bc = db.run_sync(store.create, app_id, u["c"], fields, T0)[0]
    for dialog_id in (private_bc.id, "0123456789abcdef01234567"):
        with pytest.raises(ForbiddenError):
            db.run_sync(history.save, app_id, NewMessage(u["a"], NOW, "x", u["b"], dialog_id), T0)
    assert db.run_sync(lambda c: c.execute(select(dialogs_messages)).all()) == []
    assert db.run_sync(store.get, app_id, private_bc.id).last_message is None


def test_list_marks_read_and_unread_counts_agree(db, users):
    """§5.2: the history sorted by date_sent, limit/skip and filters; listing marks
    the returned messages read (read_ids, ``read``) and lowers the caller's unread
    count unless mark_as_read=0; ``unread`` reports the same numbers."""
    app_id, u = users
    for i in range(3):
        m = NewMessage(u["a"], NOW + 10 - i, f"m{i}", u["b"], attachments=[{"type": "image"}])
        dialog_id, _ = db.run_sync(history.save, app_id, m, T0)
    assert db.run_sync(history.unread, app_id, u["b"], [dialog_id]) == {"total": 3, dialog_id: 3}
    page = db.run_sync(
        history.list_messages, app_id, u["b"], dialog_id, {"mark_as_read": "0", "limit": "2"}
    )
    assert [m["message"] for m in page["items"]] == ["m2", "m1"]
    assert page["items"][0]["read"] == 0 and page["items"][0]["attachments"] == [{"type": "image"}]
    page = db.run_sync(
        history.list_messages, app_id, u["b"], dialog_id, {"date_sent": {"gte": str(NOW + 9)}}
    )
    assert [m["message"] for m in page["items"]] == ["m1", "m0"]
    assert db.run_sync(history.unread, app_id, u["b"], [dialog_id]) == {"total": 1, dialog_id: 1}
    page = db.run_sync(history.list_messages, app_id, u["b"], dialog_id, {"sort_desc": "date_sent"})
    assert [m["message"] for m in page["items"]] == ["m0", "m1", "m2"]
    assert all(m["read_ids"] == [u["b"]] and m["read"] == 1 for m in page["items"])
    assert db.run_sync(store.get, app_id, dialog_id, u["b"]).unread_messages_count == 0
    assert db.run_sync(store.get, app_id, dialog_id).last_message_status == "read"
    with pytest.raises(ForbiddenError):
        db.run_sync(history.list_messages, app_id, u["c"], dialog_id, {})


# -- XMPP, through the real router --------------------------------------------


@pytest.fixture
def harness(tmp_path):
    h = pytest_twisted.blockon(Harness.start(tmp_path, plugins={"enabled": ["dialogs"]}))
    h.clock.advance(NOW)
    yield h
    pytest_twisted.blockon(h.stop())


def chat(to: str, extra: str = "", mid: str = MID, body: str = "hello") -> str:
    params = (
        f"<extraParams xmlns='jabber:client'>{extra}</extraParams>" if extra is not None else ""
    )
    return f"<message to='{to}' type='chat' id='{mid}'><body>{body}</body>{params}</message>"


def extra_of(stanza):
    [extra] = [c for c in stanza.elements() if c.name == "extraParams"]
    return {
        c.name: (str(c) if c.name != "attachment" else dict(c.attributes)) for c in extra.elements()
    }


def run(h, fn, *args):
    return h.server.db.run(fn, *args)


SAVE = "<save_to_history>1</save_to_history>"


@pytest_twisted.inlineCallbacks
def test_saved_chat_creates_dialog_and_is_delivered_stamped(harness):
    """§4.5: a chat message with save_to_history is stored before delivery; the
    pair's private dialog is created; the delivered stanza carries dialog_id and
    message_id; attachments and custom params are stored; last_message* and the
    recipient's unread count follow; a client message_id is not trusted (H59)."""
    h = harness
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    extra = (
        f"{SAVE}<date_sent>{NOW - 2}</date_sent><message_id>aaaaaaaaaaaaaaaaaaaaaaaa</message_id>"
        "<attachment uid='u1' type='image/png' name='a.png' size='123' evil='x'/>"
        "<custom_key>value</custom_key><nested><a>1</a></nested>"
    )
    yield h.send(alice, chat(h.jid_of("bob"), extra))
    [got] = bob.take()
    assert alice.take() == []
    seen = extra_of(got)
    names = [c.name for c in next(got.elements("jabber:client", "extraParams")).elements()]
    assert names.count("message_id") == names.count("dialog_id") == 1
    assert seen["message_id"] == MID and got["id"] == MID
    assert seen["date_sent"] == str(NOW - 2) and seen["custom_key"] == "value"
    assert seen["attachment"]["uid"] == "u1"
    dialog_id = seen["dialog_id"]
    app, a, b = h.app_id, h.users["alice"].id, h.users["bob"].id
    page = yield run(h, history.list_messages, app, b, dialog_id, {"mark_as_read": "0"})
    [m] = page["items"]
    assert (m["_id"], m["message"], m["date_sent"]) == (MID, "hello", NOW - 2)
    assert (m["sender_id"], m["recipient_id"], m["chat_dialog_id"]) == (a, b, dialog_id)
    assert m["attachments"] == [{"uid": "u1", "type": "image/png", "name": "a.png", "size": 123}]
    assert (m["custom_key"], m["nested"]) == ("value", {"a": "1"})
    assert "save_to_history" not in m and "message_id" not in m
    d = yield run(h, store.get, app, dialog_id, b)
    assert (d.type, d.last_message, d.last_message_id, d.last_message_user_id) == (
        3,
        "hello",
        MID,
        a,
    )
    assert (d.last_message_date_sent, d.unread_messages_count) == (NOW - 2, 1)
    mine = yield run(h, store.get, app, dialog_id, a)
    assert mine.unread_messages_count == 0


@pytest_twisted.inlineCallbacks
def test_without_save_to_history_nothing_is_stored(harness):
    """Issue 3: without save_to_history, delivery only: no dialog, no message; a
    client's message_id is still dropped (H59)."""
    h = harness
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    forged = "<message_id>aaaaaaaaaaaaaaaaaaaaaaaa</message_id><custom_key>v</custom_key>"
    yield h.send(alice, chat(h.jid_of("bob"), forged))
    [got] = bob.take()
    assert extra_of(got) == {"custom_key": "v"}  # H59: no client message_id passes
    rows = yield run(h, lambda c: c.execute(select(dialogs_messages)).all())
    assert rows == []


@pytest_twisted.inlineCallbacks
def test_foreign_dialog_id_is_forbidden(harness):
    """H60: a dialog_id the sender does not occupy: forbidden (legacy code 403),
    nothing delivered, nothing stored."""
    h = harness
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    carol = yield h.user("carol")
    fields = {"type": 3, "occupants_ids": [carol.id]}
    theirs, _ = yield run(h, store.create, h.app_id, h.users["bob"].id, fields, T0)
    yield h.send(alice, chat(h.jid_of("bob"), f"{SAVE}<dialog_id>{theirs.id}</dialog_id>"))
    assert bob.take() == []
    [error] = alice.take()
    assert error["type"] == "error" and error["id"] == MID
    err = next(c for c in error.elements() if c.name == "error")
    assert err["code"] == "403" and next(err.elements()).name == "forbidden"
    rows = yield run(h, lambda c: c.execute(select(dialogs_messages)).all())
    assert rows == []


@pytest_twisted.inlineCallbacks
def test_date_sent_is_clamped_to_the_server_clock(harness):
    """Issue 3, H59: a client date_sent more than 5 s off the server's clock is
    replaced by the server's; a reused id gets a server-made _id; a message to a
    full JID is saved the same way."""
    h = harness
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    yield h.send(alice, chat(h.jid_of("bob"), f"{SAVE}<date_sent>{NOW + 3600}</date_sent>"))
    h.clock.advance(10)
    yield h.send(alice, chat(bob.jid, f"{SAVE}<date_sent>{NOW + 6}</date_sent>"))  # full JID
    first, second = (extra_of(m) for m in bob.take())
    assert first["date_sent"] == str(NOW) and second["date_sent"] == str(NOW + 6)
    assert first["message_id"] == MID and second["message_id"] != MID
    assert len(second["message_id"]) == 24 and second["dialog_id"] == first["dialog_id"]


@pytest_twisted.inlineCallbacks
def test_oversized_extra_params_are_not_acceptable(harness):
    """H66: more than 32 attachments is not-acceptable and nothing is stored."""
    h = harness
    alice = yield h.login("alice", available=True)
    bob = yield h.login("bob", available=True)
    yield h.send(alice, chat(h.jid_of("bob"), SAVE + "<attachment type='x'/>" * 33))
    assert bob.take() == []
    [error] = alice.take()
    assert any(
        c.name == "not-acceptable"
        for c in next(c for c in error.elements() if c.name == "error").elements()
    )
    rows = yield run(h, lambda c: c.execute(select(dialogs_messages)).all())
    assert rows == []
