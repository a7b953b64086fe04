"""Applications, users, their credentials and the API session tokens.

The hosted-chat model: an *application* owns users; a user's JID is
``{user_id}-{app_id}@{domain}``. Passwords are never stored, only the salted
SCRAM keys of RFC 5802 §3 (SHA-1) and RFC 7677 (SHA-256), derived from one salt
and iteration count so one announced salt serves every mechanism.

An API session token (the REST API's ``CB-Token``) is also a valid XMPP password
for its user: it is stored as a SHA-256 plus SCRAM keys derived with the user's
salt, so a SCRAM exchange can be checked against the password's keys and against
each live token's (docs/auth.md).

The module-level functions take a SQLAlchemy connection (for the CLI and for
other modules' transactions); :class:`Accounts` runs them on the database's
thread pool and returns Deferreds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from scramp import ScramException, ScramMechanism
from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from twisted.internet.defer import Deferred, succeed

from xmppd.storage import Database
from xmppd.storage.tables import apps, tokens, users

__all__ = [
    "SCRAM_ITERATIONS",
    "TOKEN_TTL",
    "AccountError",
    "Accounts",
    "App",
    "ScramCredential",
    "TokenInfo",
    "User",
    "parse_localpart",
]

SCRAM_ITERATIONS = 4096  # RFC 7677 §4 minimum; scramp refuses fewer
SALT_BYTES = 32  # scramp's default; SASL fakes salts of this length for unknown users
TOKEN_TTL = 7200  # seconds an API session lives after its last use
TOKEN_RENEW_SLACK = 60  # renew only when it moves expiry by more than this (saves writes)
USER_CACHE_SIZE = 10_000
NEGATIVE_CACHE_TTL = 60  # seconds "no such user" is believed (users appear from xmppctl)

HashName = Literal["SHA-1", "SHA-256"]
_MECHANISMS = {"SHA-1": ScramMechanism("SCRAM-SHA-1"), "SHA-256": ScramMechanism("SCRAM-SHA-256")}
_KEY_COLUMNS = {
    "SHA-1": ("sha1_stored_key", "sha1_server_key"),
    "SHA-256": ("sha256_stored_key", "sha256_server_key"),
}
_DUMMY_SALT = secrets.token_bytes(SALT_BYTES)  # unknown users cost the same work

_ID_MAX = 2**63 - 1  # BIGINT
_LOCALPART = re.compile(r"([1-9][0-9]{0,18})-([1-9][0-9]{0,18})")


class AccountError(Exception):
    """A refused account operation; ``str()`` is a one-line reason."""


@dataclass(frozen=True)
class App:
    id: int
    name: str
    auth_key: str
    auth_secret: str


@dataclass(frozen=True)
class User:
    id: int
    app_id: int
    login: str
    email: str | None = None
    full_name: str | None = None

    @property
    def user_id(self) -> int:
        return self.id

    @property
    def localpart(self) -> str:
        return f"{self.id}-{self.app_id}"

    def jid(self, domain: str) -> str:
        """The bare JID ``{user_id}-{app_id}@{domain}``."""
        return f"{self.localpart}@{domain}"


@dataclass(frozen=True)
class ScramCredential:
    """What a SCRAM server needs (RFC 5802 §3): salt, i, StoredKey, ServerKey."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
    user_id: int
    app_id: int


@dataclass(frozen=True)
class TokenInfo:
    app_id: int
    user_id: int | None
    expires_at: datetime
    created_at: datetime | None = None


def parse_localpart(localpart: str) -> tuple[int, int] | None:
    """``"26-3"`` -> ``(26, 3)``; ``None`` unless exactly two positive decimal ids
    without sign, leading zero or anything else."""
    m = _LOCALPART.fullmatch(localpart)
    if m is None:
        return None
    user_id, app_id = int(m[1]), int(m[2])
    if user_id > _ID_MAX or app_id > _ID_MAX:
        return None
    return user_id, app_id


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(dt: datetime) -> datetime:
    # SQLite returns naive datetimes; everything stored is UTC.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _at(now: datetime | None) -> datetime:
    # SQLite compares datetimes as text: only ever bind UTC.
    return utcnow() if now is None else _utc(now)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _scram_keys(password: str, salt: bytes, iterations: int) -> dict[str, bytes]:
    """RFC 5802 §3 StoredKey and ServerKey for both hashes, as table columns."""
    keys = {}
    for name, mech in _MECHANISMS.items():
        _, stored_key, server_key, _ = mech.make_auth_info(
            password, iteration_count=iterations, salt=salt
        )
        keys[_KEY_COLUMNS[name][0]] = stored_key
        keys[_KEY_COLUMNS[name][1]] = server_key
    return keys


def _password_keys(password: str) -> dict[str, object]:
    if not password:
        raise AccountError("password: must not be empty")
    salt = secrets.token_bytes(SALT_BYTES)
    try:
        keys = _scram_keys(password, salt, SCRAM_ITERATIONS)
    except ScramException as e:  # SASLprep (RFC 4013) refuses the string
        raise AccountError(f"password: {e.args[0]}") from None
    return {"salt": salt, "iterations": SCRAM_ITERATIONS, **keys}


def _user(row: Row) -> User:
    return User(row.id, row.app_id, row.login, row.email, row.full_name)


def _app(row: Row) -> App:
    return App(row.id, row.name, row.auth_key, row.auth_secret)


# -- applications ------------------------------------------------------------


def create_app(conn: Connection, name: str, now: datetime | None = None) -> App:
    if not name or len(name) > 200:
        raise AccountError("app name: must be 1 to 200 characters")
    auth_key = secrets.token_urlsafe(16)  # 128 bits, 22 characters
    auth_secret = secrets.token_urlsafe(32)  # 256 bits, 43 characters
    app_id = conn.execute(
        insert(apps)
        .values(name=name, auth_key=auth_key, auth_secret=auth_secret, created_at=_at(now))
        .returning(apps.c.id)
    ).scalar_one()
    return App(app_id, name, auth_key, auth_secret)


def list_apps(conn: Connection) -> list[App]:
    return [_app(r) for r in conn.execute(select(apps).order_by(apps.c.id))]


def get_app(conn: Connection, app_id: int) -> App | None:
    row = conn.execute(select(apps).where(apps.c.id == app_id)).first()
    return _app(row) if row else None


# -- users -------------------------------------------------------------------


def create_user(
    conn: Connection,
    app_id: int,
    login: str,
    password: str,
    email: str | None = None,
    full_name: str | None = None,
    now: datetime | None = None,
) -> User:
    if not login or len(login) > 255:
        raise AccountError("login: must be 1 to 255 characters")
    if get_app(conn, app_id) is None:
        raise AccountError(f"unknown app {app_id}")
    if user_by_login(conn, app_id, login) is not None:
        raise AccountError(f"login {login!r} is already taken in app {app_id}")
    now = _at(now)
    values = dict(app_id=app_id, login=login, email=email, full_name=full_name)
    try:
        user_id = conn.execute(
            insert(users)
            .values(**values, **_password_keys(password), created_at=now, updated_at=now)
            .returning(users.c.id)
        ).scalar_one()
    except IntegrityError:  # a concurrent insert of the same login
        raise AccountError(f"login {login!r} is already taken in app {app_id}") from None
    return User(user_id, app_id, login, email, full_name)


def set_password(
    conn: Connection,
    user_id: int,
    password: str,
    now: datetime | None = None,
    keep_token: str | None = None,
) -> bool:
    """New salt and keys; every API token of the user is revoked but ``keep_token``
    (the session that asked for the change), whose SCRAM keys are derived again
    with the new salt so it stays an XMPP password. False if no such user."""
    values = _password_keys(password)
    changed = conn.execute(
        update(users).where(users.c.id == user_id).values(**values, updated_at=_at(now))
    ).rowcount
    query = delete(tokens).where(tokens.c.user_id == user_id)
    if keep_token is not None:
        query = query.where(tokens.c.token_hash != _token_hash(keep_token))
        keys = _scram_keys(keep_token, values["salt"], values["iterations"])
        kept = update(tokens).where(
            tokens.c.token_hash == _token_hash(keep_token), tokens.c.user_id == user_id
        )
        conn.execute(kept.values(**keys))
    conn.execute(query)
    return bool(changed)


def delete_user(conn: Connection, user_id: int) -> bool:
    """Delete the user; its tokens, roster and keyval rows go with it (ON DELETE CASCADE)."""
    return remove_user(conn, user_id) is not None


def remove_user(conn: Connection, user_id: int) -> User | None:
    """:func:`delete_user`, returning the deleted account (None if there was none)."""
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    if row is None or not conn.execute(delete(users).where(users.c.id == user_id)).rowcount:
        return None
    return _user(row)


def list_users(conn: Connection, app_id: int) -> list[User]:
    query = select(users).where(users.c.app_id == app_id).order_by(users.c.id)
    return [_user(r) for r in conn.execute(query)]


def get_user(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return _user(row) if row else None


def user_by_login(conn: Connection, app_id: int, login: str) -> User | None:
    query = select(users).where(users.c.app_id == app_id, users.c.login == login)
    row = conn.execute(query).first()
    return _user(row) if row else None


def user_by_email(conn: Connection, app_id: int, email: str) -> User | None:
    query = select(users).where(users.c.app_id == app_id, users.c.email == email)
    row = conn.execute(query.order_by(users.c.id)).first()
    return _user(row) if row else None


def update_user(
    conn: Connection, user_id: int, now: datetime | None = None, **fields: object
) -> bool:
    """Change ``login``, ``email`` and/or ``full_name``; False if no such user."""
    unknown = set(fields) - {"login", "email", "full_name"}
    if unknown:
        raise AccountError(f"cannot update {sorted(unknown)}")
    if "login" in fields and (not fields["login"] or len(str(fields["login"])) > 255):
        raise AccountError("login: must be 1 to 255 characters")
    try:
        query = update(users).where(users.c.id == user_id).values(**fields, updated_at=_at(now))
        return bool(conn.execute(query).rowcount)
    except IntegrityError:
        raise AccountError(f"login {fields.get('login')!r} is already taken") from None


def verify_password(conn: Connection, user: User | None, password: str) -> bool:
    """Whether ``password`` is the user's password (not an API token). The key is
    derived for a missing user too, so timing tells little."""
    row = None
    if user is not None:
        row = conn.execute(select(users).where(users.c.id == user.id)).first()
    salt, iterations = (row.salt, row.iterations) if row else (_DUMMY_SALT, SCRAM_ITERATIONS)
    try:
        _, key, _, _ = _MECHANISMS["SHA-256"].make_auth_info(
            password, iteration_count=iterations, salt=salt
        )
    except ScramException:
        return False
    return row is not None and hmac.compare_digest(key, row.sha256_stored_key)


def _user_row(conn: Connection, localpart: str) -> Row | None:
    ids = parse_localpart(localpart)
    if ids is None:
        return None
    query = select(users).where(users.c.id == ids[0], users.c.app_id == ids[1])
    return conn.execute(query).first()


def user_by_localpart(conn: Connection, localpart: str) -> User | None:
    row = _user_row(conn, localpart)
    return _user(row) if row else None


def user_exists(conn: Connection, user_id: int, app_id: int) -> bool:
    return app_of_user(conn, user_id) == app_id


def app_of_user(conn: Connection, user_id: int) -> int | None:
    """The app the user belongs to; None if there is no such user."""
    return conn.execute(select(users.c.app_id).where(users.c.id == user_id)).scalar_one_or_none()


# -- authentication ----------------------------------------------------------


def _live_token_keys(
    conn: Connection, user_id: int, now: datetime, columns: tuple[str, ...]
) -> list[Row]:
    query = (
        select(*(tokens.c[c] for c in columns))
        .where(
            tokens.c.user_id == user_id,
            tokens.c.expires_at > now,
            tokens.c[columns[0]].is_not(None),
        )
        .order_by(tokens.c.created_at)
    )
    return conn.execute(query).all()


def scram_candidates(
    conn: Connection, localpart: str, hash_name: HashName, now: datetime | None = None
) -> list[ScramCredential]:
    """The keys a SCRAM-``hash_name`` proof may match: the password's, then each
    live token's. All share the user's salt and iteration count, so the server
    announces one ``s`` and ``i`` (RFC 5802 §5.1) before it knows which secret
    the client holds. Empty for an unknown user: the caller must then fake a
    salt rather than reveal it (RFC 6120 §6.5.10 not-authorized either way)."""
    columns = _KEY_COLUMNS[hash_name]
    row = _user_row(conn, localpart)
    if row is None:
        return []
    keys = [(row._mapping[columns[0]], row._mapping[columns[1]])]
    keys += [tuple(t) for t in _live_token_keys(conn, row.id, _at(now), columns)]
    return [ScramCredential(row.salt, row.iterations, k, s, row.id, row.app_id) for k, s in keys]


def verify_plain(
    conn: Connection, localpart: str, password: str, now: datetime | None = None
) -> User | None:
    """SASL PLAIN (RFC 4616): the password, or a live API token, of the user.

    The key is derived for unknown users too, so timing tells little."""
    row = _user_row(conn, localpart)
    salt, iterations = (row.salt, row.iterations) if row else (_DUMMY_SALT, SCRAM_ITERATIONS)
    try:
        _, key, _, _ = _MECHANISMS["SHA-256"].make_auth_info(
            password, iteration_count=iterations, salt=salt
        )
    except ScramException:
        return None
    if row is None:
        return None
    known = [row.sha256_stored_key]
    known += [t[0] for t in _live_token_keys(conn, row.id, _at(now), ("sha256_stored_key",))]
    matched = False
    for stored_key in known:
        matched |= hmac.compare_digest(key, stored_key)
    return _user(row) if matched else None


# -- API session tokens -------------------------------------------------------


def issue_token(
    conn: Connection,
    app_id: int,
    user_id: int | None = None,
    ttl: int = TOKEN_TTL,
    now: datetime | None = None,
) -> str:
    """A new API session token (160 random bits, hex) for the app, or for one of
    its users. Only its SHA-256 is stored, plus, for a user, its SCRAM keys."""
    now = _at(now)
    token = secrets.token_hex(20)
    values: dict[str, object] = {}
    if user_id is None:
        if get_app(conn, app_id) is None:
            raise AccountError(f"unknown app {app_id}")
    else:
        row = conn.execute(
            select(users.c.salt, users.c.iterations).where(
                users.c.id == user_id, users.c.app_id == app_id
            )
        ).first()
        if row is None:
            raise AccountError(f"unknown user {user_id} in app {app_id}")
        values = _scram_keys(token, row.salt, row.iterations)
    conn.execute(
        insert(tokens).values(
            token_hash=_token_hash(token),
            app_id=app_id,
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            **values,
        )
    )
    return token


def check_token(
    conn: Connection, token: str, ttl: int = TOKEN_TTL, now: datetime | None = None
) -> TokenInfo | None:
    """The live token's owner, its expiry pushed to ``now + ttl``; None if unknown
    or expired."""
    now = _at(now)
    token_hash = _token_hash(token)
    row = conn.execute(select(tokens).where(tokens.c.token_hash == token_hash)).first()
    if row is None or _utc(row.expires_at) <= now:
        return None
    expires_at = _utc(row.expires_at)
    renewed = now + timedelta(seconds=ttl)
    if renewed - expires_at > timedelta(seconds=TOKEN_RENEW_SLACK):
        conn.execute(
            update(tokens).where(tokens.c.token_hash == token_hash).values(expires_at=renewed)
        )
        expires_at = renewed
    return TokenInfo(row.app_id, row.user_id, expires_at, _utc(row.created_at))


def attach_user_to_token(conn: Connection, token: str, user_id: int) -> bool:
    """Make a live app token a session of ``user_id`` (same app), keeping the
    token: its SCRAM keys are derived with the user's salt so it is also the
    user's XMPP password. False if the token or the user is unknown."""
    row = conn.execute(select(tokens.c.app_id).where(tokens.c.token_hash == _token_hash(token)))
    app_id = row.scalar_one_or_none()
    user = conn.execute(
        select(users.c.salt, users.c.iterations).where(
            users.c.id == user_id, users.c.app_id == app_id
        )
    ).first()
    if app_id is None or user is None:
        return False
    keys = _scram_keys(token, user.salt, user.iterations)
    query = update(tokens).where(tokens.c.token_hash == _token_hash(token))
    conn.execute(query.values(user_id=user_id, **keys))
    return True


def detach_user_from_token(conn: Connection, token: str) -> bool:
    """Back to an application session: no user, no SCRAM keys."""
    none = {column: None for pair in _KEY_COLUMNS.values() for column in pair}
    query = update(tokens).where(tokens.c.token_hash == _token_hash(token))
    return bool(conn.execute(query.values(user_id=None, **none)).rowcount)


def revoke_token(conn: Connection, token: str) -> bool:
    query = delete(tokens).where(tokens.c.token_hash == _token_hash(token))
    return bool(conn.execute(query).rowcount)


def revoke_user_tokens(conn: Connection, user_id: int) -> int:
    return conn.execute(delete(tokens).where(tokens.c.user_id == user_id)).rowcount


def purge_expired(conn: Connection, now: datetime | None = None) -> int:
    query = delete(tokens).where(tokens.c.expires_at <= _at(now))
    return conn.execute(query).rowcount


# -- the asynchronous face ----------------------------------------------------


class Accounts:
    """The functions above on the database's thread pool; every method returns a
    Deferred. ``clock`` returns the current time (timezone-aware UTC)."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = utcnow,
        cache_size: int = USER_CACHE_SIZE,
    ) -> None:
        self.db = db
        self.clock = clock
        # user id -> (its app id or None, until when a None is believed)
        self._cache: OrderedDict[int, tuple[int | None, datetime | None]] = OrderedDict()
        self._cache_size = cache_size
        self._generation = 0  # bumped by deletes, so a lookup in flight cannot cache stale
        # Called with the deleted User after delete_user; the running Server adds
        # the one that closes the account's streams and fires ``user-deleted``.
        self.deleted_listeners: list[Callable[[User], object]] = []

    def _now(self) -> datetime:
        return _utc(self.clock())

    def create_app(self, name: str) -> Deferred[App]:
        return self.db.run(create_app, name, now=self._now())

    def list_apps(self) -> Deferred[list[App]]:
        return self.db.run(list_apps)

    def get_app(self, app_id: int) -> Deferred[App | None]:
        return self.db.run(get_app, app_id)

    def create_user(
        self,
        app_id: int,
        login: str,
        password: str,
        email: str | None = None,
        full_name: str | None = None,
    ) -> Deferred[User]:
        d = self.db.run(create_user, app_id, login, password, email, full_name, now=self._now())

        def created(user: User) -> User:
            self._cache.pop(user.id, None)
            return user

        return d.addCallback(created)

    def set_password(
        self, user_id: int, password: str, keep_token: str | None = None
    ) -> Deferred[bool]:
        return self.db.run(set_password, user_id, password, self._now(), keep_token)

    def delete_user(self, user_id: int) -> Deferred[bool]:
        """Delete the account, then tell :attr:`deleted_listeners` (in a running
        server: its streams are closed, ``user-deleted`` fires; docs/plugins.md)."""

        def deleted(user: User | None) -> bool:
            self.forget_user(user_id)
            if user is not None:
                for listener in list(self.deleted_listeners):
                    listener(user)
            return user is not None

        return self.db.run(remove_user, user_id).addCallback(deleted)

    def list_users(self, app_id: int) -> Deferred[list[User]]:
        return self.db.run(list_users, app_id)

    def get_user(self, user_id: int) -> Deferred[User | None]:
        return self.db.run(get_user, user_id)

    def user_by_login(self, app_id: int, login: str) -> Deferred[User | None]:
        return self.db.run(user_by_login, app_id, login)

    def user_by_localpart(self, localpart: str) -> Deferred[User | None]:
        return self.db.run(user_by_localpart, localpart)

    def scram_candidates(
        self, localpart: str, hash_name: HashName
    ) -> Deferred[list[ScramCredential]]:
        return self.db.run(scram_candidates, localpart, hash_name, now=self._now())

    def verify_plain(self, localpart: str, password: str) -> Deferred[User | None]:
        return self.db.run(verify_plain, localpart, password, now=self._now())

    def issue_token(
        self, app_id: int, user_id: int | None = None, ttl: int = TOKEN_TTL
    ) -> Deferred[str]:
        return self.db.run(issue_token, app_id, user_id, ttl, now=self._now())

    def check_token(self, token: str, ttl: int = TOKEN_TTL) -> Deferred[TokenInfo | None]:
        return self.db.run(check_token, token, ttl, now=self._now())

    def user_by_email(self, app_id: int, email: str) -> Deferred[User | None]:
        return self.db.run(user_by_email, app_id, email)

    def update_user(self, user_id: int, **fields: object) -> Deferred[bool]:
        return self.db.run(update_user, user_id, now=self._now(), **fields)

    def verify_password(self, user: User | None, password: str) -> Deferred[bool]:
        return self.db.run(verify_password, user, password)

    def attach_user_to_token(self, token: str, user_id: int) -> Deferred[bool]:
        return self.db.run(attach_user_to_token, token, user_id)

    def detach_user_from_token(self, token: str) -> Deferred[bool]:
        return self.db.run(detach_user_from_token, token)

    def revoke_token(self, token: str) -> Deferred[bool]:
        return self.db.run(revoke_token, token)

    def revoke_user_tokens(self, user_id: int) -> Deferred[int]:
        return self.db.run(revoke_user_tokens, user_id)

    def purge_expired(self) -> Deferred[int]:
        return self.db.run(purge_expired, now=self._now())

    def user_exists(self, user_id: int, app_id: int) -> Deferred[bool]:
        """Whether the account exists; answered from a bounded LRU cache when
        possible (the router asks for every stanza to an offline local user)."""
        now = self._now()
        cached = self._cache.get(user_id)
        if cached is not None and (cached[1] is None or cached[1] > now):
            self._cache.move_to_end(user_id)
            return succeed(cached[0] == app_id)
        generation = self._generation

        def found(owner: int | None) -> bool:
            if generation == self._generation:
                until = None if owner else now + timedelta(seconds=NEGATIVE_CACHE_TTL)
                self._cache[user_id] = (owner, until)
                self._cache.move_to_end(user_id)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return owner == app_id

        return self.db.run(app_of_user, user_id).addCallback(found)

    def localpart_exists(self, localpart: str) -> Deferred[bool]:
        """:meth:`user_exists` for a JID's localpart; False if it is not ``{uid}-{app}``."""
        ids = parse_localpart(localpart)
        return succeed(False) if ids is None else self.user_exists(*ids)

    def forget_user(self, user_id: int) -> None:
        """Drop the user from the existence cache (e.g. deleted on another node)."""
        self._generation += 1
        self._cache.pop(user_id, None)
