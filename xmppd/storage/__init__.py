"""The database: a SQLAlchemy engine, a thread pool and Alembic migrations.

Every query runs on a thread of :class:`Database`'s own pool, never on the
reactor thread: ``db.run(fn, *args)`` calls ``fn(conn, *args)`` inside one
transaction and returns a Deferred. SQLite gets exactly one thread (it has one
writer); PostgreSQL gets ``pool_size`` threads and as many connections.

Migrations are Alembic revisions. The core's branch (label ``core``) lives in
``migrations/versions``; a plugin ships its own version folder (its branch,
``depends_on="core"``) and passes it to :meth:`Database.migrate`, so adding a
plugin never edits the core. See docs/storage.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

__all__ = ["MIGRATIONS_DIR", "CORE_VERSIONS_DIR", "Database", "alembic_config", "normalise_url"]

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CORE_VERSIONS_DIR = MIGRATIONS_DIR / "versions"

SQLITE_BUSY_TIMEOUT_MS = 5_000  # then "database is locked" rather than a hang
PG_CONNECT_TIMEOUT_S = 10
PG_STATEMENT_TIMEOUT_MS = 30_000  # one slow query must not hold a pool thread forever


def normalise_url(url: str) -> URL:
    """Parse a storage URL; bare ``postgresql://`` (or ``postgres://``) means psycopg 3.

    Raises ``ValueError`` for a malformed URL or a backend other than SQLite or
    PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ValueError(f"not a database URL: {url!r}") from e
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {parsed.drivername!r}: use sqlite or postgresql")
    return parsed


def alembic_config(version_locations: Iterable[str | Path] = ()) -> AlembicConfig:
    """An Alembic configuration built in code (no alembic.ini on disk).

    ``version_locations`` are added to the core's versions folder.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", _escape(MIGRATIONS_DIR))
    locations = [CORE_VERSIONS_DIR, *(Path(p) for p in version_locations)]
    cfg.set_main_option("version_locations", os.pathsep.join(_escape(p) for p in locations))
    cfg.set_main_option("path_separator", "os")
    # COMPAT: alembic < 1.16 reads only this older key.
    cfg.set_main_option("version_path_separator", "os")
    return cfg


def _escape(path: Path) -> str:
    return str(Path(path).resolve()).replace("%", "%%")  # ConfigParser interpolation


class Database:
    """An engine, its own thread pool, and the schema's migrations."""

    def __init__(self, url: str, pool_size: int = 4, reactor: Any = None) -> None:
        self.url = normalise_url(url)
        self.backend: str = self.url.get_backend_name()
        if self.backend == "sqlite":
            threads = 1
            self.engine = _sqlite_engine(self.url)
        else:
            threads = pool_size
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=0,
                pool_pre_ping=True,  # reconnect after a PostgreSQL restart
                connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
            )
            event.listen(self.engine, "connect", _pg_on_connect)
        self.threadpool = ThreadPool(minthreads=threads, maxthreads=threads, name="xmppd-db")
        self._reactor = reactor

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def start(self) -> None:
        """Start the threads; work queued by :meth:`run` before this waits for them."""
        self.threadpool.start()

    def stop(self) -> None:
        """Finish the running queries, join the threads and close the connections."""
        if self.threadpool.started:
            self.threadpool.stop()
        self.engine.dispose()

    def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> Deferred[T]:
        """Run ``fn(conn, *args, **kw)`` in one transaction on the pool.

        The Deferred fires on the reactor thread with ``fn``'s result, or fails
        with its exception after the transaction was rolled back.
        """
        return deferToThreadPool(self.reactor, self.threadpool, self.run_sync, fn, *args, **kw)

    def run_sync(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """:meth:`run`, blocking: for the CLI and start-up only, never the reactor."""
        with self.engine.begin() as conn:
            return fn(conn, *args, **kw)

    def migrate(
        self,
        extra_version_locations: Iterable[str | Path] = (),
        known_version_locations: Iterable[str | Path] = (),
    ) -> None:
        """Bring the core's branch and those in ``extra_version_locations`` (the
        enabled plugins') to their heads.

        ``known_version_locations`` (installed plugins that are not enabled) are
        only read, so that the revisions a disabled plugin left in the database
        can be found; their branches stay as they are. Blocking; call it at
        start-up or from the CLI.
        """
        upgraded = [Path(p).resolve() for p in extra_version_locations]
        left = {Path(p).resolve() for p in known_version_locations} - set(upgraded)
        cfg = alembic_config([*upgraded, *sorted(left)])
        heads = ScriptDirectory.from_config(cfg).get_revisions("heads")
        # The core's head is no head of the graph once a plugin depends on it.
        targets = ["core@head"]
        targets += [h.revision for h in heads if Path(h.path).resolve().parent not in left]
        with self.engine.begin() as conn:
            if self.backend == "postgresql":
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")  # DDL may be long
            cfg.attributes["connection"] = conn
            for target in targets:
                command.upgrade(cfg, target)

    def current_revisions(self) -> tuple[str, ...]:
        """The revisions the database is at (one per branch); empty if never migrated."""
        with self.engine.connect() as conn:
            return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))


def _sqlite_engine(url: URL) -> Engine:
    path = url.database
    if not path or path == ":memory:":
        # One shared connection, or start-up (main thread) and the pool thread
        # would each see a different empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        if not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself, so DDL and SELECTs are transactional
        # too (the sqlite3 module's legacy mode skips them).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at once: another process (xmppctl)
        # writing meanwhile makes us wait busy_timeout instead of failing with
        # SQLITE_BUSY when a read transaction upgrades to a write.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _pg_on_connect(dbapi_conn: Any, _record: Any) -> None:
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    with dbapi_conn.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}")
    dbapi_conn.autocommit = autocommit
