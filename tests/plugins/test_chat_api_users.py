"""chat_api users (SDK-CONTRACT §3.1, §2): sign-up, look-ups, the v2 list with
filters and paging, own-account update and delete, isolation between apps, and
the plugin's migration on both backends."""

from __future__ import annotations

import pytest_twisted
from sqlalchemy import insert, select

from plugins.chat_api.tables import chat_api_users
from tests.plugins.chat_api_support import app_session, cc, qb, sign_up, start, user_session
from xmppd import accounts
from xmppd.storage import Database

NOT_FOUND = 404


@pytest_twisted.ensureDeferred
async def test_sign_up_fields_duplicate_login_and_auth_key_header(tmp_path):
    """§3.1: sign-up with the app session (JSON) or CB-AuthKey and no session; a
    taken login is 422 {"login": ["has already been taken"]}."""
    web = await start(tmp_path)
    try:
        token = await app_session(web)
        user = await sign_up(
            web,
            token,
            "alice",
            email="a@example.test",
            full_name="Alice",
            phone="123",
            custom_data='{"x":1}',
            tag_list="a,b",
            website="https://a.example",
            external_user_id=77,
        )
        assert user["login"] == "alice" and user["email"] == "a@example.test"
        assert (user["phone"], user["user_tags"], user["custom_data"]) == ("123", "a,b", '{"x":1}')
        assert user["external_user_id"] == 77 and user["is_guest"] is False
        assert user["created_at"].endswith("Z") and user["last_request_at"] is None
        body = {"user": {"login": "alice", "password": "password2"}}
        r = await web.request("POST", "/users.json", json_body=body, headers=cc(token))
        assert (r.code, r.json) == (422, {"errors": {"login": ["has already been taken"]}})
        r = await web.request(
            "POST",
            "/users.json",
            json_body={"user": {"login": "bob", "password": "password1"}},
            headers={"CB-AuthKey": web.app.auth_key},
        )
        assert r.code == 201 and r.json["user"]["login"] == "bob"
        r = await web.request("POST", "/users.json", json_body=body, headers={"CB-AuthKey": "x"})
        assert r.code == 401
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_qb_form_sign_up_with_percent_encoded_brackets(tmp_path):
    """§2, §3.2: ``user%5Blogin%5D=..`` form bodies with a QB-Token."""
    web = await start(tmp_path)
    try:
        token = await app_session(web)
        form = [
            ("user[login]", "carol"),
            ("user[password]", "password1"),
            ("user[tag_list][]", "x"),
        ]
        r = await web.request("POST", "/users.json", form=form, headers=qb(token))
        assert (r.code, r.json["user"]["login"], r.json["user"]["user_tags"]) == (201, "carol", "x")
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_get_by_id_and_by_login(tmp_path):
    """§3.1: GET /users/{id}.json and /users/by_login.json?login= → {"user"}."""
    web = await start(tmp_path)
    try:
        token = await app_session(web)
        user = await sign_up(web, token, "dave")
        r = await web.request("GET", f"/users/{user['id']}.json", headers=cc(token))
        assert (r.code, r.json["user"]["login"]) == (200, "dave")
        r = await web.request("GET", "/users/by_login.json?login=dave", headers=cc(token))
        assert r.json["user"]["id"] == user["id"]
        r = await web.request("GET", "/users/999.json", headers=cc(token))
        assert r.code == NOT_FOUND
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_v2_list_filters_paging_sorting(tmp_path, db_url):
    """§2/§3.1: id[in] and login[in] (comma-joined, brackets literal or encoded),
    limit/offset/skip, sort_asc/sort_desc on whitelisted fields; total_entries."""
    web = await start(tmp_path, db_url)
    try:
        token = await app_session(web)
        ids = [(await sign_up(web, token, f"u{i}"))["id"] for i in range(5)]
        r = await web.request("GET", "/users/v2.json", headers=cc(token))
        assert (r.json["limit"], r.json["skip"], r.json["total_entries"]) == (10, 0, 5)
        assert [u["id"] for u in r.json["items"]] == ids
        query = f"id%5Bin%5D={ids[0]}%2C{ids[2]}%2C{ids[4]}&sort_desc=login&limit=2&offset=1"
        r = await web.request("GET", f"/users/v2.json?{query}", headers=cc(token))
        assert r.json["total_entries"] == 3
        assert [u["login"] for u in r.json["items"]] == ["u2", "u0"]
        r = await web.request("GET", "/users/v2.json?login[in]=u1,u3&skip=1", headers=cc(token))
        assert [u["login"] for u in r.json["items"]] == ["u3"]
        r = await web.request("GET", "/users/v2.json?limit=1000", headers=cc(token))
        assert r.json["limit"] == 100
        r = await web.request("GET", "/users/v2.json?sort_asc=salt", headers=cc(token))
        assert r.code == 422
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_update_and_delete_own_account_only(tmp_path, db_url):
    """§3.1: PUT/DELETE /users/{id}.json for one's own account; another's is 403;
    delete (form body, as the SDK sends DELETE params) revokes the session."""
    web = await start(tmp_path, db_url)
    try:
        app_token = await app_session(web)
        erin = await sign_up(web, app_token, "erin")
        frank = await sign_up(web, app_token, "frank")
        token = await user_session(web, "erin")
        body = {"user": {"full_name": "Erin E", "phone": "555", "custom_data": "cd"}}
        r = await web.request("PUT", f"/users/{erin['id']}.json", json_body=body, headers=cc(token))
        assert r.code == 200
        assert (r.json["user"]["full_name"], r.json["user"]["phone"]) == ("Erin E", "555")
        taken = {"user": {"login": "frank"}}
        r = await web.request(
            "PUT", f"/users/{erin['id']}.json", json_body=taken, headers=cc(token)
        )
        assert (r.code, r.json) == (422, {"errors": {"login": ["has already been taken"]}})
        r = await web.request(
            "PUT", f"/users/{frank['id']}.json", json_body=body, headers=cc(token)
        )
        assert r.code == 403
        r = await web.request(
            "DELETE", f"/users/{frank['id']}.json", form={"force": "1"}, headers=cc(token)
        )
        assert r.code == 403
        r = await web.request(
            "DELETE", f"/users/{erin['id']}.json", form={"force": "1"}, headers=cc(token)
        )
        assert (r.code, r.json) == (200, {})
        r = await web.request("GET", "/session.json", headers=cc(token))
        assert r.code == 401
        r = await web.request("GET", f"/users/{erin['id']}.json", headers=cc(app_token))
        assert r.code == NOT_FOUND
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_users_of_another_app_are_not_found(tmp_path):
    """Users are scoped to the session's application: never listed, shown,
    updated or deleted from another app (404, not 403)."""
    web = await start(tmp_path)
    try:
        mine = await sign_up(web, await app_session(web), "gina")
        other_app = await web.h.accounts.create_app("other")
        other = await app_session(web, other_app)
        await sign_up(web, other, "gina")  # the same login in another app is fine
        token = await user_session(web, "gina", app=other_app)
        r = await web.request("GET", f"/users/{mine['id']}.json", headers=cc(token))
        assert r.code == NOT_FOUND
        r = await web.request("GET", "/users/by_login.json?login=gina", headers=cc(token))
        assert r.json["user"]["id"] != mine["id"]
        r = await web.request("GET", "/users/v2.json", headers=cc(token))
        assert [u["id"] for u in r.json["items"]] != [mine["id"]] and r.json["total_entries"] == 1
        r = await web.request(
            "PUT", f"/users/{mine['id']}.json", json_body={"user": {}}, headers=cc(token)
        )
        assert r.code == NOT_FOUND
        r = await web.request("DELETE", f"/users/{mine['id']}.json", headers=cc(token))
        assert r.code == NOT_FOUND
    finally:
        await web.stop()


def test_plugin_migration_on_each_backend(db_url):
    """docs/storage.md: the chat_api branch applies after core_0001; profiles go
    with their user (ON DELETE CASCADE)."""
    from xmppd.config import parse_config
    from xmppd.registry import plugin_migration_dirs

    db = Database(db_url)
    try:
        db.migrate(
            plugin_migration_dirs(parse_config({"plugins": {"enabled": ["dialogs", "chat_api"]}}))
        )
        # core_0001 is an ancestor of the plugin's head (depends_on), so one head is stored.
        assert db.current_revisions() == ("chat_api_0002", "dialogs_0002")

        def create(conn):
            app = accounts.create_app(conn, "a")
            user = accounts.create_user(conn, app.id, "u", "password1")
            conn.execute(insert(chat_api_users).values(user_id=user.id, phone="1"))
            return user.id

        user_id = db.run_sync(create)
        db.run_sync(accounts.delete_user, user_id)
        rows = db.run_sync(lambda conn: conn.execute(select(chat_api_users)).all())
        assert rows == []
    finally:
        db.stop()
