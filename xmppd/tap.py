"""``twistd xmppd``: options, configuration and the service tree.

The configuration is read and validated, and the database migrated, before
twistd binds any port: a bad key or an unreachable database is one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import sys

from twisted.python import usage

from xmppd.config import DEFAULT_CONFIG_PATH, ConfigError, load_config


class Options(usage.Options):
    optParameters = [
        ["config", "c", None, f"Configuration file (TOML); e.g. {DEFAULT_CONFIG_PATH}."],
    ]

    def postOptions(self) -> None:
        try:
            self.config = load_config(self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options):
    from twisted.logger import Logger

    from xmppd.registry import migrate
    from xmppd.service import Server, XmppService

    config = options.config
    try:
        server = Server(config)
        if config.storage.auto_migrate:
            migrate(server.db, config)
    except ConfigError as e:
        sys.stderr.write(f"xmppd: {e}\n")
        raise SystemExit(1) from None
    except Exception as e:  # e.g. the database is unreachable
        Logger().failure("start-up failed")
        sys.stderr.write(f"xmppd: cannot start: {e}\n")
        raise SystemExit(1) from None
    return XmppService(server)
