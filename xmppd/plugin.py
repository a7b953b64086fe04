"""The plugin API: what a plugin declares, and the context it is given.

A plugin is a class that declares what it implements, advertises and stores, and
registers handlers with decorators::

    class Ping(Plugin):
        name = "ping"
        implements = ("XEP-0199 2.0.1",)
        features = (NS_PING,)

        @iq_get(NS_PING, "ping", to="host")
        def pong(self, event):
            return event.result()

See docs/plugins.md for the event names and the rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.logger import Logger

from xmppd.errors import StanzaError
from xmppd.events import Priority

if TYPE_CHECKING:
    from sqlalchemy import Table

    from xmppd.accounts import Accounts
    from xmppd.http import HttpSite
    from xmppd.router import Router
    from xmppd.sessions import Session, SessionDirectory
    from xmppd.storage import Database

__all__ = [
    "Identity",
    "Plugin",
    "PluginContext",
    "Priority",
    "SessionSlot",
    "StanzaError",
    "hook",
    "iq_get",
    "iq_set",
    "validate_event_name",
]

_HOOKS = "_xmppd_hooks"

# Event names the core fires; docs/plugins.md explains each.
_KIND = r"(?:message|presence|iq)"
_DEST = r"(?:full|bare|host|self|remote)"
_QNAME = r"[^\s:]+:[A-Za-z_][\w.\-]*"  # {namespace}:{element}; namespaces contain ':'
EVENT_GRAMMAR = re.compile(
    rf"^(?:(?:pre-)?{_KIND}/{_DEST}"
    rf"|iq-(?:get|set)/(?:bare|host|self)/.+:[A-Za-z_][\w.\-]*"
    rf"|stanza/.+:[A-Za-z_][\w.\-]*"
    r"|message/offline"
    r"|stream-features|session-bound|session-closed|session-available|session-unavailable|user-deleted"
    r"|disco-info|disco-items"
    r"|[a-z][a-z0-9_]*/[a-z][a-z0-9_\-]*)$"  # plugin-defined: "{plugin}/{event}"
)


def validate_event_name(name: str) -> None:
    if not EVENT_GRAMMAR.match(name):
        raise ValueError(f"unknown event name {name!r}")


@dataclass(frozen=True)
class Identity:
    """A disco#info identity (XEP-0030 §3.1)."""

    category: str
    type: str
    name: str | None = None


def hook(*names: str, priority: int = Priority.DEFAULT) -> Callable:
    """Register the decorated method for each event in ``names``."""

    def mark(method: Callable) -> Callable:
        getattr(method, _HOOKS, None) or setattr(method, _HOOKS, [])
        getattr(method, _HOOKS).extend((name, priority) for name in names)
        return method

    return mark


def _iq(kind: str, namespace: str, element: str, to: str, priority: int) -> Callable:
    name = f"iq-{kind}/{to}/{namespace}:{element}"

    def mark(method: Callable) -> Callable:
        return hook(name, priority=priority)(method)

    return mark


def iq_get(namespace: str, element: str, to: str = "host", priority: int = 0) -> Callable:
    """Handle ``<iq type='get'>`` whose payload is ``{namespace}element``.

    ``to`` is ``host`` (the server), ``self`` (the sender's own account) or
    ``bare`` (another local account, answered on its behalf). The method
    returns the reply (``event.result(...)``), ``None`` to pass, or raises
    ``StanzaError``.
    """
    return _iq("get", namespace, element, to, priority)


def iq_set(namespace: str, element: str, to: str = "host", priority: int = 0) -> Callable:
    """Handle ``<iq type='set'>``; see :func:`iq_get`."""
    return _iq("set", namespace, element, to, priority)


def hooks_of(plugin: Plugin) -> list[tuple[str, int, Callable]]:
    found = []
    for attr in dir(type(plugin)):
        method = getattr(type(plugin), attr, None)
        for name, priority in getattr(method, _HOOKS, ()):
            found.append((name, priority, getattr(plugin, attr)))
    return found


class SessionSlot:
    """Per-session state owned by one plugin; cleared when the session ends."""

    def __init__(self, key: str, default: Any = None) -> None:
        self.key = key
        self.default = default

    def get(self, session: Session) -> Any:
        return session.slots.get(self.key, self.default)

    def set(self, session: Session, value: Any) -> None:
        session.slots[self.key] = value


class PluginContext:
    """Everything a plugin may touch, handed to its constructor."""

    def __init__(
        self,
        *,
        name: str,
        config: Any,
        router: Router,
        sessions: SessionDirectory,
        db: Database,
        clock: Any,
        domain: str,
        plugins: Callable[[str], Plugin],
        loaded: Callable[[], list[Plugin]] = list,
        accounts: Accounts | None = None,
        http: HttpSite | None = None,
        resolve: Callable[[str], str] = os.path.abspath,
    ) -> None:
        self.name = name
        self.config = config
        self.router = router
        self.sessions = sessions
        self.events = router.events
        self.db = db
        self.clock = clock
        self.domain = domain
        self.accounts = accounts  # apps, users, API tokens (xmppd/accounts.py)
        self.http = http  # the HTTP site: ``http.mount("/prefix", resource)``
        self.resolve = resolve  # a configured path, relative to the server's base dir
        self.log = Logger(namespace=f"xmppd.plugins.{name}")
        self._plugins = plugins
        self._loaded = loaded

    def session_slot(self, name: str, default: Any = None) -> SessionSlot:
        return SessionSlot(f"{self.name}.{name}", default)

    def plugin(self, name: str) -> Plugin:
        """A plugin this one declared in ``depends``."""
        return self._plugins(name)

    def loaded(self, name: str) -> Plugin | None:
        """An optional dependency: the plugin ``name`` when it is enabled, else ``None``.
        Every plugin is built before any starts: call it from ``start()`` on."""
        return next((p for p in self._loaded() if p.name == name), None)

    def features(self) -> list[str]:
        """The disco features of every loaded plugin (XEP-0030), sorted."""
        return sorted({f for p in self._loaded() for f in p.features})

    def identities(self) -> list[Identity]:
        """The disco identities of every loaded plugin."""
        return [i for p in self._loaded() for i in p.identities]


class Plugin:
    """Base class of every plugin. Subclasses set the class attributes."""

    name: ClassVar[str]
    implements: ClassVar[tuple[str, ...]] = ()  # ("XEP-0199 2.0.1",)
    features: ClassVar[tuple[str, ...]] = ()  # disco#info vars, advertised for the plugin
    identities: ClassVar[tuple[Identity, ...]] = ()
    depends: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type | None] = None  # a frozen dataclass; see xmppd.config
    tables: ClassVar[tuple[Table, ...]] = ()
    migrations: ClassVar[str | None] = None  # Alembic version folder, if tables

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    def start(self) -> Any:
        """Called once the server is ready; may return a Deferred."""

    def stop(self) -> Any:
        """Called at shutdown; may return a Deferred."""
