"""Shared fixtures: a storage URL per backend, a migrated database, accounts.

Every test using ``db_url`` runs on SQLite and on PostgreSQL (127.0.0.1:5432,
database ``test``, user ``postgres``, trust auth), each PostgreSQL test in a
schema of its own. Without a reachable server the PostgreSQL runs are skipped,
or fail when ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from xmppd.accounts import Accounts
from xmppd.storage import Database

# A test that fails before it stops its server leaves the database's pool threads
# running; they are not daemon threads, so they would keep pytest from exiting.
_started_databases: weakref.WeakSet[Database] = weakref.WeakSet()
_database_start = Database.start


def _tracked_start(self: Database) -> None:
    _started_databases.add(self)
    _database_start(self)


Database.start = _tracked_start  # type: ignore[method-assign]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for database in list(_started_databases):
        if database.threadpool.started:
            database.threadpool.stop()


PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class FakeClock:
    """A settable UTC clock for code that takes a ``clock`` callable."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def _pg_error() -> str | None:
    """Why PostgreSQL cannot be used, asked once per session; None if it can."""
    try:
        import psycopg

        psycopg.connect(PG_DSN).close()
    except Exception as e:  # ImportError, OperationalError
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None


@contextmanager
def _pg_schema(pg_error: str | None) -> Iterator[str]:
    """A fresh schema, dropped afterwards."""
    if pg_error is not None:
        message = f"PostgreSQL not reachable at 127.0.0.1:5432: {pg_error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def db_url(request: pytest.FixtureRequest, tmp_path, _pg_error) -> Iterator[str]:
    """A storage URL of an empty database: a SQLite file or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/var/xmppd.sqlite3"  # var/ does not exist yet
        return
    with _pg_schema(_pg_error) as schema:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A started, migrated :class:`Database` on ``db_url``."""
    db = Database(db_url)
    db.migrate()
    db.start()
    try:
        yield db
    finally:
        db.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def accounts(database: Database, clock: FakeClock) -> Accounts:
    return Accounts(database, clock=clock)
