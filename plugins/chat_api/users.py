"""Users of an application (SDK-CONTRACT §3.1): sign-up, look-up, the ``v2``
list with filters and paging, update and delete of one's own account.

A user is always looked up inside the session's application: another app's user
is "not found", never shown.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, String, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from plugins.chat_api.rest import ApiError, Call
from plugins.chat_api.tables import chat_api_users as profiles
from xmppd import accounts
from xmppd.storage.tables import users

if TYPE_CHECKING:
    from plugins.chat_api import ChatApi

PROFILE_FIELDS = (
    "phone",
    "website",
    "custom_data",
    "tag_list",
    "external_user_id",
    "blob_id",
    "avatar",
    "timezone",
)
SORTABLE = ("id", "login", "email", "full_name", "created_at", "updated_at", "last_request_at")
FILTERABLE = ("id", "login", "email", "full_name", "phone", "external_user_id")
DEFAULT_LIMIT = 10  # QuickBlox's per_page default
MAX_LIMIT = 100
MAX_FILTERS = 10  # filter[] items of one GET /users.json
MAX_VALUES = 100  # values of one ``in`` filter, tags of by_tags
# QuickBlox listUsers (qbUsers.js generateFilter): "{type} {field} {op} {value}".
QB_FIELDS = (
    "id", "full_name", "email", "login", "phone", "website",
    "created_at", "updated_at", "last_request_at", "external_user_id",
)  # fmt: skip
QB_DATES = ("created_at", "updated_at", "last_request_at")
QB_TYPES = ("string", "number", "date")
QB_OPS = ("gt", "lt", "ge", "le", "eq", "ne", "between", "in")
# qbProxy.js sends an array as ONE ``filter[]=`` value, String(array): several
# filters arrive comma-joined; a new one starts where "{type} {field} {op} " does.
_QB_NEXT_FILTER = re.compile(rf",(?=(?:{'|'.join(QB_TYPES)}) \S+ (?:{'|'.join(QB_OPS)}) )")


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
        "blob_id": row.blob_id,
        "avatar": row.avatar,
        "timezone": row.timezone,
        "is_guest": bool(row.is_guest),
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
    if "blob_id" in values:  # an integer id, or "" / null to clear it
        values["blob_id"] = _int(values["blob_id"], None, "blob_id")
    return values


def _query() -> Any:
    columns = [profiles.c[n] for n in (*PROFILE_FIELDS, "last_request_at", "is_guest")]
    joined = users.outerjoin(profiles, profiles.c.user_id == users.c.id)
    return select(users, *columns).select_from(joined)


def fetch(conn: Connection, app_id: int, **where: Any) -> Any:
    """One user of the app by column (``id=``, ``login=``), or None."""
    query = _query().where(users.c.app_id == app_id)
    for name, value in where.items():
        query = query.where(_column(name) == value)
    return conn.execute(query.order_by(users.c.id)).first()


def fetch_many(conn: Connection, app_id: int, ids: list[int]) -> list[Any]:
    """The app's users among ``ids``, in that order (unknown ids skipped)."""
    if not ids:
        return []
    rows = conn.execute(_query().where(users.c.app_id == app_id, users.c.id.in_(ids))).all()
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def sign_up(
    conn: Connection, app_id: int, fields: dict[str, Any], now: datetime, guest: bool = False
) -> Any:
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
    values = _profile_values(fields)
    conn.execute(insert(profiles).values(user_id=user.id, is_guest=guest, **values))
    return fetch(conn, app_id, id=user.id)


def sign_up_guest(conn: Connection, app_id: int, fields: dict[str, Any], now: datetime) -> Any:
    """ConnectyCube's guest session (``user: {guest: '1', full_name}``): a new
    account with a generated login and a random password nobody knows; its
    session token is its only credential (also for XMPP)."""
    full_name = str(fields.get("full_name") or "")[:255] or None
    login = f"guest-{secrets.token_hex(8)}"
    account = {"login": login, "password": secrets.token_urlsafe(32), "full_name": full_name}
    return sign_up(conn, app_id, account, now, guest=True)


def change_password(
    conn: Connection, user_id: int, fields: dict[str, Any], token: str, now: datetime
) -> None:
    """§3.1 ``user{password, old_password}`` (qbUsers.js update): the old one must
    match. New salt and SCRAM keys; the user's other API sessions are revoked, the
    caller's is kept and stays an XMPP password (docs/auth.md)."""
    user = accounts.get_user(conn, user_id)
    old = str(fields.get("old_password") or "")
    if not old or not accounts.verify_password(conn, user, old):
        raise ApiError(422, {"old_password": ["is incorrect"]})
    try:
        accounts.set_password(conn, user_id, str(fields["password"]), now, keep_token=token)
    except accounts.AccountError as e:
        raise ApiError(422, {"password": [str(e).split(": ", 1)[-1]]}) from None


def update_user(
    conn: Connection,
    app_id: int,
    user_id: int,
    fields: dict,
    now: datetime,
    token: str | None = None,
) -> Any:
    if "password" in fields:
        change_password(conn, user_id, fields, token or "", now)
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


def _int(value: Any, default: Any, field: str = "base") -> Any:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise ApiError(422, {field: [f"not an integer: {value!r}"]}) from None


# -- QuickBlox's older look-ups (qbUsers.js listUsers and get) ----------------


def _qb_value(name: str, kind: str, text: str) -> Any:
    """A filter value for column ``name``: an integer id, a date (ISO 8601 or
    unix seconds; the SDK may call it ``string``), else the text."""
    if name == "id":
        return _int(text, None, "filter")
    if name in QB_DATES:
        try:
            if text.replace(".", "", 1).isdigit():
                return datetime.fromtimestamp(float(text), UTC)
            return accounts._utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except (ValueError, OverflowError):
            raise ApiError(422, {"filter": [f"not a date: {text!r}"]}) from None
    return text


def _qb_filter(query: Any, item: Any) -> Any:
    """One ``{type} {field} {op} {value}`` filter (``number id gt 50``,
    ``string login in a,b``, ``date created_at between d1,d2``)."""
    parts = str(item).split(" ", 3)
    if len(parts) != 4:
        raise ApiError(422, {"filter": [f"expected 'type field operator value': {item!r}"]})
    kind, name, op, text = parts
    if kind not in QB_TYPES:
        raise ApiError(422, {"filter": [f"unknown type {kind!r}"]})
    if name not in QB_FIELDS:
        raise ApiError(422, {"filter": [f"cannot filter by {name!r}"]})
    if op not in QB_OPS:
        raise ApiError(422, {"filter": [f"unknown operator {op!r}"]})
    column = _column(name)
    if op in ("in", "between"):
        values = [_qb_value(name, kind, v.strip()) for v in text.split(",") if v.strip()]
        if op == "between" and len(values) != 2:
            raise ApiError(422, {"filter": ["between takes two comma-separated values"]})
        if len(values) > MAX_VALUES:
            raise ApiError(422, {"filter": [f"at most {MAX_VALUES} values"]})
        return query.where(column.between(*values) if op == "between" else column.in_(values))
    value = _qb_value(name, kind, text)
    compare = {
        "gt": column > value,
        "lt": column < value,
        "ge": column >= value,
        "le": column <= value,
        "eq": column == value,
        "ne": column != value,
    }
    return query.where(compare[op])


def _qb_page(conn: Connection, query: Any, params: dict[str, Any], order: list) -> dict:
    """QuickBlox's paged answer: ``{current_page, per_page, total_entries,
    items: [{"user": User}]}`` (``page`` from 1, ``per_page`` at most 100)."""
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    per_page = min(max(_int(params.get("per_page"), DEFAULT_LIMIT, "per_page"), 1), MAX_LIMIT)
    page = max(_int(params.get("page"), 1, "page"), 1)
    rows = conn.execute(query.order_by(*order).limit(per_page).offset((page - 1) * per_page))
    return {
        "current_page": page,
        "per_page": per_page,
        "total_entries": total,
        "items": [{"user": user_json(r)} for r in rows],
    }


def qb_list_users(conn: Connection, app_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """``GET /users.json``: ``filter[]=`` (at most ten, all must hold),
    ``order={asc|desc} {type} {field}``, ``page``, ``per_page``."""
    query = _query().where(users.c.app_id == app_id)
    filters = params.get("filter") or []
    filters = filters if isinstance(filters, list) else [filters]
    filters = [part for item in filters for part in _QB_NEXT_FILTER.split(str(item))]
    if len(filters) > MAX_FILTERS:
        raise ApiError(422, {"filter": [f"at most {MAX_FILTERS} filters"]})
    for item in filters:
        query = _qb_filter(query, item)
    order = [users.c.id]
    if params.get("order"):
        parts = str(params["order"]).split(" ")
        if len(parts) != 3 or parts[0] not in ("asc", "desc") or parts[1] not in QB_TYPES:
            raise ApiError(422, {"order": ["expected '{asc|desc} {type} {field}'"]})
        if parts[2] not in QB_FIELDS:
            raise ApiError(422, {"order": [f"cannot sort by {parts[2]!r}"]})
        order = [getattr(_column(parts[2]), parts[0])(), users.c.id]
    return _qb_page(conn, query, params, order)


def qb_by_full_name(conn: Connection, app_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """``GET /users/by_full_name.json?full_name=``: exact full name, paged."""
    name = str(params.get("full_name") or "")
    if not name:
        raise ApiError(422, {"full_name": ["is required"]})
    query = _query().where(users.c.app_id == app_id, users.c.full_name == name)
    return _qb_page(conn, query, params, [users.c.id])


def qb_by_tags(conn: Connection, app_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """``GET /users/by_tags.json?tags=a,b``: users with any of the tags, paged."""
    raw = params.get("tags") or ""
    tags = [t.strip() for t in (raw if isinstance(raw, list) else str(raw).split(","))]
    tags = [t for t in tags if t]
    if not tags or len(tags) > MAX_VALUES:
        raise ApiError(422, {"tags": [f"1 to {MAX_VALUES} tags are required"]})
    tag_list = func.replace(func.coalesce(profiles.c.tag_list, ""), " ", "", type_=String)
    padded = literal(",", String) + tag_list + literal(",", String)
    matches = [padded.contains(f",{t.replace(' ', '')},", autoescape=True) for t in tags]
    query = _query().where(users.c.app_id == app_id, or_(*matches))
    return _qb_page(conn, query, params, [users.c.id])


class UserRoutes:
    """The ``/users`` endpoints, on the plugin's API resource."""

    def __init__(self, api: ChatApi) -> None:
        self.api = api
        api.api.route("POST", r"users\.json", self.sign_up)
        api.api.route("GET", r"users\.json", self.qb_list)
        api.api.route("GET", r"users/v2\.json", self.list)
        api.api.route("GET", r"users/by_login\.json", self.by_login)
        api.api.route("GET", r"users/by_email\.json", self.by_email)
        api.api.route("GET", r"users/phone\.json", self.by_phone)
        api.api.route("GET", r"users/by_full_name\.json", self.by_full_name)
        api.api.route("GET", r"users/by_tags\.json", self.by_tags)
        api.api.route("GET", r"users/external/([^/]{1,255})\.json", self.by_external)
        api.api.route("GET", r"users/(\d+)\.json", self.get)
        api.api.route("PUT", r"users/(\d+)\.json", self.update)
        api.api.route("DELETE", r"users/(\d+)\.json", self.delete)
        api.api.route("DELETE", r"users/external/([^/]{1,255})\.json", self.delete_external)

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
        return await self._one(call, id=int(call.match[1]))

    async def by_login(self, call: Call) -> Any:
        return await self._one(call, login=str(call.params.get("login")))

    async def by_email(self, call: Call) -> Any:
        return await self._one(call, email=str(call.params.get("email")))

    async def by_phone(self, call: Call) -> Any:
        return await self._one(call, phone=str(call.params.get("phone")))

    async def by_external(self, call: Call) -> Any:
        return await self._one(call, external_user_id=call.match[1])

    async def list(self, call: Call) -> Any:
        session = await self.api.session(call)
        return await self.api.db.run(list_users, session.app_id, call.params)

    async def qb_list(self, call: Call) -> Any:
        session = await self.api.session(call)
        return await self.api.db.run(qb_list_users, session.app_id, call.params)

    async def by_full_name(self, call: Call) -> Any:
        session = await self.api.session(call)
        return await self.api.db.run(qb_by_full_name, session.app_id, call.params)

    async def by_tags(self, call: Call) -> Any:
        session = await self.api.session(call)
        return await self.api.db.run(qb_by_tags, session.app_id, call.params)

    async def update(self, call: Call) -> Any:
        """§3.1: own account only (403 otherwise); ``password`` with
        ``old_password`` changes the password."""
        session = await self._own(call, int(call.match[1]))
        fields = call.params.get("user")
        if not isinstance(fields, dict):
            raise ApiError(422, {"user": ["is required"]})
        now = self.api.now()
        row = await self.api.db.run(
            update_user, session.app_id, session.user_id, fields, now, call.token
        )
        return {"user": user_json(row)}

    async def delete(self, call: Call) -> Any:
        """§3.1: own account only. Its tokens and profile go with it (CASCADE); the
        core closes its XMPP streams and fires ``user-deleted`` (Accounts.delete_user)."""
        session = await self._own(call, int(call.match[1]))
        await self.api.ctx.accounts.delete_user(session.user_id)
        return {}

    async def delete_external(self, call: Call) -> Any:
        """QuickBlox ``users.delete({external})``: the same, named by external id."""
        session = await self.api.session(call)
        row = await self.api.db.run(fetch, session.app_id, external_user_id=call.match[1])
        self._found(row)
        await self._own(call, row.id)
        await self.api.ctx.accounts.delete_user(row.id)
        return {}

    async def _one(self, call: Call, **where: Any) -> Any:
        session = await self.api.session(call)
        row = await self.api.db.run(fetch, session.app_id, **where)
        return {"user": self._found(row)}

    async def _own(self, call: Call, user_id: int) -> Any:
        session = await self.api.session(call)
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
