"""``xmppctl``: administer applications, users and the database schema.

Database work runs synchronously (``Database.run_sync``): this is a CLI, there is
no reactor. Errors are one line on stderr; the exit status is 2 for a usage
error and 1 for any other failure.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from xmppd import accounts
from xmppd.accounts import AccountError, User, parse_localpart
from xmppd.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from xmppd.registry import migrate
from xmppd.storage import Database, normalise_url

PROG = "xmppctl"


class CommandError(Exception):
    """A command failed; ``str()`` is the one-line message."""


@contextmanager
def _database(config: Config) -> Iterator[Database]:
    """The configured database, migrated first if ``storage.auto_migrate``."""
    try:
        db = Database(config.storage.url, config.storage.pool_size)
    except ValueError as e:
        raise CommandError(f"storage.url: {e}") from None
    try:
        if config.storage.auto_migrate:
            migrate(db, config)
        yield db
    finally:
        db.stop()


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        password = args.password
    elif args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as e:
            raise CommandError(f"--password-file: {e.strerror}: {args.password_file}") from None
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("the passwords do not match")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("empty password")
    return password


def _select_user(db: Database, config: Config, args: argparse.Namespace) -> User:
    """The user named by ``--jid`` or by ``--app`` and ``--login``."""
    if args.jid:
        localpart, _, domain = args.jid.partition("@")
        if domain and domain != config.server.domain:
            raise CommandError(f"--jid: {args.jid} is not on {config.server.domain}")
        ids = parse_localpart(localpart)
        user = db.run_sync(accounts.get_user, ids[0]) if ids else None
        if user is None or user.app_id != ids[1]:
            raise CommandError(f"no such user: {args.jid}")
        return user
    if args.app is None or args.login is None:
        raise CommandError("give --jid, or --app and --login")
    user = db.run_sync(accounts.user_by_login, args.app, args.login)
    if user is None:
        raise CommandError(f"no user with login {args.login!r} in app {args.app}")
    return user


# -- commands: each takes (config, args) and prints its result ---------------


def app_create(config: Config, args: argparse.Namespace) -> None:
    with _database(config) as db:
        app = db.run_sync(accounts.create_app, args.name)
    print(app.id)
    print(f"auth_key: {app.auth_key}")
    print(f"auth_secret: {app.auth_secret}")


def app_list(config: Config, args: argparse.Namespace) -> None:
    with _database(config) as db:
        apps = db.run_sync(accounts.list_apps)
    for app in apps:
        print(f"{app.id}\t{app.name}\t{app.auth_key}")


def user_add(config: Config, args: argparse.Namespace) -> None:
    password = _password(args)
    with _database(config) as db:
        if db.run_sync(accounts.get_app, args.app) is None:
            raise CommandError(f"unknown app {args.app}")
        user = db.run_sync(
            accounts.create_user, args.app, args.login, password, args.email, args.full_name
        )
    print(user.jid(config.server.domain))


def user_passwd(config: Config, args: argparse.Namespace) -> None:
    with _database(config) as db:
        user = _select_user(db, config, args)
        db.run_sync(accounts.set_password, user.id, _password(args))
    print(f"password changed, API sessions revoked: {user.jid(config.server.domain)}")


def user_del(config: Config, args: argparse.Namespace) -> None:
    with _database(config) as db:
        user = _select_user(db, config, args)
        db.run_sync(accounts.delete_user, user.id)
    print(f"deleted: {user.jid(config.server.domain)}")


def user_list(config: Config, args: argparse.Namespace) -> None:
    with _database(config) as db:
        if db.run_sync(accounts.get_app, args.app) is None:
            raise CommandError(f"unknown app {args.app}")
        users = db.run_sync(accounts.list_users, args.app)
    for user in users:
        print(f"{user.jid(config.server.domain)}\t{user.login}")


def check_config(config: Config, args: argparse.Namespace) -> None:
    try:
        normalise_url(config.storage.url)
    except ValueError as e:
        raise CommandError(f"storage.url: {e}") from None
    try:
        from xmppd.registry import check
    except ImportError:  # TODO: drop once xmppd.registry is always present
        pass
    else:
        check(config)
    print("ok")


def db_upgrade(config: Config, args: argparse.Namespace) -> None:
    with _database(config) as db:
        if not config.storage.auto_migrate:  # _database() did not already
            migrate(db, config)
        revisions = db.current_revisions()
    print("at " + ", ".join(revisions))


# -- arguments ---------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Administer an xmppd server.")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH} if present, else defaults)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: Any, name: str, fn: Callable[[Config, argparse.Namespace], None], help: str
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help)
        sub.set_defaults(fn=fn)
        return sub

    app = commands.add_parser("app", help="applications").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(app, "create", app_create, "create an application").add_argument("name")
    command(app, "list", app_list, "list applications: id, name, auth_key")

    user = commands.add_parser("user", help="users").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = command(user, "add", user_add, "create a user; prints its bare JID last")
    add.add_argument("--app", type=int, required=True, help="application id")
    add.add_argument("--login", required=True)
    add.add_argument("--email")
    add.add_argument("--full-name")
    for name, fn, help in (
        ("passwd", user_passwd, "set a user's password (revokes its API sessions)"),
        ("del", user_del, "delete a user and everything stored for it"),
    ):
        sub = command(user, name, fn, help)
        sub.add_argument("--jid", help="the user's bare JID (or localpart)")
        sub.add_argument("--app", type=int, help="application id, with --login")
        sub.add_argument("--login")
    for sub in (add, user.choices["passwd"]):
        secret = sub.add_mutually_exclusive_group()
        secret.add_argument(
            "--password", help="the password (visible to other local users: prefer the others)"
        )
        secret.add_argument(
            "--password-file", metavar="FILE", help="read it from FILE's first line"
        )
    command(user, "list", user_list, "list an application's users: jid, login").add_argument(
        "--app", type=int, required=True
    )

    command(commands, "check-config", check_config, "validate the configuration, print ok")
    db = commands.add_parser("db", help="database").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(db, "upgrade", db_upgrade, "apply pending schema migrations")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xmppctl``; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # usage error (2) or --help (0)
        return int(e.code or 0)
    path = args.config
    if path is None and os.path.exists(DEFAULT_CONFIG_PATH):
        path = DEFAULT_CONFIG_PATH
    try:
        args.fn(load_config(path), args)
    except (ConfigError, AccountError, CommandError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        print(f"{PROG}: database: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
