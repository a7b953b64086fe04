"""The hosted chat REST API (ConnectyCube 6 / QuickBlox 2): sessions, users, dialogs,
message history.

Mounted on the core's HTTP site (``[http]``); the wire conventions are in
``rest.py``, the endpoints in ``sessions.py``, ``users.py`` and ``dialogs.py``
(over the ``dialogs`` plugin's store), ``blobs.py`` (storage, files under
``blob_dir``). See docs/rest-api.md and SDK-CONTRACT §2-§3, §5.1-§5.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from plugins.chat_api.blobs import BlobRoutes
from plugins.chat_api.dialogs import DialogRoutes
from plugins.chat_api.messages import MessageRoutes
from plugins.chat_api.providers import GOOGLE_KEYS_URL, Firebase, FirebaseKeys
from plugins.chat_api.rest import Api, ApiError, Call, no_session
from plugins.chat_api.search import SearchRoutes
from plugins.chat_api.sessions import SessionRoutes
from plugins.chat_api.signature import NonceStore
from plugins.chat_api.tables import chat_api_blobs, chat_api_users
from plugins.chat_api.users import UserRoutes
from xmppd.accounts import App, TokenInfo
from xmppd.config import opt
from xmppd.plugin import Plugin, PluginContext
from xmppd.storage.tables import apps

# Where the SDKs send their calls; one API resource serves them all.
MOUNTS = ("/session.json", "/login.json", "/users.json", "/users", "/chat", "/blobs.json", "/blobs")
UPLOADS = "/blobs/upload"  # mounted apart: its body cap is max_blob_size, not [http]'s


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
    tables = (chat_api_users, chat_api_blobs)
    migrations = "migrations"

    @dataclass(frozen=True)
    class Config:
        session_ttl: int = opt(
            7200, "Seconds an API session (token) lives after its last use.", min=60
        )
        signature_skew: int = opt(
            300, "Seconds a signed QuickBlox session's timestamp may be off.", min=10
        )
        blob_dir: str = opt(
            "var/blobs", "Where uploaded blobs are stored (relative: to the base dir).", path=True
        )
        max_blob_size: int = opt(
            26_214_400, "Largest blob in bytes (the upload body cap follows it).", min=1024
        )
        firebase_project_ids: list[str] = opt(
            [], "Firebase projects whose phone sign-ins open sessions (empty: disabled)."
        )
        firebase_keys_url: str = opt(
            GOOGLE_KEYS_URL, "Where Firebase ID token certificates are fetched (x509 JSON)."
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.db = ctx.db
        self.api = Api()
        self.nonces = NonceStore(ctx.clock, ctx.config.signature_skew)
        keys = FirebaseKeys(ctx.config.firebase_keys_url, ctx.clock)
        self.firebase = Firebase(keys, ctx.config.firebase_project_ids, ctx.clock)
        SessionRoutes(self)
        UserRoutes(self)
        DialogRoutes(self)
        MessageRoutes(self)
        SearchRoutes(self)
        blobs = BlobRoutes(self)
        if ctx.http is not None:
            for prefix in MOUNTS:
                ctx.http.mount(prefix, self.api)
            ctx.http.mount(UPLOADS, self.api, max_body_size=blobs.upload_cap)

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

    async def user_session(self, call: Call) -> TokenInfo:
        """A user's live session; an application session gets 403 (dialogs and
        messages belong to users, SDK-CONTRACT §5)."""
        session = await self.session(call)
        if not session.user_id:
            raise ApiError(403, {"base": ["Forbidden. Need user."]})
        return session

    async def store_call(self, fn: Any, *args: Any) -> Any:
        """Await a dialogs-store call; its refusals become 404, 403 and 422."""
        store = self.ctx.plugin("dialogs")
        try:
            return await fn(*args)
        except store.NotFoundError as e:
            raise ApiError(404, {"base": [e.message]}) from None
        except store.ForbiddenError as e:
            raise ApiError(403, {"base": [e.message]}) from None
        except store.InvalidError as e:
            raise ApiError(422, {e.field: [e.message]}) from None

    async def app_by_key(self, auth_key: str | None) -> App:
        """The app of a ``CB-AuthKey`` header (sign-up without a session)."""
        app = await self.db.run(_app_by_key, auth_key) if auth_key else None
        if app is None:
            raise no_session()
        return app


__all__ = ["ApiError", "ChatApi"]
