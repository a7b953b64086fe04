"""Users of an application (SDK-CONTRACT §3.1): sign-up, look-up, the ``v2``
list with filters and paging, update and delete of one's own account.

A user is always looked up inside the session's application: another app's user
is "not found", never shown.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from plugins.chat_api.rest import ApiError, Call
from plugins.chat_api.tables import chat_api_users as profiles
from xmppd import accounts
from xmppd.storage.tables import users

if TYPE_CHECKING:
    from plugins.chat_api import ChatApi

PROFILE_FIELDS = ("phone", "website", "custom_data", "tag_list", "external_user_id")
SORTABLE = ("id", "login", "email", "full_name", "created_at", "updated_at", "last_request_at")
FILTERABLE = ("id", "login", "email", "full_name", "phone", "external_user_id")
DEFAULT_LIMIT = 10  # QuickBlox's per_page default
MAX_LIMIT = 100


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, as the hosted APIs write timestamps."""
    return None if dt is None else accounts._utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_json(row: Any) -> dict[str, Any]:
    """The User object both SDKs read (SDK-CONTRACT §3.1)."""
    ext = row.external_user_id
    return {
        "id": row.id,
        "full_name": row.full_name,
        "email": row.email,
        "login": row.login,
        "phone": row.phone,
        "website": row.website,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "last_request_at": iso(row.last_request_at),
        "external_user_id": int(ext) if ext and ext.isdigit() else ext,
        "custom_data": row.custom_data,
        "user_tags": row.tag_list,
        "is_guest": False,
    }


def _profile_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name in PROFILE_FIELDS:
        if name in fields:
            value = fields[name]
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            elif isinstance(value, dict):
                value = json.dumps(value)
            values[name] = None if value is None else str(value)
    return values


def _query() -> Any:
    columns = [profiles.c[n] for n in (*PROFILE_FIELDS, "last_request_at")]
    joined = users.outerjoin(profiles, profiles.c.user_id == users.c.id)
    return select(users, *columns).select_from(joined)


def fetch(conn: Connection, app_id: int, **where: Any) -> Any:
    """One user of the app by column (``id=``, ``login=``), or None."""
    query = _query().where(users.c.app_id == app_id)
    for name, value in where.items():
        query = query.where(users.c[name] == value)
    return conn.execute(query).first()


def fetch_many(conn: Connection, app_id: int, ids: list[int]) -> list[Any]:
    """The app's users among ``ids``, in that order (unknown ids skipped)."""
    if not ids:
        return []
    rows = conn.execute(_query().where(users.c.app_id == app_id, users.c.id.in_(ids))).all()
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def sign_up(conn: Connection, app_id: int, fields: dict[str, Any], now: datetime) -> Any:
    """Create the account and its profile in one transaction."""
    login = str(fields.get("login") or fields.get("email") or "")
    email = fields.get("email")
    if not login or not fields.get("password"):
        raise ApiError(422, {"base": ["login or email, and password, are required"]})
    if fetch(conn, app_id, login=login) is not None:
        raise ApiError(422, {"login": ["has already been taken"]})
    if email and fetch(conn, app_id, email=email) is not None:
        raise ApiError(422, {"email": ["has already been taken"]})
    try:
        user = accounts.create_user(
            conn, app_id, login, str(fields["password"]), email, fields.get("full_name"), now=now
        )
    except accounts.AccountError as e:
        raise ApiError(422, {"base": [str(e)]}) from None
    conn.execute(insert(profiles).values(user_id=user.id, **_profile_values(fields)))
    return fetch(conn, app_id, id=user.id)


def update_user(conn: Connection, app_id: int, user_id: int, fields: dict, now: datetime) -> Any:
    core = {k: fields[k] for k in ("login", "email", "full_name") if k in fields}
    for name in ("login", "email"):
        other = fetch(conn, app_id, **{name: core[name]}) if core.get(name) else None
        if other is not None and other.id != user_id:
            raise ApiError(422, {name: ["has already been taken"]})
    try:
        accounts.update_user(conn, user_id, now=now, **core)
    except accounts.AccountError as e:
        raise ApiError(422, {"base": [str(e)]}) from None
    values = _profile_values(fields)
    if values:
        exists = conn.execute(select(profiles.c.user_id).where(profiles.c.user_id == user_id))
        if exists.first() is None:
            conn.execute(insert(profiles).values(user_id=user_id, **values))
        else:
            conn.execute(update(profiles).where(profiles.c.user_id == user_id).values(**values))
    return fetch(conn, app_id, id=user_id)


def touch(conn: Connection, user_id: int, now: datetime) -> None:
    """Record ``last_request_at`` (QuickBlox shows when a user last used the API)."""
    query = update(profiles).where(profiles.c.user_id == user_id).values(last_request_at=now)
    if not conn.execute(query).rowcount:
        try:
            conn.execute(insert(profiles).values(user_id=user_id, last_request_at=now))
        except IntegrityError:  # no such user any more
            pass


def _column(name: str) -> Any:
    return users.c[name] if name in users.c else profiles.c[name]


def list_users(conn: Connection, app_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """``GET /users/v2.json``: ``{field}`` or ``{field}[in|nin]`` filters (comma-joined
    lists), ``limit``, ``offset``/``skip``, ``sort_asc``/``sort_desc`` (§2, §3.1)."""
    query = _query().where(users.c.app_id == app_id)
    for name in FILTERABLE:
        if name not in params:
            continue
        column, value = _column(name), params[name]
        cast = (lambda v: _int(v, 0)) if name == "id" else str
        if isinstance(value, dict):
            for op, arg in value.items():
                items = arg if isinstance(arg, list) else str(arg).split(",")
                items = [cast(str(i).strip()) for i in items if str(i).strip()]
                if op == "in":
                    query = query.where(column.in_(items))
                elif op == "nin":
                    query = query.where(column.not_in(items))
                else:
                    raise ApiError(422, {name: [f"unsupported operator {op!r}"]})
        else:
            query = query.where(column == cast(value))
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    limit = min(max(_int(params.get("limit"), DEFAULT_LIMIT), 1), MAX_LIMIT)
    skip = max(_int(params.get("offset", params.get("skip")), 0), 0)
    order = [users.c.id]
    for key, direction in (("sort_asc", "asc"), ("sort_desc", "desc")):
        if key in params:
            name = str(params[key])
            if name not in SORTABLE:
                raise ApiError(422, {key: [f"cannot sort by {name!r}"]})
            order = [getattr(_column(name), direction)(), users.c.id]
    rows = conn.execute(query.order_by(*order).limit(limit).offset(skip)).all()
    items = [user_json(r) for r in rows]
    return {"limit": limit, "skip": skip, "total_entries": total, "items": items}


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise ApiError(422, {"base": [f"not an integer: {value!r}"]}) from None


class UserRoutes:
    """The ``/users`` endpoints, on the plugin's API resource."""

    def __init__(self, api: ChatApi) -> None:
        self.api = api
        api.api.route("POST", r"users\.json", self.sign_up)
        api.api.route("GET", r"users/v2\.json", self.list)
        api.api.route("GET", r"users/by_login\.json", self.by_login)
        api.api.route("GET", r"users/(\d+)\.json", self.get)
        api.api.route("PUT", r"users/(\d+)\.json", self.update)
        api.api.route("DELETE", r"users/(\d+)\.json", self.delete)

    async def sign_up(self, call: Call) -> Any:
        """§3.1: with an application session, or ``CB-AuthKey`` and no session."""
        if call.token:
            app_id = (await self.api.session(call)).app_id
        else:
            app = await self.api.app_by_key(call.header("CB-AuthKey"))
            app_id = app.id
        fields = call.params.get("user")
        if not isinstance(fields, dict):
            raise ApiError(422, {"user": ["is required"]})
        row = await self.api.db.run(sign_up, app_id, fields, self.api.now())
        self.api.ctx.accounts.forget_user(row.id)
        return 201, {"user": user_json(row)}

    async def get(self, call: Call) -> Any:
        session = await self.api.session(call)
        row = await self.api.db.run(fetch, session.app_id, id=int(call.match[1]))
        return {"user": self._found(row)}

    async def by_login(self, call: Call) -> Any:
        session = await self.api.session(call)
        row = await self.api.db.run(fetch, session.app_id, login=str(call.params.get("login")))
        return {"user": self._found(row)}

    async def list(self, call: Call) -> Any:
        session = await self.api.session(call)
        return await self.api.db.run(list_users, session.app_id, call.params)

    async def update(self, call: Call) -> Any:
        """§3.1: own account only (403 otherwise)."""
        session = await self._own(call)
        fields = call.params.get("user")
        if not isinstance(fields, dict):
            raise ApiError(422, {"user": ["is required"]})
        now = self.api.now()
        row = await self.api.db.run(update_user, session.app_id, session.user_id, fields, now)
        return {"user": user_json(row)}

    async def delete(self, call: Call) -> Any:
        """§3.1: own account only; its tokens and profile go with it (CASCADE)."""
        session = await self._own(call)
        await self.api.ctx.accounts.delete_user(session.user_id)
        return {}

    async def _own(self, call: Call) -> Any:
        session = await self.api.session(call)
        user_id = int(call.match[1])
        if session.user_id != user_id:
            row = await self.api.db.run(fetch, session.app_id, id=user_id)
            self._found(row)  # another app's user is not found (404), never forbidden
            raise ApiError(403, {"base": ["You are not allowed to change this user"]})
        return session

    @staticmethod
    def _found(row: Any) -> dict[str, Any]:
        if row is None:
            raise ApiError(404, {"base": ["Entity you are looking for was not found"]})
        return user_json(row)
