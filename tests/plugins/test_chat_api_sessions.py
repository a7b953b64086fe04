"""chat_api sessions (SDK-CONTRACT §2-§3): ConnectyCube's unsigned and
QuickBlox's signed ``POST /session.json``, ``GET``/``DELETE``, ``/login.json``,
and the session token as the user's XMPP password (§3.3)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import pytest
import pytest_twisted
from scramp import ScramClient

from plugins.chat_api.rest import nest
from plugins.chat_api.signature import sign, signed_message
from tests.plugins.chat_api_support import (
    NOW,
    app_session,
    cc,
    qb,
    sign_up,
    start,
)
from xmppd.stream.sasl import Challenge, SaslExchange, Success

NO_SESSION = {"errors": {"base": ["Required session does not exist"]}}

# SDK-CONTRACT §3.2's example message, with the secret "S".
VECTOR = "application_id=1&auth_key=K&nonce=42&timestamp=1700000000&user[login]=a&user[password]=b"
VECTOR_SHA1 = "eb0584471e6b3c2413c2a6678b524e8c23c241f2"
VECTOR_SHA256 = "b1c56df18eecf0af94bfee83ce079f3880438c1bf317115f9ed01487bdb44086"


def test_signature_known_vector():
    """§3.2: sorted name=value pairs, nested as user[login], values not encoded; HMAC hex."""
    pairs = [
        ("user[password]", "b"),
        ("timestamp", "1700000000"),
        ("signature", "ignored"),
        ("nonce", "42"),
        ("user[login]", "a"),
        ("auth_key", "K"),
        ("application_id", "1"),
    ]
    assert signed_message(nest(pairs)) == VECTOR
    assert hmac.new(b"S", VECTOR.encode(), hashlib.sha1).hexdigest() == VECTOR_SHA1
    assert sign("S", VECTOR) == VECTOR_SHA1
    assert sign("S", VECTOR, sha256=True) == VECTOR_SHA256


async def scram_login(server, localpart: str, password: str, mech: str = "SCRAM-SHA-1"):
    """RFC 5802 §5 through the core's SASL server with the real accounts store."""
    ex = SaslExchange(mech, server.accounts, secure=True, allow_anonymous=False)
    client = ScramClient([mech], localpart, password)
    first = await ex.start(client.get_client_first().encode())
    assert isinstance(first, Challenge)
    client.set_server_first(first.data.decode())
    return await ex.respond(client.get_client_final().encode())


@pytest_twisted.ensureDeferred
async def test_cc_app_session_sign_up_login_and_token_as_xmpp_password(tmp_path, db_url):
    """§3.1: app session, sign-up, login keeps the token, which then logs in over
    SCRAM-SHA-1 (§3.3, §8 item 5); logout and delete end it."""
    web = await start(tmp_path, db_url)
    try:
        body = {"application_id": web.app.id, "auth_key": web.app.auth_key}
        r = await web.request("POST", "/session.json", json_body=body)
        assert r.code == 201
        session = r.json["session"]
        assert session["user_id"] == 0 and session["application_id"] == web.app.id
        assert set(session) >= {"id", "token", "ts", "created_at", "updated_at"}
        assert r.header("QB-Token-ExpirationDate").endswith("Z")
        token = session["token"]
        user = await sign_up(web, token, "alice", full_name="Alice")
        r = await web.request(
            "POST",
            "/login.json",
            json_body={"login": "alice", "password": "password1"},
            headers=cc(token),
        )
        assert (r.code, r.json["user"]["id"]) == (200, user["id"])
        r = await web.request("GET", "/session.json", headers=cc(token))
        assert r.json["session"]["user_id"] == user["id"]
        assert r.json["session"]["user"]["login"] == "alice"
        localpart = f"{user['id']}-{web.app.id}"
        for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            outcome = await scram_login(web.h.server, localpart, token, mech)
            assert isinstance(outcome, Success) and outcome.user_id == user["id"]
        assert await web.h.accounts.verify_plain(localpart, token) is not None
        r = await web.request("DELETE", "/login.json", headers=cc(token), form={})
        assert (r.code, r.json) == (200, {})
        r = await web.request("GET", "/session.json", headers=cc(token))
        assert r.json["session"]["user_id"] == 0
        assert not isinstance(await scram_login(web.h.server, localpart, token), Success)
        r = await web.request("DELETE", "/session.json", headers=cc(token), body=b"")
        assert (r.code, r.json) == (200, {})
        r = await web.request("GET", "/session.json", headers=cc(token))
        assert (r.code, r.json) == (401, NO_SESSION)
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_cc_user_session_in_one_call(tmp_path):
    """§3.1: application_id + auth_key + user{login,password} is a user session."""
    web = await start(tmp_path)
    try:
        user = await sign_up(web, await app_session(web), "bob")
        body = {
            "application_id": str(web.app.id),
            "auth_key": web.app.auth_key,
            "user": {"login": "bob", "password": "password1"},
        }
        r = await web.request("POST", "/session.json", json_body=body)
        assert r.code == 201 and r.json["session"]["user_id"] == user["id"]
        assert r.json["session"]["user"]["last_request_at"] is not None
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_wrong_password_and_unknown_user_get_the_same_401(tmp_path):
    """A wrong password and an unknown login are both 401 ["Unauthorized"]."""
    web = await start(tmp_path)
    try:
        token = await app_session(web)
        await sign_up(web, token, "carol")
        for creds in ({"login": "carol", "password": "nope"}, {"login": "x", "password": "y"}):
            r = await web.request("POST", "/login.json", json_body=creds, headers=cc(token))
            assert (r.code, r.json) == (401, {"errors": ["Unauthorized"]})
            body = {"application_id": web.app.id, "auth_key": web.app.auth_key, "user": creds}
            r = await web.request("POST", "/session.json", json_body=body)
            assert (r.code, r.json) == (401, {"errors": ["Unauthorized"]})
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_unknown_token_missing_token_and_bad_auth_key(tmp_path):
    """§2: an unknown or missing token is 401 with the text the SDKs react to."""
    web = await start(tmp_path)
    try:
        for headers in ({"CB-Token": "0" * 40}, {"QB-Token": "nope"}, {}):
            r = await web.request("GET", "/session.json", headers=headers)
            assert (r.code, r.json) == (401, NO_SESSION)
        body = {"application_id": web.app.id, "auth_key": "wrong"}
        r = await web.request("POST", "/session.json", json_body=body)
        assert r.code == 401
        body = {"application_id": "abc", "auth_key": web.app.auth_key}
        r = await web.request("POST", "/session.json", json_body=body)
        assert r.code == 401
    finally:
        await web.stop()


def qb_form(app, secret: str | None = None, sha256: bool = False, **extra) -> list:
    """QuickBlox's signed form (§3.2), signed here from the documented algorithm."""
    params = {
        "application_id": str(app.id),
        "auth_key": app.auth_key,
        "nonce": "4242",
        "timestamp": str(NOW),
        **extra,
    }
    message = "&".join(sorted(f"{k}={v}" for k, v in params.items()))
    digest = hashlib.sha256 if sha256 else hashlib.sha1
    key = (secret or app.auth_secret).encode()
    params["signature"] = hmac.new(key, message.encode(), digest).hexdigest()
    return list(params.items())


@pytest.mark.parametrize("sha256", [False, True])
@pytest_twisted.ensureDeferred
async def test_qb_signed_user_session_over_tls(tmp_path, sha256):
    """§3.2: form-encoded (brackets percent-encoded), HMAC-SHA1 or -SHA256, HTTPS."""
    web = await start(tmp_path)
    try:
        user = await sign_up(web, await app_session(web), "dave")
        form = qb_form(
            web.app, sha256=sha256, **{"user[login]": "dave", "user[password]": "password1"}
        )
        assert "user%5Blogin%5D=dave" in urlencode(form)
        r = await web.request("POST", "/session.json", form=form, tls=True)
        assert r.code == 201, r.body
        session = r.json["session"]
        assert (session["user_id"], session["nonce"]) == (user["id"], 4242)
        r = await web.request("GET", "/session.json", headers=qb(session["token"]), tls=True)
        assert r.json["session"]["user_id"] == user["id"]
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_qb_bad_signature_skew_and_replay_are_422(tmp_path):
    """§3.2: a wrong HMAC, a timestamp beyond signature_skew and a replayed nonce
    are each refused with 422 and an error naming the field."""
    web = await start(tmp_path, signature_skew=60)
    try:
        r = await web.request("POST", "/session.json", form=qb_form(web.app, secret="wrong"))
        assert (r.code, r.json) == (422, {"errors": {"base": ["Unexpected signature"]}})
        stale = qb_form(web.app, timestamp=str(NOW - 61), nonce="1")
        r = await web.request("POST", "/session.json", form=stale)
        assert r.code == 422 and "timestamp" in r.json["errors"]
        form = qb_form(web.app, nonce="7")
        r = await web.request("POST", "/session.json", form=form)
        assert r.code == 201
        r = await web.request("POST", "/session.json", form=form)
        assert r.code == 422 and "nonce" in r.json["errors"]
        web.h.clock.advance(200)  # the replay window has passed: the timestamp is stale now
        r = await web.request("POST", "/session.json", form=form)
        assert r.code == 422 and "timestamp" in r.json["errors"]
    finally:
        await web.stop()


def test_plugin_loads_by_entry_point_and_by_package_name():
    """docs/plugins.md Loading: the ``xmppd.plugins`` entry point, and
    ``plugins.chat_api`` without it."""
    from plugins.chat_api import ChatApi
    from xmppd.registry import _from_plugins_package, resolve

    assert resolve("chat_api") is ChatApi
    assert _from_plugins_package("chat_api", "plugins.enabled: 'chat_api'") is ChatApi
