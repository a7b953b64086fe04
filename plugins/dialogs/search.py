"""Search over a user's dialogs and the history he may read (issue 3; SDK-CONTRACT
§5.3 ``chat.search``): case-insensitive substring matches with ``LIKE`` (wildcards
of the text escaped, values bound), bounded results. The users part of the answer
is the REST front end's (``plugins/chat_api/search.py``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from plugins.dialogs.history import hidden_by, message_views
from plugins.dialogs.model import InvalidError
from plugins.dialogs.query import contains, listed_to, parse_value, to_int
from plugins.dialogs.store import views
from plugins.dialogs.tables import dialogs_dialogs as dialogs
from plugins.dialogs.tables import dialogs_messages as messages

MIN_TEXT, MAX_TEXT = 3, 255  # characters of search_text
DEFAULT_LIMIT, MAX_LIMIT = 10, 100  # results of each kind
MAX_DIALOG_IDS = 100


def search_text(params: dict[str, Any]) -> str:
    """The required ``search_text``, MIN_TEXT to MAX_TEXT characters, else 422."""
    text = str(params.get("search_text") or "").strip()
    if not MIN_TEXT <= len(text) <= MAX_TEXT:
        raise InvalidError(f"must be {MIN_TEXT} to {MAX_TEXT} characters", "search_text")
    return text


def limit_of(params: dict[str, Any]) -> int:
    return min(max(to_int(params.get("limit"), DEFAULT_LIMIT, "limit"), 1), MAX_LIMIT)


def _seconds(raw: Any, field: str) -> int:
    """ISO 8601 (as the SDK sends dates) or unix seconds -> unix seconds."""
    return int(parse_value("date", raw, field).timestamp())


def search(
    conn: Connection, app_id: int, viewer: int, params: dict[str, Any]
) -> dict[str, list[Any]]:
    """``{"dialogs": [Dialog], "messages": [Message]}``: the viewer's listed dialogs
    (his own and the app's public and broadcast ones) whose name contains
    ``search_text``, newest first; messages of those dialogs not hidden for him
    whose text contains it, within ``start_date``/``end_date`` (ISO 8601 or unix
    seconds, on ``date_sent``), newest first; both within ``chat_dialog_ids``
    (comma-joined) when given, at most ``limit`` of each."""
    text, limit = search_text(params), limit_of(params)
    raw = params.get("chat_dialog_ids") or ""
    items = raw if isinstance(raw, list) else str(raw).split(",")
    ids = list(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    if len(ids) > MAX_DIALOG_IDS:
        raise InvalidError(f"at most {MAX_DIALOG_IDS}", "chat_dialog_ids")
    listed = listed_to(app_id, viewer)
    if ids:
        listed = listed & dialogs.c.id.in_(ids)
    found = select(dialogs).where(listed, contains(dialogs.c.name, text))
    found = found.order_by(dialogs.c.updated_at.desc(), dialogs.c.id.desc()).limit(limit)
    query = (
        select(messages)
        .join(dialogs, dialogs.c.id == messages.c.dialog_id)
        .where(listed, messages.c.id.not_in(hidden_by(viewer)), contains(messages.c.body, text))
    )
    if params.get("start_date") not in (None, ""):
        query = query.where(messages.c.date_sent >= _seconds(params["start_date"], "start_date"))
    if params.get("end_date") not in (None, ""):
        query = query.where(messages.c.date_sent <= _seconds(params["end_date"], "end_date"))
    query = query.order_by(messages.c.date_sent.desc(), messages.c.id.desc()).limit(limit)
    return {
        "dialogs": views(conn, conn.execute(found).all(), viewer),
        "messages": message_views(conn, conn.execute(query).all(), viewer),
    }
