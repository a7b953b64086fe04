"""The last-activity store: one row per user, written when the user's last
available resource goes (XEP-0012 §3)."""

from sqlalchemy import BigInteger, Column, ForeignKey, Table, Text

from xmppd.storage.tables import Id, metadata

last_activity_logouts = Table(
    "last_activity_logouts",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("logout_at", BigInteger, nullable=False),  # unix seconds
    Column("status", Text, nullable=True),  # the <status/> of the last unavailable presence
)
