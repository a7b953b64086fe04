"""SASL, the server side (RFC 6120 §6, RFC 4422), independent of the transport.

The c2s stream offers :func:`offered_mechanisms`, decodes each ``<auth>`` or
``<response>`` with :func:`decode_payload`, drives one :class:`SaslExchange` per
``<auth>``, and answers each outcome: :class:`Challenge` → ``<challenge>``,
:class:`Success` → ``<success>`` (with SCRAM's server-final as additional data,
RFC 6120 §6.3.10), :class:`Failure` → ``<failure><condition/></failure>``.

Mechanisms: SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 7677, RFC 5802) through
``scramp``, so no SCRAM arithmetic lives here; PLAIN (RFC 4616) only on a
protected stream; ANONYMOUS (RFC 4505) only when enabled. No -PLUS variants:
channel binding is not offered.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from scramp import ScramException, ScramMechanism
from scramp.core import Gs2Header, ScramServer
from scramp.utils import ServerError, saslprep
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.words.protocols.jabber.jid import JID, InvalidFormat

__all__ = [
    "CONDITIONS",
    "MECHANISMS",
    "Challenge",
    "CredentialSource",
    "Failure",
    "Identity",
    "SaslError",
    "SaslExchange",
    "ScramCredential",
    "Success",
    "decode_payload",
    "encode_payload",
    "offered_mechanisms",
]

log = Logger()

SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_1 = "SCRAM-SHA-1"
PLAIN = "PLAIN"
ANONYMOUS = "ANONYMOUS"
MECHANISMS = (SCRAM_SHA_256, SCRAM_SHA_1, PLAIN, ANONYMOUS)  # strongest first
_SCRAM_HASH = {SCRAM_SHA_256: "SHA-256", SCRAM_SHA_1: "SHA-1"}
_DIGEST_SIZE = {SCRAM_SHA_256: 32, SCRAM_SHA_1: 20}

# RFC 6120 §6.5: the defined <failure/> conditions.
CONDITIONS = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)

# An unknown user gets a made-up salt of a real one's length and the real
# iteration count (RFC 6120 §6.5.10: never reveal that the user is unknown).
# The salt is an HMAC of the name under a per-process key, so asking twice
# gives the same salt, as it would for a real user. Real users' secrets must
# match: scramp's defaults (32-byte salt, 4096 iterations).
UNKNOWN_USER_SALT_BYTES = 32
UNKNOWN_USER_ITERATIONS = 4096
_UNKNOWN_SALT_KEY = secrets.token_bytes(32)


class SaslError(Exception):
    """A SASL failure with its RFC 6120 §6.5 condition."""

    def __init__(self, condition: str) -> None:
        if condition not in CONDITIONS:
            raise ValueError(condition)
        super().__init__(condition)
        self.condition = condition


@dataclass(frozen=True)
class ScramCredential:
    """One secret a user may log in with (the password or an API token), as
    RFC 5802 §3 keys derived with the user's salt and iteration count."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
    user_id: int
    app_id: int


class Identity(Protocol):
    @property
    def user_id(self) -> int: ...

    @property
    def app_id(self) -> int: ...


class CredentialSource(Protocol):
    """The accounts layer, as SASL sees it. ``username`` is the SASLprepped
    authentication identity (the localpart ``{user_id}-{app_id}``).

    ``scram_candidates`` gives ``[]`` for an unknown user (not an error), else
    the password's keys first, then each live token's, all with the user's one
    salt and iteration count. ``verify_plain`` gets the password as sent and
    SASLpreps it as key derivation did (scramp's ``make_auth_info`` does)."""

    def scram_candidates(
        self, username: str, hash_name: str
    ) -> Deferred[list[ScramCredential]]:  # hash_name: "SHA-1" | "SHA-256"
        ...

    def verify_plain(self, username: str, password: str) -> Deferred[Identity | None]: ...


@dataclass(frozen=True)
class Challenge:
    data: bytes


@dataclass(frozen=True)
class Success:
    data: bytes | None
    user_id: int | None
    app_id: int | None
    anonymous: bool = False


@dataclass(frozen=True)
class Failure:
    condition: str


Outcome = Challenge | Success | Failure


def decode_payload(text: str) -> bytes:
    """The bytes of an ``<auth>``/``<challenge>``/``<response>``/``<success>``
    text: strict base64 (RFC 6120 §6.4.2, RFC 4648 §4; no whitespace), ``=``
    (and an empty text) meaning empty data. For ``<auth>``, an element without
    text means *no* initial response: pass ``None`` to :meth:`SaslExchange.start`."""
    if text in ("", "="):
        return b""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as e:  # ValueError: non-ASCII text
        raise SaslError("incorrect-encoding") from e


def encode_payload(data: bytes | None) -> str:
    """Element text for ``data``: ``None`` → no text, empty → ``=`` (RFC 6120 §6.4.2, §6.3.10)."""
    if data is None:
        return ""
    if not data:
        return "="
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def offered_mechanisms(
    secure: bool, allow_anonymous: bool, allow_plain_insecure: bool = False
) -> list[str]:
    """The ``<mechanisms/>`` to offer, strongest first (RFC 6120 §6.4.1)."""
    offered = [SCRAM_SHA_256, SCRAM_SHA_1]
    if secure or allow_plain_insecure:
        offered.append(PLAIN)  # RFC 4616 §6: only under TLS
    if allow_anonymous:
        offered.append(ANONYMOUS)
    return offered


def _unescape_saslname(value: str) -> str | None:
    """RFC 5802 §5.1: ``=2C`` is ``,`` and ``=3D`` is ``=``; any other ``=`` is an error (None)."""
    head, *rest = value.split("=")
    out = [head]
    for part in rest:
        if part[:2] not in ("2C", "3D"):
            return None
        out.append(("," if part[:2] == "2C" else "=") + part[2:])
    return "".join(out)


def _keys(cand: ScramCredential) -> tuple[bytes, bytes, bytes, int]:
    """What scramp's lookup function returns."""
    return cand.salt, cand.stored_key, cand.server_key, cand.iterations


class _ClientGs2Header(Gs2Header):
    """COMPAT: scramp refuses a gs2 authzid (its client never sends one), but
    RFC 5802 §7 allows it and the client's proof covers it through ``c=``. The
    server compares ``c=`` with this header, so it must be the client's own."""

    def __init__(self, gs2_char: str, raw: str) -> None:
        super().__init__(gs2_char, None)
        self.raw = raw

    def __str__(self) -> str:
        return self.raw

    def __bytes__(self) -> bytes:
        return self.raw.encode("utf-8")


_NEW, _WANT_INITIAL, _WANT_CLIENT_FINAL, _BUSY, _DONE = range(5)


class SaslExchange:
    """One SASL authentication (RFC 6120 §6.4): ``start`` with the ``<auth>``
    data, then ``respond`` to each ``<response>``, until a Success or Failure.

    The caller handles one SASL element at a time. A ``respond`` with no
    challenge outstanding (also while a lookup is pending, or after the end)
    fails the exchange with ``malformed-request``; a pending Deferred then
    fires with that same Failure, so send only the first terminal outcome.
    """

    def __init__(
        self,
        mechanism: str,
        credentials: CredentialSource,
        *,
        secure: bool,
        allow_anonymous: bool,
        allow_plain_insecure: bool = False,
        domain: str | None = None,
        localpart_of: Callable[[int, int], str] = lambda user_id, app_id: f"{user_id}-{app_id}",
        server_nonce: str | None = None,
    ) -> None:
        self.mechanism = mechanism
        self._credentials = credentials
        self._secure = secure
        self._allow_anonymous = allow_anonymous
        self._allow_plain_insecure = allow_plain_insecure
        self._domain = domain  # the stream's domain: authzid may be the bare JID
        self._localpart_of = localpart_of
        # RFC 5802 §5.1 nonce (printable, no ','); fixed only by tests (RFC vectors).
        self._s_nonce = server_nonce if server_nonce is not None else secrets.token_urlsafe(18)
        self._state = _NEW
        self._waits_in = _NEW  # where a step that returned a Challenge waits
        self._ended_with: str | None = None
        # SCRAM, between the server-first and the client-final:
        self._scram: ScramMechanism | None = None
        self._client_first = ""  # as scramp accepts it (gs2 authzid removed)
        self._gs2: _ClientGs2Header | None = None  # the client's gs2 header if it had an authzid
        self._authzid: str | None = None
        self._server_first = ""
        self._candidates: list[ScramCredential] = []
        self._first_server: ScramServer | None = None

    @property
    def done(self) -> bool:
        return self._state == _DONE

    # -- the caller's interface --

    def start(self, initial: bytes | None) -> Deferred[Outcome]:
        """The ``<auth>`` element; ``initial`` is its decoded text, None if it had none."""
        if self._state != _NEW:
            return succeed(self._fail("malformed-request"))
        return Deferred.fromCoroutine(self._run(self._start, initial))

    def respond(self, data: bytes) -> Deferred[Outcome]:
        """A ``<response>`` element's decoded text."""
        if self._state not in (_WANT_INITIAL, _WANT_CLIENT_FINAL):
            return succeed(self._fail("malformed-request"))  # RFC 6120 §6.4.3
        handler = self._initial if self._state == _WANT_INITIAL else self._scram_final
        return Deferred.fromCoroutine(self._run(handler, data))

    def abort(self) -> Failure:
        """RFC 6120 §6.4.4: the client's ``<abort/>``."""
        return self._fail("aborted")

    # -- driving --

    def _end(self, condition: str) -> None:
        if self._state != _DONE:
            self._state, self._ended_with = _DONE, condition
            self._first_server = None
            self._candidates = []

    def _fail(self, condition: str) -> Failure:
        self._end(condition)
        return Failure(condition)

    async def _run(self, step: Callable[..., Awaitable[Outcome]], data: bytes | None) -> Outcome:
        self._state = _BUSY
        try:
            outcome = await step(data)
        except Exception:
            self._end("temporary-auth-failure")  # a bug: the caller logs the errback
            raise
        if self._state == _DONE:  # aborted or failed by the caller meanwhile
            return Failure(self._ended_with or "aborted")
        if isinstance(outcome, Challenge):
            self._state = self._waits_in
            return outcome
        self._end(outcome.condition if isinstance(outcome, Failure) else "")
        return outcome

    async def _start(self, initial: bytes | None) -> Outcome:
        m = self.mechanism
        if m == PLAIN and not (self._secure or self._allow_plain_insecure):
            return Failure("encryption-required")  # RFC 6120 §6.5.4
        if m not in MECHANISMS or (m == ANONYMOUS and not self._allow_anonymous):
            return Failure("invalid-mechanism")  # RFC 6120 §6.5.5
        if m == ANONYMOUS:
            return self._anonymous(initial)
        if initial is None:
            # RFC 6120 §6.4.2: no initial response → an empty challenge.
            self._waits_in = _WANT_INITIAL
            return Challenge(b"")
        return await self._initial(initial)

    async def _initial(self, data: bytes) -> Outcome:
        if self.mechanism == PLAIN:
            return await self._plain(data)
        return await self._scram_first(data)

    # -- ANONYMOUS (RFC 4505) --

    def _anonymous(self, trace: bytes | None) -> Outcome:
        # RFC 4505 §2: an optional trace, up to 255 UTF-8 characters; never trusted.
        try:
            text = (trace or b"").decode("utf-8")
        except UnicodeDecodeError:
            return Failure("malformed-request")
        if len(text) > 255:
            return Failure("malformed-request")
        return Success(data=None, user_id=None, app_id=None, anonymous=True)

    # -- PLAIN (RFC 4616) --

    async def _plain(self, message: bytes) -> Outcome:
        # RFC 4616 §2: [authzid] NUL authcid NUL passwd, UTF-8, no other NUL.
        parts = message.split(b"\x00")
        if len(parts) != 3:
            return Failure("malformed-request")
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)
            username = saslprep(authcid)  # RFC 4616 §2; the same form SCRAM gets
        except (UnicodeDecodeError, ScramException):
            return Failure("malformed-request")
        if not username or not password:
            return Failure("malformed-request")
        try:
            identity = await maybeDeferred(self._credentials.verify_plain, username, password)
        except Exception:
            log.failure("PLAIN credential lookup failed")
            return Failure("temporary-auth-failure")  # RFC 6120 §6.5.11
        if identity is None:
            return Failure("not-authorized")  # RFC 6120 §6.5.10
        return self._authorized(authzid or None, identity.user_id, identity.app_id, None)

    # -- SCRAM (RFC 5802, RFC 7677) --

    async def _scram_first(self, data: bytes) -> Outcome:
        try:
            client_first = data.decode("utf-8")
        except UnicodeDecodeError:
            return Failure("malformed-request")
        # RFC 5802 §7: gs2-header = gs2-cbind-flag "," [ authzid ] ","
        parts = client_first.split(",", 2)
        if len(parts) != 3:
            return Failure("malformed-request")
        flag, authz, bare = parts
        if flag not in ("n", "y"):
            # "p=": channel binding; we offer no -PLUS (RFC 5802 §6).
            return Failure("malformed-request")
        if authz:
            if not authz.startswith("a=") or len(authz) == 2:
                return Failure("malformed-request")
            self._authzid = _unescape_saslname(authz[2:])
            if self._authzid is None:
                return Failure("malformed-request")
            self._gs2 = _ClientGs2Header(flag, f"{flag},{authz},")
        self._client_first = f"{flag},,{bare}"
        self._scram = ScramMechanism(self.mechanism)

        # scramp parses the rest (username unescaping, SASLprep, nonce); the
        # probe's lookup records the name and pretends the user is unknown.
        names: list[str] = []

        def probe(name: str) -> None:
            names.append(name)

        try:
            self._scram.make_server(probe, s_nonce=self._s_nonce).set_client_first(
                self._client_first
            )
        except ScramException as e:
            if not names or e.server_error is not ServerError.UNKNOWN_USER:
                return Failure("malformed-request")
        username = names[0]

        try:
            found = await maybeDeferred(
                self._credentials.scram_candidates, username, _SCRAM_HASH[self.mechanism]
            )
        except Exception:
            log.failure("SCRAM credential lookup failed")
            return Failure("temporary-auth-failure")  # RFC 6120 §6.5.11
        self._candidates = list(found or ())
        if self._candidates:
            # One salt and count for all of a user's secrets: announce the first's.
            salt, iterations = self._candidates[0].salt, self._candidates[0].iterations
            same = [c for c in self._candidates if (c.salt, c.iterations) == (salt, iterations)]
            if len(same) < len(self._candidates):
                log.warn("SCRAM secrets of {user!r} with another salt ignored", user=username)
            self._candidates = same
            keys = _keys(self._candidates[0])
        else:
            # Unknown user: go on to the end and fail there (RFC 6120 §6.5.10).
            salt = hmac.new(_UNKNOWN_SALT_KEY, username.encode("utf-8"), hashlib.sha256).digest()
            size = _DIGEST_SIZE[self.mechanism]
            keys = (
                salt[:UNKNOWN_USER_SALT_BYTES],
                secrets.token_bytes(size),
                secrets.token_bytes(size),
                UNKNOWN_USER_ITERATIONS,
            )
        try:
            server, self._server_first = self._server(keys)
        except ScramException:
            log.failure("Stored SCRAM secret of {user!r} unusable", user=username)
            return Failure("temporary-auth-failure")
        self._first_server = server
        self._waits_in = _WANT_CLIENT_FINAL
        return Challenge(self._server_first.encode("utf-8"))

    def _server(self, keys: tuple[bytes, bytes, bytes, int]) -> tuple[ScramServer, str]:
        """A scramp server that has sent its server-first. scramp's server is
        deterministic given the nonce, salt and count, so replaying the
        client-first gives every candidate the server-first the client saw."""
        assert self._scram is not None
        server = self._scram.make_server(lambda _name: keys, s_nonce=self._s_nonce)
        server.set_client_first(self._client_first)
        if self._gs2 is not None:
            server.gs2_header = self._gs2
        return server, server.get_server_first()

    async def _scram_final(self, data: bytes) -> Outcome:
        try:
            client_final = data.decode("utf-8")
        except UnicodeDecodeError:
            return Failure("malformed-request")
        first, self._first_server = self._first_server, None
        for i, cand in enumerate(self._candidates or [None]):  # None: an unknown user
            server = first if i == 0 else self._server(_keys(cand))[0]
            try:
                server.set_client_final(client_final)
            except ScramException as e:
                if e.server_error is ServerError.INVALID_PROOF:
                    continue  # another secret of the same user may match
                if e.server_error is ServerError.CHANNEL_BINDINGS_DONT_MATCH:
                    return Failure("not-authorized")  # c= differs from the gs2 header
                return Failure("malformed-request")  # RFC 6120 §6.5.9
            if cand is not None:  # (an unknown user's random keys never match)
                server_final = server.get_server_final().encode("utf-8")  # RFC 6120 §6.3.10
                return self._authorized(self._authzid, cand.user_id, cand.app_id, server_final)
        return Failure("not-authorized")  # RFC 6120 §6.5.10

    # -- authorization identity --

    def _authorized(
        self, authzid: str | None, user_id: int, app_id: int, data: bytes | None
    ) -> Outcome:
        """RFC 6120 §6.5.6: an authzid must name the authenticated user itself."""
        if authzid and not self._is_self(authzid, self._localpart_of(user_id, app_id)):
            return Failure("invalid-authzid")
        return Success(data=data, user_id=user_id, app_id=app_id)

    def _is_self(self, authzid: str, localpart: str) -> bool:
        if authzid == localpart:  # an identity, not a secret
            return True
        if self._domain is None:
            return False
        try:
            claimed = JID(authzid)
            own = JID(tuple=(localpart, self._domain, None))
        except InvalidFormat:
            return False
        return claimed.resource is None and claimed.userhost() == own.userhost()
