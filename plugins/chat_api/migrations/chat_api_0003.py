"""chat_api: ``blob_id``, ``avatar``, ``timezone``, ``is_guest`` and ``firebase_uid``
on ``chat_api_users``.

Revision ID: chat_api_0003
Revises: chat_api_0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "chat_api_0003"
down_revision: str | Sequence[str] | None = "chat_api_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chat_api_users") as batch:
        batch.add_column(sa.Column("blob_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("avatar", sa.String(1024), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("is_guest", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("firebase_uid", sa.String(128), nullable=True))
        batch.create_index("ix_chat_api_users_firebase_uid", ["firebase_uid"])


def downgrade() -> None:
    with op.batch_alter_table("chat_api_users") as batch:
        batch.drop_index("ix_chat_api_users_firebase_uid")
        for name in ("firebase_uid", "is_guest", "timezone", "avatar", "blob_id"):
            batch.drop_column(name)
