"""chat_api users (SDK-CONTRACT §3.1, §2): sign-up, look-ups, the v2 list with
filters and paging, own-account update and delete, isolation between apps, and
the plugin's migration on both backends."""

from __future__ import annotations

from urllib.parse import quote

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
        assert "chat_api_0003" in db.current_revisions()

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


def test_migration_matches_tables(db_url):
    """docs/storage.md: the chat_api branch creates exactly the declared tables
    (chat_api_0003 adds blob_id, avatar, timezone, is_guest)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import MetaData

    from xmppd.config import parse_config
    from xmppd.registry import plugin_migration_dirs
    from xmppd.storage.tables import metadata

    db = Database(db_url)
    try:
        db.migrate(
            plugin_migration_dirs(parse_config({"plugins": {"enabled": ["dialogs", "chat_api"]}}))
        )
        mine = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.sorted_tables:
            table.to_metadata(mine)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), mine)
        assert [d for d in diff if "chat_api_" in repr(d)] == []
    finally:
        db.stop()


async def bind_stream(web, user: dict):
    """A bound XMPP session of a REST user on a fake stream (tests/harness.py)."""
    from twisted.words.protocols.jabber.jid import JID

    from tests.harness import DOMAIN, FakeStream
    from xmppd.sessions import Session

    stream = FakeStream()
    jid = JID(f"{user['id']}-{web.app.id}@{DOMAIN}/phone")
    await web.h.server.bind_session(Session(jid, stream, user["id"], web.app.id))
    return stream


@pytest_twisted.ensureDeferred
async def test_password_change_needs_old_password_and_keeps_only_this_session(tmp_path, db_url):
    """§3.1 ``user{password, old_password}`` (qbUsers.js update): a wrong or missing
    old password is 422 naming old_password; then the new password logs in over
    REST and XMPP (SCRAM, PLAIN) at once, the old one nowhere; the caller's token
    stays valid (also as an XMPP password), the user's other tokens are revoked."""
    from tests.plugins.test_chat_api_sessions import scram_login
    from xmppd.stream.sasl import Success

    web = await start(tmp_path, db_url)
    try:
        app_token = await app_session(web)
        user = await sign_up(web, app_token, "gina", "old-pass-1")
        token = await user_session(web, "gina", "old-pass-1")
        other = await user_session(web, "gina", "old-pass-1")
        path = f"/users/{user['id']}.json"
        for given in ({}, {"old_password": "wrong"}):
            body = {"user": {"password": "new-pass-2", **given}}
            r = await web.request("PUT", path, json_body=body, headers=cc(token))
            assert (r.code, r.json) == (422, {"errors": {"old_password": ["is incorrect"]}})
        form = [("user[password]", "new-pass-2"), ("user[old_password]", "old-pass-1")]
        r = await web.request("PUT", path, form=form, headers=qb(token))
        assert r.code == 200 and r.json["user"]["id"] == user["id"]
        r = await web.request("GET", "/session.json", headers=cc(token))
        assert r.code == 200
        r = await web.request("GET", "/session.json", headers=cc(other))
        assert r.code == 401
        localpart = f"{user['id']}-{web.app.id}"
        assert isinstance(await scram_login(web.h.server, localpart, "new-pass-2"), Success)
        assert not isinstance(await scram_login(web.h.server, localpart, "old-pass-1"), Success)
        assert isinstance(await scram_login(web.h.server, localpart, token), Success)
        assert await web.h.accounts.verify_plain(localpart, "new-pass-2") is not None
        assert await web.h.accounts.verify_plain(localpart, "old-pass-1") is None
        await user_session(web, "gina", "new-pass-2")
        body = {"application_id": web.app.id, "auth_key": web.app.auth_key}
        body["user"] = {"login": "gina", "password": "old-pass-1"}
        r = await web.request("POST", "/session.json", json_body=body)
        assert r.code == 401
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_delete_closes_streams_revokes_tokens_and_fires_user_deleted(tmp_path):
    """Deleting a user (by id, or QuickBlox's /users/external/{id}.json) revokes all
    its tokens, ends its XMPP streams with <not-authorized/> (RFC 6120 §4.9.3.12)
    and fires the core event ``user-deleted`` with its id; others keep theirs."""
    web = await start(tmp_path)
    try:
        fired = []
        web.h.server.events.on("user-deleted", fired.append, owner="test")
        app_token = await app_session(web)
        hana = await sign_up(web, app_token, "hana")
        ivan = await sign_up(web, app_token, "ivan", external_user_id="ext-9")
        token = await user_session(web, "hana")
        second = await user_session(web, "hana")
        hana_stream = await bind_stream(web, hana)
        ivan_stream = await bind_stream(web, ivan)
        r = await web.request("DELETE", f"/users/{hana['id']}.json", headers=cc(token))
        assert (r.code, r.json) == (200, {})
        assert hana_stream.closed_with == "not-authorized"
        assert getattr(ivan_stream, "closed_with", None) is None
        assert fired == [hana["id"]]
        for t in (token, second):
            r = await web.request("GET", "/session.json", headers=cc(t))
            assert r.code == 401
        ivan_token = await user_session(web, "ivan")
        r = await web.request("DELETE", "/users/external/nope.json", headers=qb(ivan_token))
        assert r.code == NOT_FOUND
        r = await web.request("DELETE", "/users/external/ext-9.json", headers=qb(ivan_token))
        assert (r.code, r.json) == (200, {})
        assert ivan_stream.closed_with == "not-authorized"
        assert fired == [hana["id"], ivan["id"]]
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_profile_fields_blob_id_avatar_timezone(tmp_path):
    """SDK-CONTRACT §3.1: blob_id, avatar and timezone are stored and returned;
    a non-integer blob_id is 422 naming it."""
    web = await start(tmp_path)
    try:
        app_token = await app_session(web)
        user = await sign_up(web, app_token, "jo", blob_id=5, avatar="https://a/x.png")
        assert (user["blob_id"], user["avatar"], user["timezone"]) == (5, "https://a/x.png", None)
        token = await user_session(web, "jo")
        path = f"/users/{user['id']}.json"
        body = {"user": {"timezone": "Europe/Paris", "blob_id": "7"}}
        r = await web.request("PUT", path, json_body=body, headers=cc(token))
        assert (r.json["user"]["timezone"], r.json["user"]["blob_id"]) == ("Europe/Paris", 7)
        r = await web.request("GET", path, headers=cc(token))
        assert r.json["user"]["avatar"] == "https://a/x.png"
        body = {"user": {"blob_id": "x"}}
        r = await web.request("PUT", path, json_body=body, headers=cc(token))
        assert r.code == 422 and "blob_id" in r.json["errors"]
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_qb_list_users_filters_order_and_pages(tmp_path, db_url):
    """qbUsers.js listUsers: ``filter[]={type} {field} {op} {value}`` (all must hold),
    ``order={asc|desc} {type} {field}``, ``page``/``per_page`` → ``{current_page,
    per_page, total_entries, items: [{"user"}]}``; a bad filter or order is 422."""
    web = await start(tmp_path, db_url)
    try:
        token = await app_session(web)
        ids = {}
        for name in ("kim", "lea", "max", "ned"):
            ids[name] = (await sign_up(web, token, name, full_name=name.upper()))["id"]
        query = (
            f"/users.json?filter[]=number+id+gt+{ids['kim']}"
            "&filter[]=string+login+in+lea,max,ned,kim&order=desc+string+login&per_page=2"
        )
        r = await web.request("GET", query, headers=qb(token))
        assert r.code == 200
        assert (r.json["current_page"], r.json["per_page"], r.json["total_entries"]) == (1, 2, 3)
        assert [i["user"]["login"] for i in r.json["items"]] == ["ned", "max"]
        r = await web.request("GET", query + "&page=2", headers=qb(token))
        assert [i["user"]["login"] for i in r.json["items"]] == ["lea"]
        # qbProxy.js sends a filter array as ONE comma-joined filter[] value.
        joined = quote(f"number id gt {ids['kim']},string login in lea,max,ned,kim")
        r = await web.request("GET", f"/users.json?filter[]={joined}", headers=qb(token))
        assert r.json["total_entries"] == 3
        r = await web.request(
            "GET", "/users.json?filter[]=date+created_at+le+2100-01-01T00:00:00Z", headers=qb(token)
        )
        assert r.json["total_entries"] == 4
        r = await web.request(
            "GET",
            f"/users.json?filter[]=number+id+between+{ids['lea']},{ids['max']}",
            headers=qb(token),
        )
        assert r.json["total_entries"] == 2
        for bad in ("string+password+eq+x", "number+id+like+1", "id+gt+1", "blob+id+eq+1"):
            r = await web.request("GET", f"/users.json?filter[]={bad}", headers=qb(token))
            assert r.code == 422 and list(r.json["errors"]) == ["filter"], bad
        r = await web.request("GET", "/users.json?order=up+string+login", headers=qb(token))
        assert r.code == 422 and list(r.json["errors"]) == ["order"]
        r = await web.request("GET", "/users.json?per_page=x", headers=qb(token))
        assert r.code == 422 and list(r.json["errors"]) == ["per_page"]
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_qb_get_by_email_full_name_tags_phone_external(tmp_path):
    """qbUsers.js get: by_email, phone and external/{id} → {"user"}; by_full_name
    and by_tags → the paged list; unknown → 404."""
    web = await start(tmp_path)
    try:
        token = await app_session(web)
        olga = await sign_up(
            web, token, "olga", email="o@x.test", full_name="Olga O", phone="+15550001",
            tag_list="red, blue", external_user_id="e-1",
        )  # fmt: skip
        await sign_up(web, token, "pia", full_name="Olga O", tag_list="blue")
        await sign_up(web, token, "quin", tag_list="redish")
        for path in (
            "/users/by_email.json?email=o%40x.test",
            "/users/phone.json?phone=%2B15550001",
            "/users/external/e-1.json",
        ):
            r = await web.request("GET", path, headers=qb(token))
            assert (r.code, r.json["user"]["id"]) == (200, olga["id"]), path
        r = await web.request("GET", "/users/by_email.json?email=no%40x.test", headers=qb(token))
        assert r.code == NOT_FOUND
        r = await web.request("GET", "/users/by_full_name.json?full_name=Olga+O", headers=qb(token))
        assert r.json["total_entries"] == 2
        r = await web.request("GET", "/users/by_tags.json?tags=red", headers=qb(token))
        assert [i["user"]["login"] for i in r.json["items"]] == ["olga"]
        r = await web.request("GET", "/users/by_tags.json?tags=blue,redish", headers=qb(token))
        assert [i["user"]["login"] for i in r.json["items"]] == ["olga", "pia", "quin"]
        r = await web.request("GET", "/users/by_tags.json", headers=qb(token))
        assert r.code == 422
    finally:
        await web.stop()
