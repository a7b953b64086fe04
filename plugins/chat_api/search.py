"""``GET /chat/search.json`` (SDK-CONTRACT §5.3 ``chat.search``): the caller's
dialogs and the messages he may read, from the dialogs store
(``plugins/dialogs/search.py``), and the users of his application, whose name,
text, or login/full name contain ``search_text`` (case-insensitive, ``LIKE``
with the text's wildcards escaped; at most ``limit`` of each kind).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, or_, select

from plugins.chat_api.dialogs import dialog_json
from plugins.chat_api.rest import Call
from plugins.chat_api.users import fetch_many, iso, user_json
from plugins.dialogs.query import contains
from plugins.dialogs.search import limit_of, search_text
from xmppd.storage.tables import users

if TYPE_CHECKING:
    from plugins.chat_api import ChatApi


def find_users(conn: Connection, app_id: int, text: str, limit: int) -> list[Any]:
    """The application's users whose login or full name contains ``text``, by id."""
    match = or_(contains(users.c.login, text), contains(users.c.full_name, text))
    query = select(users.c.id).where(users.c.app_id == app_id, match)
    ids = list(conn.execute(query.order_by(users.c.id).limit(limit)).scalars())
    return fetch_many(conn, app_id, ids)


class SearchRoutes:
    """``GET /chat/search.json``."""

    def __init__(self, api: ChatApi) -> None:
        self.api = api
        self.store = api.ctx.plugin("dialogs")
        api.api.route("GET", r"chat/search\.json", self.search)

    async def search(self, call: Call) -> Any:
        """§5.3: ``search_text`` (3 to 255 characters, else 422), ``start_date`` /
        ``end_date`` (ISO 8601, on messages), ``chat_dialog_ids`` (comma-joined),
        ``limit`` (default 10, at most 100 of each kind) -> ``{"results":
        {"dialogs": [Dialog], "messages": [Message], "users": [User]}}``."""
        s = await self.api.user_session(call)
        found = await self.api.store_call(self.store.search, s.app_id, s.user_id, call.params)
        text, limit = search_text(call.params), limit_of(call.params)  # checked by the store
        people = await self.api.db.run(find_users, s.app_id, text, limit)
        for m in found["messages"]:
            m["created_at"], m["updated_at"] = iso(m["created_at"]), iso(m["updated_at"])
        return {
            "results": {
                "dialogs": [dialog_json(self.store, d) for d in found["dialogs"]],
                "messages": found["messages"],
                "users": [user_json(u) for u in people],
            }
        }
