"""chat_api: the table ``chat_api_users`` (profile fields of a user).

Revision ID: chat_api_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "chat_api_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("chat_api",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "chat_api_users",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("website", sa.String(1024), nullable=True),
        sa.Column("custom_data", sa.Text(), nullable=True),
        sa.Column("tag_list", sa.Text(), nullable=True),
        sa.Column("external_user_id", sa.String(255), nullable=True),
        sa.Column("last_request_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_chat_api_users"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_chat_api_users_user_id_users", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("chat_api_users")
