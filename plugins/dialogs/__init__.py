"""Dialogs: the hosted services' conversations (private, group, public,
broadcast), one store shared by every front end.

The REST API (``plugins/chat_api/dialogs.py``) uses it now; XMPP history
(``save_to_history``), chat markers and MUC rooms will use the same store
(docs/dialogs.md). Other plugins reach it with ``depends = ("dialogs",)`` and
``ctx.plugin("dialogs")``; every method returns a Deferred and raises the
errors of :mod:`plugins.dialogs.model`, also reachable as attributes of the
plugin (``store.NotFoundError``...), so a front end needs no import of this package.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred

from plugins.dialogs import query, store
from plugins.dialogs.model import Dialog, DialogError, ForbiddenError, InvalidError, NotFoundError
from plugins.dialogs.tables import dialogs_dialogs, dialogs_occupants
from xmppd.plugin import Plugin, PluginContext


class Dialogs(Plugin):
    """The dialogs store; every call is scoped to one application."""

    name = "dialogs"
    implements = ("ConnectyCube/QuickBlox chat dialogs (store)",)
    tables = (dialogs_dialogs, dialogs_occupants)
    migrations = "migrations"
    DialogError = DialogError
    NotFoundError = NotFoundError  # unknown id, or another application's dialog
    ForbiddenError = ForbiddenError  # the caller may not do this
    InvalidError = InvalidError  # a bad parameter; ``.field`` names it

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.db = ctx.db

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ctx.clock.seconds(), UTC)

    def room_jid(self, dialog: Dialog) -> str | None:
        """``{app_id}_{dialog_id}@muc.{domain}`` for public and group dialogs."""
        return dialog.room_jid(self.ctx.domain)

    def create(self, app_id: int, owner: int, fields: dict[str, Any]) -> Deferred:
        """-> ``(Dialog, created)``; a private pair's existing dialog is returned."""
        return self.db.run(store.create, app_id, owner, fields, self.now())

    def get(self, app_id: int, dialog_id: str, viewer: int | None = None) -> Deferred:
        return self.db.run(store.get, app_id, dialog_id, viewer)

    def list(self, app_id: int, viewer: int, params: dict[str, Any]) -> Deferred:
        return self.db.run(query.list_dialogs, app_id, viewer, params)

    def update(self, app_id: int, caller: int, dialog_id: str, changes: dict) -> Deferred:
        return self.db.run(store.update_dialog, app_id, caller, dialog_id, changes, self.now())

    def delete(self, app_id: int, caller: int, ids: list[str], force: bool = False) -> Deferred:
        return self.db.run(store.delete_dialogs, app_id, caller, ids, force)

    def subscribe(self, app_id: int, caller: int, dialog_id: str) -> Deferred:
        return self.db.run(store.subscribe, app_id, caller, dialog_id, self.now())

    def unsubscribe(self, app_id: int, caller: int, dialog_id: str) -> Deferred:
        return self.db.run(store.unsubscribe, app_id, caller, dialog_id)

    def public_occupants(self, app_id: int, dialog_id: str, limit: int, skip: int) -> Deferred:
        return self.db.run(store.public_occupants, app_id, dialog_id, limit, skip)

    def notifications(
        self, app_id: int, caller: int, dialog_id: str, enabled: bool | None = None
    ) -> Deferred:
        return self.db.run(store.notifications, app_id, caller, dialog_id, enabled)


__all__ = ["Dialog", "DialogError", "Dialogs", "ForbiddenError", "InvalidError", "NotFoundError"]
