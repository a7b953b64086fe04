"""The same server on PostgreSQL: only ``storage.url`` changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PG_URL, _pg_schema

from .conftest import XmppServer, login, logout, run

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql]


@pytest.fixture(scope="module")
def server_config(_pg_error: str | None) -> Iterator[dict[str, Any]]:
    with _pg_schema(_pg_error) as schema:
        yield {"storage": {"url": f"{PG_URL}?options=-csearch_path%3D{schema}", "pool_size": 2}}


def test_login_roster_and_chat_on_postgresql(server: XmppServer) -> None:
    """RFC 6120 §6-§7 and RFC 6121 §2, §8 with accounts and rosters in PostgreSQL."""

    async def scenario() -> None:
        alice = await login(server, "alice", direct=True)
        bob = await login(server, "bob")
        try:
            alice.update_roster(server.users["bob"].jid, name="Bob")
            roster = await alice.get_roster(timeout=10)
            assert server.users["bob"].jid in roster["roster"]["items"]
            alice.send_message(mto=bob.boundjid.full, mbody="on postgres", mtype="chat")
            message = await bob.expect("message")
            assert message["body"] == "on postgres"
            assert message["from"] == alice.boundjid
        finally:
            await logout(alice, bob)

    run(scenario())
