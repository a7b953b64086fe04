"""dialogs: message reactions, ``dialogs_reactions``.

Revision ID: dialogs_0003
Revises: dialogs_0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dialogs_0003"
down_revision: str | Sequence[str] | None = "dialogs_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dialogs_reactions",
        sa.Column("message_id", sa.String(24), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("reaction", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "user_id", "reaction", name="pk_dialogs_reactions"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["dialogs_messages.id"],
            name="fk_dialogs_reactions_message_id_dialogs_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_dialogs_reactions_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_dialogs_reactions_user_id", "dialogs_reactions", ["user_id"])


def downgrade() -> None:
    op.drop_table("dialogs_reactions")
