"""The core seam for account deletion (docs/plugins.md, ``user-deleted``):
``Accounts.delete_user`` on a running server ends the account's streams and
fires ``user-deleted`` with the user id, in one place for every caller."""

from __future__ import annotations

import pytest_twisted

from tests.harness import Harness


@pytest_twisted.ensureDeferred
async def test_delete_user_closes_its_streams_and_fires_user_deleted(tmp_path):
    """RFC 6120 §4.9.3.12: each of the account's streams ends with
    <not-authorized/>; other accounts' streams stay; ``user-deleted`` fires once
    with the id; deleting an unknown id does nothing."""
    h = await Harness.start(tmp_path)
    try:
        fired = []
        h.server.events.on("user-deleted", fired.append, owner="test")
        phone = await h.login("alice", "phone")
        laptop = await h.login("alice", "laptop")
        bob = await h.login("bob")
        alice = h.users["alice"]
        assert await h.accounts.delete_user(alice.id) is True
        assert (phone.stream.closed_with, laptop.stream.closed_with) == ("not-authorized",) * 2
        assert getattr(bob.stream, "closed_with", None) is None
        assert fired == [alice.id]
        assert await h.accounts.delete_user(alice.id) is False
        assert fired == [alice.id]
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_set_password_keeps_the_callers_token_as_a_password(tmp_path):
    """``set_password(keep_token=)``: the new password works, the old does not; the
    kept token stays live and stays an XMPP password under the new salt (one salt
    per user, docs/auth.md); the user's other tokens are revoked."""
    h = await Harness.start(tmp_path)
    try:
        user = await h.user("carol")
        kept = await h.accounts.issue_token(h.app_id, user.id)
        other = await h.accounts.issue_token(h.app_id, user.id)
        assert await h.accounts.set_password(user.id, "new secret", keep_token=kept) is True
        assert await h.accounts.verify_plain(user.localpart, "secret") is None
        assert await h.accounts.verify_plain(user.localpart, "new secret") == user
        assert await h.accounts.check_token(kept) is not None
        assert await h.accounts.verify_plain(user.localpart, kept) == user
        [password, token] = await h.accounts.scram_candidates(user.localpart, "SHA-256")
        assert password.salt == token.salt
        assert await h.accounts.check_token(other) is None
    finally:
        await h.stop()
