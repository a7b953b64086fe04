"""Roster rows and XEP-0237 roster versions in the database.

Synchronous functions on a SQLAlchemy ``Connection``; the caller runs them on
the database thread pool inside one transaction (``engine.begin()``), so a
transition read with :func:`get_item` and written with :func:`save_item` is
atomic. Portable across SQLite and PostgreSQL.

Versions: ``roster_versions.version`` is bumped for every visible change and
stamped on the changed row (``roster_items.version``), so the items changed
since a version are the rows stamped later. A removed item leaves no row to
find; ``roster_versions.removed_version`` keeps the version of the latest
removal, and :func:`items_changed_since` asks for the full roster when a client's
version predates it (XEP-0237 §4: the server may always send the full roster).
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from xmppd.im.subscription import RosterItem
from xmppd.storage.tables import roster_items, roster_versions

__all__ = [
    "count_items",
    "delete_item",
    "get_item",
    "items_changed_since",
    "load_roster",
    "roster_version",
    "save_item",
]

_ri = roster_items.c
_rv = roster_versions.c

# Dialects with INSERT ... ON CONFLICT (same API in both).
_ON_CONFLICT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _item(row: Row) -> RosterItem:
    return RosterItem(
        contact=row.contact,
        name=row.name,
        subscription=row.subscription,
        ask=bool(row.ask),
        pending_in=bool(row.pending_in),
        approved=bool(row.approved),
        groups=tuple(json.loads(row.groups)),
        in_roster=bool(row.in_roster),
    )


def _columns(item: RosterItem) -> dict:
    return {
        "name": item.name,
        "subscription": item.subscription,
        "ask": item.ask,
        "pending_in": item.pending_in,
        "approved": item.approved,
        "groups": json.dumps(list(item.groups)),
        "in_roster": item.in_roster,
    }


def _versions(conn: Connection, user_id: int) -> tuple[int, int]:
    row = conn.execute(
        select(_rv.version, _rv.removed_version).where(_rv.user_id == user_id)
    ).first()
    return (row.version, row.removed_version) if row else (0, 0)


def _bump(conn: Connection, user_id: int, *, removal: bool = False) -> int:
    """The user's next roster version. The UPDATE takes the row lock, so
    concurrent transactions for one user serialise here."""
    values = {"user_id": user_id, "version": 0, "removed_version": 0}
    make = _ON_CONFLICT.get(conn.dialect.name)
    if make is not None:
        conn.execute(make(roster_versions).values(values).on_conflict_do_nothing())
    elif conn.execute(select(_rv.version).where(_rv.user_id == user_id)).first() is None:
        conn.execute(insert(roster_versions).values(values))
    new = {"version": _rv.version + 1}
    if removal:
        new["removed_version"] = _rv.version + 1  # SET uses the old row's values
    conn.execute(update(roster_versions).where(_rv.user_id == user_id).values(new))
    return conn.execute(select(_rv.version).where(_rv.user_id == user_id)).scalar_one()


def roster_version(conn: Connection, user_id: int) -> int:
    """The user's current roster version; 0 before any change."""
    return _versions(conn, user_id)[0]


def load_roster(conn: Connection, user_id: int) -> tuple[int, list[RosterItem]]:
    """The version and every row, including ``in_roster=False`` ones (the caller
    shows only in-roster items), ordered by contact."""
    rows = conn.execute(select(roster_items).where(_ri.user_id == user_id).order_by(_ri.contact))
    items = [_item(row) for row in rows]
    return roster_version(conn, user_id), items


def get_item(
    conn: Connection, user_id: int, contact: str, *, lock: bool = True
) -> RosterItem | None:
    """The row for ``contact``, or None. With ``lock`` (the default: a transition
    reads, then writes) the row stays locked until the transaction ends, so two
    transitions on one contact cannot lose an update (``SELECT ... FOR UPDATE``
    on PostgreSQL; SQLite transactions already take the write lock at BEGIN)."""
    stmt = select(roster_items).where(_ri.user_id == user_id, _ri.contact == contact)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    return _item(row) if row else None


def save_item(conn: Connection, user_id: int, item: RosterItem, bump: bool) -> int:
    """Insert or update ``item``. With ``bump`` (``Outcome.changed``) the roster
    version goes up and is stamped on the row; returns the new version, or the
    current one without ``bump``."""
    values = _columns(item)
    if bump:
        values["version"] = _bump(conn, user_id)
    make = _ON_CONFLICT.get(conn.dialect.name)
    if make is not None:
        stmt = make(roster_items).values(
            user_id=user_id, contact=item.contact, **{"version": 0, **values}
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[_ri.user_id, _ri.contact],
                set_={key: stmt.excluded[key] for key in values},
            )
        )
    else:
        done = conn.execute(
            update(roster_items)
            .where(_ri.user_id == user_id, _ri.contact == item.contact)
            .values(values)
        )
        if done.rowcount == 0:
            conn.execute(
                insert(roster_items).values(
                    user_id=user_id, contact=item.contact, **{"version": 0, **values}
                )
            )
    return values["version"] if bump else roster_version(conn, user_id)


def delete_item(conn: Connection, user_id: int, contact: str, bump: bool) -> int:
    """Delete the row. With ``bump`` (an in-roster item's removal, pushed with
    ``subscription='remove'``) the version goes up and is recorded as the latest
    removal; returns the new version, or the current one."""
    done = conn.execute(delete(roster_items).where(_ri.user_id == user_id, _ri.contact == contact))
    if bump and done.rowcount:
        return _bump(conn, user_id, removal=True)
    return roster_version(conn, user_id)


def count_items(conn: Connection, user_id: int, *, in_roster: bool = True) -> int:
    """How many contacts the user has added (the roster size limit); with
    ``in_roster=False``, how many tracking-only rows (stored inbound requests)."""
    return conn.execute(
        select(func.count())
        .select_from(roster_items)
        .where(_ri.user_id == user_id, _ri.in_roster == in_roster)
    ).scalar_one()


def items_changed_since(conn: Connection, user_id: int, version: int) -> list[RosterItem] | None:
    """XEP-0237: in-roster items changed after ``version``, to send as pushes
    (an empty list: the client is up to date). ``None`` means the client must
    get the full roster: an item was removed after ``version`` (removals leave
    nothing to push), or ``version`` is not one we issued."""
    current, removed = _versions(conn, user_id)
    if not removed <= version <= current:
        return None
    rows = conn.execute(
        select(roster_items)
        .where(_ri.user_id == user_id, _ri.in_roster.is_(True), _ri.version > version)
        .order_by(_ri.version, _ri.contact)
    )
    return [_item(row) for row in rows]
