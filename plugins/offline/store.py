"""The offline store's database work; each function runs in one transaction on the
database thread pool (``ctx.db.run``), never on the reactor."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.engine import Connection

from plugins.offline.tables import offline_messages as t


class Stored(NamedTuple):
    """One stored message, as :func:`claim` hands it out."""

    id: int
    stanza: str
    stored_at: float
    expires_at: float | None


def _live(now: float) -> Any:
    return or_(t.c.expires_at.is_(None), t.c.expires_at > now)


def store(
    conn: Connection, user_id: int, stanza: str, now: float, expires_at: float | None, limit: int
) -> bool:
    """Add a message for ``user_id``; ``False`` when the user already has ``limit``
    unexpired messages waiting (XEP-0160 §2: "the recipient's offline message queue
    is full"). Two messages racing for the last place may both get in."""
    waiting = conn.execute(
        select(func.count()).select_from(t).where(t.c.user_id == user_id, _live(now))
    ).scalar_one()
    if waiting >= limit:
        return False
    conn.execute(
        insert(t).values(user_id=user_id, stanza=stanza, stored_at=now, expires_at=expires_at)
    )
    return True


def claim(conn: Connection, user_id: int, now: float) -> list[Stored]:
    """Take every message of ``user_id`` out of the store, oldest first, leaving out
    (and dropping) the expired ones.

    One ``DELETE ... RETURNING``: a row is handed to exactly one caller even when
    two resources come online at once (on PostgreSQL the second DELETE waits for
    the first and then finds the rows gone); what arrives meanwhile stays."""
    rows = conn.execute(
        delete(t)
        .where(t.c.user_id == user_id)
        .returning(t.c.id, t.c.stanza, t.c.stored_at, t.c.expires_at)
    ).all()
    live = [Stored(*row) for row in rows if row.expires_at is None or row.expires_at > now]
    return sorted(live, key=lambda s: s.id)


def put_back(conn: Connection, user_id: int, messages: list[Stored]) -> None:
    """Return claimed messages that could not be sent, with their ids (their order)."""
    conn.execute(
        insert(t),
        [dict(m._asdict(), user_id=user_id) for m in messages],
    )


def purge(conn: Connection, now: float) -> float | None:
    """Delete every expired message; -> the next deadline still stored, if any."""
    conn.execute(delete(t).where(t.c.expires_at <= now))
    return conn.execute(select(func.min(t.c.expires_at))).scalar_one()


def count(conn: Connection, user_id: int) -> int:
    """How many messages ``user_id`` has waiting (expired ones included)."""
    return conn.execute(
        select(func.count()).select_from(t).where(t.c.user_id == user_id)
    ).scalar_one()
