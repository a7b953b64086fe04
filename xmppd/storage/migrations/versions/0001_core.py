"""Core tables: apps, users, tokens, roster_items, roster_versions, keyval.

Written out by hand (not ``metadata.create_all``) so that later changes to
xmppd/storage/tables.py need a revision of their own. Constraint names follow the
naming convention of ``tables.metadata``.

Revision ID: core_0001
Revises:
Create Date: 2025-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "core_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("core",)
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine:
    # BIGINT (BIGSERIAL as a key) on PostgreSQL; INTEGER, the rowid, on SQLite.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk_user(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", _id(), autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("auth_key", sa.String(64), nullable=False),
        sa.Column("auth_secret", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_apps"),
        sa.UniqueConstraint("auth_key", name="uq_apps_auth_key"),
        sqlite_autoincrement=True,  # ids are never reused after a delete
    )
    op.create_table(
        "users",
        sa.Column("id", _id(), autoincrement=True),
        sa.Column("app_id", _id(), nullable=False),
        sa.Column("login", sa.String(255), nullable=False),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("full_name", sa.String(255), nullable=True),
        sa.Column("salt", sa.LargeBinary(32), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("sha1_stored_key", sa.LargeBinary(20), nullable=False),
        sa.Column("sha1_server_key", sa.LargeBinary(20), nullable=False),
        sa.Column("sha256_stored_key", sa.LargeBinary(32), nullable=False),
        sa.Column("sha256_server_key", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_users_app_id_apps", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("app_id", "login", name="uq_users_app_id_login"),
        sqlite_autoincrement=True,  # a deleted user's JID never goes to someone else
    )
    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("app_id", _id(), nullable=False),
        sa.Column("user_id", _id(), nullable=True),
        sa.Column("sha1_stored_key", sa.LargeBinary(20), nullable=True),
        sa.Column("sha1_server_key", sa.LargeBinary(20), nullable=True),
        sa.Column("sha256_stored_key", sa.LargeBinary(32), nullable=True),
        sa.Column("sha256_server_key", sa.LargeBinary(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_tokens"),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_tokens_app_id_apps", ondelete="CASCADE"
        ),
        _fk_user("tokens"),
    )
    op.create_index("ix_tokens_user_id", "tokens", ["user_id"])
    op.create_table(
        "roster_items",
        sa.Column("user_id", _id(), nullable=False),
        sa.Column("contact", sa.String(3071), nullable=False),
        sa.Column("name", sa.String(1023), nullable=True),
        sa.Column("subscription", sa.String(8), nullable=False),
        sa.Column("ask", sa.Boolean(), nullable=False),
        sa.Column("pending_in", sa.Boolean(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("in_roster", sa.Boolean(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "contact", name="pk_roster_items"),
        _fk_user("roster_items"),
    )
    op.create_table(
        "roster_versions",
        sa.Column("user_id", _id(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("removed_version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("user_id", name="pk_roster_versions"),
        _fk_user("roster_versions"),
    )
    op.create_table(
        "keyval",
        sa.Column("store", sa.String(64), nullable=False),
        sa.Column("user_id", _id(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("store", "user_id", "key", name="pk_keyval"),
        _fk_user("keyval"),
    )


def downgrade() -> None:
    for table in ("keyval", "roster_versions", "roster_items", "tokens", "users", "apps"):
        op.drop_table(table)
