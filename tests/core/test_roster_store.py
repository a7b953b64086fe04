"""xmppd.im.roster_store: roster rows and XEP-0237 versions, on every backend
(``db_url``: SQLite and PostgreSQL, migrated with Alembic)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from xmppd.im import roster_store as rs
from xmppd.im.subscription import RosterItem, inbound_subscribe, outbound_subscribe
from xmppd.storage import Database
from xmppd.storage.tables import apps, users

A = "a@example.org"
B = "b@example.org"
C = "c@example.org"


def _new_user(conn, login: str) -> int:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    app_id = conn.execute(
        insert(apps).values(name=login, auth_key=login, auth_secret="s", created_at=now)
    ).inserted_primary_key[0]
    return conn.execute(
        insert(users).values(
            app_id=app_id,
            login=login,
            salt=b"s" * 16,
            iterations=4096,
            sha1_stored_key=b"k" * 20,
            sha1_server_key=b"k" * 20,
            sha256_stored_key=b"k" * 32,
            sha256_server_key=b"k" * 32,
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key[0]


@pytest.fixture
def db(db_url: str):
    database = Database(db_url)
    database.migrate()
    try:
        yield database
    finally:
        database.stop()


@pytest.fixture
def uid(db: Database) -> int:
    return db.run_sync(_new_user, "alice")


def test_empty_roster(db, uid):
    """A user with no rows: version 0, no items."""
    assert db.run_sync(rs.load_roster, uid) == (0, [])
    assert db.run_sync(rs.get_item, uid, A) is None
    assert db.run_sync(rs.count_items, uid) == 0
    assert db.run_sync(rs.items_changed_since, uid, 0) == []


def test_save_round_trip(db, uid):
    """Every field survives storage; groups keep their order; bump stamps the row."""
    item = RosterItem(
        A,
        name="Ann é",
        subscription="from",
        ask=True,
        approved=False,
        pending_in=False,
        groups=("Friends", "Z", "Ärzte"),
    )
    assert db.run_sync(rs.save_item, uid, item, True) == 1
    assert db.run_sync(rs.get_item, uid, A) == item
    assert db.run_sync(rs.load_roster, uid) == (1, [item])


def test_upsert_updates_in_place(db, uid):
    """Saving again updates the row (no duplicate); without bump the version and
    the row's stamp stay."""
    db.run_sync(rs.save_item, uid, RosterItem(A, name="x"), True)
    assert db.run_sync(rs.save_item, uid, RosterItem(A, name="y", pending_in=True), False) == 1
    assert db.run_sync(rs.load_roster, uid) == (1, [RosterItem(A, name="y", pending_in=True)])
    assert db.run_sync(rs.items_changed_since, uid, 0) == [RosterItem(A, name="y", pending_in=True)]
    assert db.run_sync(rs.items_changed_since, uid, 1) == []


def test_tracking_rows_are_loaded_but_not_counted(db, uid):
    """load_roster returns in_roster=False rows (the caller hides them);
    count_items counts only contacts the user added (the size limit)."""
    tracked = inbound_subscribe(None, B).item
    added = outbound_subscribe(None, A).item
    db.run_sync(rs.save_item, uid, tracked, False)
    db.run_sync(rs.save_item, uid, added, True)
    version, items = db.run_sync(rs.load_roster, uid)
    assert (version, items) == (1, [added, tracked])
    assert db.run_sync(rs.count_items, uid) == 1
    assert db.run_sync(rs.count_items, uid, in_roster=False) == 1
    # Tracking rows never appear in XEP-0237 pushes.
    assert db.run_sync(rs.items_changed_since, uid, 0) == [added]


def test_versions_and_incremental_changes(db, uid):
    """XEP-0237: each bump is +1; items changed since v are those stamped later."""
    assert db.run_sync(rs.save_item, uid, RosterItem(A), True) == 1
    assert db.run_sync(rs.save_item, uid, RosterItem(B), True) == 2
    assert db.run_sync(rs.save_item, uid, RosterItem(A, name="A2"), True) == 3
    assert db.run_sync(rs.roster_version, uid) == 3
    assert db.run_sync(rs.items_changed_since, uid, 0) == [RosterItem(B), RosterItem(A, name="A2")]
    assert db.run_sync(rs.items_changed_since, uid, 2) == [RosterItem(A, name="A2")]
    assert db.run_sync(rs.items_changed_since, uid, 3) == []


def test_removal_forces_full_roster_for_older_versions(db, uid):
    """A removed item leaves nothing to push: a client older than the latest
    removal gets None (send the full roster); one at or after it gets changes."""
    db.run_sync(rs.save_item, uid, RosterItem(A), True)  # 1
    db.run_sync(rs.save_item, uid, RosterItem(B), True)  # 2
    assert db.run_sync(rs.delete_item, uid, A, True) == 3
    assert db.run_sync(rs.get_item, uid, A) is None
    db.run_sync(rs.save_item, uid, RosterItem(C), True)  # 4
    assert db.run_sync(rs.items_changed_since, uid, 2) is None
    assert db.run_sync(rs.items_changed_since, uid, 3) == [RosterItem(C)]
    assert db.run_sync(rs.items_changed_since, uid, 4) == []


@pytest.mark.parametrize("version", [-1, 5])
def test_unknown_version_forces_full_roster(db, uid, version):
    """A version we never issued (negative, or newer than ours) gets None."""
    db.run_sync(rs.save_item, uid, RosterItem(A), True)
    assert db.run_sync(rs.items_changed_since, uid, version) is None


def test_delete_without_bump(db, uid):
    """Dropping a tracking-only row changes no version and records no removal."""
    db.run_sync(rs.save_item, uid, RosterItem(A), True)
    db.run_sync(rs.save_item, uid, inbound_subscribe(None, B).item, False)
    assert db.run_sync(rs.delete_item, uid, B, False) == 1
    assert db.run_sync(rs.items_changed_since, uid, 0) == [RosterItem(A)]


def test_delete_missing_row_bumps_nothing(db, uid):
    assert db.run_sync(rs.delete_item, uid, A, True) == 0
    assert db.run_sync(rs.roster_version, uid) == 0


def test_users_are_separate(db, uid):
    """Rows, versions and counts are per user."""
    other = db.run_sync(_new_user, "bob")
    db.run_sync(rs.save_item, uid, RosterItem(A), True)
    db.run_sync(rs.save_item, other, RosterItem(A, name="theirs"), True)
    db.run_sync(rs.save_item, other, RosterItem(B), True)
    assert db.run_sync(rs.load_roster, uid) == (1, [RosterItem(A)])
    assert db.run_sync(rs.roster_version, other) == 2
    assert db.run_sync(rs.count_items, other) == 2


def test_rollback_leaves_nothing(db, uid):
    """The caller's transaction owns the writes: a failure rolls back row and version."""

    def fail(conn):
        rs.save_item(conn, uid, RosterItem(A), True)
        raise RuntimeError

    with pytest.raises(RuntimeError):
        db.run_sync(fail)
    assert db.run_sync(rs.load_roster, uid) == (0, [])


def test_concurrent_bumps_never_share_a_version(db, uid):
    """Transactions bumping one user's roster at once get distinct versions."""
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                item = RosterItem(f"c{n}-{i}@example.org")
                results.append(db.run_sync(rs.save_item, uid, item, True))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == list(range(1, 21))
    assert db.run_sync(rs.count_items, uid) == 20


def test_concurrent_transitions_on_one_contact_lose_nothing(db, uid):
    """get_item locks the row: read-modify-write transactions on one contact
    run one after the other (here each adds a group)."""
    db.run_sync(rs.save_item, uid, RosterItem(A), True)
    errors: list[BaseException] = []

    def add_group(conn, group: str) -> None:
        item = rs.get_item(conn, uid, A)
        rs.save_item(conn, uid, replace(item, groups=(*item.groups, group)), True)

    def worker(n: int) -> None:
        try:
            for i in range(5):
                db.run_sync(add_group, f"g{n}-{i}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(db.run_sync(rs.get_item, uid, A).groups) == 20
    assert db.run_sync(rs.roster_version, uid) == 21
