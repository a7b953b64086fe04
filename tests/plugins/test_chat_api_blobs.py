"""chat_api storage (SDK-CONTRACT §5.3, issue 3 "Blobs") through the real HTTP
listener: create -> upload (the SDK's multipart form) -> complete -> download,
private blobs behind a session of their app, size caps, names that are never
paths, delete by the owner only."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlsplit

import pytest_twisted

from tests.plugins.chat_api_support import app_session, cc, sign_up, user_session
from tests.plugins.chat_api_support import start as start_web
from tests.plugins.test_chat_api_dialogs import people

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def form(fields: list[tuple[str, str]], data: bytes) -> tuple[bytes, str]:
    """What the SDK posts (§5.3 step 2): the URL's query fields, then ``file``
    with no filename, as ``application/octet-stream``."""
    boundary = "----xmppdtestboundary7MA4YWxkTrZu0gW"
    parts = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    head = "".join(parts).encode()
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def create(web, token, name="photo.png", ctype="image/png", public=False):
    body = {"blob": {"name": name, "content_type": ctype, "public": public}}
    r = await web.request("POST", "/blobs.json", json_body=body, headers=cc(token))
    assert r.code == 201, r.body
    return r.json["blob"]


async def upload(web, token, blob, data):
    """Step 2 as the SDK does it: POST to the URL without its query."""
    url = urlsplit(blob["blob_object_access"]["params"])
    body, ctype = form(parse_qsl(url.query), data)
    return await web.request(
        "POST", url.path, body=body, headers={**cc(token), "Content-Type": ctype}
    )


async def create_and_upload(web, token, data=PNG, **kw):
    blob = await create(web, token, **kw)
    r = await upload(web, token, blob, data)
    assert r.code == 201, r.body
    r = await web.request(
        "PUT",
        f"/blobs/{blob['id']}/complete.json",
        json_body={"blob": {"size": len(data)}},
        headers=cc(token),
    )
    assert r.code == 200, r.body
    return blob


@pytest_twisted.ensureDeferred
async def test_public_blob_create_upload_complete_download(tmp_path, db_url):
    """§5.3 createAndUpload and publicUrl: the blob object, an absolute upload URL
    on our own site, the bytes on disk under var/blobs/{uid}, served to anyone
    with their content type."""
    web = await start_web(tmp_path, db_url)
    try:
        _, tok = await people(web, "ann")
        blob = await create(web, tok["ann"], public=True)
        assert len(blob["uid"]) == 32 and int(blob["uid"], 16) >= 0
        assert blob["content_type"] == "image/png" and blob["name"] == "photo.png"
        assert blob["public"] is True and blob["size"] is None and blob["created_at"]
        access = blob["blob_object_access"]["params"]
        url = urlsplit(access)
        assert access.startswith(web.url("/").decode()) and url.query
        assert url.path == f"/blobs/upload/{blob['uid']}"

        r = await upload(web, tok["ann"], blob, PNG)
        assert r.code == 201, r.body
        stored = tmp_path / "var" / "blobs" / blob["uid"]
        assert stored.read_bytes() == PNG

        r = await web.request(
            "PUT",
            f"/blobs/{blob['id']}/complete.json",
            json_body={"blob": {"size": len(PNG) + 1}},
            headers=cc(tok["ann"]),
        )
        assert r.code == 422, r.body  # the claimed size must match the upload
        r = await web.request(
            "PUT",
            f"/blobs/{blob['id']}/complete.json",
            json_body={"size": len(PNG)},  # SDK-CONTRACT's {size}
            headers=cc(tok["ann"]),
        )
        assert r.code == 200, r.body

        r = await web.request("GET", f"/blobs/{blob['uid']}")
        assert r.code == 200 and r.body == PNG
        assert r.header("content-type") == "image/png"
        assert r.header("x-content-type-options") == "nosniff"

        r = await web.request("GET", f"/blobs/{blob['id']}.json", headers=cc(tok["ann"]))
        assert r.code == 200 and r.json["blob"]["size"] == len(PNG)
        assert r.json["blob"]["uid"] == blob["uid"]
        r = await web.request("GET", "/blobs.json", headers=cc(tok["ann"]))
        assert [i["blob"]["id"] for i in r.json["items"]] == [blob["id"]]

        r = await upload(web, tok["ann"], blob, b"again")  # complete: no more writes
        assert r.code == 409
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_private_blob_needs_a_session_of_its_app(tmp_path, db_url):
    """§5.3 privateUrl: ``?token=`` (or the header) of the blob's app; none: 401;
    another app's token: refused for download, upload and info."""
    web = await start_web(tmp_path, db_url)
    try:
        _, tok = await people(web, "ann", "bob")
        raw = b"plain text, private"
        blob = await create(web, tok["ann"], name="notes.txt", ctype="text/plain")
        r = await web.request(
            "POST",
            f"/blobs/upload/{blob['uid']}",
            body=raw,
            headers={**cc(tok["ann"]), "Content-Type": "application/octet-stream"},
        )
        assert r.code == 201, r.body  # a raw body works too

        other_app = await web.h.accounts.create_app("other")
        other_token = await app_session(web, other_app)
        await sign_up(web, other_token, "eve")
        eve = await user_session(web, "eve", app=other_app)
        r = await upload(web, eve, blob, b"evil")
        assert r.code == 404
        r = await web.request("GET", f"/blobs/{blob['id']}.json", headers=cc(eve))
        assert r.code == 404

        r = await web.request(
            "PUT",
            f"/blobs/{blob['id']}/complete.json",
            json_body={"blob": {"size": len(raw)}},
            headers=cc(tok["ann"]),
        )
        assert r.code == 200, r.body

        r = await web.request("GET", f"/blobs/{blob['uid']}")
        assert r.code == 401
        assert r.json == {"errors": {"base": ["Required session does not exist"]}}
        r = await web.request("GET", f"/blobs/{blob['uid']}?token=nonsense")
        assert r.code == 401
        r = await web.request("GET", f"/blobs/{blob['uid']}?token={eve}")
        assert r.code == 403
        r = await web.request("GET", f"/blobs/{blob['uid']}?token={tok['bob']}")
        assert r.code == 200 and r.body == raw
        assert r.header("content-type") == "text/plain"
        assert r.header("content-disposition") == "attachment; filename*=UTF-8''notes.txt"
        r = await web.request("GET", f"/blobs/{blob['uid']}", headers=cc(tok["ann"]))
        assert r.code == 200 and r.body == raw
        r = await web.request("GET", f"/blobs/{blob['id']}.json", headers=cc(tok["bob"]))
        assert r.code == 404  # someone else's private blob: no info either
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_size_limits_per_route(tmp_path, db_url):
    """``max_blob_size`` bounds an upload (413); the upload route takes bodies
    above ``[http] max_body_size`` while every other route keeps that cap."""
    web = await start_web(tmp_path, db_url, max_blob_size=2_000_000)
    try:
        _, tok = await people(web, "ann")
        big = os.urandom(1_500_000)  # above the 1 MiB site cap, below max_blob_size
        blob = await create_and_upload(web, tok["ann"], big, public=True)
        r = await web.request("GET", f"/blobs/{blob['uid']}")
        assert r.code == 200 and r.body == big

        blob = await create(web, tok["ann"])
        r = await upload(web, tok["ann"], blob, b"x" * 2_000_001)
        assert r.code == 413  # the file itself is too big
        r = await upload(web, tok["ann"], blob, b"x" * 2_200_000)
        assert r.code == 413  # beyond the upload route's body cap
        assert not (tmp_path / "var" / "blobs" / blob["uid"]).exists()

        padding = {"blob": {"name": "n", "content_type": "image/png", "x": "y" * 1_100_000}}
        r = await web.request("POST", "/blobs.json", json_body=padding, headers=cc(tok["ann"]))
        assert r.code == 413  # the JSON routes keep the site's cap
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_names_are_never_paths(tmp_path, db_url):
    """A ``..``/slash name is only a name: the file is var/blobs/{uid}; a bad
    content type is refused; a uid that is not ours is not a route."""
    web = await start_web(tmp_path, db_url)
    try:
        _, tok = await people(web, "ann")
        name = "../../etc/passwd/x\\y"
        blob = await create_and_upload(web, tok["ann"], b"data", name=name, public=True)
        assert blob["name"] == name
        files = sorted(p.name for p in (tmp_path / "var" / "blobs").iterdir())
        assert files == [blob["uid"]]
        assert not (tmp_path / "etc").exists()
        r = await web.request("GET", f"/blobs/{blob['uid']}")
        assert r.code == 200 and r.body == b"data"
        disposition = r.header("content-disposition")
        assert "/" not in disposition and ".." in disposition  # percent-encoded

        r = await web.request("GET", "/blobs/..%2F..%2Fetc%2Fpasswd")
        assert r.code == 400
        r = await web.request("GET", "/blobs/" + "0" * 31 + "g")
        assert r.code == 404
        bad = {"blob": {"name": "a", "content_type": "text/html\r\nX-Evil: 1"}}
        r = await web.request("POST", "/blobs.json", json_body=bad, headers=cc(tok["ann"]))
        assert r.code == 422
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_delete_by_owner_only(tmp_path, db_url):
    """§5.3 storage.delete: another user of the app gets 403; the owner's delete
    removes the row and the file."""
    web = await start_web(tmp_path, db_url)
    try:
        _, tok = await people(web, "ann", "bob")
        blob = await create_and_upload(web, tok["ann"], public=True)
        stored = tmp_path / "var" / "blobs" / blob["uid"]
        assert stored.exists()
        r = await web.request("DELETE", f"/blobs/{blob['id']}.json", headers=cc(tok["bob"]))
        assert r.code == 403
        r = await web.request("DELETE", f"/blobs/{blob['id']}.json")
        assert r.code == 401
        r = await web.request("DELETE", f"/blobs/{blob['id']}.json", headers=cc(tok["ann"]))
        assert r.code == 200
        assert not stored.exists()
        r = await web.request("GET", f"/blobs/{blob['uid']}")
        assert r.code == 404
        r = await web.request("GET", f"/blobs/{blob['id']}.json", headers=cc(tok["ann"]))
        assert r.code == 404
    finally:
        await web.stop()
