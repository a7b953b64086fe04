"""External identity providers for ``POST /session.json`` (SDK-CONTRACT §3):
``provider=firebase_phone``, a Firebase Authentication phone sign-in.

ConnectyCube sends ``firebase_phone: {project_id, access_token}``; QuickBlox's
``createSession({provider, keys: {token}})`` sends ``keys[token]`` (the project is
then the token's ``aud``). The ID token is checked as Google documents for
third-party verification ("Verify ID tokens using a third-party JWT library",
firebase.google.com/docs/auth/admin/verify-id-tokens): an RS256 JWT whose ``kid``
names one of the x509 certificates published at ``firebase_keys_url``; ``aud``
is the project id, ``iss`` is ``https://securetoken.google.com/{project_id}``,
``exp`` in the future, ``iat`` and ``auth_time`` in the past, ``sub`` not empty.

The JWT itself is decoded by PyJWT (``PyJWT[crypto]``, a widely used, maintained
implementation that pins the algorithm and checks ``aud``/``iss``): no
hand-written signature code here. The certificates are fetched with
``twisted.web.client.Agent`` (never blocking the reactor) and cached for the
response's ``Cache-Control: max-age``; an unknown ``kid`` refetches at most once a
minute.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jwt
from cryptography import x509
from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss

from plugins.chat_api.rest import ApiError

log = Logger()

GOOGLE_KEYS_URL = (
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
)
ISSUER = "https://securetoken.google.com/{}"
SUPPORTED = ("firebase_phone",)  # facebook, twitter, firebase_email: not (yet)
FETCH_TIMEOUT = 10.0  # seconds for the key fetch
REFETCH_AFTER = 60.0  # an unknown kid refetches at most this often
MAX_KEYS_BODY = 256 * 1024
_MAX_AGE = re.compile(r"max-age=(\d+)")


def unsupported() -> ApiError:
    return ApiError(422, {"provider": ["is not supported"]})


def unauthorized(reason: str) -> ApiError:
    """A token that does not verify is a failed login (docs/rest-api.md: 401)."""
    log.info("chat_api: firebase_phone token refused: {reason}", reason=reason)
    return ApiError(401, ["Unauthorized"])


class _BoundedBody(protocol.Protocol):
    """Collects a response body of at most MAX_KEYS_BODY bytes."""

    def __init__(self, done: defer.Deferred) -> None:
        self.done = done
        self.parts: list[bytes] = []
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_KEYS_BODY:
            self.transport.stopProducing()
        else:
            self.parts.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        if self.size > MAX_KEYS_BODY:
            self.done.errback(ValueError(f"more than {MAX_KEYS_BODY} bytes"))
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


class FirebaseKeys:
    """Google's token-signing certificates by ``kid``, cached for max-age."""

    def __init__(self, url: str, clock: Any, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.url = url
        self.clock = clock
        self.agent = Agent(reactor, connectTimeout=FETCH_TIMEOUT)
        self.reactor = reactor
        self.keys: dict[str, Any] = {}
        self.expires = 0.0
        self.fetched = float("-inf")
        self._waiters: list[defer.Deferred] | None = None  # logins awaiting a fetch

    async def key(self, kid: str) -> Any:
        """The public key named ``kid``; None if Google does not publish it."""
        now = self.clock.seconds()
        stale = now >= self.expires
        if stale or (kid not in self.keys and now - self.fetched >= REFETCH_AFTER):
            await self._refresh()
        return self.keys.get(kid)

    async def _refresh(self) -> None:
        waiter: defer.Deferred = defer.Deferred()
        if self._waiters is not None:  # concurrent logins share one fetch
            self._waiters.append(waiter)
        else:
            self._waiters = [waiter]
            defer.ensureDeferred(self._fetch()).addBoth(self._fetched)
        await waiter

    def _fetched(self, result: Any) -> None:
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            waiter.callback(result)  # a Failure errbacks each waiter

    async def _fetch(self) -> None:
        try:
            d = self.agent.request(b"GET", self.url.encode("ascii"))
            d.addTimeout(FETCH_TIMEOUT, self.reactor)
            response = await d
            received: defer.Deferred = defer.Deferred()
            response.deliverBody(_BoundedBody(received))
            body = await received
            if response.code != 200:
                raise ValueError(f"HTTP {response.code}")
            certs = json.loads(body)
            keys = {
                str(kid): x509.load_pem_x509_certificate(pem.encode()).public_key()
                for kid, pem in certs.items()
            }
        except Exception as e:
            log.warn("chat_api: cannot fetch {url}: {e}", url=self.url, e=e)
            raise ApiError(503, {"base": ["Identity provider keys are unavailable"]}) from None
        cache_control = b",".join(response.headers.getRawHeaders(b"cache-control", []))
        match = _MAX_AGE.search(cache_control.decode("latin-1"))
        now = self.clock.seconds()
        self.keys, self.fetched = keys, now
        self.expires = now + (int(match[1]) if match else 0)


class Firebase:
    """Verifies Firebase ID tokens of the allowed projects."""

    def __init__(self, keys: FirebaseKeys, project_ids: list[str], clock: Any) -> None:
        self.keys = keys
        self.project_ids = list(project_ids)
        self.clock = clock

    async def verify(self, params: dict[str, Any]) -> dict[str, Any]:
        """The token's claims (``sub``, ``phone_number``) or an ApiError."""
        if not self.project_ids:
            raise ApiError(422, {"provider": ["firebase_phone is not enabled on this server"]})
        given = params.get("firebase_phone")
        given = given if isinstance(given, dict) else {}
        keys = params.get("keys") if isinstance(params.get("keys"), dict) else {}
        token = str(given.get("access_token") or keys.get("token") or "")
        if not token:
            raise ApiError(422, {"firebase_phone": ["access_token is required"]})
        try:
            header = jwt.get_unverified_header(token)
            claimed = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise unauthorized(f"malformed: {e}") from None
        project = str(given.get("project_id") or claimed.get("aud") or "")
        if project not in self.project_ids:
            raise ApiError(422, {"firebase_phone": [f"project_id {project!r} is not allowed"]})
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise unauthorized("not an RS256 token with a kid")
        key = await self.keys.key(header["kid"])
        if key is None:
            raise unauthorized(f"unknown kid {header['kid']!r}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=project,
                issuer=ISSUER.format(project),
                # Times are checked below against the server's clock.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iat", "aud", "iss", "sub", "auth_time"],
                },
            )
        except jwt.PyJWTError as e:
            raise unauthorized(str(e)) from None
        now = self.clock.seconds()
        try:
            exp, iat, auth_time = (float(claims[n]) for n in ("exp", "iat", "auth_time"))
        except (TypeError, ValueError):
            raise unauthorized("non-numeric times") from None
        if exp <= now:
            raise unauthorized("expired")
        if iat > now or auth_time > now:
            raise unauthorized("issued in the future")
        if not isinstance(claims["sub"], str) or not claims["sub"] or len(claims["sub"]) > 128:
            raise unauthorized("bad sub")
        if not isinstance(claims.get("phone_number"), str) or not claims["phone_number"]:
            raise ApiError(422, {"firebase_phone": ["the token has no phone_number"]})
        return claims
