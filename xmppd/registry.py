"""Finding, ordering, configuring and starting plugins.

``plugins.enabled`` in the configuration lists what runs. A name resolves
through the ``xmppd.plugins`` entry-point group (a third-party package declares
its own), then as a module of the ``plugins`` package holding a
:class:`~xmppd.plugin.Plugin` of that name; ``package.module:Class`` is
accepted too. Plugins start in dependency order; an unknown plugin, a missing
dependency, a bad option or a misspelt event name stops start-up with an error
naming the key.
"""

from __future__ import annotations

import importlib
import inspect
import os
from importlib.metadata import entry_points
from typing import Any

from twisted.internet.defer import DeferredList, maybeDeferred

from xmppd.config import Config, ConfigError, build_section, suggest
from xmppd.plugin import Plugin, PluginContext, hooks_of, validate_event_name

ENTRY_POINT_GROUP = "xmppd.plugins"


def resolve(name: str) -> type[Plugin]:
    """The plugin class for a name in ``plugins.enabled``."""
    where = f"plugins.enabled: {name!r}"
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"{where}: cannot load: {e}") from None
    else:
        found = None
        for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
            found = ep.load()
            break
        if found is None:
            found = _from_plugins_package(name, where)
    if not (inspect.isclass(found) and issubclass(found, Plugin)):
        raise ConfigError(f"{where}: {found!r} is not an xmppd plugin")
    return found


def _from_plugins_package(name: str, where: str) -> type[Plugin]:
    try:
        module = importlib.import_module(f"plugins.{name}")
    except ModuleNotFoundError as e:
        if e.name in (f"plugins.{name}", "plugins"):
            raise ConfigError(f"{where}: no such plugin") from None
        raise
    for value in vars(module).values():
        if (
            inspect.isclass(value)
            and issubclass(value, Plugin)
            and getattr(value, "name", None) == name
        ):
            return value
    raise ConfigError(f"{where}: module plugins.{name} defines no plugin named {name!r}")


def load_classes(config: Config) -> list[type[Plugin]]:
    """Resolve the enabled plugins and order them so dependencies come first."""
    classes = {name: resolve(name) for name in config.enabled_plugins}
    by_plugin_name = {cls.name: cls for cls in classes.values()}
    ordered: list[type[Plugin]] = []
    visiting: set[str] = set()

    def visit(cls: type[Plugin]) -> None:
        if cls in ordered:
            return
        if cls.name in visiting:
            raise ConfigError(f"plugins.enabled: dependency cycle through {cls.name!r}")
        visiting.add(cls.name)
        for dep in cls.depends:
            if dep not in by_plugin_name:
                raise ConfigError(
                    f"plugins.enabled: {cls.name!r} depends on {dep!r}, which is not enabled"
                )
            visit(by_plugin_name[dep])
        visiting.discard(cls.name)
        ordered.append(cls)

    for cls in classes.values():
        visit(cls)
    return ordered


def plugin_config(config: Config, cls: type[Plugin]) -> Any:
    raw = config.plugin_options.get(cls.name, {})
    if cls.Config is None:
        if raw:
            key = next(iter(raw))
            raise ConfigError(f"plugins.{cls.name}.{key}: unknown option (the plugin has none)")
        return None
    return build_section(f"plugins.{cls.name}", cls.Config, raw)


def check(config: Config) -> list[type[Plugin]]:
    """Everything `xmppctl check-config` and start-up verify about plugins."""
    classes = load_classes(config)
    names = [cls.name for cls in classes]
    for name in config.plugin_options:
        if name not in names:
            raise ConfigError(
                f"plugins.{name}: options for a plugin that is not enabled{suggest(name, names)}"
            )
    for cls in classes:
        plugin_config(config, cls)
        for name, _, _ in hooks_of_class(cls):
            try:
                validate_event_name(name)
            except ValueError:
                raise ConfigError(
                    f"plugins.{cls.name}: handler for unknown event {name!r}"
                ) from None
    return classes


def hooks_of_class(cls: type[Plugin]) -> list[tuple[str, int, str]]:
    found = []
    for attr in dir(cls):
        for name, priority in getattr(getattr(cls, attr, None), "_xmppd_hooks", ()):
            found.append((name, priority, attr))
    return found


def plugin_migration_dirs(config: Config) -> list[str]:
    """Alembic version folders of the enabled plugins that store data."""
    dirs = []
    for cls in load_classes(config):
        if cls.migrations:
            module = importlib.import_module(cls.__module__)
            dirs.append(os.path.join(os.path.dirname(module.__file__), cls.migrations))
    return dirs


def installed_migration_dirs() -> list[str]:
    """Alembic version folders of every plugin installed (entry points), enabled
    or not: a database keeps the revisions of a plugin that was disabled later."""
    dirs = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception:  # a broken third-party plugin: its own start-up says why
            continue
        if getattr(cls, "migrations", None):
            module = importlib.import_module(cls.__module__)
            dirs.append(os.path.join(os.path.dirname(module.__file__), cls.migrations))
    return dirs


def migrate(db: Any, config: Config) -> None:
    """Upgrade the core and the enabled plugins' tables (``storage.auto_migrate``,
    ``xmppctl db upgrade``)."""
    db.migrate(plugin_migration_dirs(config), installed_migration_dirs())


class PluginSet:
    """The running plugins, in dependency order."""

    def __init__(self, server: Any, classes: list[type[Plugin]]) -> None:
        self.server = server
        self.plugins: dict[str, Plugin] = {}
        for cls in classes:
            ctx = PluginContext(
                name=cls.name,
                config=plugin_config(server.config, cls),
                router=server.router,
                sessions=server.sessions,
                db=server.db,
                clock=server.clock,
                domain=server.domain,
                plugins=self._dependency_of(cls),
                loaded=lambda: list(self.plugins.values()),
                accounts=server.accounts,
                http=getattr(server, "http", None),
                resolve=getattr(getattr(server, "config", None), "resolve", os.path.abspath),
            )
            plugin = cls(ctx)
            for name, priority, handler in hooks_of(plugin):
                server.events.on(name, handler, priority, owner=cls.name)
            self.plugins[cls.name] = plugin

    def _dependency_of(self, cls: type[Plugin]) -> Any:
        def get(name: str) -> Plugin:
            if name not in cls.depends:
                raise KeyError(f"{cls.name} did not declare a dependency on {name}")
            return self.plugins[name]

        return get

    def __iter__(self):
        return iter(self.plugins.values())

    def features(self) -> list[str]:
        return sorted({f for p in self.plugins.values() for f in p.features})

    def start(self) -> Any:
        return DeferredList(
            [maybeDeferred(p.start) for p in self.plugins.values()],
            fireOnOneErrback=True,
            consumeErrors=True,
        )

    def stop(self) -> Any:
        ds = [maybeDeferred(p.stop) for p in reversed(list(self.plugins.values()))]
        for p in self.plugins.values():
            self.server.events.off(p.name)
        return DeferredList(ds, consumeErrors=True)
