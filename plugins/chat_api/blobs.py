"""Storage (SDK-CONTRACT §5.3): ``POST /blobs.json``, the upload it points to
(``POST /blobs/upload/{uid}``, our own endpoint), ``PUT /blobs/{id}/complete.json``,
info, list, delete, and the download URLs ``/blobs/{uid}`` (public) and
``/blobs/{uid}?token=`` (private).

The bytes live on disk under ``blob_dir``, in a file named by the server-issued
``uid`` (32 hex digits) and nothing else: a client-supplied name is only ever a
column, never part of a path (SECURITY.md, CVE-2016-1231). Files are read and
written in a thread, never on the reactor.
"""

from __future__ import annotations

import os
import re
import secrets
from email import message_from_bytes
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from sqlalchemy import Connection, delete, insert, select, update
from twisted.internet.threads import deferToThread

from plugins.chat_api.rest import ApiError, Call, Raw, no_session
from plugins.chat_api.tables import chat_api_blobs as blobs
from plugins.chat_api.users import iso

if TYPE_CHECKING:
    from plugins.chat_api import ChatApi

UID = r"[0-9a-f]{32}"
_UID = re.compile(UID)
_CTYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
MULTIPART_OVERHEAD = 64 * 1024  # form fields and boundaries around the file
INLINE = ("image/", "audio/", "video/")


def blob_json(row: Any) -> dict[str, Any]:
    """The blob object (SDK-CONTRACT §5.3)."""
    return {
        "id": row.id,
        "uid": row.uid,
        "content_type": row.content_type,
        "name": row.name,
        "size": row.size,
        "public": bool(row.public),
        "blob_status": "complete" if row.completed else None,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def _one(conn: Connection, **where: Any) -> Any:
    query = select(blobs)
    for name, value in where.items():
        query = query.where(blobs.c[name] == value)
    return conn.execute(query).first()


def _create(conn: Connection, values: dict[str, Any]) -> Any:
    result = conn.execute(insert(blobs).values(**values))
    return _one(conn, id=result.inserted_primary_key[0])


def _update(conn: Connection, blob_id: int, **values: Any) -> Any:
    conn.execute(update(blobs).where(blobs.c.id == blob_id).values(**values))
    return _one(conn, id=blob_id)


def _list(conn: Connection, app_id: int, user_id: int | None, limit: int, skip: int) -> Any:
    owner = blobs.c.user_id.is_(None) if user_id is None else blobs.c.user_id == user_id
    query = select(blobs).where(blobs.c.app_id == app_id, owner)
    return conn.execute(query.order_by(blobs.c.id).limit(limit).offset(skip)).all()


def _delete(conn: Connection, blob_id: int) -> None:
    conn.execute(delete(blobs).where(blobs.c.id == blob_id))


def multipart_file(body: bytes, content_type: str) -> bytes | None:
    """The ``file`` field of a ``multipart/form-data`` body (what the SDK sends,
    SDK-CONTRACT §5.3 step 2), or None."""
    head = b"MIME-Version: 1.0\r\nContent-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    msg = message_from_bytes(head + body)
    if not msg.is_multipart():
        return None
    for part in msg.get_payload():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return None


def _write(directory: str, uid: str, data: bytes) -> None:
    """Write ``data`` as the blob ``uid``: a temporary file, then an atomic rename."""
    if not _UID.fullmatch(uid):
        raise ValueError("bad uid")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, uid)
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.replace(path + ".part", path)


def _read(directory: str, uid: str) -> bytes | None:
    if not _UID.fullmatch(uid):
        return None
    try:
        with open(os.path.join(directory, uid), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _remove(directory: str, uid: str) -> None:
    if _UID.fullmatch(uid):
        for path in (os.path.join(directory, uid), os.path.join(directory, uid + ".part")):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def _not_found() -> ApiError:
    return ApiError(404, {"base": ["Blob not found"]})


class BlobRoutes:
    """The ``/blobs`` endpoints, on the plugin's API resource."""

    def __init__(self, api: ChatApi) -> None:
        self.api = api
        config = api.ctx.config
        self.directory = api.ctx.resolve(config.blob_dir)
        self.max_size = config.max_blob_size
        self.upload_cap = config.max_blob_size + MULTIPART_OVERHEAD  # body cap, /blobs/upload
        route = api.api.route
        route("POST", r"blobs\.json", self.create)
        route("GET", r"blobs\.json", self.list)
        route("GET", r"blobs/(?P<id>\d+)\.json", self.show)
        route("DELETE", r"blobs/(?P<id>\d+)\.json", self.delete)
        route("PUT", r"blobs/(?P<id>\d+)/complete\.json", self.complete)
        route("POST", rf"blobs/upload/(?P<uid>{UID})", self.upload)
        route("GET", rf"blobs/(?P<uid>{UID})", self.download)

    async def _owned(self, call: Call, **where: Any) -> Any:
        """The blob, if the caller's session owns it: 404 in another app, 403 for
        another user of the same app."""
        info = await self.api.session(call)
        row = await self.api.db.run(_one, **where)
        if row is None or row.app_id != info.app_id:
            raise _not_found()
        if row.user_id != info.user_id:
            raise ApiError(403, {"base": ["You are not the owner of this blob"]})
        return row

    def _base(self, call: Call) -> str:
        request = call.request
        scheme = "https" if request.isSecure() else "http"
        host = call.header("host") or ""
        if not _HOST.fullmatch(host):
            addr = request.getHost()
            host = f"{addr.host}:{addr.port}"
        return f"{scheme}://{host}"

    async def create(self, call: Call) -> Any:
        """§5.3 step 1: the blob and where to upload its bytes (``blob_object_access``)."""
        info = await self.api.session(call)
        fields = call.params.get("blob")
        if not isinstance(fields, dict):
            fields = call.params
        ctype = str(fields.get("content_type") or "application/octet-stream").strip()
        if len(ctype) > 255 or not _CTYPE.fullmatch(ctype):
            raise ApiError(422, {"content_type": ["is invalid"]})
        name = fields.get("name")
        now = self.api.now()
        values = {
            "app_id": info.app_id,
            "user_id": info.user_id,
            "uid": secrets.token_hex(16),
            "content_type": ctype,
            "name": None if name is None else str(name)[:255],
            "size": None,
            "public": _truthy(fields.get("public")),
            "completed": False,
            "created_at": now,
            "updated_at": now,
        }
        row = await self.api.db.run(_create, values)
        query = urlencode({"Content-Type": ctype, "key": row.uid})
        body = blob_json(row)
        body["blob_object_access"] = {
            "id": row.id,
            "blob_id": row.id,
            "object_access_type": "Write",
            "expires": None,
            "params": f"{self._base(call)}/blobs/upload/{row.uid}?{query}",
        }
        return 201, {"blob": body}

    async def upload(self, call: Call) -> Any:
        """§5.3 step 2: the bytes, as the SDK's multipart ``file`` field or a raw body."""
        row = await self._owned(call, uid=call.match["uid"])
        if row.completed:
            raise ApiError(409, {"base": ["Blob is already complete"]})
        request = call.request
        ctype = call.header("content-type") or ""

        def body() -> bytes | None:
            request.content.seek(0)
            data = request.content.read()
            if ctype.lower().startswith("multipart/"):
                return multipart_file(data, ctype)
            return data

        data = await deferToThread(body)
        if data is None:
            raise ApiError(422, {"file": ["is missing"]})
        if len(data) > self.max_size:
            raise ApiError(413, {"file": [f"is larger than {self.max_size} bytes"]})
        await deferToThread(_write, self.directory, row.uid, data)
        await self.api.db.run(_update, row.id, size=len(data), updated_at=self.api.now())
        return 201, {}

    async def complete(self, call: Call) -> Any:
        """§5.3 step 3: ``{"blob": {"size": N}}`` (or ``{size}``) must match the upload."""
        row = await self._owned(call, id=int(call.match["id"]))
        fields = call.params.get("blob")
        size = (fields if isinstance(fields, dict) else call.params).get("size")
        if row.size is None:
            raise ApiError(422, {"base": ["Nothing was uploaded"]})
        if size is not None and str(size).strip() != str(row.size):
            raise ApiError(422, {"size": [f"does not match the upload ({row.size} bytes)"]})
        await self.api.db.run(_update, row.id, completed=True, updated_at=self.api.now())
        return {}

    async def show(self, call: Call) -> Any:
        """§5.3 ``storage.getInfo(id)``: the owner's blob, or a public one of the app."""
        info = await self.api.session(call)
        row = await self.api.db.run(_one, id=int(call.match["id"]))
        if row is None or row.app_id != info.app_id:
            raise _not_found()
        if not row.public and row.user_id != info.user_id:
            raise _not_found()
        return {"blob": blob_json(row)}

    async def list(self, call: Call) -> Any:
        """§5.3 ``storage.list``: the caller's blobs, paged like the users list."""
        info = await self.api.session(call)
        try:
            limit = min(max(int(call.params.get("limit") or 10), 1), 100)
            skip = max(int(call.params.get("skip") or call.params.get("offset") or 0), 0)
        except (TypeError, ValueError):
            raise ApiError(422, ["limit and skip must be integers"]) from None
        rows = await self.api.db.run(_list, info.app_id, info.user_id, limit, skip)
        return {"skip": skip, "limit": limit, "items": [{"blob": blob_json(r)} for r in rows]}

    async def delete(self, call: Call) -> Any:
        """§5.3 ``storage.delete(id)``: the owner only; the file goes too."""
        row = await self._owned(call, id=int(call.match["id"]))
        await self.api.db.run(_delete, row.id)
        await deferToThread(_remove, self.directory, row.uid)
        return {}

    async def download(self, call: Call) -> Any:
        """§5.3 ``publicUrl``/``privateUrl``: the bytes; a private blob needs a
        session of its app (``?token=`` or the header)."""
        row = await self.api.db.run(_one, uid=call.match["uid"])
        if row is None or not row.completed:
            raise _not_found()
        if not row.public:
            token = call.token or call.params.get("token")
            if not token or not isinstance(token, str):
                raise no_session()
            info = await self.api.ctx.accounts.check_token(
                token.strip(), self.api.ctx.config.session_ttl
            )
            if info is None:
                raise no_session()
            if info.app_id != row.app_id:
                raise ApiError(403, {"base": ["Forbidden"]})
        data = await deferToThread(_read, self.directory, row.uid)
        if data is None:
            raise _not_found()
        kind = "inline" if row.content_type.startswith(INLINE) else "attachment"
        disposition = kind + (f"; filename*=UTF-8''{quote(row.name, safe='')}" if row.name else "")
        call.headers.update(
            {
                "Content-Disposition": disposition,
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "public, max-age=3600" if row.public else "private, no-store",
            }
        )
        return Raw(data, row.content_type)
