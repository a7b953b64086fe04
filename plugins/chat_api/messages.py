"""The ``/chat/Message`` endpoints (SDK-CONTRACT §5.2) over the dialogs store's
history (``plugins/dialogs/history.py``, ``reactions.py``): list a dialog's
history, create, mark read or delivered, edit, delete, unread counts, clear a
dialog's history for the caller, reactions, and server-sent system messages.

Messages come into history over XMPP (``save_to_history``, §4.5) or through
``POST /chat/Message.json``. Edits, deletes for everyone and reactions are
notified over XMPP with the §4.5 stanzas the SDKs parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugins.chat_api.rest import ApiError, Call, truthy
from plugins.chat_api.users import iso

if TYPE_CHECKING:
    from plugins.chat_api import ChatApi


class MessageRoutes:
    """``GET``/``PUT``/``POST /chat/Message.json``, ``PUT``/``DELETE
    /chat/Message/{ids}.json``, ``GET /chat/Message/unread.json``, ``GET``/``PUT
    /chat/Message/{id}/reactions.json`` and ``POST /chat/Message/system.json``."""

    def __init__(self, api: ChatApi) -> None:
        self.api = api
        self.store = api.ctx.plugin("dialogs")
        api.api.route("GET", r"chat/Message\.json", self.list)
        api.api.route("GET", r"chat/Message/unread\.json", self.unread)
        api.api.route("PUT", r"chat/Message\.json", self.update)
        api.api.route("PUT", r"chat/Message/([^/]+)\.json", self.update)
        api.api.route("POST", r"chat/Message\.json", self.create)
        api.api.route("POST", r"chat/Message/system\.json", self.system)
        api.api.route("DELETE", r"chat/Message/([^/]+)\.json", self.delete)
        api.api.route("DELETE", r"chat/Dialog/clearHistory/([^/]+)\.json", self.clear)
        api.api.route("GET", r"chat/Message/([^/,]+)/reactions\.json", self.reactions)
        api.api.route("PUT", r"chat/Message/([^/,]+)/reactions\.json", self.react)

    async def list(self, call: Call) -> Any:
        """§5.2 ``message.list``: ``{skip, limit, items: [Message]}``, sorted by
        ``date_sent``; marks the returned messages read unless ``mark_as_read=0``."""
        s = await self.api.user_session(call)
        dialog_id = str(call.params.get("chat_dialog_id") or "").strip()
        if not dialog_id:
            raise ApiError(422, {"chat_dialog_id": ["is required"]})
        page = await self.api.store_call(
            self.store.messages, s.app_id, s.user_id, dialog_id, call.params
        )
        for m in page["items"]:
            m["created_at"], m["updated_at"] = iso(m["created_at"]), iso(m["updated_at"])
        return page

    async def update(self, call: Call) -> Any:
        """§5.2 ``message.update``: ``PUT /chat/Message/{id1,id2}.json`` (no ids: the
        whole dialog) with ``chat_dialog_id`` and ``read=1``, ``delivered=1`` or
        ``message`` (the sender's new text, with the §4.5 edit notification to the
        other occupants) -> ``{}``."""
        s = await self.api.user_session(call)
        dialog_id = str(call.params.get("chat_dialog_id") or "").strip()
        if not dialog_id:
            raise ApiError(422, {"chat_dialog_id": ["is required"]})
        raw = call.match[1] if call.match.groups() else ""
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        update = self.store.update_messages
        edited = await self.api.store_call(update, s.app_id, s.user_id, dialog_id, ids, call.params)
        if edited:
            self.store.send_edited(s.app_id, s.user_id, str(call.params["message"]), edited)
        return {}

    async def reactions(self, call: Call) -> Any:
        """§5.2 ``message.listReactions``: ``{"{reaction}": [user ids]}``."""
        s = await self.api.user_session(call)
        return await self.api.store_call(self.store.reactions, s.app_id, s.user_id, call.match[1])

    async def react(self, call: Call) -> Any:
        """§5.2 ``message.addReaction`` / ``removeReaction``: ``{add?, remove?}``, one
        reaction each -> ``{}`` (the SDK reads text); a change is notified (§4.5
        ``<reactions/>``) to the occupants' online resources."""
        s = await self.api.user_session(call)
        add, remove = call.params.get("add"), call.params.get("remove")
        change = await self.api.store_call(
            self.store.update_reactions, s.app_id, s.user_id, call.match[1], add, remove
        )
        self.store.send_reactions(s.app_id, change)
        return {}

    async def unread(self, call: Call) -> Any:
        """§5.2 ``message.unreadCount``: ``{total, "{dialog_id}": n...}``; the ids
        arrive joined with ``", "``."""
        s = await self.api.user_session(call)
        raw = call.params.get("chat_dialog_ids") or ""
        items = raw if isinstance(raw, list) else str(raw).split(",")
        ids = [str(i).strip() for i in items if str(i).strip()]
        return await self.api.store_call(self.store.unread, s.app_id, s.user_id, ids)

    async def create(self, call: Call) -> Any:
        """§5.2 ``message.create``: ``chat_dialog_id`` (or ``recipient_id``),
        ``message``, ``attachments``, custom fields -> ``201 Message``; with
        ``send_to_chat=1`` also delivered over XMPP (§4.5) to the other occupants."""
        s = await self.api.user_session(call)
        params = dict(call.params)
        view, dialog = await self.api.store_call(
            self.store.create_message, s.app_id, s.user_id, params
        )
        if truthy(params.get("send_to_chat", "")):
            self.store.send_saved(s.app_id, view, dialog)
        view["created_at"], view["updated_at"] = iso(view["created_at"]), iso(view["updated_at"])
        return 201, view

    async def delete(self, call: Call) -> Any:
        """§5.2 ``message.delete``: comma-joined ids, form body ``force=1`` (the
        sender, for everyone, with the XMPP delete notification of §4.5); several
        ids answer ``{SuccessfullyDeleted, NotFound, WrongPermissions}``."""
        s = await self.api.user_session(call)
        ids = [i.strip() for i in call.match[1].split(",") if i.strip()]
        force = truthy(call.params.get("force", ""))
        remove = self.store.delete_messages
        result, removed = await self.api.store_call(remove, s.app_id, s.user_id, ids, force)
        self.store.send_removed(s.app_id, s.user_id, removed)
        if len(ids) == 1:
            if result["NotFound"]:
                raise ApiError(404, {"base": ["Entity you are looking for was not found"]})
            if result["WrongPermissions"]:
                raise ApiError(403, {"base": ["You don't have permissions to delete"]})
            return {}
        return {key: {"ids": value} for key, value in result.items()}

    async def clear(self, call: Call) -> Any:
        """§5.1 ``dialog.clearHistory``: ``DELETE /chat/Dialog/clearHistory/{id}.json``
        hides the dialog's messages for the caller, his unread count 0 -> ``{}``."""
        s = await self.api.user_session(call)
        await self.api.store_call(self.store.clear_history, s.app_id, s.user_id, call.match[1])
        return {}

    async def system(self, call: Call) -> Any:
        """§5.2 ``message.createSystem``: ``{recipientId, ...custom}`` -> ``{messageId,
        recipientId, extensionParams}``; a headline with ``moduleIdentifier`` =
        ``SystemNotifications`` (§4.5) to the recipient's online resources, never
        stored."""
        s = await self.api.user_session(call)
        params = dict(call.params)
        raw = params.pop("recipientId", params.pop("recipient_id", None))
        try:
            recipient = int(str(raw).strip())
        except ValueError:
            raise ApiError(422, {"recipientId": ["is required"]}) from None
        user = await self.api.ctx.accounts.get_user(recipient)
        if user is None or user.app_id != s.app_id:
            raise ApiError(404, {"base": ["Entity you are looking for was not found"]})
        body = params.pop("body", None)
        params.pop("moduleIdentifier", None)  # always SystemNotifications (§4.5)
        extension = {"moduleIdentifier": "SystemNotifications", **params}
        body = None if body is None else str(body)
        try:
            message_id = self.store.send_system(s.app_id, s.user_id, recipient, body, extension)
        except self.store.InvalidError as e:
            raise ApiError(422, {e.field: [e.message]}) from None
        return {"messageId": message_id, "recipientId": recipient, "extensionParams": extension}
