"""The ``/chat/Message`` endpoints (SDK-CONTRACT §5.2) over the dialogs store's
history (``plugins/dialogs/history.py``): list a dialog's history, mark read or
delivered, edit, unread counts.

Messages come into history over XMPP (``save_to_history``, §4.5). Create, delete,
system messages and reactions are still to do (issue 3 "Messages").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugins.chat_api.rest import ApiError, Call
from plugins.chat_api.users import iso

if TYPE_CHECKING:
    from plugins.chat_api import ChatApi


class MessageRoutes:
    """``GET``/``PUT /chat/Message.json``, ``PUT /chat/Message/{ids}.json`` and
    ``GET /chat/Message/unread.json``."""

    def __init__(self, api: ChatApi) -> None:
        self.api = api
        self.store = api.ctx.plugin("dialogs")
        api.api.route("GET", r"chat/Message\.json", self.list)
        api.api.route("GET", r"chat/Message/unread\.json", self.unread)
        api.api.route("PUT", r"chat/Message\.json", self.update)
        api.api.route("PUT", r"chat/Message/([^/]+)\.json", self.update)

    async def _user(self, call: Call) -> Any:
        session = await self.api.session(call)
        if not session.user_id:
            raise ApiError(403, {"base": ["Forbidden. Need user."]})
        return session

    async def _run(self, fn: Any, *args: Any) -> Any:
        store = self.store
        try:
            return await fn(*args)
        except store.NotFoundError as e:
            raise ApiError(404, {"base": [e.message]}) from None
        except store.ForbiddenError as e:
            raise ApiError(403, {"base": [e.message]}) from None
        except store.InvalidError as e:
            raise ApiError(422, {e.field: [e.message]}) from None

    async def list(self, call: Call) -> Any:
        """§5.2 ``message.list``: ``{skip, limit, items: [Message]}``, sorted by
        ``date_sent``; marks the returned messages read unless ``mark_as_read=0``."""
        s = await self._user(call)
        dialog_id = str(call.params.get("chat_dialog_id") or "").strip()
        if not dialog_id:
            raise ApiError(422, {"chat_dialog_id": ["is required"]})
        page = await self._run(self.store.messages, s.app_id, s.user_id, dialog_id, call.params)
        for m in page["items"]:
            m["created_at"], m["updated_at"] = iso(m["created_at"]), iso(m["updated_at"])
        return page

    async def update(self, call: Call) -> Any:
        """§5.2 ``message.update``: ``PUT /chat/Message/{id1,id2}.json`` (no ids: the
        whole dialog) with ``chat_dialog_id`` and ``read=1``, ``delivered=1`` or
        ``message`` (the sender's new text) -> ``{}``."""
        s = await self._user(call)
        dialog_id = str(call.params.get("chat_dialog_id") or "").strip()
        if not dialog_id:
            raise ApiError(422, {"chat_dialog_id": ["is required"]})
        raw = call.match[1] if call.match.groups() else ""
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        update = self.store.update_messages
        await self._run(update, s.app_id, s.user_id, dialog_id, ids, call.params)
        return {}

    async def unread(self, call: Call) -> Any:
        """§5.2 ``message.unreadCount``: ``{total, "{dialog_id}": n...}``; the ids
        arrive joined with ``", "``."""
        s = await self._user(call)
        raw = call.params.get("chat_dialog_ids") or ""
        items = raw if isinstance(raw, list) else str(raw).split(",")
        ids = [str(i).strip() for i in items if str(i).strip()]
        return await self._run(self.store.unread, s.app_id, s.user_id, ids)
