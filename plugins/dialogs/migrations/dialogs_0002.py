"""dialogs: message history, ``dialogs_messages`` and ``dialogs_receipts``.

Revision ID: dialogs_0002
Revises: dialogs_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dialogs_0002"
down_revision: str | Sequence[str] | None = "dialogs_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dialogs_messages",
        sa.Column("id", sa.String(24), nullable=False),
        sa.Column("app_id", Id, nullable=False),
        sa.Column("dialog_id", sa.String(24), nullable=False),
        sa.Column("sender_id", Id, nullable=False),
        sa.Column("recipient_id", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("date_sent", sa.BigInteger(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("attachments", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dialogs_messages"),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_dialogs_messages_app_id_apps", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs_dialogs.id"],
            name="fk_dialogs_messages_dialog_id_dialogs_dialogs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["users.id"],
            name="fk_dialogs_messages_sender_id_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_dialogs_messages_dialog_id_date_sent", "dialogs_messages", ["dialog_id", "date_sent"]
    )
    op.create_table(
        "dialogs_receipts",
        sa.Column("message_id", sa.String(24), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("kind", sa.String(9), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "user_id", "kind", name="pk_dialogs_receipts"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["dialogs_messages.id"],
            name="fk_dialogs_receipts_message_id_dialogs_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_dialogs_receipts_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_dialogs_receipts_user_id", "dialogs_receipts", ["user_id"])


def downgrade() -> None:
    op.drop_table("dialogs_receipts")
    op.drop_table("dialogs_messages")
