"""The hosted chat REST API (ConnectyCube 6 / QuickBlox 2): sessions, users, dialogs,
message history.

Mounted on the core's HTTP site (``[http]``); the wire conventions are in
``rest.py``, the endpoints in ``sessions.py``, ``users.py`` and ``dialogs.py``
(over the ``dialogs`` plugin's store). See docs/rest-api.md and SDK-CONTRACT
§2-§3, §5.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from plugins.chat_api.dialogs import DialogRoutes
from plugins.chat_api.messages import MessageRoutes
from plugins.chat_api.rest import Api, ApiError, Call, no_session
from plugins.chat_api.sessions import SessionRoutes
from plugins.chat_api.signature import NonceStore
from plugins.chat_api.tables import chat_api_users
from plugins.chat_api.users import UserRoutes
from xmppd.accounts import App, TokenInfo
from xmppd.config import opt
from xmppd.plugin import Plugin, PluginContext
from xmppd.storage.tables import apps

# Where the SDKs send their calls; one API resource serves them all.
MOUNTS = ("/session.json", "/login.json", "/users.json", "/users", "/chat")


def _app_by_key(conn: Any, auth_key: str) -> App | None:
    row = conn.execute(select(apps).where(apps.c.auth_key == auth_key)).first()
    return App(row.id, row.name, row.auth_key, row.auth_secret) if row else None


class ChatApi(Plugin):
    """Serves ``/session.json``, ``/login.json``, ``/users...``, ``/chat/Dialog...``
    and ``/chat/Message...``."""

    name = "chat_api"
    implements = (
        "ConnectyCube REST API 6 (sessions, users, dialogs, history)",
        "QuickBlox REST API 2",
    )
    depends = ("dialogs",)
    tables = (chat_api_users,)
    migrations = "migrations"

    @dataclass(frozen=True)
    class Config:
        session_ttl: int = opt(
            7200, "Seconds an API session (token) lives after its last use.", min=60
        )
        signature_skew: int = opt(
            300, "Seconds a signed QuickBlox session's timestamp may be off.", min=10
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.db = ctx.db
        self.api = Api()
        self.nonces = NonceStore(ctx.clock, ctx.config.signature_skew)
        SessionRoutes(self)
        UserRoutes(self)
        DialogRoutes(self)
        MessageRoutes(self)
        if ctx.http is not None:
            for prefix in MOUNTS:
                ctx.http.mount(prefix, self.api)

    def now(self) -> datetime:
        return self.ctx.accounts.clock()

    async def session(self, call: Call) -> TokenInfo:
        """The live session of the call's token; 401 (§2 text) otherwise."""
        if not call.token:
            raise no_session()
        info = await self.ctx.accounts.check_token(call.token, self.ctx.config.session_ttl)
        if info is None:
            raise no_session()
        return info

    async def app_by_key(self, auth_key: str | None) -> App:
        """The app of a ``CB-AuthKey`` header (sign-up without a session)."""
        app = await self.db.run(_app_by_key, auth_key) if auth_key else None
        if app is None:
            raise no_session()
        return app


__all__ = ["ApiError", "ChatApi"]
