"""The privacy store: a user's lists in and out of the database.

Every function runs on the database thread pool (``ctx.db.run``) in one
transaction; the writers return the user's whole state afterwards, which
replaces the plugin's cached copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from twisted.words.protocols.jabber.jid import JID

from plugins.privacy.lists import NOT_IN_ROSTER, Contact, Item, PrivacyList, stored_item
from plugins.privacy.tables import privacy_items, privacy_lists
from xmppd.im.roster_store import load_roster


class TooManyListsError(Exception):
    """The user already has ``max_lists`` lists."""


@dataclass(frozen=True)
class UserPrivacy:
    """One user's lists and which of them is the default (XEP-0016 §2.5)."""

    lists: dict[str, PrivacyList] = field(default_factory=dict)
    default: str | None = None
    # The roster, read when a list has group or subscription items (XEP-0016 §2.1).
    contacts: dict[str, Contact] = field(default_factory=dict)

    @property
    def default_list(self) -> PrivacyList | None:
        return self.lists.get(self.default) if self.default else None

    def denies(self, plist: PrivacyList | None, other: JID, kind: str) -> bool:
        if plist is None:
            return False
        return plist.denies(other, kind, self.contacts.get(other.userhost(), NOT_IN_ROSTER))


NOTHING = UserPrivacy()


def load(conn: Connection, user_id: int, domain: str) -> UserPrivacy:
    rows = conn.execute(
        select(privacy_lists.c.id, privacy_lists.c.name, privacy_lists.c.is_default).where(
            privacy_lists.c.user_id == user_id
        )
    ).all()
    if not rows:
        return NOTHING
    names = {row.id: row.name for row in rows}
    items: dict[int, list[Item]] = {list_id: [] for list_id in names}
    for row in conn.execute(
        select(privacy_items)
        .where(privacy_items.c.list_id.in_(names))
        .order_by(privacy_items.c.list_id, privacy_items.c.item_order)
    ):
        items[row.list_id].append(
            stored_item(row.item_order, row.action, row.type, row.value, row.kinds, domain)
        )
    default = next((row.name for row in rows if row.is_default), None)
    lists = {names[i]: PrivacyList(names[i], tuple(found)) for i, found in items.items()}
    contacts = {}
    if any(plist.uses_roster for plist in lists.values()):
        contacts = {
            item.contact: Contact(item.subscription, frozenset(item.groups))
            for item in load_roster(conn, user_id)[1]
            if item.in_roster
        }
    return UserPrivacy(lists, default, contacts)


def subscribers(conn: Connection, user_id: int) -> list[str]:
    """Contacts that receive the user's presence (RFC 6121 subscription from/both)."""
    return [item.contact for item in load_roster(conn, user_id)[1] if item.in_roster and item.from_]


def _list_id(conn: Connection, user_id: int, name: str) -> int | None:
    return conn.execute(
        select(privacy_lists.c.id).where(
            privacy_lists.c.user_id == user_id, privacy_lists.c.name == name
        )
    ).scalar()


def save_list(
    conn: Connection,
    user_id: int,
    plist: PrivacyList,
    max_lists: int,
    domain: str,
    make_default: bool = False,
) -> UserPrivacy:
    """Create or replace a list (XEP-0016 §2.6, §2.7: the whole list, not a delta)."""
    list_id = _list_id(conn, user_id, plist.name)
    if list_id is None:
        count = conn.execute(
            select(func.count()).where(privacy_lists.c.user_id == user_id)
        ).scalar_one()
        if count >= max_lists:
            raise TooManyListsError()
        list_id = conn.execute(
            insert(privacy_lists).values(user_id=user_id, name=plist.name, is_default=False)
        ).inserted_primary_key[0]
    else:
        conn.execute(delete(privacy_items).where(privacy_items.c.list_id == list_id))
    if plist.items:
        conn.execute(
            insert(privacy_items),
            [
                dict(
                    list_id=list_id,
                    item_order=item.order,
                    type=item.type,
                    value=item.value,
                    action=item.action,
                    kinds=item.kinds,
                )
                for item in plist.items
            ],
        )
    if make_default:
        _set_default(conn, user_id, list_id)
    return load(conn, user_id, domain)


def delete_list(conn: Connection, user_id: int, name: str, domain: str) -> UserPrivacy | None:
    """XEP-0016 §2.8; ``None`` when there is no such list."""
    list_id = _list_id(conn, user_id, name)
    if list_id is None:
        return None
    conn.execute(delete(privacy_lists).where(privacy_lists.c.id == list_id))
    return load(conn, user_id, domain)


def set_default(
    conn: Connection, user_id: int, name: str | None, domain: str
) -> UserPrivacy | None:
    """XEP-0016 §2.5: ``name`` becomes the default (``None`` declines it);
    ``None`` back when there is no such list."""
    list_id = None
    if name is not None:
        list_id = _list_id(conn, user_id, name)
        if list_id is None:
            return None
    _set_default(conn, user_id, list_id)
    return load(conn, user_id, domain)


def _set_default(conn: Connection, user_id: int, list_id: int | None) -> None:
    conn.execute(
        update(privacy_lists)
        .where(privacy_lists.c.user_id == user_id)
        .values(is_default=privacy_lists.c.id == list_id if list_id is not None else False)
    )
