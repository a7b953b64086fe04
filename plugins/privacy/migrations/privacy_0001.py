"""privacy: the tables ``privacy_lists`` and ``privacy_items``.

Revision ID: privacy_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "privacy_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("privacy",)
depends_on: str | Sequence[str] | None = "core_0001"

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "privacy_lists",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_privacy_lists"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_privacy_lists_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("user_id", "name", name="uq_privacy_lists_user_id_name"),
    )
    op.create_table(
        "privacy_items",
        sa.Column("list_id", Id, nullable=False),
        sa.Column("item_order", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(12), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("action", sa.String(5), nullable=False),
        sa.Column("kinds", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("list_id", "item_order", name="pk_privacy_items"),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["privacy_lists.id"],
            name="fk_privacy_items_list_id_privacy_lists",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("privacy_items")
    op.drop_table("privacy_lists")
