"""xmppd.accounts: apps, users, SCRAM keys (RFC 5802, RFC 7677), API tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
import pytest_twisted
from scramp import ScramClient, ScramException, ScramMechanism
from sqlalchemy import delete, select

from xmppd.accounts import (
    TOKEN_TTL,
    AccountError,
    Accounts,
    ScramCredential,
    User,
    parse_localpart,
)
from xmppd.storage.tables import tokens, users

PASSWORD = "correct horse battery staple"
TOKEN_TTL_DELTA = timedelta(seconds=TOKEN_TTL)


def scram_login(
    candidates: list[ScramCredential], hash_name: str, username: str, password: str
) -> ScramCredential | None:
    """Run a full SCRAM exchange (RFC 5802 §5) between scramp's client and one
    scramp server per candidate, all sharing the nonce and the announced salt,
    as the SASL layer does; the candidate whose keys verify the proof, or None."""
    mechanism = f"SCRAM-{hash_name}"
    client = ScramClient([mechanism], username, password)
    client_first = client.get_client_first()
    s_nonce = secrets.token_urlsafe(18)
    servers = []
    for cand in candidates:
        keys = (cand.salt, cand.stored_key, cand.server_key, cand.iterations)
        server = ScramMechanism(mechanism).make_server(lambda _u, k=keys: k, s_nonce=s_nonce)
        server.set_client_first(client_first)
        servers.append(server)
    server_firsts = {server.get_server_first() for server in servers}
    assert len(server_firsts) == 1  # one salt and iteration count for every secret
    client.set_server_first(server_firsts.pop())
    client_final = client.get_client_final()
    for cand, server in zip(candidates, servers, strict=True):
        try:
            server.set_client_final(client_final)
        except ScramException:
            continue
        client.set_server_final(server.get_server_final())  # the server proves itself
        return cand
    return None


@pytest.fixture
def app(accounts: Accounts):
    return pytest_twisted.blockon(accounts.create_app("demo"))


@pytest.fixture
def user(accounts: Accounts, app) -> User:
    return pytest_twisted.blockon(accounts.create_user(app.id, "alice", PASSWORD, "a@example.com"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("26904594-29650", (26904594, 29650)),
        ("1-1", (1, 1)),
        ("01-1", None),
        ("1-01", None),
        ("+1-2", None),
        ("-1-2", None),
        ("1-2-3", None),
        ("1_2", None),
        ("1-2\n", None),
        ("１-2", None),  # fullwidth digit: \d would match it
        ("0-2", None),
        ("1" * 20 + "-2", None),
        ("9223372036854775808-1", None),  # above BIGINT
    ],
)
def test_parse_localpart(text, expected):
    """Localparts are exactly {user_id}-{app_id}: ASCII digits, no sign, no leading zero."""
    assert parse_localpart(text) == expected


def test_user_jid():
    """A user's JID is {user_id}-{app_id}@domain."""
    user = User(26904594, 29650, "bob")
    assert user.localpart == "26904594-29650"
    assert user.jid("chat.example.com") == "26904594-29650@chat.example.com"


@pytest_twisted.ensureDeferred
async def test_apps(accounts: Accounts):
    """Apps get DB-issued ids and random urlsafe keys; they can be listed and fetched."""
    first = await accounts.create_app("one")
    second = await accounts.create_app("two")
    assert isinstance(first.id, int) and second.id > first.id
    assert len(first.auth_key) >= 20 and len(first.auth_secret) >= 32
    assert first.auth_key != second.auth_key and first.auth_secret != second.auth_secret
    assert await accounts.list_apps() == [first, second]
    assert await accounts.get_app(second.id) == second
    assert await accounts.get_app(second.id + 100) is None


@pytest_twisted.ensureDeferred
async def test_user_crud(accounts: Accounts, app, user: User):
    """Users are created, fetched by id, login or localpart, listed and deleted."""
    assert user == User(user.id, app.id, "alice", "a@example.com", None)
    bob = await accounts.create_user(app.id, "bob", "pw", full_name="Bob")
    assert await accounts.get_user(bob.id) == bob
    assert await accounts.user_by_login(app.id, "bob") == bob
    assert await accounts.user_by_localpart(bob.localpart) == bob
    assert await accounts.user_by_localpart(f"{bob.id}-{app.id + 1}") is None
    assert await accounts.list_users(app.id) == [user, bob]
    assert await accounts.delete_user(bob.id) is True
    assert await accounts.get_user(bob.id) is None
    assert await accounts.delete_user(bob.id) is False


@pytest_twisted.ensureDeferred
async def test_deleted_user_id_is_not_reused(accounts: Accounts, app, user: User):
    """A new user never gets a deleted user's id, hence never its JID."""
    await accounts.delete_user(user.id)
    again = await accounts.create_user(app.id, "alice", PASSWORD)
    assert again.id > user.id


@pytest_twisted.ensureDeferred
async def test_duplicate_login_is_refused(accounts: Accounts, app, user: User):
    """A login is unique within its app (not across apps)."""
    with pytest.raises(AccountError, match="alice"):
        await accounts.create_user(app.id, "alice", "other")
    other = await accounts.create_app("other")
    assert (await accounts.create_user(other.id, "alice", "x")).login == "alice"


@pytest_twisted.ensureDeferred
async def test_bad_user_input_is_refused(accounts: Accounts, app):
    """Unknown app, empty login and empty password raise AccountError."""
    for args in ((app.id + 1, "x", "pw"), (app.id, "", "pw"), (app.id, "x", "")):
        with pytest.raises(AccountError):
            await accounts.create_user(*args)


@pytest_twisted.ensureDeferred
async def test_password_is_never_stored(accounts: Accounts, database, user: User):
    """No column of the user's row contains the password (only RFC 5802 keys)."""
    row = await database.run(lambda c: c.execute(select(users)).one())
    secret = PASSWORD.encode()
    for value in row:
        blob = value if isinstance(value, bytes) else str(value).encode()
        assert secret not in blob
    assert len(row.salt) >= 16 and row.iterations >= 4096


@pytest_twisted.ensureDeferred
async def test_token_is_never_stored(accounts: Accounts, database, app, user: User):
    """Only a hash and SCRAM keys of an API token are stored."""
    token = await accounts.issue_token(app.id, user.id)
    assert len(token) >= 40
    row = await database.run(lambda c: c.execute(select(tokens)).one())
    for value in row:
        blob = value if isinstance(value, bytes) else str(value).encode()
        assert token.encode() not in blob and bytes.fromhex(token) not in blob


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("hash_name", ["SHA-1", "SHA-256"])
async def test_scram_with_password_and_token(accounts: Accounts, app, user: User, hash_name):
    """SCRAM-SHA-1 and -SHA-256 verify the password and a live token against one salt."""
    token = await accounts.issue_token(app.id, user.id)
    candidates = await accounts.scram_candidates(user.localpart, hash_name)
    assert len(candidates) == 2
    assert {(c.user_id, c.app_id) for c in candidates} == {(user.id, app.id)}
    assert scram_login(candidates, hash_name, user.localpart, PASSWORD) is candidates[0]
    assert scram_login(candidates, hash_name, user.localpart, token) is candidates[1]
    assert scram_login(candidates, hash_name, user.localpart, "wrong") is None


@pytest_twisted.ensureDeferred
async def test_scram_candidates_drop_expired_tokens(accounts: Accounts, clock, app, user: User):
    """An expired token is no SCRAM candidate; an unknown user has none."""
    await accounts.issue_token(app.id, user.id, ttl=60)
    assert len(await accounts.scram_candidates(user.localpart, "SHA-1")) == 2
    clock.advance(61)
    assert len(await accounts.scram_candidates(user.localpart, "SHA-1")) == 1
    assert await accounts.scram_candidates(f"{user.id + 1}-{app.id}", "SHA-1") == []
    assert await accounts.scram_candidates("admin", "SHA-256") == []


@pytest_twisted.ensureDeferred
async def test_plain(accounts: Accounts, clock, app, user: User):
    """PLAIN (RFC 4616) accepts the password and a live token, nothing else."""
    token = await accounts.issue_token(app.id, user.id, ttl=60)
    assert await accounts.verify_plain(user.localpart, PASSWORD) == user
    assert (await accounts.verify_plain(user.localpart, token)).user_id == user.id
    assert await accounts.verify_plain(user.localpart, "wrong") is None
    assert await accounts.verify_plain(f"{user.id + 1}-{app.id}", PASSWORD) is None
    assert await accounts.verify_plain("not-a-localpart", PASSWORD) is None
    clock.advance(61)
    assert await accounts.verify_plain(user.localpart, token) is None


@pytest_twisted.ensureDeferred
async def test_token_of_one_user_does_not_log_in_another(accounts: Accounts, app, user: User):
    """A token is a password for its own user only."""
    bob = await accounts.create_user(app.id, "bob", "pw")
    token = await accounts.issue_token(app.id, user.id)
    assert await accounts.verify_plain(bob.localpart, token) is None


@pytest_twisted.ensureDeferred
async def test_set_password_revokes_tokens(accounts: Accounts, app, user: User):
    """A new password replaces the old one and revokes every API token of the user."""
    token = await accounts.issue_token(app.id, user.id)
    assert await accounts.set_password(user.id, "new secret") is True
    assert await accounts.verify_plain(user.localpart, PASSWORD) is None
    assert await accounts.verify_plain(user.localpart, "new secret") == user
    assert await accounts.check_token(token) is None
    assert await accounts.verify_plain(user.localpart, token) is None


@pytest_twisted.ensureDeferred
async def test_check_token_renews_and_expires(accounts: Accounts, clock, app, user: User):
    """check_token slides the expiry by ttl on use; an unused token expires."""
    token = await accounts.issue_token(app.id, user.id)
    info = await accounts.check_token(token)
    assert (info.app_id, info.user_id) == (app.id, user.id)
    assert info.expires_at == clock.now + TOKEN_TTL_DELTA
    clock.advance(TOKEN_TTL - 10)
    info = await accounts.check_token(token)
    assert info is not None and info.expires_at == clock.now + TOKEN_TTL_DELTA
    clock.advance(TOKEN_TTL + 1)
    assert await accounts.check_token(token) is None
    assert await accounts.check_token("0" * 40) is None


@pytest_twisted.ensureDeferred
async def test_app_token(accounts: Accounts, app):
    """An application token has no user and is no XMPP password; unknown apps are refused."""
    token = await accounts.issue_token(app.id)
    info = await accounts.check_token(token)
    assert (info.app_id, info.user_id) == (app.id, None)
    with pytest.raises(AccountError):
        await accounts.issue_token(app.id + 1)


@pytest_twisted.ensureDeferred
async def test_user_token_needs_user_of_that_app(accounts: Accounts, app, user: User):
    """A user token for a user of another app is refused."""
    other = await accounts.create_app("other")
    with pytest.raises(AccountError):
        await accounts.issue_token(other.id, user.id)


@pytest_twisted.ensureDeferred
async def test_revoke_and_purge(accounts: Accounts, database, clock, app, user: User):
    """Tokens are revoked one by one or per user; purge_expired deletes expired rows."""
    one = await accounts.issue_token(app.id, user.id)
    await accounts.issue_token(app.id, user.id)
    assert await accounts.revoke_token(one) is True
    assert await accounts.check_token(one) is None
    assert await accounts.revoke_user_tokens(user.id) == 1
    await accounts.issue_token(app.id, ttl=10)
    await accounts.issue_token(app.id, ttl=1000)
    clock.advance(11)
    assert await accounts.purge_expired() == 1
    assert len(await database.run(lambda c: c.execute(select(tokens)).all())) == 1


@pytest_twisted.ensureDeferred
async def test_user_exists_cache(accounts: Accounts, database, app, user: User):
    """user_exists is cached (no query once known) and the cache forgets deleted users."""
    assert await accounts.user_exists(user.id, app.id) is True
    assert await accounts.user_exists(user.id, app.id + 1) is False
    # Deleted behind the cache's back (as by another process): still cached.
    await database.run(lambda c: c.execute(delete(users).where(users.c.id == user.id)))
    assert await accounts.user_exists(user.id, app.id) is True
    bob = await accounts.create_user(app.id, "bob", "pw")
    assert await accounts.localpart_exists(bob.localpart) is True
    await accounts.delete_user(bob.id)
    assert await accounts.localpart_exists(bob.localpart) is False
    assert await accounts.localpart_exists("admin") is False


@pytest_twisted.ensureDeferred
async def test_user_exists_cache_is_bounded(database, clock, app, user: User):
    """The cache holds at most cache_size users; a miss is believed only briefly."""
    small = Accounts(database, clock=clock, cache_size=2)
    for user_id in (user.id, user.id + 1, user.id + 2):
        await small.user_exists(user_id, app.id)
    assert list(small._cache) == [user.id + 1, user.id + 2]
    bob = await Accounts(database, clock=clock).create_user(app.id, "bob", "pw")
    assert bob.id == user.id + 1
    assert await small.user_exists(bob.id, app.id) is False  # the cached miss
    clock.advance(61)
    assert await small.user_exists(bob.id, app.id) is True


@pytest_twisted.ensureDeferred
async def test_attach_user_to_token_keeps_the_token_and_makes_it_a_password(
    accounts: Accounts, app, user: User
):
    """An app token upgraded to a user session (the REST API's /login.json) keeps
    its value and becomes an XMPP password under SCRAM and PLAIN; detaching undoes it."""
    token = await accounts.issue_token(app.id)
    assert await accounts.attach_user_to_token(token, user.id)
    assert (await accounts.check_token(token)).user_id == user.id
    for hash_name in ("SHA-1", "SHA-256"):
        candidates = await accounts.scram_candidates(user.localpart, hash_name)
        assert scram_login(candidates, hash_name, user.localpart, token) is not None
    assert await accounts.verify_plain(user.localpart, token) == user
    assert await accounts.detach_user_from_token(token)
    assert (await accounts.check_token(token)).user_id is None
    assert await accounts.verify_plain(user.localpart, token) is None


@pytest_twisted.ensureDeferred
async def test_attach_user_of_another_app_or_unknown_token_is_refused(
    accounts: Accounts, app, user: User
):
    """A token of one app never becomes a session of another app's user."""
    other = await accounts.create_app("other")
    token = await accounts.issue_token(other.id)
    assert not await accounts.attach_user_to_token(token, user.id)
    assert not await accounts.attach_user_to_token("0" * 40, user.id)
    assert (await accounts.check_token(token)).user_id is None


@pytest_twisted.ensureDeferred
async def test_verify_password_update_user_and_email_lookup(accounts: Accounts, app, user: User):
    """The REST API's password check (the password only, never a token), profile
    update and e-mail look-up; a taken login is refused."""
    token = await accounts.issue_token(app.id, user.id)
    assert await accounts.verify_password(user, PASSWORD)
    assert not await accounts.verify_password(user, token)
    assert not await accounts.verify_password(None, PASSWORD)
    assert (await accounts.user_by_email(app.id, "a@example.com")).id == user.id
    assert await accounts.update_user(user.id, full_name="Alice A")
    assert (await accounts.get_user(user.id)).full_name == "Alice A"
    await accounts.create_user(app.id, "bob", PASSWORD)
    with pytest.raises(AccountError):
        await accounts.update_user(user.id, login="bob")
