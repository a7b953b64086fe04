"""muc: the tables ``muc_rooms`` and ``muc_affiliations``.

Revision ID: muc_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "muc_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("muc",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "muc_rooms",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_by", sa.Text(), nullable=False),
        sa.Column("subject_author", sa.Text(), nullable=False),
        sa.Column("creator", sa.Text(), nullable=False),
        sa.Column("salt", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_muc_rooms"),
    )
    op.create_table(
        "muc_affiliations",
        sa.Column("room", sa.Text(), nullable=False),
        sa.Column("jid", sa.Text(), nullable=False),
        sa.Column("affiliation", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("room", "jid", name="pk_muc_affiliations"),
        sa.ForeignKeyConstraint(
            ["room"],
            ["muc_rooms.name"],
            name="fk_muc_affiliations_room_muc_rooms",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("muc_affiliations")
    op.drop_table("muc_rooms")
