"""Reads and writes of ``muc_rooms`` and ``muc_affiliations`` (on the database thread)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select

from plugins.muc.tables import muc_affiliations, muc_rooms


def load_rooms(conn: Any) -> list[dict[str, Any]]:
    rooms = {row.name: dict(row._mapping) for row in conn.execute(select(muc_rooms))}
    for room in rooms.values():
        room["affiliations"] = {}
    for row in conn.execute(select(muc_affiliations)):
        if row.room in rooms:
            rooms[row.room]["affiliations"][row.jid] = (row.affiliation, row.reason)
    return list(rooms.values())


def save_room(conn: Any, row: dict[str, Any], affiliations: dict[str, tuple[str, str]]) -> None:
    """Replace the room's row and its affiliations."""
    delete_room(conn, row["name"])
    conn.execute(insert(muc_rooms).values(**row))
    if affiliations:
        conn.execute(
            insert(muc_affiliations),
            [
                dict(room=row["name"], jid=jid, affiliation=aff, reason=reason)
                for jid, (aff, reason) in affiliations.items()
            ],
        )


def delete_room(conn: Any, name: str) -> None:
    conn.execute(delete(muc_affiliations).where(muc_affiliations.c.room == name))
    conn.execute(delete(muc_rooms).where(muc_rooms.c.name == name))
