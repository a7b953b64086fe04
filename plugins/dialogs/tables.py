"""The dialogs store's tables (SDK-CONTRACT §5.1 Dialog): one row per dialog, one
per occupant (a member of a private or group dialog, a subscriber of a public one).

Messages saved to history (issue 3, XMPP ``save_to_history``, SDK-CONTRACT §4.5)
are rows of ``dialogs_messages``; who has read or received one is a row of
``dialogs_receipts``. Saving one also sets the dialog's ``last_message*``
columns and the other occupants' ``unread_count`` (``history.py``). A user's
reaction to a message (SDK-CONTRACT §5.2 ``addReaction``) is a row of
``dialogs_reactions``.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from xmppd.storage.tables import Id, metadata

dialogs_dialogs = Table(
    "dialogs_dialogs",
    metadata,
    Column("id", String(24), primary_key=True),  # 24 hex digits, never all digits
    Column("app_id", Id, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("type", SmallInteger, nullable=False),  # 1 public, 2 group, 3 private, 4 broadcast
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),  # owner
    # "{low}:{high}" user ids of a private dialog: one private dialog per pair.
    Column("private_key", String(64), nullable=True),
    Column("name", String(255), nullable=True),
    Column("photo", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("extensions", Text, nullable=True),  # a JSON object, as the SDKs send it
    Column("pinned_messages_ids", Text, nullable=False, default="[]"),  # a JSON list
    Column("is_join_required", Boolean, nullable=False, default=False),  # QuickBlox
    Column("last_message", Text, nullable=True),
    Column("last_message_date_sent", BigInteger, nullable=True),  # unix seconds
    Column("last_message_id", String(24), nullable=True),
    Column("last_message_user_id", BigInteger, nullable=True),
    Column("last_message_status", String(16), nullable=True),  # sent | delivered | read
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("app_id", "private_key"),
    Index(None, "app_id", "type"),
)

dialogs_occupants = Table(
    "dialogs_occupants",
    metadata,
    Column(
        "dialog_id",
        String(24),
        ForeignKey("dialogs_dialogs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("unread_count", Integer, nullable=False, default=0),
    Column("notifications", Boolean, nullable=False, default=True),
    # A private dialog deleted "for me": hidden from this user's list until used again.
    Column("hidden", Boolean, nullable=False, default=False),
    Column("joined_at", DateTime(timezone=True), nullable=False),
    Index(None, "user_id"),
)

dialogs_messages = Table(
    "dialogs_messages",
    metadata,
    Column("id", String(24), primary_key=True),  # the client's 24-hex id when fresh
    Column("app_id", Id, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column(
        "dialog_id",
        String(24),
        ForeignKey("dialogs_dialogs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("sender_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("recipient_id", BigInteger, nullable=True),  # private (1-1) messages only
    Column("body", Text, nullable=True),
    Column("date_sent", BigInteger, nullable=False),  # unix seconds, as the SDKs send it
    Column("params", Text, nullable=False, default="{}"),  # custom extraParams, a JSON object
    Column("attachments", Text, nullable=False, default="[]"),  # a JSON list of objects
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "dialog_id", "date_sent"),  # a dialog's history in date order
)

# One row per (message, reader, kind): race-safe marking (the primary key) and
# cheap per-caller ``read``, where JSON lists in the message row would be a
# read-modify-write that concurrent readers of a group message could lose.
dialogs_receipts = Table(
    "dialogs_receipts",
    metadata,
    Column(
        "message_id",
        String(24),
        ForeignKey("dialogs_messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(9), primary_key=True),  # read | delivered | hidden (for me)
    Index(None, "user_id"),
)

# One row per (message, user, reaction), the primary key: adding twice is a no-op
# and concurrent reactors never lose each other's rows (issue 3 "Reactions").
MAX_REACTION = 32  # characters of one reaction (an emoji sequence, or a short name)
dialogs_reactions = Table(
    "dialogs_reactions",
    metadata,
    Column(
        "message_id",
        String(24),
        ForeignKey("dialogs_messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("reaction", String(MAX_REACTION), primary_key=True),
    Index(None, "user_id"),
)
