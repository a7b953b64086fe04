"""The official QuickBlox JS SDK (npm ``quickblox`` 2.x, pinned in package.json) under
Node against a real xmppd (SDK-CONTRACT §1.2, §3.2, §7).

``quickblox_flow.mjs`` runs as two users in one Node process: HMAC-signed application
sessions, sign-up, user sessions, chat over TCP (STARTTLS, then PLAIN), a private dialog,
a save_to_history message received by the other user, history; one JSON line per step.
The SDK's REST is HTTPS only, so it talks to ``tls_port`` with Node trusting the
development certificate. Its Node chat connects to the SRV target of
``_xmpp-client._tcp.{domain}`` or else port 5222; the script answers that SRV lookup
with the server's c2s port. node-xmpp-core's ``reconnect-core`` (a GitHub fork, not on
the registry) is replaced by ``shims/reconnect-core`` through package.json overrides.

Installs with ``npm ci`` like the ConnectyCube run (shared node_modules and stamp).
Skips when ``node`` or ``npm`` is missing, and fails instead when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import DOMAIN, HOST, XmppServer, free_port, running_server
from tests.sdk.test_connectycube_sdk import (
    HERE,
    PLUGINS,
    STEP_TIMEOUT_MS,
    FlowRun,
    missing_tool,
    npm_ci,
    wait_port,
)

pytestmark = [pytest.mark.e2e, pytest.mark.sdk]

FLOW_TIMEOUT = 120.0  # seconds for the whole SDK run


def create_app(server: XmppServer) -> tuple[str, str, str]:
    """``xmppctl app create``: the app id (first line), ``auth_key`` and ``auth_secret``."""
    lines = server.ctl("app", "create", "QuickBlox SDK").stdout.splitlines()
    keys = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return lines[0].strip(), keys["auth_key"].strip(), keys["auth_secret"].strip()


def sdk_environment(server: XmppServer, app_id: str, key: str, secret: str) -> dict[str, str]:
    """What quickblox_flow.mjs reads: the HTTPS API as host:port (the SDK adds
    https://), the chat domain and where its c2s really listens."""
    return {
        **os.environ,
        "QB_API": f"{DOMAIN}:{server.config['http']['tls_port']}",
        "QB_CHAT": DOMAIN,
        "QB_C2S_HOST": HOST,
        "QB_C2S_PORT": str(server.port),
        "QB_APP_ID": app_id,
        "QB_AUTH_KEY": key,
        "QB_AUTH_SECRET": secret,
        "QB_STEP_TIMEOUT_MS": str(STEP_TIMEOUT_MS),
        "NODE_EXTRA_CA_CERTS": str(server.directory / "var" / "tls" / f"{DOMAIN}.crt"),
    }


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowRun]:
    """One SDK run: HTTPS REST on ``tls_port``, chat over c2s with STARTTLS."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing_tool("node and npm are needed to run the QuickBlox SDK")
    npm_ci()
    tls_port = free_port()
    overrides = {
        "plugins": {"enabled": PLUGINS},
        "http": {"interface": HOST, "port": 0, "tls_port": tls_port},
    }
    with running_server(tmp_path_factory.mktemp("xmppd-qb"), overrides) as server:
        wait_port(tls_port)
        app_id, key, secret = create_app(server)
        try:
            done = subprocess.run(
                [node, str(HERE / "quickblox_flow.mjs")],
                cwd=HERE,
                env=sdk_environment(server, app_id, key, secret),
                capture_output=True,
                text=True,
                timeout=FLOW_TIMEOUT,
            )
        except subprocess.TimeoutExpired as expired:
            pytest.fail(f"the SDK run took more than {FLOW_TIMEOUT}s: {expired.stdout!r}")
        yield FlowRun(done, server)


def test_signed_sessions_and_signup(flow: FlowRun) -> None:
    """SDK-CONTRACT §3.2: HMAC-SHA1 signed application sessions, POST /users.json,
    signed user sessions with login and password."""
    flow.assert_ok(
        "app_session_a", "signup_a", "user_session_a", "app_session_b", "signup_b", "user_session_b"
    )


def test_chat_connect_over_tcp(flow: FlowRun) -> None:
    """SDK-CONTRACT §7: node-xmpp-client over TCP, STARTTLS, SASL PLAIN, bind, roster
    get answered before the connect callback fires."""
    flow.assert_ok("chat_connect_a", "chat_connect_b")


def test_private_dialog_message_and_history(flow: FlowRun) -> None:
    """SDK-CONTRACT §5.1, §4.5, §7: a private dialog, a save_to_history message that
    reaches B's onMessageListener with its id and dialog_id, and B's history lists it."""
    flow.assert_ok("dialog_create_private", "message_send_receive", "history_list")


def test_users_lookup_profile_and_password(flow: FlowRun) -> None:
    """§3.2: listUsers with a filter, get by e-mail and login, profile update, a
    password change, then a session with the new password (the old one: 401)."""
    flow.assert_ok(
        "users_list_filter",
        "profile_update",
        "users_get_by_email_and_login",
        "password_change",
        "login_with_new_password",
    )


def test_script_failed_nowhere(flow: FlowRun) -> None:
    """No step failed (a crash of the script is a ``flow`` step), and the script
    exited 0."""
    failed = {name for name, record in flow.steps.items() if not record["ok"]}
    assert not failed, f"failed steps {failed}\n{flow.transcript()}"
    assert flow.returncode == 0, flow.transcript()
