"""The chat API's tables: the profile fields of a user that the core ``users``
table does not have (SDK-CONTRACT §3.1 user fields), and blobs (§5.3)."""

from sqlalchemy import BigInteger, Boolean, Column, DateTime, ForeignKey, String, Table, Text, false

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
    Column("blob_id", BigInteger, nullable=True),  # the avatar blob (§5.3), not checked
    Column("avatar", String(1024), nullable=True),  # ConnectyCube: an avatar URL or uid
    Column("timezone", String(64), nullable=True),
    # Guest accounts (ConnectyCube ``user.guest``): a generated login, no password.
    Column("is_guest", Boolean, nullable=False, server_default=false()),
    # The Firebase uid (``sub``) of an account made by a firebase_phone sign-in: the
    # identity such a sign-in finds again (docs/auth.md); never set through the API.
    Column("firebase_uid", String(128), nullable=True, index=True),
)

# Blobs (SDK-CONTRACT §5.3): the bytes live on disk under ``blob_dir``, in a file
# named by ``uid`` only; ``size`` is the bytes received (the client's claim is
# only checked against it at ``complete``).
chat_api_blobs = Table(
    "chat_api_blobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("app_id", Id, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("uid", String(32), nullable=False, unique=True),
    Column("content_type", String(255), nullable=False),
    Column("name", String(255), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("public", Boolean, nullable=False),
    Column("completed", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,  # ids are never reused after a delete
)
