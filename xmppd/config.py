"""TOML configuration, validated strictly before anything listens.

Every section is a frozen dataclass; a field's ``metadata`` carries its ``doc``
and bounds. An unknown key, a wrong type, a value out of range or a missing file
raises :class:`ConfigError` naming the full key path (``c2s.port: ...``); the
twistd entry and ``xmppctl`` turn it into one line on stderr and exit 1.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_CONFIG_PATH = "etc/xmppd.toml"


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line naming the key."""


def opt(default: Any, doc: str, **bounds: Any) -> Any:
    """A documented option; ``min``/``max`` bound numbers, ``path`` marks a file."""
    if isinstance(default, list | dict):
        return field(
            default_factory=lambda: type(default)(default), metadata={"doc": doc, **bounds}
        )
    return field(default=default, metadata={"doc": doc, **bounds})


@dataclass(frozen=True)
class ServerConfig:
    domain: str = opt("localhost", "The XMPP domain this server serves (JIDs end in @domain).")
    aliases: list[str] = opt(
        [], "Other names a client may put in the stream's 'to' for the domain."
    )


@dataclass(frozen=True)
class C2SConfig:
    interface: str = opt("0.0.0.0", "Address the client listeners bind to.")
    port: int = opt(
        5222, "Client port with STARTTLS (RFC 6120 §5); 0 disables it.", min=0, max=65535
    )
    tls_port: int = opt(
        5223, "Client port with direct TLS (XEP-0368); 0 disables it.", min=0, max=65535
    )
    allow_plaintext: bool = opt(
        False, "Allow authentication without TLS on the STARTTLS port (tests/loopback only)."
    )
    max_stanza_size: int = opt(262_144, "Largest stanza in bytes after authentication.", min=10_000)
    pre_auth_max_stanza_size: int = opt(8192, "Largest element before authentication.", min=1024)
    max_send_buffer: int = opt(
        1_048_576, "Bytes queued for a client that stops reading before it is cut off.", min=65_536
    )
    max_depth: int = opt(32, "Deepest nesting of elements inside one stanza.", min=4, max=1000)
    max_read_rate: int = opt(
        65_536, "Bytes per second read from one client; faster senders are slowed down.", min=1024
    )
    max_connections: int = opt(50_000, "Open client connections in all.", min=1)
    max_connections_per_ip: int = opt(1000, "Open client connections from one address.", min=1)
    negotiation_timeout: float = opt(
        60.0, "Seconds a connection may take to authenticate and bind.", min=1.0
    )
    max_sessions_per_user: int = opt(10, "Concurrent resources per account.", min=1)
    max_auth_failures: int = opt(5, "Failed logins per IP address before it is locked.", min=1)
    auth_lockout: float = opt(60.0, "Seconds an IP address stays locked after failures.", min=0.0)
    allow_anonymous: bool = opt(False, "Offer SASL ANONYMOUS (RFC 4505).")
    anonymous_app_id: int = opt(0, "Application whose users ANONYMOUS logins become.", min=0)


@dataclass(frozen=True)
class HttpConfig:
    interface: str = opt("127.0.0.1", "Address the HTTP listeners (REST API) bind to.")
    port: int = opt(5280, "Plain HTTP port; 0 disables it.", min=0, max=65535)
    tls_port: int = opt(
        5281, "HTTPS port, with the certificate of [tls]; 0 disables it.", min=0, max=65535
    )
    max_body_size: int = opt(
        1_048_576, "Largest request body in bytes; beyond it the answer is 413.", min=1024
    )
    websocket: bool = opt(True, "Serve XMPP over WebSocket (RFC 7395) at /xmpp-websocket.")
    websocket_origins: list[str] = opt(
        [], "Origin headers a WebSocket upgrade may carry; empty: any origin."
    )


@dataclass(frozen=True)
class TLSConfig:
    cert: str = opt("", "PEM certificate chain; empty: a self-signed one under var/.", path=True)
    key: str = opt("", "PEM private key; empty: generated with the certificate.", path=True)


@dataclass(frozen=True)
class StorageConfig:
    url: str = opt(
        "sqlite:///var/xmppd.sqlite3",
        "SQLAlchemy URL: sqlite:///path or postgresql://user@host/db.",
    )
    pool_size: int = opt(4, "Database threads (SQLite always uses one writer).", min=1, max=64)
    auto_migrate: bool = opt(True, "Apply schema migrations at start-up.")


@dataclass(frozen=True)
class RosterConfig:
    max_items: int = opt(300, "Most contacts one user may have (RFC 6121 §2.3.3).", min=1)
    versioning: bool = opt(True, "Offer roster versioning (XEP-0237).")


@dataclass(frozen=True)
class ClusterConfig:
    backend: Literal["local"] = opt("local", "Fan-out between nodes: 'local' (one node).")


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    c2s: C2SConfig = field(default_factory=C2SConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    roster: RosterConfig = field(default_factory=RosterConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    enabled_plugins: tuple[str, ...] = (
        *("disco", "ping", "time", "version"),
        *("offline", "carbons", "chatstates", "csi", "privacy", "last_activity"),
    )
    plugin_options: dict[str, Any] = field(default_factory=dict)  # validated by the registry
    path: str | None = None  # the file it came from
    base_dir: str = "."  # relative paths (var/, certificates) resolve here


SECTIONS = {
    "server": ServerConfig,
    "c2s": C2SConfig,
    "http": HttpConfig,
    "tls": TLSConfig,
    "storage": StorageConfig,
    "roster": RosterConfig,
    "cluster": ClusterConfig,
}


def suggest(key: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) in (list, tuple):
        return f"a list of {_type_name(typing.get_args(tp)[0])[2:]}s"
    return str(tp)


def check_value(path: str, tp: Any, value: Any, meta: typing.Mapping[str, Any]) -> Any:
    """Validate one value against a type hint; return it converted."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return check_value(path, args[0], value, meta)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        inner = typing.get_args(tp)[0]
        items = [check_value(f"{path}[{i}]", inner, v, {}) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise ConfigError(f"{path}: unsupported option type {tp!r}")
    if not ok:
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if tp is float:
        value = float(value)
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{path}: must be >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{path}: must be <= {meta['max']}, got {value!r}")
    return value


def build_section(path: str, cls: type, raw: Any) -> Any:
    """Build the dataclass ``cls`` from a TOML table, rejecting unknown keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a table, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(f"{path}.{key}: unknown option{suggest(key, fields)}")
        values[key] = check_value(f"{path}.{key}", hints[key], value, fields[key].metadata)
    return cls(**values)


def parse_config(raw: dict[str, Any], path: str | None = None, base_dir: str = ".") -> Config:
    """Validate a parsed TOML document (plugin sections are kept raw)."""
    sections: dict[str, Any] = {}
    enabled = Config.enabled_plugins
    plugin_options: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "plugins":
            if not isinstance(value, dict):
                raise ConfigError(f"plugins: expected a table, got {value!r}")
            value = dict(value)
            if "enabled" in value:
                enabled = tuple(check_value("plugins.enabled", list[str], value.pop("enabled"), {}))
            for name, options in value.items():
                if not isinstance(options, dict):
                    raise ConfigError(f"plugins.{name}: expected a table, got {options!r}")
            plugin_options = value
        elif key in SECTIONS:
            sections[key] = build_section(key, SECTIONS[key], value)
        else:
            raise ConfigError(f"{key}: unknown section{suggest(key, [*SECTIONS, 'plugins'])}")
    config = Config(
        **sections,
        enabled_plugins=enabled,
        plugin_options=plugin_options,
        path=path,
        base_dir=base_dir,
    )
    _check_semantics(config)
    return config


def _check_semantics(config: Config) -> None:
    domain = config.server.domain
    if not domain or any(c in domain for c in "@/ ") or len(domain) > 1023:
        raise ConfigError(f"server.domain: not a valid domain name: {domain!r}")
    for i, alias in enumerate(config.server.aliases):
        if not alias or any(c in alias for c in "@/ ") or alias != alias.lower():
            raise ConfigError(f"server.aliases[{i}]: not a lower-case domain name: {alias!r}")
    for key in ("cert", "key"):
        value = getattr(config.tls, key)
        if value and not os.path.isfile(config.resolve(value)):
            raise ConfigError(f"tls.{key}: no such file: {value}")
    if bool(config.tls.cert) != bool(config.tls.key):
        raise ConfigError("tls.key: tls.cert and tls.key must be set together")
    if len(set(config.enabled_plugins)) != len(config.enabled_plugins):
        raise ConfigError("plugins.enabled: a plugin is listed twice")
    if config.c2s.port and config.c2s.port == config.c2s.tls_port:
        raise ConfigError("c2s.tls_port: same as c2s.port")
    if config.http.port and config.http.port == config.http.tls_port:
        raise ConfigError("http.tls_port: same as http.port")


def _resolve(self: Config, path: str) -> str:
    """A path from the configuration, relative to the configuration's base."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.base_dir, path))


Config.resolve = _resolve  # type: ignore[attr-defined]


def load_config(path: str | None) -> Config:
    """Read and validate ``path``; ``None`` means all defaults (the embedded setup).

    Relative paths in the file (``var/``, certificates, a SQLite file) resolve
    against the current directory, where ``twistd`` is started.
    """
    if path is None:
        return parse_config({}, None)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"--config: cannot read {path}: {e.strerror}") from None
    return parse_config(raw, path)


def sqlite_path(url: str) -> str | None:
    """The file behind a ``sqlite:///`` URL, if any."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix) :] not in ("", ":memory:"):
        return url[len(prefix) :]
    return None
