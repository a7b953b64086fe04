"""API sessions (SDK-CONTRACT §3): ConnectyCube's unsigned and QuickBlox's
signed ``POST /session.json`` (with a login and password, as a new guest, or
through an identity provider, ``providers.py``), ``GET``/``DELETE``, and
``POST``/``DELETE /login.json``, which turns the same token into a user session
and back."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from plugins.chat_api import providers
from plugins.chat_api.rest import ApiError, Call
from plugins.chat_api.signature import check_signature
from plugins.chat_api.tables import chat_api_users as profiles
from plugins.chat_api.users import fetch, iso, sign_up, sign_up_guest, touch, user_json
from xmppd import accounts
from xmppd.storage.tables import users

if TYPE_CHECKING:
    from plugins.chat_api import ChatApi


def _find_user(conn: Any, app_id: int, credentials: dict[str, Any]) -> Any:
    """The user named by ``login`` or ``email`` whose ``password`` matches, or None.
    An unknown user costs the same key derivation as a wrong password."""
    if credentials.get("login"):
        row = fetch(conn, app_id, login=str(credentials["login"]))
    elif credentials.get("email"):
        row = fetch(conn, app_id, email=str(credentials["email"]))
    else:
        row = None
    user = accounts.User(row.id, row.app_id, row.login) if row is not None else None
    if accounts.verify_password(conn, user, str(credentials.get("password") or "")):
        return row
    return None


def _firebase_user(conn: Any, app_id: int, claims: dict[str, Any], now: Any) -> Any:
    """The app's account of this Firebase uid (``sub``), created on its first
    sign-in (login ``firebase-{uid}``, a random password nobody knows); its
    ``phone`` is set to the token's verified ``phone_number`` each time.

    Not a look-up by the ``phone`` column: any user may put any number on his
    profile, and would then receive that number's sign-ins (docs/auth.md)."""
    uid, phone = claims["sub"], claims["phone_number"]
    query = select(profiles.c.user_id).join(users, users.c.id == profiles.c.user_id)
    query = query.where(users.c.app_id == app_id, profiles.c.firebase_uid == uid)
    user_id = conn.execute(query.order_by(profiles.c.user_id)).scalar()
    if user_id is None:
        login = f"firebase-{uid}"
        if fetch(conn, app_id, login=login) is not None:  # taken by a sign-up: another
            login = f"firebase-{secrets.token_hex(8)}"
        account = {"login": login, "password": secrets.token_urlsafe(32)}
        user_id = sign_up(conn, app_id, account, now).id
    query = update(profiles).where(profiles.c.user_id == user_id)
    conn.execute(query.values(firebase_uid=uid, phone=phone))
    return fetch(conn, app_id, id=user_id)


def _is_guest(credentials: dict[str, Any]) -> bool:
    """ConnectyCube sends ``user: {guest: '1', full_name}`` (or ``true``)."""
    return str(credentials.get("guest", "")).lower() in ("1", "true")


def _unauthorized() -> ApiError:
    return ApiError(401, ["Unauthorized"])  # same answer for an unknown user


class SessionRoutes:
    """The ``/session`` and ``/login`` endpoints, on the plugin's API resource."""

    def __init__(self, api: ChatApi) -> None:
        self.api = api
        api.api.route("POST", r"session\.json", self.create)
        api.api.route("GET", r"session\.json", self.show)
        api.api.route("DELETE", r"session\.json", self.destroy)
        api.api.route("POST", r"login\.json", self.login)
        api.api.route("DELETE", r"login\.json", self.logout)

    async def create(self, call: Call) -> Any:
        """§3.1 (application_id + auth_key) and §3.2 (the same, signed)."""
        params = call.params
        try:
            app = await self.api.ctx.accounts.get_app(int(params.get("application_id")))
        except (TypeError, ValueError):
            app = None
        key = str(params.get("auth_key") or "")
        if app is None or not hmac.compare_digest(key.encode(), app.auth_key.encode()):
            raise ApiError(401, {"base": ["Unknown application_id or auth_key"]})
        if "signature" in params:  # QuickBlox: check the HMAC first, then spend the nonce
            check_signature(params, app.auth_secret)
            self.api.nonces.check(app.id, str(params.get("nonce")), str(params.get("timestamp")))
        row = None
        credentials = params.get("user")
        if params.get("provider"):
            row = await self._by_provider(app.id, params)
        elif isinstance(credentials, dict) and _is_guest(credentials):
            row = await self.api.db.run(sign_up_guest, app.id, credentials, self.api.now())
            self.api.ctx.accounts.forget_user(row.id)
        elif isinstance(credentials, dict) and "password" in credentials:
            row = await self.api.db.run(_find_user, app.id, credentials)
            if row is None:
                raise _unauthorized()
        if row is not None:
            await self.api.db.run(touch, row.id, self.api.now())
        ttl = self.api.ctx.config.session_ttl
        token = await self.api.ctx.accounts.issue_token(app.id, row and row.id, ttl)
        info = await self.api.ctx.accounts.check_token(token, ttl)
        return 201, await self._session(call, token, info, params.get("nonce"))

    async def _by_provider(self, app_id: int, params: dict[str, Any]) -> Any:
        """``provider=firebase_phone``: a verified Firebase phone sign-in finds or
        creates its user; other providers are 422."""
        if params["provider"] not in providers.SUPPORTED:
            raise providers.unsupported()
        claims = await self.api.firebase.verify(params)
        row = await self.api.db.run(_firebase_user, app_id, claims, self.api.now())
        self.api.ctx.accounts.forget_user(row.id)
        return row

    async def show(self, call: Call) -> Any:
        info = await self.api.session(call)
        return await self._session(call, call.token, info)

    async def destroy(self, call: Call) -> Any:
        await self.api.session(call)
        await self.api.ctx.accounts.revoke_token(call.token)
        return {}

    async def login(self, call: Call) -> Any:
        """§3.1: the current session becomes the user's, keeping its token (which
        becomes the user's XMPP password too, §3.3)."""
        info = await self.api.session(call)
        row = await self.api.db.run(_find_user, info.app_id, call.params)
        if row is None:
            raise _unauthorized()
        await self.api.ctx.accounts.attach_user_to_token(call.token, row.id)
        await self.api.db.run(touch, row.id, self.api.now())
        return {"user": user_json(row)}

    async def logout(self, call: Call) -> Any:
        await self.api.session(call)
        await self.api.ctx.accounts.detach_user_from_token(call.token)
        return {}

    async def _session(
        self, call: Call, token: str, info: accounts.TokenInfo, nonce: Any = None
    ) -> dict[str, Any]:
        """The Session object (§3.1) and QuickBlox's expiry header (§3.2)."""
        created = info.created_at or self.api.now()
        body: dict[str, Any] = {
            "id": int.from_bytes(hashlib.sha256(token.encode()).digest()[:6], "big"),
            "user_id": info.user_id or 0,
            "application_id": info.app_id,
            "token": token,
            "ts": int(created.timestamp()),
            "created_at": iso(created),
            "updated_at": iso(created),
        }
        if nonce is not None:
            body["nonce"] = int(nonce) if str(nonce).isdigit() else nonce
        if info.user_id:
            row = await self.api.db.run(fetch, info.app_id, id=info.user_id)
            if row is not None:
                body["user"] = user_json(row)
        call.headers["QB-Token-ExpirationDate"] = iso(info.expires_at) or ""
        return {"session": body}
