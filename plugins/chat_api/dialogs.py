"""The ``/chat/Dialog`` endpoints (SDK-CONTRACT §5.1) over the dialogs store
(``plugins/dialogs``): create, list, update, delete, admins, subscribe,
public occupants, notification settings.

Status codes: a dialog of another application, or an unknown id, is ``404``; a
dialog of the caller's application that he may not read or change is ``403``.
The SDKs' own several-ids delete answer tells ``NotFound`` from
``WrongPermissions``, so single calls make the same distinction; ids are 96
random bits, so a ``403`` reveals nothing guessable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugins.chat_api.rest import ApiError, Call, truthy
from plugins.chat_api.users import fetch_many, iso, user_json

if TYPE_CHECKING:
    from plugins.chat_api import ChatApi
    from plugins.dialogs.model import Dialog

ID = r"([^/,]+)"


def dialog_json(store: Any, d: Dialog) -> dict[str, Any]:
    """The Dialog object both SDKs read (SDK-CONTRACT §5.1); ``store`` is the
    dialogs plugin."""
    body = {
        "_id": d.id,
        "user_id": d.user_id,
        "type": d.type,
        "name": d.name,
        "photo": d.photo,
        "description": d.description,
        "occupants_ids": d.occupants_ids,
        "occupants_count": len(d.occupants_ids),
        "admins_ids": d.admins_ids,
        "pinned_messages_ids": d.pinned_messages_ids,
        "xmpp_room_jid": store.room_jid(d),
        "is_join_required": int(d.is_join_required),  # QuickBlox (§7)
        "last_message": d.last_message,
        "last_message_date_sent": d.last_message_date_sent,
        "last_message_id": d.last_message_id,
        "last_message_user_id": d.last_message_user_id,
        "last_message_status": d.last_message_status,
        "unread_messages_count": d.unread_messages_count,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }
    if d.extensions is not None:
        body["extensions"] = d.extensions
        body["data"] = d.extensions  # COMPAT: QuickBlox reads custom data as `data` (§7)
    return body


class DialogRoutes:
    """The ``/chat/Dialog`` endpoints, on the plugin's API resource."""

    def __init__(self, api: ChatApi) -> None:
        self.api = api
        self.store = api.ctx.plugin("dialogs")
        route = api.api.route
        route("POST", r"chat/Dialog\.json", self.create)
        route("GET", r"chat/Dialog\.json", self.list)
        route("PUT", rf"chat/Dialog/{ID}\.json", self.update)
        route("DELETE", r"chat/Dialog/([^/]+)\.json", self.delete)
        route("PUT", rf"chat/Dialog/{ID}/admins\.json", self.admins)
        route("POST", rf"chat/Dialog/{ID}/subscribe\.json", self.subscribe)
        route("DELETE", rf"chat/Dialog/{ID}/subscribe\.json", self.unsubscribe)
        route("GET", rf"chat/Dialog/{ID}/occupants\.json", self.occupants)
        route("GET", rf"chat/Dialog/{ID}/notifications\.json", self.notifications)
        route("PUT", rf"chat/Dialog/{ID}/notifications\.json", self.notifications)

    def dialog_json(self, d: Dialog) -> dict[str, Any]:
        return dialog_json(self.store, d)

    async def create(self, call: Call) -> Any:
        """§5.1 ``dialog.create``: 201 with a new dialog, 200 with a private pair's existing one."""
        s = await self.api.user_session(call)
        d, created = await self.api.store_call(self.store.create, s.app_id, s.user_id, call.params)
        return (201 if created else 200), self.dialog_json(d)

    async def list(self, call: Call) -> Any:
        """§5.1 ``dialog.list``: ``{total_entries, skip, limit, items}``; with ``count=1``
        no items (the total in ``total_entries`` and ``items_count``)."""
        s = await self.api.user_session(call)
        page = await self.api.store_call(self.store.list, s.app_id, s.user_id, call.params)
        body = {
            "total_entries": page["total"],
            "skip": page["skip"],
            "limit": page["limit"],
            "items": [self.dialog_json(d) for d in page["items"]],
        }
        if truthy(call.params.get("count", "")):
            body["items_count"] = page["total"]
        return body

    async def update(self, call: Call) -> Any:
        """§5.1 ``dialog.update``: fields and ``push_all``/``pull_all`` -> Dialog."""
        s = await self.api.user_session(call)
        d = await self.api.store_call(
            self.store.update, s.app_id, s.user_id, call.match[1], call.params
        )
        return self.dialog_json(d)

    async def admins(self, call: Call) -> Any:
        """§5.1 ``dialog.addAdmins``/``removeAdmins``: ``{push_all|pull_all: {admins_ids}}``."""
        s = await self.api.user_session(call)
        changes = {
            key: {"admins_ids": call.params[key].get("admins_ids")}
            for key in ("push_all", "pull_all")
            if isinstance(call.params.get(key), dict)
        }
        d = await self.api.store_call(
            self.store.update, s.app_id, s.user_id, call.match[1], changes
        )
        return self.dialog_json(d)

    async def delete(self, call: Call) -> Any:
        """§5.1 ``dialog.delete``: comma-joined ids, form body ``force=1``; several
        ids answer ``{SuccessfullyDeleted, NotFound, WrongPermissions}``."""
        s = await self.api.user_session(call)
        ids = [i.strip() for i in call.match[1].split(",") if i.strip()]
        force = truthy(call.params.get("force", ""))
        result = await self.api.store_call(self.store.delete, s.app_id, s.user_id, ids, force)
        if len(ids) == 1:
            if result["NotFound"]:
                raise ApiError(404, {"base": ["Entity you are looking for was not found"]})
            if result["WrongPermissions"]:
                raise ApiError(403, {"base": ["You don't have permissions to delete this dialog"]})
            return {}
        return {key: {"ids": value} for key, value in result.items()}

    async def subscribe(self, call: Call) -> Any:
        """§5.1 ``dialog.subscribe`` (public dialogs) -> Dialog."""
        s = await self.api.user_session(call)
        d = await self.api.store_call(self.store.subscribe, s.app_id, s.user_id, call.match[1])
        return self.dialog_json(d)

    async def unsubscribe(self, call: Call) -> Any:
        """§5.1 ``dialog.unsubscribe`` -> ``{}`` (the SDK reads text)."""
        s = await self.api.user_session(call)
        await self.api.store_call(self.store.unsubscribe, s.app_id, s.user_id, call.match[1])
        return {}

    async def occupants(self, call: Call) -> Any:
        """§5.1 ``dialog.getPublicOccupants``: ``{items: [User]}``, ``limit``/``skip``."""
        s = await self.api.user_session(call)
        try:
            limit = min(max(int(call.params.get("limit") or 100), 1), 100)
            skip = max(int(call.params.get("skip") or 0), 0)
        except ValueError:
            raise ApiError(422, {"base": ["limit and skip must be integers"]}) from None
        ids = await self.api.store_call(
            self.store.public_occupants, s.app_id, call.match[1], limit, skip
        )
        rows = await self.api.db.run(fetch_many, s.app_id, ids)
        return {"items": [user_json(r) for r in rows], "limit": limit, "skip": skip}

    async def notifications(self, call: Call) -> Any:
        """§5.1 ``dialog.get/updateNotificationsSettings``: ``{notifications: {enabled}}``."""
        s = await self.api.user_session(call)
        enabled = None
        if call.request.method == b"PUT":
            if "enabled" not in call.params:
                raise ApiError(422, {"enabled": ["is required"]})
            enabled = truthy(call.params["enabled"])
        on = await self.api.store_call(
            self.store.notifications, s.app_id, s.user_id, call.match[1], enabled
        )
        return {"notifications": {"enabled": int(on)}}
