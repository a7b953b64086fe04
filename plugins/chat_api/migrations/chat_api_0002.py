"""chat_api: the table ``chat_api_blobs`` (storage, SDK-CONTRACT §5.3).

Revision ID: chat_api_0002
Revises: chat_api_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "chat_api_0002"
down_revision: str | Sequence[str] | None = "chat_api_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chat_api_blobs",
        sa.Column("id", Id, autoincrement=True),
        sa.Column("app_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=True),
        sa.Column("uid", sa.String(32), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chat_api_blobs"),
        sa.UniqueConstraint("uid", name="uq_chat_api_blobs_uid"),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_chat_api_blobs_app_id_apps", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_chat_api_blobs_user_id_users", ondelete="CASCADE"
        ),
        sqlite_autoincrement=True,  # ids are never reused after a delete
    )


def downgrade() -> None:
    op.drop_table("chat_api_blobs")
