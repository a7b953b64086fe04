"""Fixtures shared by the plugin tests."""

import pytest

from xmppd.config import parse_config
from xmppd.registry import plugin_migration_dirs
from xmppd.storage import Database


@pytest.fixture
def db(db_url: str):
    """A database (SQLite or PostgreSQL, per ``db_url``) migrated for the dialogs plugin."""
    database = Database(db_url)
    database.migrate(plugin_migration_dirs(parse_config({"plugins": {"enabled": ["dialogs"]}})))
    try:
        yield database
    finally:
        database.stop()
