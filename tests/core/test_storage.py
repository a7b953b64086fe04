"""xmppd.storage: engine set-up, the thread pool and the Alembic migrations."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, insert, inspect, select

from xmppd.storage import Database, normalise_url
from xmppd.storage.tables import (
    apps,
    keyval,
    metadata,
    roster_items,
    roster_versions,
    tokens,
    users,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
APP = dict(name="a", auth_key="k", auth_secret="s", created_at=NOW)
CORE_TABLES = (apps, users, tokens, roster_items, roster_versions, keyval)


def core_metadata() -> MetaData:
    """The core's tables alone (plugins may have added theirs to ``metadata``)."""
    core = MetaData(naming_convention=metadata.naming_convention)
    for table in CORE_TABLES:
        table.to_metadata(core)
    return core


def test_postgresql_url_maps_to_psycopg3():
    """A bare postgresql:// (or postgres://) URL selects the psycopg 3 driver."""
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_url_is_refused(url):
    """Only SQLite and PostgreSQL URLs are accepted."""
    with pytest.raises(ValueError):
        Database(url)


def test_sqlite_creates_parent_and_uses_one_thread(tmp_path: Path):
    """SQLite: the file's folder is created; one thread; WAL and foreign keys on."""
    db = Database(f"sqlite:///{tmp_path}/a/b/x.sqlite3", pool_size=8)
    try:
        assert (tmp_path / "a" / "b").is_dir()
        assert db.threadpool.max == 1
        mode = db.run_sync(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar())
        fks = db.run_sync(lambda c: c.exec_driver_sql("PRAGMA foreign_keys").scalar())
        assert (mode, fks) == ("wal", 1)
    finally:
        db.stop()


def test_migrations_match_metadata(db_url):
    """The migrated schema equals tables.metadata: autogenerate finds no difference."""
    db = Database(db_url)
    try:
        assert db.current_revisions() == ()
        db.migrate()
        assert db.current_revisions() == ("core_0001",)
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), core_metadata()) == []
    finally:
        db.stop()


def test_migrate_is_idempotent(db_url):
    """A second upgrade changes nothing and keeps the data."""
    db = Database(db_url)
    try:
        db.migrate()
        db.run_sync(lambda c: c.execute(insert(apps).values(APP)))
        db.migrate()
        assert db.current_revisions() == ("core_0001",)
        assert db.run_sync(lambda c: c.execute(select(apps.c.name)).scalars().all()) == ["a"]
    finally:
        db.stop()


def test_plugin_branch_is_applied_from_its_own_folder(db_url, tmp_path: Path):
    """A plugin's version folder adds its branch without editing the core."""
    versions = tmp_path / "plugin_versions"
    versions.mkdir()
    (versions / "0001_demo.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n"
        "revision = 'demo_0001'\ndown_revision = None\n"
        "branch_labels = ('demo',)\ndepends_on = 'core_0001'\n"
        "def upgrade():\n"
        "    op.create_table('demo_items', sa.Column('id', sa.Integer, primary_key=True))\n"
        "def downgrade():\n    op.drop_table('demo_items')\n"
    )
    db = Database(db_url)
    try:
        db.migrate([str(versions)])
        # demo_0001 depends on core_0001, so it alone is recorded as the head.
        assert db.current_revisions() == ("demo_0001",)
        names = db.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"demo_items", "users"} <= names
    finally:
        db.stop()


def _branch(folder: Path, name: str) -> str:
    folder.mkdir()
    (folder / f"{name}_0001.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n"
        f"revision = '{name}_0001'\ndown_revision = None\n"
        f"branch_labels = ('{name}',)\ndepends_on = 'core_0001'\n"
        "def upgrade():\n"
        f"    op.create_table('{name}_items', sa.Column('id', sa.Integer, primary_key=True))\n"
        f"def downgrade():\n    op.drop_table('{name}_items')\n"
    )
    return str(folder)


def test_a_disabled_plugins_revisions_do_not_stop_start_up(db_url, tmp_path: Path):
    """A plugin enabled once, then disabled: its revision stays in the database and
    its folder is only read (the installed plugins'); the enabled ones still upgrade,
    and the disabled branch is not touched."""
    one, two = _branch(tmp_path / "one", "one"), _branch(tmp_path / "two", "two")
    db = Database(db_url)
    try:
        db.migrate([one, two])
        assert db.current_revisions() == ("one_0001", "two_0001")
    finally:
        db.stop()
    db = Database(db_url)
    try:
        db.migrate([one], known_version_locations=[one, two])  # "two" now disabled
        assert db.current_revisions() == ("one_0001", "two_0001")
    finally:
        db.stop()
    fresh = tmp_path / "fresh.sqlite3"
    db = Database(f"sqlite:///{fresh}")
    try:
        db.migrate([one], known_version_locations=[one, two])  # never enabled: not created
        names = db.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "one_items" in names and "two_items" not in names
    finally:
        db.stop()


def test_foreign_keys_cascade(database: Database):
    """Deleting an app deletes its users (ON DELETE CASCADE, enforced on SQLite too)."""

    def scenario(conn):
        app_id = conn.execute(insert(apps).values(APP).returning(apps.c.id)).scalar_one()
        conn.execute(
            insert(users).values(
                app_id=app_id,
                login="l",
                salt=b"s",
                iterations=4096,
                sha1_stored_key=b"1",
                sha1_server_key=b"1",
                sha256_stored_key=b"2",
                sha256_server_key=b"2",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        conn.execute(apps.delete())
        return conn.execute(select(users.c.id)).all()

    assert database.run_sync(scenario) == []


@pytest_twisted.ensureDeferred
async def test_run_uses_the_pool_and_rolls_back_on_error(database: Database):
    """run() executes off the reactor thread in one transaction; an error rolls it back."""
    main = threading.get_ident()
    assert await database.run(lambda conn: threading.get_ident()) != main

    def failing(conn):
        conn.execute(insert(apps).values(APP))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await database.run(failing)
    assert await database.run(lambda c: c.execute(select(apps.c.id)).all()) == []


@pytest_twisted.ensureDeferred
async def test_sqlite_memory_is_one_database():
    """sqlite:// (in memory): migrations made at start-up are seen by the pool thread."""
    db = Database("sqlite://")
    db.migrate()
    db.start()
    try:
        assert await db.run(lambda c: c.execute(select(apps.c.id)).all()) == []
    finally:
        db.stop()
