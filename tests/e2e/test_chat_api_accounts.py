"""chat_api accounts end to end (issue 3): a real ``twistd xmppd`` with the REST API
and slixmpp clients. Deleting a user over REST ends its live XMPP stream with
<not-authorized/>; a password changed over REST is the XMPP password at once."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

import pytest

from .conftest import HOST, XmppServer, free_port, login, logout, make_client, run

pytestmark = pytest.mark.e2e

HTTP_PORT = free_port()


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {
        "http": {"port": HTTP_PORT},
        "plugins": {"enabled": ["disco", "ping", "time", "version", "dialogs", "chat_api"]},
    }


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob")


def rest(method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """One JSON call to the REST API (ConnectyCube style), bounded."""
    conn = http.client.HTTPConnection(HOST, HTTP_PORT, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["CB-Token"] = token
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def user_session(server: XmppServer, login_name: str, password: str) -> tuple[str, int]:
    """``POST /session.json`` with the user's credentials: (token, user id)."""
    app_id, auth_key = server.ctl("app", "list").stdout.splitlines()[0].split("\t")[::2]
    body = {"application_id": app_id, "auth_key": auth_key}
    body["user"] = {"login": login_name, "password": password}
    code, answer = rest("POST", "/session.json", body)
    assert code == 201, answer
    return answer["session"]["token"], answer["session"]["user_id"]


def test_deleting_a_user_ends_its_stream_with_not_authorized(server: XmppServer) -> None:
    """RFC 6120 §4.9.3.12: the deleted account's stream gets <not-authorized/> and is
    closed; its token no longer opens a session; the account cannot log in again."""
    alice = server.users["alice"]
    token, user_id = user_session(server, "alice", alice.password)

    async def scenario() -> Any:
        client = await login(server, "alice")
        try:
            code, answer = await asyncio.to_thread(
                rest, "DELETE", f"/users/{user_id}.json", None, token
            )
            assert (code, answer) == (200, {})
            error = await client.expect("stream_error")
            await client.expect("disconnected")
            return error
        finally:
            await logout(client)

    error = run(scenario())
    assert error["condition"] == "not-authorized"
    assert rest("GET", "/session.json", token=token)[0] == 401

    async def again() -> None:
        with pytest.raises(AssertionError, match="failed_auth"):
            await login(server, "alice")

    run(again())


def test_password_changed_over_rest_is_the_xmpp_password_at_once(server: XmppServer) -> None:
    """§3.1 ``user{password, old_password}``: the new password logs in over XMPP
    right away (SCRAM-SHA-256 and PLAIN over TLS), the old one fails."""
    bob = server.users["bob"]
    token, user_id = user_session(server, "bob", bob.password)
    body = {"user": {"old_password": bob.password, "password": "brand-new-pw-1"}}
    code, answer = rest("PUT", f"/users/{user_id}.json", body, token)
    assert code == 200, answer

    async def scenario() -> None:
        for mech in ("SCRAM-SHA-256", "PLAIN"):
            client = await login(server, "bob", mech=mech, password="brand-new-pw-1")
            await logout(client)
        client = make_client(server, "bob")  # the old password
        client.connect(HOST, client.server_port)
        try:
            event, _ = await client.first_of("session_start", "failed_auth")
            assert event == "failed_auth"
        finally:
            await logout(client)

    run(scenario())
