"""The official ConnectyCube JS SDK (npm ``connectycube``, pinned in package.json)
against a real xmppd (issue 3, "Tests"; SDK-CONTRACT §1.1, §3, §4, §5).

``connectycube_flow.mjs`` runs as two users in one Node process: sessions, sign-up,
login, chat over WebSocket, dialogs, a saved 1-1 message, history, unread counts,
disconnect; one JSON line per step. This module installs the SDK with ``npm ci``
(kept in ``tests/sdk/node_modules``, reinstalled only when the lock file changed),
starts xmppd with the REST API and runs the script once; each test checks steps.

Skips when ``node`` or ``npm`` is missing, and fails instead when ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DOMAIN, HOST, XmppServer, free_port, port_open, running_server

pytestmark = [pytest.mark.e2e, pytest.mark.sdk]

HERE = Path(__file__).resolve().parent
LOCK = HERE / "package-lock.json"
MODULES = HERE / "node_modules"
STAMP = MODULES / ".xmppd-install-stamp"  # package.json and the lock file at the last npm ci
NPM_TIMEOUT = 300.0  # seconds for npm ci
FLOW_TIMEOUT = 120.0  # seconds for the whole SDK run
STEP_TIMEOUT_MS = 10_000  # every wait inside the script

# What an app on the SDKs runs: the default plugins and the whole hosted chat model.
PLUGINS = [
    *("disco", "ping", "time", "version", "offline", "carbons", "chatstates", "csi"),
    *("privacy", "last_activity", "dialogs", "chat_api", "markers", "correction"),
    *("message_delete", "system_messages", "destroy", "muc"),
]
HISTORY_STEPS = (  # history over XMPP, /chat/Message and unread counts
    "unread_count",
    "dialog_last_message",
    "history_list",
    "unread_after_read",
    "reply_without_dialog_id",
)


def missing_tool(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def npm_ci() -> None:
    """``npm ci`` in tests/sdk unless node_modules was installed from these files."""
    lock = (HERE / "package.json").read_bytes() + b"\0" + LOCK.read_bytes()
    if STAMP.is_file() and STAMP.read_bytes() == lock:
        return
    try:
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"npm ci took more than {NPM_TIMEOUT}s")
    if done.returncode != 0:
        pytest.fail(f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    STAMP.write_bytes(lock)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listening on {HOST}:{port} after {timeout}s")
        time.sleep(0.05)


def create_app(server: XmppServer) -> tuple[str, str]:
    """``xmppctl app create``: the app id (first line) and its ``auth_key``."""
    lines = server.ctl("app", "create", "ConnectyCube SDK").stdout.splitlines()
    keys = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return lines[0].strip(), keys["auth_key"].strip()


def sdk_environment(
    server: XmppServer, transport: str, app_id: str, auth_key: str
) -> dict[str, str]:
    """What connectycube_flow.mjs reads; ``plain`` matches docs/rest-api.md's snippet
    (http:// and ws:// on loopback), ``tls`` is https:// and wss:// on ``tls_port`` with
    Node trusting the development certificate (SDK-CONTRACT §1.1)."""
    env = {
        **os.environ,
        "CC_CHAT": DOMAIN,
        "CC_APP_ID": app_id,
        "CC_AUTH_KEY": auth_key,
        "CC_STEP_TIMEOUT_MS": str(STEP_TIMEOUT_MS),
    }
    http = server.config["http"]
    if transport == "plain":
        env["CC_API_URL"] = f"http://{HOST}:{http['port']}"
        env["CC_CHAT_URL"] = f"ws://{DOMAIN}:{http['port']}/xmpp-websocket"
    else:
        env["CC_API_URL"] = f"https://{DOMAIN}:{http['tls_port']}"
        env["CC_CHAT_URL"] = f"wss://{DOMAIN}:{http['tls_port']}/xmpp-websocket"
        env["NODE_EXTRA_CA_CERTS"] = str(server.directory / "var" / "tls" / f"{DOMAIN}.crt")
    return env


def parse_steps(stdout: str) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            steps[record["step"]] = record
    return steps


class FlowRun:
    def __init__(self, done: subprocess.CompletedProcess[str], server: XmppServer) -> None:
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.steps = parse_steps(done.stdout)
        self.server_log = server.log_text()

    def transcript(self) -> str:
        return (
            f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"
            f"\n--- server log (tail)\n{self.server_log[-4000:]}"
        )

    def assert_ok(self, *names: str) -> None:
        for name in names:
            record = self.steps.get(name)
            assert record is not None, f"step {name} did not run\n{self.transcript()}"
            assert record["ok"] is True, f"step {name} failed: {record}\n{self.transcript()}"


@pytest.fixture(scope="module", params=["plain", "tls"])
def flow(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlowRun]:
    """One SDK run per transport: ``plain`` (http://, ws:// on loopback) and ``tls``
    (https://, wss://)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing_tool("node and npm are needed to run the ConnectyCube SDK")
    npm_ci()
    http_port = free_port()
    tls_port = free_port()
    while tls_port == http_port:
        tls_port = free_port()
    overrides = {
        "plugins": {"enabled": PLUGINS},
        "http": {"interface": HOST, "port": http_port, "tls_port": tls_port},
    }
    with running_server(tmp_path_factory.mktemp("xmppd-sdk"), overrides) as server:
        wait_port(http_port)
        wait_port(tls_port)
        app_id, auth_key = create_app(server)
        try:
            done = subprocess.run(
                [node, str(HERE / "connectycube_flow.mjs")],
                cwd=HERE,
                env=sdk_environment(server, request.param, app_id, auth_key),
                capture_output=True,
                text=True,
                timeout=FLOW_TIMEOUT,
            )
        except subprocess.TimeoutExpired as expired:
            pytest.fail(f"the SDK run took more than {FLOW_TIMEOUT}s: {expired.stdout!r}")
        yield FlowRun(done, server)


def test_sessions_signup_and_login(flow: FlowRun) -> None:
    """SDK-CONTRACT §2, §3.1: application sessions, sign-up with them, POST /login.json
    keeping the token, a user session with credentials, GET /users/v2.json, PUT
    /users/{id}.json; a taken login is 422, an unknown token the 401 the SDKs react to."""
    flow.assert_ok(
        "app_session_a",
        "signup_a",
        "app_session_b",
        "signup_b",
        "login_a",
        "login_b",
        "users_get",
        "users_update",
        "signup_taken_login",
        "unknown_token",
    )


def test_chat_connect_over_websocket(flow: FlowRun) -> None:
    """SDK-CONTRACT §4.1-4.3: chat.connect over ws:// (RFC 7395), A with its session
    token as password, B with its password; a wrong password is not-authorized; a ping."""
    flow.assert_ok("chat_connect_a", "chat_connect_b", "chat_connect_wrong_password", "chat_ping")


def test_dialogs_create_and_list(flow: FlowRun) -> None:
    """SDK-CONTRACT §5.1: private and group dialogs, the pair's private dialog reused,
    list and count=1, update (name, push_all admins), delete with force=1."""
    flow.assert_ok(
        "dialog_create_private",
        "dialog_create_group",
        "dialog_create_private_again",
        "dialog_list",
        "dialog_update",
        "dialog_delete",
    )


def test_message_send_and_receive(flow: FlowRun) -> None:
    """SDK-CONTRACT §4.5: a save_to_history 1-1 message reaches B's onMessageListener with
    the client's id, type chat, dialog_id and the custom extension; B's SDK answers
    with a received marker that reaches A's onDeliveredStatusListener."""
    flow.assert_ok("message_send_receive", "delivered_marker")


def test_group_message_reaches_an_occupant_who_never_joined(flow: FlowRun) -> None:
    """Issue 5: a saved groupchat to the group dialog's room reaches B's
    onMessageListener without B joining; B's REST unread count and history agree."""
    flow.assert_ok("group_message_without_join")


def test_history_and_unread_counts(flow: FlowRun) -> None:
    """SDK-CONTRACT §4.5, §5.2: the saved message is in history, in the dialog's
    last_message* fields and B's unread count, and listing the history reads it; a
    reply sent without dialog_id arrives with the server's dialog_id and is stored."""
    flow.assert_ok(*HISTORY_STEPS)


def test_reactions_edit_search_and_attachment_filter(flow: FlowRun) -> None:
    """§5.2/§5.3: reactions (and the other user's onMessageReactionsListener), an edit
    over REST (onMessageUpdateListener), chat.search, history by attachments.type."""
    flow.assert_ok(
        "history_attachments_type", "reactions_add_list", "message_edit_notified", "chat_search"
    )


def test_storage(flow: FlowRun) -> None:
    """SDK-CONTRACT §5.3: storage.createAndUpload through the SDK's own multipart
    upload, getInfo, and the private URL serving the bytes (none without a token)."""
    flow.assert_ok("storage_upload_download")


def test_disconnect_and_exit(flow: FlowRun) -> None:
    """SDK-CONTRACT §4.10, §3.1: chat.disconnect() for both users, DELETE /login.json,
    DELETE /session.json (always attempted, even after a failed step)."""
    flow.assert_ok("chat_disconnect", "logout_and_session_destroy")


def test_script_failed_nowhere(flow: FlowRun) -> None:
    """No step failed (a crash of the script is a ``flow`` step), and the script
    exited 0."""
    failed = {name for name, record in flow.steps.items() if not record["ok"]}
    assert not failed, f"failed steps {failed}\n{flow.transcript()}"
    assert flow.returncode == 0, flow.transcript()
