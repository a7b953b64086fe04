"""offline: the table ``offline_messages``.

Revision ID: offline_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "offline_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("offline",)
depends_on: str | Sequence[str] | None = "core_0001"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "offline_messages",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("stanza", sa.Text(), nullable=False),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_offline_messages"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_offline_messages_user_id_users", ondelete="CASCADE"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_offline_messages_user_id_id", "offline_messages", ["user_id", "id"])
    op.create_index("ix_offline_messages_expires_at", "offline_messages", ["expires_at"])


def downgrade() -> None:
    op.drop_table("offline_messages")
