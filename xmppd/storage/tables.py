"""The core's tables: applications, users, API session tokens, rosters, keyval.

Plugins declare their own tables on :data:`metadata` (names prefixed with the
plugin's name) with their own Alembic branch; see docs/storage.md.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Ids are issued by the server; BigInteger on PostgreSQL, INTEGER (rowid) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

apps = Table(
    "apps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("auth_key", String(64), nullable=False, unique=True),
    Column("auth_secret", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,  # ids are never reused after a delete
)

# Passwords are never stored: only RFC 5802 salted keys, for SHA-1 and SHA-256,
# derived once with one salt and iteration count (SCRAM-SHA-1 / -256 and PLAIN).
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("app_id", Id, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("login", String(255), nullable=False),
    Column("email", String(255), nullable=True),
    Column("full_name", String(255), nullable=True),
    Column("salt", LargeBinary(32), nullable=False),
    Column("iterations", Integer, nullable=False),
    Column("sha1_stored_key", LargeBinary(20), nullable=False),
    Column("sha1_server_key", LargeBinary(20), nullable=False),
    Column("sha256_stored_key", LargeBinary(32), nullable=False),
    Column("sha256_server_key", LargeBinary(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("app_id", "login"),
    sqlite_autoincrement=True,  # a deleted user's JID never goes to someone else
)

# API session tokens (the REST API issues them). Only a SHA-256 of the token is
# kept, plus its SCRAM keys derived with the user's salt, so that the token is a
# valid XMPP password under every mechanism (docs/auth.md).
tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("app_id", Id, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("sha1_stored_key", LargeBinary(20), nullable=True),
    Column("sha1_server_key", LargeBinary(20), nullable=True),
    Column("sha256_stored_key", LargeBinary(32), nullable=True),
    Column("sha256_server_key", LargeBinary(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index(None, "user_id"),
)

# RFC 6121 §2.1.2: one item per contact; `ask` is the pending-out flag,
# `pending_in` a stored inbound subscription request (§3.1.3), `approved` a
# pre-approval (§3.4). Groups are a JSON list.
roster_items = Table(
    "roster_items",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("contact", String(3071), primary_key=True),
    Column("name", String(1023), nullable=True),
    Column("subscription", String(8), nullable=False, default="none"),
    Column("ask", Boolean, nullable=False, default=False),
    Column("pending_in", Boolean, nullable=False, default=False),
    Column("approved", Boolean, nullable=False, default=False),
    Column("groups", Text, nullable=False, default="[]"),
    Column("in_roster", Boolean, nullable=False, default=True),
    Column("version", BigInteger, nullable=False, default=0),
)

# XEP-0237: one counter per user, bumped on every roster change. Removed items
# leave no row, so `removed_version` keeps the version of the latest removal: a
# client holding an older version gets the full roster (xmppd/im/roster_store.py).
roster_versions = Table(
    "roster_versions",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("removed_version", BigInteger, nullable=False, default=0, server_default="0"),
)

# Small per-user documents for plugins that need no relational queries.
keyval = Table(
    "keyval",
    metadata,
    Column("store", String(64), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)
