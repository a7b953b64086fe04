"""SASL server side: SCRAM (RFC 5802, RFC 7677), PLAIN (RFC 4616), ANONYMOUS
(RFC 4505) and the XMPP profile (RFC 6120 §6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import pytest
import pytest_twisted
from scramp import ScramClient, ScramMechanism
from slixmpp.util.sasl import choose
from twisted.internet.defer import Deferred, fail, succeed

from xmppd.stream.sasl import (
    Challenge,
    Failure,
    SaslError,
    SaslExchange,
    ScramCredential,
    Success,
    decode_payload,
    encode_payload,
    offered_mechanisms,
)

SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")  # RFC 7677 §3
TOKEN = "an-api-session-token"


@dataclass(frozen=True)
class Identity:
    user_id: int
    app_id: int


class FakeCredentials:
    """The accounts layer, faked: users with a password and maybe tokens, all
    keyed with the user's salt, as the real one stores them."""

    def __init__(self) -> None:
        self.users: dict[str, tuple[Identity, list[str], bytes]] = {}
        self.lookups: list[tuple[str, str]] = []

    def add(self, username: str, user_id: int, app_id: int, *secrets: str, salt: bytes = SALT):
        self.users[username] = (Identity(user_id, app_id), list(secrets), salt)

    def scram_candidates(self, username: str, hash_name: str) -> Deferred[list[ScramCredential]]:
        self.lookups.append((username, hash_name))
        if username not in self.users:
            return succeed([])
        ident, secrets, salt = self.users[username]
        mech = ScramMechanism(f"SCRAM-{hash_name}")
        out = []
        for secret in secrets:
            s, stored, server, i = mech.make_auth_info(secret, iteration_count=4096, salt=salt)
            out.append(ScramCredential(s, i, stored, server, ident.user_id, ident.app_id))
        return succeed(out)

    def verify_plain(self, username: str, password: str) -> Deferred[Identity | None]:
        ident, secrets, _ = self.users.get(username, (None, [], b""))
        ok = any(hmac.compare_digest(password.encode(), s.encode()) for s in secrets)
        return succeed(ident if ok else None)


@pytest.fixture
def creds() -> FakeCredentials:
    c = FakeCredentials()
    c.add("user", 7, 1, "pencil")  # the RFC vectors' user
    c.add("7-1", 7, 1, "pencil", TOKEN)  # the localpart form real clients send
    return c


def exchange(creds, mechanism="SCRAM-SHA-256", **kw) -> SaslExchange:
    kw.setdefault("secure", True)
    kw.setdefault("allow_anonymous", False)
    return SaslExchange(mechanism, creds, **kw)


async def scramp_login(ex: SaslExchange, username: str, password: str, mech="SCRAM-SHA-256"):
    """A full exchange driven by scramp's client; returns (outcome, client)."""
    client = ScramClient([mech], username, password)
    first = await ex.start(client.get_client_first().encode())
    assert isinstance(first, Challenge)
    client.set_server_first(first.data.decode())
    return await ex.respond(client.get_client_final().encode()), client


def client_final(password, server_first: str, client_first_bare: str, gs2: str) -> bytes:
    """RFC 5802 §3 client proof, computed independently of scramp (SHA-256),
    for gs2 headers scramp's client cannot send (an authzid)."""
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c={base64.b64encode(gs2.encode()).decode()},r={attrs['r']}"
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


async def scram_with_gs2(ex: SaslExchange, gs2: str, username: str, password: str):
    bare = f"n={username},r=clientnonce123"
    first = await ex.start(f"{gs2}{bare}".encode())
    assert isinstance(first, Challenge)
    return await ex.respond(client_final(password, first.data.decode(), bare, gs2))


# -- test vectors --


@pytest_twisted.ensureDeferred
async def test_rfc7677_scram_sha256_vector(creds):
    """RFC 7677 §3: the SCRAM-SHA-256 example exchange, byte for byte."""
    ex = exchange(creds, server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    first = await ex.start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == Challenge(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = await ex.respond(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == Success(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 7, 1)
    assert creds.lookups == [("user", "SHA-256")]


@pytest_twisted.ensureDeferred
async def test_rfc5802_scram_sha1_vector(creds):
    """RFC 5802 §5: the SCRAM-SHA-1 example exchange, byte for byte."""
    creds.add("user", 7, 1, "pencil", salt=base64.b64decode("QSXCR+Q6sek8bf92"))
    ex = exchange(creds, "SCRAM-SHA-1", server_nonce="3rfcNHYJY1ZVvWVs7j")
    first = await ex.start(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
    assert first == Challenge(
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    )
    final = await ex.respond(
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    )
    assert final == Success(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", 7, 1)
    assert creds.lookups == [("user", "SHA-1")]


# -- SCRAM exchanges --


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
@pytest_twisted.ensureDeferred
async def test_scram_password_login(creds, mech):
    """RFC 5802 §5: a client logs in with the password and verifies the server-final."""
    outcome, client = await scramp_login(exchange(creds, mech), "7-1", "pencil", mech)
    assert isinstance(outcome, Success) and (outcome.user_id, outcome.app_id) == (7, 1)
    client.set_server_final(outcome.data.decode())  # raises unless the server proved its key


@pytest_twisted.ensureDeferred
async def test_scram_second_candidate_token_login(creds):
    """RFC 5802 §5 with several secrets under one salt: an API token logs in too."""
    outcome, client = await scramp_login(exchange(creds), "7-1", TOKEN)
    assert isinstance(outcome, Success) and outcome.user_id == 7
    client.set_server_final(outcome.data.decode())


@pytest_twisted.ensureDeferred
async def test_scram_no_initial_response(creds):
    """RFC 6120 §6.4.2: without an initial response the server sends an empty challenge."""
    ex = exchange(creds)
    assert await ex.start(None) == Challenge(b"")
    client = ScramClient(["SCRAM-SHA-256"], "7-1", "pencil")
    first = await ex.respond(client.get_client_first().encode())
    client.set_server_first(first.data.decode())
    outcome = await ex.respond(client.get_client_final().encode())
    assert isinstance(outcome, Success)


@pytest_twisted.ensureDeferred
async def test_scram_wrong_password(creds):
    """RFC 6120 §6.5.10: a wrong proof is not-authorized."""
    outcome, _ = await scramp_login(exchange(creds), "7-1", "pencil2")
    assert outcome == Failure("not-authorized")


@pytest_twisted.ensureDeferred
async def test_scram_unknown_user_indistinguishable(creds):
    """RFC 6120 §6.5.10: an unknown user gets a plausible, stable salt and the
    exchange runs to the same not-authorized end as a wrong password."""
    known = exchange(creds, server_nonce="N" * 24)
    unknown = exchange(creds, server_nonce="N" * 24)
    known_first = await known.start(b"n,,n=7-1,r=abc")
    unknown_first = await unknown.start(b"n,,n=9-1,r=abc")
    assert isinstance(unknown_first, Challenge)
    k = dict(kv.split("=", 1) for kv in known_first.data.decode().split(","))
    u = dict(kv.split("=", 1) for kv in unknown_first.data.decode().split(","))
    assert u["r"] == k["r"] and u["i"] == "4096"
    assert len(base64.b64decode(u["s"])) == 32  # scramp's default salt size
    again = await exchange(creds).start(b"n,,n=9-1,r=abc")
    assert b"s=" + u["s"].encode() in again.data  # asking twice: the same salt
    other = await exchange(creds).start(b"n,,n=9-2,r=abc")
    assert b"s=" + u["s"].encode() not in other.data

    unknown_outcome, _ = await scramp_login(exchange(creds), "9-1", "pencil")
    wrong_outcome, _ = await scramp_login(exchange(creds), "7-1", "nope")
    assert unknown_outcome == wrong_outcome == Failure("not-authorized")


@pytest_twisted.ensureDeferred
async def test_scram_username_escapes(creds):
    """RFC 5802 §5.1: =2C and =3D in the username are ',' and '='."""
    creds.add("a,b=c", 3, 4, "pw")
    outcome, _ = await scramp_login(exchange(creds), "a,b=c", "pw")
    assert isinstance(outcome, Success) and outcome.user_id == 3
    assert creds.lookups[-1] == ("a,b=c", "SHA-256")


@pytest.mark.parametrize(
    "client_first",
    [
        b"p=tls-unique,,n=7-1,r=abc",  # channel binding: no -PLUS offered (RFC 5802 §6)
        b"x,,n=7-1,r=abc",
        b"n,,r=abc",
        b"n,,n=7-1",
        b"n,,n=a=2Bb,r=abc",  # bad saslname escape
        b"n,b=x,n=7-1,r=abc",
        b"n,a=,n=7-1,r=abc",
        b"n,,n=7-1,r=abc,m=ext",  # mandatory extension
        b"n,,n=7-1,r=a\xffb",
        b"garbage",
    ],
)
@pytest_twisted.ensureDeferred
async def test_scram_malformed_client_first(creds, client_first):
    """RFC 6120 §6.5.9, RFC 5802 §7: a malformed client-first is malformed-request."""
    assert await exchange(creds).start(client_first) == Failure("malformed-request")


@pytest_twisted.ensureDeferred
async def test_scram_y_flag_accepted(creds):
    """RFC 5802 §6: 'y' (client could bind, thinks we cannot) is fine: we offer no -PLUS."""
    assert isinstance(await scram_with_gs2(exchange(creds), "y,,", "7-1", "pencil"), Success)


@pytest_twisted.ensureDeferred
async def test_scram_malformed_client_final(creds):
    """RFC 6120 §6.5.9: a client-final with a wrong nonce or layout is malformed-request."""
    ex = exchange(creds)
    await ex.start(b"n,,n=7-1,r=abc")
    assert await ex.respond(b"c=biws,r=abcWRONG,p=AAAA") == Failure("malformed-request")
    ex = exchange(creds)
    await ex.start(b"n,,n=7-1,r=abc")
    assert await ex.respond(b"hello") == Failure("malformed-request")


@pytest_twisted.ensureDeferred
async def test_scram_channel_binding_mismatch(creds):
    """RFC 5802 §6: c= must repeat the gs2 header; a mismatch fails authentication."""
    bare = "n=7-1,r=abc"
    ex = exchange(creds)
    first = await ex.start(f"y,,{bare}".encode())
    final = client_final("pencil", first.data.decode(), bare, "n,,")
    assert await ex.respond(final) == Failure("not-authorized")


# -- authzid (RFC 6120 §6.5.6; ejabberd's 2026 authzid fix) --


@pytest.mark.parametrize("authzid", ["7-1", "7-1@example.com", "7-1@EXAMPLE.com"])
@pytest_twisted.ensureDeferred
async def test_scram_authzid_self_accepted(creds, authzid):
    """RFC 6120 §6.3.8: an authzid naming the authenticated user itself is fine."""
    ex = exchange(creds, domain="example.com")
    outcome = await scram_with_gs2(ex, f"n,a={authzid},", "7-1", "pencil")
    assert isinstance(outcome, Success) and outcome.user_id == 7


@pytest.mark.parametrize(
    "authzid", ["8-1", "7-2", "7-1@other.example", "7-1@example.com/res", "8-1@example.com"]
)
@pytest_twisted.ensureDeferred
async def test_scram_authzid_other_rejected(creds, authzid):
    """RFC 6120 §6.5.6: an authzid naming anyone else is invalid-authzid."""
    ex = exchange(creds, domain="example.com")
    outcome = await scram_with_gs2(ex, f"n,a={authzid},", "7-1", "pencil")
    assert outcome == Failure("invalid-authzid")


@pytest_twisted.ensureDeferred
async def test_scram_authzid_needs_valid_proof_first(creds):
    """RFC 6120 §6.5.10: a wrong password is not-authorized, whatever the authzid."""
    outcome = await scram_with_gs2(exchange(creds), "n,a=8-1,", "7-1", "wrong")
    assert outcome == Failure("not-authorized")


@pytest_twisted.ensureDeferred
async def test_scram_authzid_bare_jid_without_domain(creds):
    """RFC 6120 §6.5.6: without the stream's domain only the bare localpart is self."""
    outcome = await scram_with_gs2(exchange(creds), "n,a=7-1@example.com,", "7-1", "pencil")
    assert outcome == Failure("invalid-authzid")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"\x007-1\x00pencil", Success(None, 7, 1)),
        (b"7-1\x007-1\x00pencil", Success(None, 7, 1)),
        (b"7-1@example.com\x007-1\x00" + TOKEN.encode(), Success(None, 7, 1)),
        (b"8-1\x007-1\x00pencil", Failure("invalid-authzid")),
        (b"8-1@example.com\x007-1\x00pencil", Failure("invalid-authzid")),
        (b"8-1\x007-1\x00wrong", Failure("not-authorized")),
    ],
)
@pytest_twisted.ensureDeferred
async def test_plain_authzid(creds, message, expected):
    """RFC 4616 §2, RFC 6120 §6.5.6: PLAIN's authzid must be the user itself."""
    ex = exchange(creds, "PLAIN", domain="example.com")
    assert await ex.start(message) == expected


# -- PLAIN (RFC 4616) --


@pytest_twisted.ensureDeferred
async def test_plain_login_and_failures(creds):
    """RFC 4616 §2: password or token logs in; a wrong or unknown one is not-authorized."""
    assert await exchange(creds, "PLAIN").start(b"\x007-1\x00pencil") == Success(None, 7, 1)
    tok = b"\x007-1\x00" + TOKEN.encode()
    assert await exchange(creds, "PLAIN").start(tok) == Success(None, 7, 1)
    assert await exchange(creds, "PLAIN").start(b"\x007-1\x00x") == Failure("not-authorized")
    assert await exchange(creds, "PLAIN").start(b"\x009-9\x00x") == Failure("not-authorized")


@pytest.mark.parametrize(
    "message", [b"7-1\x00pencil", b"\x00\x00pencil", b"\x007-1\x00", b"\x007-1\x00a\x00b", b"\xff"]
)
@pytest_twisted.ensureDeferred
async def test_plain_malformed(creds, message):
    """RFC 4616 §2: anything but [authzid] NUL authcid NUL passwd is malformed-request."""
    assert await exchange(creds, "PLAIN").start(message) == Failure("malformed-request")


@pytest_twisted.ensureDeferred
async def test_plain_no_initial_response(creds):
    """RFC 6120 §6.4.2: PLAIN without an initial response gets an empty challenge first."""
    ex = exchange(creds, "PLAIN")
    assert await ex.start(None) == Challenge(b"")
    assert await ex.respond(b"\x007-1\x00pencil") == Success(None, 7, 1)


@pytest_twisted.ensureDeferred
async def test_plain_insecure(creds):
    """RFC 6120 §6.5.4, RFC 4616 §6: PLAIN without TLS is encryption-required unless allowed."""
    ex = exchange(creds, "PLAIN", secure=False)
    assert await ex.start(b"\x007-1\x00pencil") == Failure("encryption-required")
    assert creds.lookups == []
    ex = exchange(creds, "PLAIN", secure=False, allow_plain_insecure=True)
    assert await ex.start(b"\x007-1\x00pencil") == Success(None, 7, 1)


# -- ANONYMOUS (RFC 4505) --


@pytest_twisted.ensureDeferred
async def test_anonymous(creds):
    """RFC 4505 §2, RFC 6120 §6.5.5: ANONYMOUS only when enabled; its trace is optional."""
    assert await exchange(creds, "ANONYMOUS").start(None) == Failure("invalid-mechanism")
    anonymous = Success(None, None, None, anonymous=True)
    for trace in (None, b"", b"someone@example.org"):
        assert await exchange(creds, "ANONYMOUS", allow_anonymous=True).start(trace) == anonymous
    too_long = await exchange(creds, "ANONYMOUS", allow_anonymous=True).start(b"x" * 256)
    assert too_long == Failure("malformed-request")


# -- the exchange as a whole (RFC 6120 §6.4) --


@pytest.mark.parametrize("mech", ["DIGEST-MD5", "SCRAM-SHA-256-PLUS", "scram-sha-256", "X"])
@pytest_twisted.ensureDeferred
async def test_invalid_mechanism(creds, mech):
    """RFC 6120 §6.5.5: a mechanism we do not offer is invalid-mechanism."""
    assert await exchange(creds, mech).start(b"x") == Failure("invalid-mechanism")


def test_offered_mechanisms():
    """RFC 6120 §6.4.1, RFC 4616 §6: strongest first; PLAIN only when protected."""
    assert offered_mechanisms(False, False) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    assert offered_mechanisms(True, False) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    assert offered_mechanisms(False, True, allow_plain_insecure=True) == [
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
        "ANONYMOUS",
    ]


@pytest_twisted.ensureDeferred
async def test_respond_without_challenge(creds):
    """RFC 6120 §6.4.3: a response with no challenge outstanding is malformed-request."""
    assert await exchange(creds).respond(b"x") == Failure("malformed-request")
    ex = exchange(creds, "PLAIN")
    assert isinstance(await ex.start(b"\x007-1\x00pencil"), Success)
    assert await ex.respond(b"x") == Failure("malformed-request")
    assert ex.done


@pytest_twisted.ensureDeferred
async def test_abort(creds):
    """RFC 6120 §6.4.4: abort ends the exchange with aborted."""
    ex = exchange(creds)
    await ex.start(b"n,,n=7-1,r=abc")
    assert ex.abort() == Failure("aborted")
    assert await ex.respond(b"c=biws,r=abc,p=AAAA") == Failure("malformed-request")


@pytest_twisted.ensureDeferred
async def test_respond_while_lookup_pending(creds):
    """RFC 6120 §6.4.3: a response while the server has not answered ends the exchange once."""
    pending: Deferred[list[ScramCredential]] = Deferred()
    creds.scram_candidates = lambda username, hash_name: pending
    ex = exchange(creds)
    started = ex.start(b"n,,n=7-1,r=abc")
    assert await ex.respond(b"c=biws") == Failure("malformed-request")
    pending.callback([])
    assert await started == Failure("malformed-request")


@pytest_twisted.ensureDeferred
async def test_credential_source_error(creds):
    """RFC 6120 §6.5.11: a failing accounts layer is temporary-auth-failure."""
    creds.scram_candidates = lambda username, hash_name: fail(RuntimeError("db down"))
    creds.verify_plain = lambda username, password: fail(RuntimeError("db down"))
    assert await exchange(creds).start(b"n,,n=7-1,r=abc") == Failure("temporary-auth-failure")
    outcome = await exchange(creds, "PLAIN").start(b"\x007-1\x00pencil")
    assert outcome == Failure("temporary-auth-failure")


# -- base64 (RFC 6120 §6.4.2) --


@pytest.mark.parametrize(("text", "data"), [("=", b""), ("", b""), ("YQ==", b"a"), ("YWI=", b"ab")])
def test_decode_payload(text, data):
    """RFC 6120 §6.4.2: strict base64; '=' is an empty response."""
    assert decode_payload(text) == data


@pytest.mark.parametrize("text", ["YQ", "Y Q==", "YQ==\n", " YQ==", "YQ==YQ==", "==", "é", "YQ=a"])
def test_decode_payload_invalid(text):
    """RFC 6120 §6.5.3, RFC 4648 §3.3: anything but canonical base64 is incorrect-encoding."""
    with pytest.raises(SaslError) as e:
        decode_payload(text)
    assert e.value.condition == "incorrect-encoding"


def test_encode_payload():
    """RFC 6120 §6.3.10, §6.4.2: empty data is '=', no data is no text."""
    assert encode_payload(None) == ""
    assert encode_payload(b"") == "="
    assert encode_payload(b"a") == "YQ=="


# -- interop with an independent client implementation --


@pytest.mark.parametrize("authzid", ["", "7-1@example.com"])
@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
@pytest_twisted.ensureDeferred
async def test_slixmpp_scram_client(creds, mech, authzid):
    """RFC 5802 §5, §6: slixmpp's SCRAM client (gs2 'y' as we offer no -PLUS; authzid) logs in."""
    client = choose(
        [mech],
        lambda required, optional: {"username": "7-1", "password": "pencil", "authzid": authzid},
        lambda wanted: {"encrypted": True, "unencrypted_scram": True, "binding_proposed": False},
    )
    ex = exchange(creds, mech, domain="example.com")
    first = await ex.start(client.process())
    outcome = await ex.respond(client.process(first.data))
    assert isinstance(outcome, Success) and (outcome.user_id, outcome.app_id) == (7, 1)
    client.process(outcome.data)  # raises unless the server signature verifies
