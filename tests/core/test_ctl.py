"""xmppctl: apps, users and the schema from the command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xmppd import accounts
from xmppd.ctl import main
from xmppd.storage import Database

DOMAIN = "chat.example.com"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> str:
    path = tmp_path / "xmppd.toml"
    # No plugins: these tests are about the core's accounts and schema.
    path.write_text(
        f'[server]\ndomain = "{DOMAIN}"\n\n[storage]\nurl = "{db_url}"\n\n[plugins]\nenabled = []\n'
    )
    return str(path)


@pytest.fixture
def ctl(config: str, capsys):
    """Run xmppctl with the config; returns (status, stdout lines, stderr)."""

    def run(*argv: str) -> tuple[int, list[str], str]:
        status = main(["--config", config, *argv])
        out, err = capsys.readouterr()
        return status, out.splitlines(), err

    return run


def create_app(ctl) -> int:
    status, out, _ = ctl("app", "create", "demo")
    assert status == 0
    return int(out[0])


def test_app_create_and_list(ctl):
    """app create prints the id alone, then the keys; app list shows it."""
    status, out, err = ctl("app", "create", "demo")
    assert (status, err) == (0, "")
    app_id = int(out[0])
    assert out[1].startswith("auth_key: ") and len(out[1]) > len("auth_key: ") + 20
    assert out[2].startswith("auth_secret: ") and len(out[2]) > len("auth_secret: ") + 32
    status, out, _ = ctl("app", "list")
    assert status == 0 and out[0].split("\t")[:2] == [str(app_id), "demo"]


def test_user_add_prints_jid_last(ctl, db_url):
    """user add prints the bare JID last; the password then logs in (PLAIN)."""
    app_id = create_app(ctl)
    status, out, _ = ctl("user", "add", "--app", str(app_id), "--login", "bob", "--password", "pw")
    assert status == 0
    localpart, domain = out[-1].split("@")
    assert domain == DOMAIN and localpart.endswith(f"-{app_id}")
    db = Database(db_url)
    try:
        user = db.run_sync(accounts.verify_plain, localpart, "pw")
        assert user is not None and user.login == "bob"
    finally:
        db.stop()
    status, out, _ = ctl("user", "list", "--app", str(app_id))
    assert (status, out) == (0, [f"{localpart}@{DOMAIN}\tbob"])


def test_password_from_file_and_stdin(ctl, db_url, tmp_path, monkeypatch):
    """The password may come from --password-file or, when omitted, from stdin."""
    app_id = create_app(ctl)
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    status, out, _ = ctl(
        "user", "add", "--app", str(app_id), "--login", "f", "--password-file", str(secret)
    )
    assert status == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin\n"))
    status, out2, _ = ctl("user", "add", "--app", str(app_id), "--login", "s")
    assert status == 0
    db = Database(db_url)
    try:
        assert db.run_sync(accounts.verify_plain, out[-1].split("@")[0], "from-file")
        assert db.run_sync(accounts.verify_plain, out2[-1].split("@")[0], "from-stdin")
    finally:
        db.stop()


def test_user_passwd_and_del(ctl, db_url):
    """user passwd and user del find the user by --jid or by --app/--login."""
    app_id = create_app(ctl)
    _, out, _ = ctl("user", "add", "--app", str(app_id), "--login", "bob", "--password", "old")
    jid = out[-1]
    status, _, _ = ctl("user", "passwd", "--jid", jid, "--password", "new")
    assert status == 0
    db = Database(db_url)
    try:
        assert db.run_sync(accounts.verify_plain, jid.split("@")[0], "old") is None
        assert db.run_sync(accounts.verify_plain, jid.split("@")[0], "new") is not None
    finally:
        db.stop()
    status, out, _ = ctl("user", "del", "--app", str(app_id), "--login", "bob")
    assert status == 0 and jid in out[-1]
    status, _, err = ctl("user", "del", "--jid", jid)
    assert status == 1 and "no such user" in err


def test_failures_exit_1_with_a_message(ctl):
    """Unknown app, duplicate login, unknown user: exit 1, one line naming the problem."""
    status, _, err = ctl("user", "add", "--app", "999", "--login", "x", "--password", "pw")
    assert status == 1 and err == "xmppctl: unknown app 999\n"
    app_id = create_app(ctl)
    ctl("user", "add", "--app", str(app_id), "--login", "bob", "--password", "pw")
    status, _, err = ctl("user", "add", "--app", str(app_id), "--login", "bob", "--password", "pw")
    assert status == 1 and "'bob'" in err and "taken" in err and err.count("\n") == 1
    status, _, err = ctl(
        "user", "passwd", "--app", str(app_id), "--login", "eve", "--password", "x"
    )
    assert status == 1 and "'eve'" in err
    status, _, err = ctl("user", "del", "--jid", "1-1@elsewhere.example")
    assert status == 1 and "not on chat.example.com" in err
    status, _, err = ctl("user", "list", "--app", "999")
    assert status == 1 and "unknown app 999" in err


def test_check_config_and_db_upgrade(ctl):
    """check-config prints ok; db upgrade reports the revisions."""
    assert ctl("check-config")[:2] == (0, ["ok"])
    status, out, _ = ctl("db", "upgrade")
    assert status == 0 and "core_0001" in out[0]


def test_bad_config_exits_1(tmp_path, capsys):
    """A config error is one line naming the key, exit 1."""
    path = tmp_path / "bad.toml"
    path.write_text('[storage]\nurll = "sqlite://"\n')
    assert main(["--config", str(path), "check-config"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("xmppctl: storage.urll") and err.count("\n") == 1


def test_unsupported_database_exits_1(tmp_path, capsys):
    """An unsupported storage URL is reported as storage.url, exit 1."""
    path = tmp_path / "x.toml"
    path.write_text('[storage]\nurl = "mysql://u@h/db"\n')
    assert main(["--config", str(path), "app", "list"]) == 1
    assert capsys.readouterr().err.startswith("xmppctl: storage.url: unsupported database")


def test_usage_error_exits_2():
    """python -m xmppd.ctl with a bad command line exits 2 with argparse's message."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "xmppd.ctl", "user", "add", "--login", "x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert proc.returncode == 2 and "--app" in proc.stderr
