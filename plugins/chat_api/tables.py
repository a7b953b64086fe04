"""The chat API's own columns of a user: the profile fields the core ``users``
table does not have (SDK-CONTRACT §3.1 user fields)."""

from sqlalchemy import Column, DateTime, ForeignKey, String, Table, Text

from xmppd.storage.tables import Id, metadata

chat_api_users = Table(
    "chat_api_users",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("phone", String(64), nullable=True),
    Column("website", String(1024), nullable=True),
    Column("custom_data", Text, nullable=True),
    Column("tag_list", Text, nullable=True),  # comma-joined, as the SDKs send it
    Column("external_user_id", String(255), nullable=True),
    Column("last_request_at", DateTime(timezone=True), nullable=True),
)
