"""``twistd xmppd`` and ``xmppctl`` as an operator runs them.

A bad configuration stops start-up before any port is bound, with one line
naming the key; SIGTERM closes every client stream with ``<system-shutdown/>``;
the daemonised server writes its pid file, serves, and stops on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    XmppServer,
    die_with_parent,
    port_open,
    raw_stream,
    run,
    session,
)

pytestmark = pytest.mark.e2e

BAD_CONFIGS = [
    pytest.param({"c2s": {"port": "5222"}}, "c2s.port: expected an integer", id="wrong-type"),
    pytest.param(
        {"c2s": {"prot": 5222}},
        "c2s.prot: unknown option (did you mean 'port'?)",
        id="unknown-key",
    ),
    pytest.param(
        {"tls": {"cert": "missing.crt", "key": "missing.key"}},
        "tls.cert: no such file: missing.crt",
        id="missing-cert",
    ),
]


@pytest.fixture
def stopped_server(tmp_path: Path) -> Iterator[XmppServer]:
    """A configured server with users, not started; stopped at teardown if it was."""
    server = XmppServer.create(tmp_path)
    server.add_users("alice")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIGS)
def test_bad_config_exits_before_listening(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    """F16 (SECURITY.md §5): a bad key is one line naming it and a non-zero exit, no port bound."""
    server = XmppServer.create(tmp_path, overrides)
    done = subprocess.run(
        server.twistd_args(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        preexec_fn=die_with_parent,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert message in output, output
    assert "listening on" not in output + server.log_text()
    assert not (tmp_path / "xmppd.sqlite3").exists()  # nothing touched either


def test_check_config_ok(tmp_path: Path) -> None:
    """SECURITY.md F16 (README "Use"): xmppctl check-config prints ok, exits 0."""
    server = XmppServer.create(tmp_path)
    done = server.ctl("check-config")
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIGS)
def test_check_config_failing(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    """SECURITY.md F16: xmppctl check-config names the bad key on stderr and exits 1."""
    server = XmppServer.create(tmp_path, overrides)
    done = server.ctl("check-config", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(f"xmppctl: {message}") and done.stderr.count("\n") == 1
    assert done.stdout == ""


def test_sigterm_sends_system_shutdown(stopped_server: XmppServer) -> None:
    """RFC 6120 §4.9.3.20 (SECURITY.md F13): SIGTERM: system-shutdown to all, clean exit."""
    server = stopped_server
    server.start()
    with (
        raw_stream(server.port) as unauthenticated,
        raw_stream(server.port) as starttls,
        raw_stream(server.tls_port, direct_tls=True) as direct,
    ):
        unauthenticated.open()
        starttls.open()
        starttls.starttls()
        starttls.auth_plain(server.users["alice"], resource="starttls")
        direct.open()
        direct.auth_plain(server.users["alice"], resource="direct")
        assert server.proc is not None
        proc = server.proc
        proc.send_signal(signal.SIGTERM)
        for raw in (unauthenticated, starttls, direct):
            raw.expect_stream_error("system-shutdown")
            raw.close()
        status = proc.wait(STOP_TIMEOUT)
    log = server.log_text()
    # A clean stop: twistd (twisted.scripts.twistd.run) re-raises the signal that
    # stopped the reactor once shutdown is done, so the status is "terminated by
    # SIGTERM" (which systemd counts as success), not 1 or a crash.
    assert status in (0, -signal.SIGTERM), log
    assert "Server Shut Down." in log and "Traceback" not in log, log


def _gone(pid: int) -> bool:
    """The process has exited (or is a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_daemon_start_serve_stop(stopped_server: XmppServer) -> None:
    """SECURITY.md F13 (README "Use"): daemonised twistd writes its pid file, serves, stops."""
    server = stopped_server
    pidfile = server.directory / "twistd.pid"
    done = subprocess.run(
        server.twistd_args(pidfile=pidfile),
        cwd=server.directory,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    pid = int(pidfile.read_text().strip()) if pidfile.exists() else None
    try:
        assert done.returncode == 0, done.stdout + done.stderr + server.log_text()
        assert pid is not None and pid != os.getpid() and not _gone(pid)
        server.wait_listening()

        async def scenario() -> str:
            async with session(server, "alice") as c:
                return c.boundjid.bare

        assert run(scenario()) == server.users["alice"].jid
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), "the daemon did not stop on SIGTERM"
        assert not pidfile.exists()
        assert not port_open(server.port) and not port_open(server.tls_port)
    finally:
        if pid is not None and not _gone(pid):
            os.kill(pid, signal.SIGKILL)
