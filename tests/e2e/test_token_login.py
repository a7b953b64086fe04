"""An API session token is a valid XMPP password (the hosted services' chat login).

The token is issued through the core's token store on the server's own database,
as the REST API will do, and a real client logs in with it under each mechanism.
"""

from __future__ import annotations

import pytest

from xmppd.accounts import issue_token, revoke_token
from xmppd.storage import Database

from .conftest import XmppServer, login, logout, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob")


def with_database(server: XmppServer, fn, *args):
    db = Database(server.config["storage"]["url"], 1)
    try:
        return db.run_sync(fn, *args)
    finally:
        db.engine.dispose()


def user_token(server: XmppServer, login_name: str) -> str:
    user = server.users[login_name]
    user_id, app_id = (int(n) for n in user.localpart.split("-"))
    return with_database(server, issue_token, app_id, user_id)


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_token_is_a_password_under_every_mechanism(server: XmppServer, mech: str) -> None:
    """RFC 6120 §6 with the token as the secret: SCRAM proofs are checked against the
    password's and each live token's keys (one salt), PLAIN against both."""
    token = user_token(server, "alice")

    async def scenario() -> None:
        client = await login(server, "alice", mech=mech, password=token, direct=True)
        try:
            assert client.boundjid.bare == server.users["alice"].jid
        finally:
            await logout(client)

    run(scenario())


def test_revoked_token_and_other_users_token_fail(server: XmppServer) -> None:
    """RFC 6120 §6.5.10 (SECURITY H42): a revoked token, or Bob's token for Alice, is refused."""
    token = user_token(server, "alice")
    bobs = user_token(server, "bob")
    with_database(server, revoke_token, token)

    async def scenario() -> None:
        for password in (token, bobs):
            with pytest.raises(AssertionError, match="failed_auth"):
                await login(server, "alice", mech="SCRAM-SHA-1", password=password, direct=True)

    run(scenario())
