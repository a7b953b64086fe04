"""last_activity: the table ``last_activity_logouts``.

Revision ID: last_activity_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "last_activity_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("last_activity",)
depends_on: str | Sequence[str] | None = "core_0001"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "last_activity_logouts",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("logout_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_last_activity_logouts"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_last_activity_logouts_user_id_users",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("last_activity_logouts")
