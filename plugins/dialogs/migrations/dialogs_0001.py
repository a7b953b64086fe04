"""dialogs: the tables ``dialogs_dialogs`` and ``dialogs_occupants``.

Revision ID: dialogs_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dialogs_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("dialogs",)
depends_on: str | Sequence[str] | None = "core_0001"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dialogs_dialogs",
        sa.Column("id", sa.String(24), nullable=False),
        sa.Column("app_id", Id, nullable=False),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("private_key", sa.String(64), nullable=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("photo", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("extensions", sa.Text(), nullable=True),
        sa.Column("pinned_messages_ids", sa.Text(), nullable=False),
        sa.Column("is_join_required", sa.Boolean(), nullable=False),
        sa.Column("last_message", sa.Text(), nullable=True),
        sa.Column("last_message_date_sent", sa.BigInteger(), nullable=True),
        sa.Column("last_message_id", sa.String(24), nullable=True),
        sa.Column("last_message_user_id", sa.BigInteger(), nullable=True),
        sa.Column("last_message_status", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dialogs_dialogs"),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_dialogs_dialogs_app_id_apps", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_dialogs_dialogs_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("app_id", "private_key", name="uq_dialogs_dialogs_app_id_private_key"),
    )
    op.create_index("ix_dialogs_dialogs_app_id_type", "dialogs_dialogs", ["app_id", "type"])
    op.create_table(
        "dialogs_occupants",
        sa.Column("dialog_id", sa.String(24), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("unread_count", sa.Integer(), nullable=False),
        sa.Column("notifications", sa.Boolean(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dialog_id", "user_id", name="pk_dialogs_occupants"),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs_dialogs.id"],
            name="fk_dialogs_occupants_dialog_id_dialogs_dialogs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_dialogs_occupants_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_dialogs_occupants_user_id", "dialogs_occupants", ["user_id"])


def downgrade() -> None:
    op.drop_table("dialogs_occupants")
    op.drop_table("dialogs_dialogs")
