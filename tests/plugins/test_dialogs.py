"""plugins/dialogs: the store on SQLite and PostgreSQL (``db_url``): the rules of
SDK-CONTRACT §5.1 and the hosted services' dialog documents, app scoping, ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from plugins.dialogs import model, query, store
from plugins.dialogs.model import ForbiddenError, InvalidError, NotFoundError
from plugins.dialogs.tables import dialogs_occupants
from xmppd import accounts
from xmppd.storage import Database

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def app(db: Database):
    """An app with users a..h (ids in ``app.u``) and a second app with one user."""

    def make(conn):
        first = accounts.create_app(conn, "one")
        ids = {n: accounts.create_user(conn, first.id, n, "password1").id for n in "abcdefgh"}
        other = accounts.create_app(conn, "two")
        stranger = accounts.create_user(conn, other.id, "z", "password1").id
        return first.id, ids, other.id, stranger

    app_id, ids, other_app, stranger = db.run_sync(make)

    class App:
        id = app_id
        u = ids
        other = other_app
        other_user = stranger

    return App


def run(db: Database, fn, *args):
    return db.run_sync(fn, *args)


def group(db, app, owner="a", members="bc", name="G", at=T0):
    fields = {"type": 2, "name": name, "occupants_ids": ", ".join(str(app.u[m]) for m in members)}
    return run(db, store.create, app.id, app.u[owner], fields, at)[0]


def test_migration_and_cascade(db, app):
    """docs/storage.md: the dialogs branch after core_0001; a deleted user's
    occupancy and owned dialogs go with him (ON DELETE CASCADE)."""
    assert db.current_revisions() == ("dialogs_0003",)
    d = group(db, app, owner="b", members="c")
    run(db, accounts.delete_user, app.u["c"])
    assert run(db, store.get, app.id, d.id).occupants_ids == [app.u["b"]]
    run(db, accounts.delete_user, app.u["b"])
    with pytest.raises(NotFoundError):
        run(db, store.get, app.id, d.id)


def test_ids_are_24_hex_never_all_digits(monkeypatch):
    """Issue 3: 24-hex ids; an all-digit one is drawn again (the SDKs read it as a user id)."""
    draws = iter(["1" * 24, "ab" * 12])
    monkeypatch.setattr(model.secrets, "token_hex", lambda n: next(draws))
    assert model.new_id() == "ab" * 12
    monkeypatch.undo()
    value = model.new_id()
    assert len(value) == 24 and int(value, 16) >= 0


def test_private_dialog_is_one_per_pair(db, app):
    """§5.1: creating a private dialog for a pair that has one returns it, from
    either side; it has no room JID and exactly one other occupant."""
    a, b = app.u["a"], app.u["b"]
    d, created = run(db, store.create, app.id, a, {"type": 3, "occupants_ids": str(b)}, T0)
    assert created and d.type == model.PRIVATE and sorted(d.occupants_ids) == sorted([a, b])
    assert d.room_jid("example.org") is None
    again, created = run(db, store.create, app.id, b, {"type": "3", "occupants_ids": [a]}, T0)
    assert (again.id, created) == (d.id, False)
    with pytest.raises(InvalidError) as e:
        run(db, store.create, app.id, a, {"type": 3, "occupants_ids": f"{b},{app.u['c']}"}, T0)
    assert e.value.field == "occupants_ids"


def test_private_dialog_race_returns_the_winner(db, app, monkeypatch):
    """§5.1 one private dialog per pair, also when two creates race: the loser's
    insert hits the unique (app, pair) key inside a savepoint and returns the winner's."""
    a, b = app.u["a"], app.u["b"]
    d, _ = run(db, store.create, app.id, a, {"type": 3, "occupants_ids": str(b)}, T0)
    real, calls = store._existing_private, []

    def late(*args):  # the first look-up runs before the other create committed
        calls.append(args)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(store, "_existing_private", late)
    again, created = run(db, store.create, app.id, b, {"type": 3, "occupants_ids": str(a)}, T0)
    assert (again.id, created, len(calls)) == (d.id, False, 2)
    assert run(db, store.get, app.id, d.id).occupants_ids == [a, b]


def test_group_needs_a_name_and_known_occupants(db, app):
    """Issue 3: a group requires a name; occupants are users of the same app; the
    creator is owner and occupant; the room JID is {app}_{id}@muc.{domain}."""
    with pytest.raises(InvalidError) as e:
        run(db, store.create, app.id, app.u["a"], {"type": 2, "occupants_ids": "2"}, T0)
    assert e.value.field == "name"
    with pytest.raises(InvalidError):
        run(db, store.create, app.id, app.u["a"], {"type": 9, "name": "x"}, T0)
    with pytest.raises(InvalidError):
        fields = {"type": 2, "name": "x", "occupants_ids": str(app.other_user)}
        run(db, store.create, app.id, app.u["a"], fields, T0)
    d = group(db, app)
    assert d.user_id == app.u["a"] and d.occupants_ids == [app.u[m] for m in "abc"]
    assert d.room_jid("example.org") == f"{app.id}_{d.id}@muc.example.org"
    assert d.last_message is None and d.unread_messages_count == 0


def test_occupant_changes_follow_the_permission_rules(db, app):
    """Hosted rules: any occupant adds occupants; an occupant removes only himself;
    only the owner removes others; a non-occupant changes nothing."""
    u, d = app.u, group(db, app)
    later = T0 + timedelta(seconds=5)
    d2 = run(
        db,
        store.update_dialog,
        app.id,
        u["b"],
        d.id,
        {"push_all": {"occupants_ids": [u["d"]]}},
        later,
    )
    assert u["d"] in d2.occupants_ids and d2.updated_at > d.updated_at
    with pytest.raises(ForbiddenError):
        run(
            db,
            store.update_dialog,
            app.id,
            u["b"],
            d.id,
            {"pull_all": {"occupants_ids": [u["c"]]}},
            T0,
        )
    d3 = run(
        db, store.update_dialog, app.id, u["b"], d.id, {"pull_all": {"occupants_ids": [u["b"]]}}, T0
    )
    assert u["b"] not in d3.occupants_ids
    d4 = run(
        db, store.update_dialog, app.id, u["a"], d.id, {"pull_all": {"occupants_ids": [u["c"]]}}, T0
    )
    assert d4.occupants_ids == [u["a"], u["d"]]
    with pytest.raises(ForbiddenError):
        run(db, store.update_dialog, app.id, u["e"], d.id, {"name": "mine"}, T0)
    with pytest.raises(NotFoundError):
        run(db, store.update_dialog, app.other, app.other_user, d.id, {"name": "x"}, T0)


def test_admins_owner_only_and_at_most_five(db, app):
    """§5.1 admins: the owner alone changes them; up to 5; they must be occupants;
    admins and the owner pin messages."""
    u, d = app.u, group(db, app, members="bcdefg")
    with pytest.raises(ForbiddenError):
        run(
            db,
            store.update_dialog,
            app.id,
            u["b"],
            d.id,
            {"push_all": {"admins_ids": [u["c"]]}},
            T0,
        )
    five = [u[m] for m in "bcdef"]
    d2 = run(db, store.update_dialog, app.id, u["a"], d.id, {"push_all": {"admins_ids": five}}, T0)
    assert sorted(d2.admins_ids) == sorted(five)
    with pytest.raises(InvalidError):
        run(
            db,
            store.update_dialog,
            app.id,
            u["a"],
            d.id,
            {"push_all": {"admins_ids": [u["g"]]}},
            T0,
        )
    with pytest.raises(InvalidError):
        run(
            db,
            store.update_dialog,
            app.id,
            u["a"],
            d.id,
            {"push_all": {"admins_ids": [u["h"]]}},
            T0,
        )
    d3 = run(
        db, store.update_dialog, app.id, u["a"], d.id, {"pull_all": {"admins_ids": [u["b"]]}}, T0
    )
    assert u["b"] not in d3.admins_ids
    pins = {"push_all": {"pinned_messages_ids": ["m1", "m2"]}}
    assert run(db, store.update_dialog, app.id, u["c"], d.id, pins, T0).pinned_messages_ids == [
        "m1",
        "m2",
    ]
    with pytest.raises(ForbiddenError):
        run(db, store.update_dialog, app.id, u["g"], d.id, pins, T0)


def test_public_dialog_owner_updates_anyone_subscribes(db, app):
    """Hosted rules: only the owner updates a public dialog; any user of the app
    subscribes and unsubscribes; the occupant list pages in joining order."""
    u = app.u
    d, _ = run(db, store.create, app.id, u["a"], {"type": 1, "name": "P", "occupants_ids": "2"}, T0)
    assert d.occupants_ids == [u["a"]]
    with pytest.raises(ForbiddenError):
        run(db, store.update_dialog, app.id, u["b"], d.id, {"name": "x"}, T0)
    assert run(db, store.update_dialog, app.id, u["a"], d.id, {"name": "Q"}, T0).name == "Q"
    for m in "bcd":
        run(db, store.subscribe, app.id, u[m], d.id, T0)
    assert run(db, store.public_occupants, app.id, d.id, 2, 1) == [u["b"], u["c"]]
    run(db, store.unsubscribe, app.id, u["c"], d.id)
    assert run(db, store.get, app.id, d.id).occupants_ids == [u["a"], u["b"], u["d"]]
    g = group(db, app)
    with pytest.raises(ForbiddenError):
        run(db, store.subscribe, app.id, u["e"], g.id, T0)


def test_delete_for_me_force_and_several_ids(db, app):
    """§5.1: without force, for the caller only; force=1 by the owner for everyone;
    several ids -> SuccessfullyDeleted / NotFound / WrongPermissions."""
    u = app.u
    g = group(db, app)
    p, _ = run(db, store.create, app.id, u["a"], {"type": 3, "occupants_ids": str(u["b"])}, T0)
    mine = group(db, app, owner="d", members="e")
    r = run(db, store.delete_dialogs, app.id, u["b"], [g.id, p.id, "f" * 24, mine.id], False)
    assert r == {
        "SuccessfullyDeleted": [g.id, p.id],
        "NotFound": ["f" * 24],
        "WrongPermissions": [mine.id],
    }
    assert u["b"] not in run(db, store.get, app.id, g.id).occupants_ids
    listed = run(db, query.list_dialogs, app.id, u["b"], {})
    assert listed["total"] == 0
    assert run(db, query.list_dialogs, app.id, u["a"], {})["total"] == 2  # still a's
    r = run(db, store.delete_dialogs, app.id, u["c"], [g.id], True)
    assert r["WrongPermissions"] == [g.id]
    r = run(db, store.delete_dialogs, app.id, u["a"], [g.id], True)
    assert r["SuccessfullyDeleted"] == [g.id]
    with pytest.raises(NotFoundError):
        run(db, store.get, app.id, g.id)
    rows = db.run_sync(
        lambda c: c.execute(
            select(dialogs_occupants).where(dialogs_occupants.c.dialog_id == g.id)
        ).all()
    )
    assert rows == []
    again, created = run(
        db, store.create, app.id, u["b"], {"type": 3, "occupants_ids": str(u["a"])}, T0
    )
    assert (again.id, created) == (p.id, False)
    assert run(db, query.list_dialogs, app.id, u["b"], {})["total"] == 1  # shown again


def test_list_filters_sort_paging_and_scope(db, app):
    """§2/§5.1: {field}[op] filters on whitelisted fields, occupants_ids in/all,
    sort_asc/sort_desc, limit/skip, count; public dialogs listed to all; other
    apps' dialogs never."""
    u = app.u
    made = [
        group(db, app, name=f"g{i}", members="bc"[: i % 2 + 1], at=T0 + timedelta(minutes=i))
        for i in range(5)
    ]
    pub, _ = run(
        db, store.create, app.id, u["d"], {"type": 1, "name": "pub"}, T0 + timedelta(hours=1)
    )
    ls = lambda params, who="a": run(db, query.list_dialogs, app.id, u[who], params)  # noqa: E731
    page = ls({})
    assert page["total"] == 6 and page["limit"] == 100 and page["skip"] == 0
    assert [d.id for d in page["items"]] == [pub.id] + [d.id for d in reversed(made)]
    assert [d.name for d in ls({"sort_asc": "name", "limit": "2", "skip": "1"})["items"]] == [
        "g1",
        "g2",
    ]
    assert ls({"type": "2"})["total"] == 5
    assert ls({"type": {"in": "1,3"}})["total"] == 1
    assert ls({"name": {"ctn": "g"}})["total"] == 5 and ls({"name": {"ctn": "%"}})["total"] == 0
    assert ls({"_id": {"nin": f"{made[0].id},{pub.id}"}})["total"] == 4
    since = int((T0 + timedelta(minutes=2)).timestamp())
    assert ls({"updated_at": {"gt": str(since)}})["total"] == 3
    assert ls({"created_at": {"lte": "2026-11-23T12:01:00Z"}})["total"] == 2
    assert ls({"occupants_ids": {"all": f"{u['b']},{u['c']}"}})["total"] == 2
    assert ls({"occupants_ids": str(u["c"])})["total"] == 2
    assert ls({"limit": "1000"})["limit"] == 100
    counted = ls({"count": "1"})
    assert counted["total"] == 6 and counted["items"] == []
    assert ls({}, who="h")["total"] == 1  # not in any group: the public one only
    assert run(db, query.list_dialogs, app.other, app.other_user, {})["total"] == 0
    for bad in (
        {"salt": {"gt": 1}, "sort_asc": "salt"},
        {"name": {"all": "x"}},
        {"type": {"lt": "x"}},
    ):
        with pytest.raises(InvalidError):
            ls(bad)


def test_notifications_setting_for_occupants(db, app):
    """§5.1 notifications: an occupant reads and sets his own; others are refused."""
    d = group(db, app)
    assert run(db, store.notifications, app.id, app.u["b"], d.id) is True
    assert run(db, store.notifications, app.id, app.u["b"], d.id, False) is False
    assert run(db, store.notifications, app.id, app.u["b"], d.id) is False
    assert run(db, store.notifications, app.id, app.u["c"], d.id) is True
    with pytest.raises(ForbiddenError):
        run(db, store.notifications, app.id, app.u["h"], d.id)
