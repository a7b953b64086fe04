"""chat_api sessions through a guest account and an identity provider
(SDK-CONTRACT §3; plugins/chat_api/providers.py).

Google cannot be reached here: a local twisted.web server stands in for its
certificate URL, serving a test x509 certificate made with ``cryptography``;
the ID tokens are signed with that certificate's key, with the claims Google
documents for Firebase ID tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.web import resource, server

from tests.plugins.chat_api_support import NOW, app_session, cc, qb, sign_up, start
from tests.plugins.test_chat_api_sessions import scram_login
from xmppd.stream.sasl import Success

PROJECT = "proj-1"
PHONE = "+15550100"


def make_key(name: str):
    """An RSA key and its self-signed certificate (PEM), as Google publishes them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


class Keys(resource.Resource):
    """The stand-in for Google's x509 URL: ``{kid: pem}`` and a max-age."""

    isLeaf = True

    def __init__(self, certs: dict[str, str]) -> None:
        super().__init__()
        self.certs = certs
        self.fetches = 0

    def render_GET(self, request):
        self.fetches += 1
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"public, max-age=3600, must-revalidate")
        return json.dumps(self.certs).encode()


def id_token(key, kid: str = "k1", project: str = PROJECT, **changes) -> str:
    """A Firebase ID token (RS256) with the documented claims, at the plugin's clock."""
    claims = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": NOW - 60,
        "iat": NOW - 30,
        "exp": NOW + 3600,
        "sub": "uid-123",
        "phone_number": PHONE,
        **changes,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


class Google:
    """Starts the stand-in key server; ``url`` for ``firebase_keys_url``."""

    def __init__(self) -> None:
        self.key, pem = make_key("k1")
        self.other, _ = make_key("k2")
        self.keys = Keys({"k1": pem})
        self.port = reactor.listenTCP(0, server.Site(self.keys), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/keys"


def session_body(web, token: str, project: str | None = PROJECT) -> dict:
    """ConnectyCube 6: ``provider`` and ``firebase_phone: {project_id, access_token}``."""
    body = {"application_id": web.app.id, "auth_key": web.app.auth_key}
    body["provider"] = "firebase_phone"
    body["firebase_phone"] = {"access_token": token}
    if project:
        body["firebase_phone"]["project_id"] = project
    return body


@pytest_twisted.ensureDeferred
async def test_guest_session_creates_a_guest_user(tmp_path):
    """ConnectyCube ``createSession({guest: '1', full_name})``: a new guest user (a
    generated login, ``is_guest`` true) and a session of it, whose token is its
    XMPP password; each call makes another guest."""
    web = await start(tmp_path)
    try:
        body = {"application_id": web.app.id, "auth_key": web.app.auth_key}
        body["user"] = {"guest": "1", "full_name": "Guest G"}
        r = await web.request("POST", "/session.json", json_body=body)
        assert r.code == 201
        session = r.json["session"]
        user = session["user"]
        assert user["is_guest"] is True and user["full_name"] == "Guest G"
        assert user["login"].startswith("guest-") and session["user_id"] == user["id"]
        r = await web.request("GET", f"/users/{user['id']}.json", headers=cc(session["token"]))
        assert r.json["user"]["is_guest"] is True
        localpart = f"{user['id']}-{web.app.id}"
        outcome = await scram_login(web.h.server, localpart, session["token"])
        assert isinstance(outcome, Success)
        r = await web.request("POST", "/session.json", json_body=body)
        assert r.json["session"]["user_id"] != user["id"]
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_providers_disabled_or_unsupported_are_422(tmp_path):
    """No ``firebase_project_ids``: firebase_phone is disabled (422 naming
    provider); facebook and twitter: 422 {"provider": ["is not supported"]}."""
    web = await start(tmp_path)
    try:
        r = await web.request("POST", "/session.json", json_body=session_body(web, "x.y.z"))
        assert r.code == 422 and list(r.json["errors"]) == ["provider"]
        for provider in ("facebook", "twitter"):
            body = {"application_id": web.app.id, "auth_key": web.app.auth_key}
            body.update(provider=provider, keys={"token": "t"})
            r = await web.request("POST", "/session.json", json_body=body)
            assert (r.code, r.json) == (422, {"errors": {"provider": ["is not supported"]}})
    finally:
        await web.stop()


@pytest_twisted.ensureDeferred
async def test_firebase_phone_finds_or_creates_the_user_by_phone(tmp_path):
    """A valid Firebase ID token (RS256, kid from the key URL, aud/iss of an allowed
    project) opens a session of the account of its Firebase uid, created on the
    first sign-in with the verified phone_number; a user who merely put that number
    on his profile (or took the login ``firebase-{uid}``) is not that account.
    ConnectyCube's JSON and QuickBlox's ``keys[token]`` form both work; the keys are
    fetched once while max-age lasts, again after it."""
    google = Google()
    web = await start(
        tmp_path, firebase_project_ids=[PROJECT, "proj-2"], firebase_keys_url=google.url
    )
    try:
        app_token = await app_session(web)
        squatter = await sign_up(web, app_token, "firebase-uid-123", phone=PHONE)
        r = await web.request(
            "POST", "/session.json", json_body=session_body(web, id_token(google.key))
        )
        assert r.code == 201, r.body
        user = r.json["session"]["user"]
        assert user["phone"] == PHONE and user["is_guest"] is False
        assert user["id"] != squatter["id"] and user["login"].startswith("firebase-")
        form = [
            ("application_id", web.app.id),
            ("auth_key", web.app.auth_key),
            ("provider", "firebase_phone"),
            ("keys[token]", id_token(google.key)),
        ]
        r = await web.request("POST", "/session.json", form=form)
        assert (r.code, r.json["session"]["user_id"]) == (201, user["id"])
        r = await web.request("GET", "/session.json", headers=qb(r.json["session"]["token"]))
        assert r.json["session"]["user"]["phone"] == PHONE
        assert google.keys.fetches == 1
        web.h.clock.advance(3601)
        token = id_token(google.key, iat=NOW + 3600, exp=NOW + 7200)
        r = await web.request("POST", "/session.json", json_body=session_body(web, token))
        assert (r.code, r.json["session"]["user_id"]) == (201, user["id"])
        assert google.keys.fetches == 2
        token = id_token(google.key, iat=NOW + 3600, exp=NOW + 7200, phone_number="+15550199")
        r = await web.request("POST", "/session.json", json_body=session_body(web, token))
        assert r.json["session"]["user"]["phone"] == "+15550199"  # the uid's new number
        assert r.json["session"]["user_id"] == user["id"]
    finally:
        await web.stop()
        await google.port.stopListening()


@pytest_twisted.ensureDeferred
async def test_firebase_phone_refuses_bad_tokens(tmp_path):
    """Google's checks: another project is 422 (not allowed here); a wrong
    signature or unknown kid, expired, issued in the future, a wrong issuer or
    audience, no auth_time: 401; no phone_number: 422; no token: 422."""
    google = Google()
    web = await start(tmp_path, firebase_project_ids=[PROJECT], firebase_keys_url=google.url)
    try:

        async def answer(token: str, project: str | None = PROJECT):
            r = await web.request(
                "POST", "/session.json", json_body=session_body(web, token, project)
            )
            return r.code, r.json

        assert (await answer(id_token(google.key, project="evil"), project=None))[0] == 422
        assert (await answer(id_token(google.key), project="evil"))[0] == 422
        unauthorized = (401, {"errors": ["Unauthorized"]})
        for token in (
            id_token(google.other),  # right kid, wrong key
            id_token(google.other, kid="k2"),  # a kid Google does not publish
            id_token(google.key, exp=NOW - 1),
            id_token(google.key, iat=NOW + 60),
            id_token(google.key, auth_time=NOW + 60),
            id_token(google.key, auth_time=None),
            id_token(google.key, iss="https://securetoken.google.com/other"),
            id_token(google.key, aud="other"),
            jwt.encode({"aud": PROJECT}, "s" * 32, algorithm="HS256"),
            "not-a-jwt",
        ):
            assert await answer(token) == unauthorized
        code, body = await answer(id_token(google.key, phone_number=None))
        assert code == 422 and "firebase_phone" in body["errors"]
        code, body = await answer("")
        assert code == 422 and "firebase_phone" in body["errors"]
    finally:
        await web.stop()
        await google.port.stopListening()


@pytest_twisted.ensureDeferred
async def test_firebase_keys_unreachable_is_503(tmp_path):
    """When the certificate URL cannot be fetched no token can be checked: 503,
    and the server keeps serving (the next call tries again)."""
    google = Google()
    url = google.url
    await google.port.stopListening()  # nothing listens there any more
    web = await start(tmp_path, firebase_project_ids=[PROJECT], firebase_keys_url=url)
    try:
        for _ in range(2):
            body = session_body(web, id_token(google.key))
            r = await web.request("POST", "/session.json", json_body=body)
            assert r.code == 503 and "base" in r.json["errors"]
        r = await web.request(
            "POST",
            "/session.json",
            json_body={"application_id": web.app.id, "auth_key": web.app.auth_key},
        )
        assert r.code == 201
    finally:
        await web.stop()
