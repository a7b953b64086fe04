"""The persistent rooms (XEP-0045 §10.1.3 ``muc#roomconfig_persistentroom``): their
configuration, subject and affiliations. Temporary rooms are never written."""

from sqlalchemy import BigInteger, Column, ForeignKey, Table, Text

from xmppd.storage.tables import metadata

muc_rooms = Table(
    "muc_rooms",
    metadata,
    Column("name", Text, primary_key=True),  # the room's localpart
    Column("config", Text, nullable=False),  # JSON of plugins.muc.rooms.RoomConfig
    Column("subject", Text, nullable=False),
    Column("subject_by", Text, nullable=False),  # the nick that set it, or ""
    Column("subject_author", Text, nullable=False),  # its bare JID (for its occupant-id)
    Column("creator", Text, nullable=False),  # bare JID
    Column("salt", Text, nullable=False),  # XEP-0421 occupant-id secret
    Column("created_at", BigInteger, nullable=False),  # unix seconds
)

muc_affiliations = Table(
    "muc_affiliations",
    metadata,
    Column("room", Text, ForeignKey("muc_rooms.name", ondelete="CASCADE"), primary_key=True),
    Column("jid", Text, primary_key=True),  # bare JID
    Column("affiliation", Text, nullable=False),  # owner, admin, member, outcast
    Column("reason", Text, nullable=False),
)
