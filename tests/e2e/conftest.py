"""End-to-end harness: a real ``twistd xmppd`` in a subprocess, real clients.

The ``server`` fixture (one per test module) writes a configuration into a
temporary directory (loopback only, two free ephemeral ports, SQLite there),
creates an application and the module's users with the real ``xmppctl``,
starts ``twistd -n xmppd`` and waits until both ports accept connections; at
teardown it sends SIGTERM and, if the server does not exit in time, SIGKILL.
A module changes the configuration or the users by overriding the
``server_config`` or ``server_users`` fixtures.

Clients are slixmpp (a third-party XMPP client) on asyncio, never on the
Twisted reactor of pytest-twisted; hostile clients use :class:`RawStream`,
a blocking socket that speaks just enough XMPP by hand. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import slixmpp

DOMAIN = "localhost"
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
XMPPCTL = str(BIN / "xmppctl")
START_TIMEOUT = 20.0  # seconds for a server to listen
STOP_TIMEOUT = 10.0  # seconds for a server to exit after SIGTERM
TIMEOUT = 10.0  # seconds for any one client-side wait

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"

# -- the server ----------------------------------------------------------------


def free_port() -> int:
    """A port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml_dumps(config: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for nested dicts of scalars and lists."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = (f"[{prefix[:-1]}]\n" if prefix and lines else "") + "".join(f"{x}\n" for x in lines)
    for name, table in tables:
        out += "\n" + toml_dumps(table, f"{name}.")
    return out


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied, tables merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


try:
    _libc: Any = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here, not in the child
except OSError:
    _libc = None
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when the test process dies (Linux)."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return False
    return True


@dataclass
class User:
    login: str
    password: str
    jid: str  # bare JID, as xmppctl printed it

    @property
    def localpart(self) -> str:
        return self.jid.split("@", 1)[0]


@dataclass
class XmppServer:
    """One xmppd instance under ``directory``; ``start()`` runs it."""

    directory: Path
    config: dict[str, Any]
    port: int = 0
    tls_port: int = 0
    users: dict[str, User] = field(default_factory=dict)
    app_id: str = ""
    proc: subprocess.Popen | None = None

    @classmethod
    def create(cls, directory: Path, overrides: dict[str, Any] | None = None) -> XmppServer:
        port, tls_port = free_port(), free_port()
        while tls_port == port:
            tls_port = free_port()
        base = {
            "server": {"domain": DOMAIN},
            "c2s": {"interface": HOST, "port": port, "tls_port": tls_port},
            "http": {"interface": HOST, "port": 0, "tls_port": 0},
            "storage": {"url": f"sqlite:///{directory}/xmppd.sqlite3"},
            "plugins": {"enabled": ["disco", "ping", "time", "version"]},
        }
        config = merge(base, overrides or {})
        server = cls(directory, config, config["c2s"]["port"], config["c2s"]["tls_port"])
        server.config_path.write_text(toml_dumps(config))
        return server

    @property
    def config_path(self) -> Path:
        return self.directory / "xmppd.toml"

    @property
    def log_path(self) -> Path:
        return self.directory / "xmppd.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _ctl_argv(self, *args: str) -> list[str]:
        return [XMPPCTL, "--config", str(self.config_path), *args]

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``xmppctl --config ... ARGS`` in the server's directory."""
        done = subprocess.run(
            self._ctl_argv(*args),
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"xmppctl {' '.join(args)} failed: {done.stderr}")
        return done

    def add_users(self, *logins: str) -> None:
        """Create the app (once) and a user per login, each with a random password."""
        if not self.app_id:
            self.app_id = self.ctl("app", "create", "e2e").stdout.splitlines()[0].strip()
        # One xmppctl per user, run side by side: each one is mostly start-up time.
        passwords = {login: secrets.token_urlsafe(12) for login in logins}
        procs = {
            login: subprocess.Popen(
                self._ctl_argv(
                    "user", "add", f"--app={self.app_id}", f"--login={login}", f"--password={pw}"
                ),
                cwd=self.directory,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for login, pw in passwords.items()
        }
        for login, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise AssertionError(f"xmppctl user add --login {login} failed: {err}")
            self.users[login] = User(login, passwords[login], out.strip().splitlines()[-1])

    def twistd_args(self, pidfile: Path | None = None) -> list[str]:
        """``twistd -n`` without a pid file; with ``pidfile``, as a daemon."""
        mode = [f"--pidfile={pidfile}"] if pidfile else ["-n", "--pidfile="]
        return [
            TWISTD,
            *mode,
            f"--logfile={self.log_path}",
            "xmppd",
            "--config",
            str(self.config_path),
        ]

    @property
    def output_path(self) -> Path:
        return self.directory / "twistd.out"  # stdout and stderr (a file: a pipe could fill)

    def start(self) -> None:
        with open(self.output_path, "ab") as output:
            self.proc = subprocess.Popen(
                self.twistd_args(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            self.wait_listening(self.proc)
        except BaseException:
            self.stop()
            raise

    def wait_listening(self, proc: subprocess.Popen | None = None) -> None:
        """Poll (bounded) until both ports accept connections."""
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_open(self.port) and port_open(self.tls_port)):
            if proc is not None and proc.poll() is not None:
                out = self.output_path.read_text(errors="replace")
                raise AssertionError(f"xmppd exited with {proc.returncode}: {out}{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"xmppd not listening after {START_TIMEOUT}s")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL; the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        return proc.returncode


@contextlib.contextmanager
def running_server(
    directory: Path, overrides: dict[str, Any] | None = None, users: tuple[str, ...] = ()
) -> Iterator[XmppServer]:
    server = XmppServer.create(directory, overrides)
    server.add_users(*users)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    """Configuration overrides for this module's server (override in a module)."""
    return {}


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    """Logins of the users this module's server has (override in a module)."""
    return ("alice", "bob")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    server_config: dict[str, Any],
    server_users: tuple[str, ...],
) -> Iterator[XmppServer]:
    """A running xmppd shared by the tests of one module."""
    with running_server(tmp_path_factory.mktemp("xmppd"), server_config, server_users) as s:
        yield s


# -- slixmpp clients -------------------------------------------------------------


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
    """Run a client scenario on a fresh asyncio loop, bounded as a whole."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that records what it receives, for ``expect``."""

    RECORDED = (
        "session_start",
        "failed_auth",
        "disconnected",
        "stream_error",
        "message",
        "presence",
        "roster_update",
    )

    def __init__(self, jid: str, password: str, *, port: int, direct: bool, mech: str) -> None:
        super().__init__(jid, password, sasl_mech=mech)
        self.server_port = port
        self.ssl_context.check_hostname = False  # the self-signed development certificate
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.enable_direct_tls = direct
        self.enable_starttls = not direct
        self.enable_plaintext = False
        self.auto_authorize = None  # subscriptions are answered by the test
        self.auto_subscribe = False
        self.received: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        for event in self.RECORDED:
            self.add_event_handler(event, self._recorder(event))

    def _recorder(self, event: str) -> Callable[[Any], None]:
        def record(data: Any) -> None:
            self.received.append((event, data))
            self._changed.set()

        return record

    async def _first(
        self, match: Callable[[str, Any], bool], what: str, timeout: float
    ) -> tuple[str, Any]:
        """The first recorded ``(event, data)`` that ``match`` accepts (bounded wait)."""

        async def scan() -> tuple[str, Any]:
            while True:
                for name, data in self.received:
                    if match(name, data):
                        return name, data
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.boundjid}: no {what} in {timeout}s; received:\n{self.transcript()}"
            ) from None

    async def expect(
        self, event: str, match: Callable[[Any], bool] | None = None, timeout: float = TIMEOUT
    ) -> Any:
        """The first recorded ``event`` whose data satisfies ``match``."""
        _, data = await self._first(
            lambda name, data: name == event and (match is None or match(data)),
            f"matching {event}",
            timeout,
        )
        return data

    async def first_of(self, *events: str, timeout: float = TIMEOUT) -> tuple[str, Any]:
        """Whichever of ``events`` is recorded first."""
        return await self._first(lambda name, _: name in events, f"one of {events}", timeout)

    def seen(self, event: str) -> list[Any]:
        return [data for name, data in self.received if name == event]

    def transcript(self) -> str:
        return "\n".join(f"{name}: {data}" for name, data in self.received)


def make_client(
    server: XmppServer,
    login: str,
    *,
    direct: bool = False,
    mech: str = "SCRAM-SHA-256",
    resource: str | None = None,
    password: str | None = None,
    jid: str | None = None,
    plugins: tuple[str, ...] = (),
) -> Client:
    """A client for ``login`` (not yet connected)."""
    user = server.users.get(login)
    jid = jid or user.jid
    if resource:
        jid = f"{jid}/{resource}"
    port = server.tls_port if direct else server.port
    client = Client(jid, password or user.password, port=port, direct=direct, mech=mech)
    for plugin in plugins:
        client.register_plugin(plugin)
    return client


async def login(server: XmppServer, login: str, **options: Any) -> Client:
    """Connect and wait (bounded) for the session; fails on an auth failure."""
    client = make_client(server, login, **options)
    client.connect(HOST, client.server_port)
    try:
        event, data = await client.first_of("session_start", "failed_auth", "disconnected")
    except BaseException:
        await logout(client)
        raise
    if event != "session_start":
        await logout(client)
        raise AssertionError(f"{login}: {event} {data}")
    return client


async def logout(*clients: Client) -> None:
    """Close the streams (bounded) and stop reconnecting."""
    for client in clients:
        client.cancel_connection_attempt()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(wait=2.0), 5.0)
        client.abort()
        client.cancel_connection_attempt()


@contextlib.asynccontextmanager
async def session(server: XmppServer, user: str, **options: Any) -> AsyncIterator[Client]:
    """``login``, then ``logout`` whatever happens."""
    client = await login(server, user, **options)
    try:
        yield client
    finally:
        await logout(client)


class LoopThread:
    """An asyncio loop in a thread: clients that stay connected across tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_tasks() -> None:  # as asyncio.run does (slixmpp leaves some)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(cancel_tasks(), timeout=5.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        if not self.thread.is_alive():
            self.loop.close()


# -- raw streams -------------------------------------------------------------------


def plain_credentials(user: User) -> str:
    """RFC 4616 §2: the base64 PLAIN message, no authorization identity."""
    return base64.b64encode(f"\0{user.localpart}\0{user.password}".encode()).decode()


def stream_header(to: str = DOMAIN, stream_ns: str = NS_STREAMS) -> bytes:
    """RFC 6120 §4.7: an initial stream header from a client."""
    return (
        f"<?xml version='1.0'?><stream:stream to='{to}' xmlns='jabber:client'"
        f" xmlns:stream='{stream_ns}' version='1.0'>"
    ).encode()


class RawStream:
    """A blocking client socket; parses what the server sends, one stream at a time."""

    def __init__(self, port: int, *, direct_tls: bool = False, timeout: float = TIMEOUT) -> None:
        self.sock: socket.socket = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.data = b""  # every byte received (decrypted), for the byte-level checks
        self.elements: list[ET.Element] = []  # top-level children of the current stream
        self.ended = False  # the server's </stream:stream> was parsed
        self.closed = False  # the server closed the connection
        self._new_parser()
        if direct_tls:
            self._wrap_tls()

    def _new_parser(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._taken = 0

    def _wrap_tls(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock, server_hostname=DOMAIN)

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _receive(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            return
        self.data += chunk
        self._parser.feed(chunk)
        for event, element in self._parser.read_events():
            if event == "start":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 1:
                    self.elements.append(element)
                elif self._depth == 0:
                    self.ended = True

    def next_element(self) -> ET.Element:
        """The next top-level element the server sends (bounded by the socket timeout)."""
        while self._taken >= len(self.elements):
            if self.closed or self.ended:
                raise AssertionError(f"stream closed; received {self.data!r}")
            self._receive()
        self._taken += 1
        return self.elements[self._taken - 1]

    def read_until_closed(self) -> None:
        """Read until the server closes the connection (bounded by the socket timeout)."""
        try:
            while not self.closed:
                self._receive()
        except TimeoutError:
            raise AssertionError(f"server did not close; received {self.data!r}") from None

    def open(self, to: str = DOMAIN) -> ET.Element:
        """Send a stream header; return the features."""
        self.send(stream_header(to))
        features = self.next_element()
        assert features.tag == f"{{{NS_STREAMS}}}features", self.data
        return features

    def starttls(self) -> ET.Element:
        """RFC 6120 §5.4: STARTTLS, the handshake and a new stream; the features."""
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        assert self.next_element().tag == f"{{{NS_TLS}}}proceed", self.data
        self._wrap_tls()
        self._new_parser()
        self.elements = []
        return self.open()

    def auth_plain(self, user: User, resource: str = "raw") -> str:
        """SASL PLAIN (RFC 4616), stream restart, bind; the full JID."""
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain_credentials(user)}</auth>")
        assert self.next_element().tag == f"{{{NS_SASL}}}success", self.data
        self._new_parser()
        self.elements = []
        features = self.open()
        assert features.find(f"{{{NS_BIND}}}bind") is not None, self.data
        self.send(
            f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>"
            f"<resource>{resource}</resource></bind></iq>"
        )
        result = self.next_element()
        assert result.get("type") == "result", self.data
        return result.findtext(f".//{{{NS_BIND}}}jid")

    def expect_stream_error(self, condition: str) -> ET.Element:
        """RFC 6120 §4.9.1.1: the error with exactly ``condition``, ``</stream:stream>``,
        then the server closes the connection. Returns the error element."""
        self.read_until_closed()
        errors = [e for e in self.elements if e.tag == f"{{{NS_STREAMS}}}error"]
        assert len(errors) == 1, f"expected one stream error, got {self.data!r}"
        error = errors[0]
        assert self.elements[-1] is error, f"stream error is not last: {self.data!r}"
        conditions = [c.tag for c in error if c.tag.startswith(f"{{{NS_STREAM_ERRORS}}}")]
        conditions = [c for c in conditions if c != f"{{{NS_STREAM_ERRORS}}}text"]
        assert conditions == [f"{{{NS_STREAM_ERRORS}}}{condition}"], self.data
        assert self.ended and self.data.rstrip().endswith(b"</stream:stream>"), self.data
        return error

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@contextlib.contextmanager
def raw_stream(port: int, **options: Any) -> Iterator[RawStream]:
    stream = RawStream(port, **options)
    try:
        yield stream
    finally:
        stream.close()


def error_text(error: ET.Element) -> str:
    return error.findtext(f"{{{NS_STREAM_ERRORS}}}text") or ""
