"""The offline store's one table: a message waiting for its recipient to come online
(XEP-0160 §2), as the XML the server received, in arrival order (``id``).

``expires_at`` is set for a message that must not outlive a deadline (a
self-destroying message, ``urn:xmpp:message-destroy-after:0``): it is never
delivered after it and is purged at it. Rows go with their user (ON DELETE CASCADE).
"""

from sqlalchemy import Column, Float, ForeignKey, Index, Table, Text

from xmppd.storage.tables import Id, metadata

offline_messages = Table(
    "offline_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),  # arrival order
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("stanza", Text, nullable=False),  # the <message/> as received, serialised
    Column("stored_at", Float, nullable=False),  # unix seconds: the XEP-0203 stamp
    Column("expires_at", Float, nullable=True),  # unix seconds; NULL: kept until delivered
    Index(None, "user_id", "id"),
    Index(None, "expires_at"),
    sqlite_autoincrement=True,  # ids are never reused: arrival order survives deletes
)
