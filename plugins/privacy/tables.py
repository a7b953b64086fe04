"""The privacy store (XEP-0016 lists; XEP-0191 blocking reads and writes the same rows).

One row per list in ``privacy_lists`` (``is_default`` marks the user's default list,
at most one per user), one row per item in ``privacy_items``. ``kinds`` is the item's
stanza kinds as a bit set (``plugins.privacy.lists.KIND_BITS``); 0 means no child
element, i.e. every stanza both ways (XEP-0016 §2.13).
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from xmppd.storage.tables import Id, metadata

privacy_lists = Table(
    "privacy_lists",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("is_default", Boolean, nullable=False, default=False),
    UniqueConstraint("user_id", "name"),
)

privacy_items = Table(
    "privacy_items",
    metadata,
    Column("list_id", Id, ForeignKey("privacy_lists.id", ondelete="CASCADE"), primary_key=True),
    Column("item_order", BigInteger, primary_key=True),  # XEP-0016 'order': an unsignedInt
    Column("type", String(12), nullable=True),  # jid | group | subscription | None: fall-through
    Column("value", Text, nullable=True),
    Column("action", String(5), nullable=False),  # allow | deny
    Column("kinds", SmallInteger, nullable=False, default=0),
)
