#!/usr/bin/env python3
"""Load benchmark for xmppd (or any XMPP server): prints figures, asserts nothing.

Three phases, each bounded in count and in time (``--duration-limit``):

1. login: ``--logins`` full logins (TCP, TLS, SASL, bind, initial presence),
   ``--concurrency`` at a time; each stream is closed once it is available.
   Figures: logins/s, latency p50/p90/p99/max, the median of each stage.
2. messages: ``--pairs`` pairs of available sessions; each side sends
   ``--messages`` chat messages to the other, at most ``--window`` unanswered
   per direction. A body carries its ``perf_counter_ns`` send time; the
   receiver (same process, same clock) computes the latency. Figures:
   messages/s, latency percentiles, lost and bounced messages.
3. idle: ``--idle`` available sessions held open; with ``--server-pid``, the
   server's VmRSS (``/proc/PID/status``) before, with them, and after closing
   them gives KiB per session.

The client is a lean asyncio one (streams, ``ssl``, ``scramp``) so that the
server, not the client, is measured; it still shares the machine's CPUs, and
the server's and the client's CPU use are printed per phase to tell which one
was the bottleneck. bench/README.md explains how to run it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import resource
import secrets
import ssl
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from scramp import ScramClient, ScramException

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING = "urn:xmpp:ping"

FEATURES = f"{{{NS_STREAMS}}}features"
STREAM_ERROR = f"{{{NS_STREAMS}}}error"
MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"
IQ = f"{{{NS_CLIENT}}}iq"
BODY = f"{{{NS_CLIENT}}}body"

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")
READ_SIZE = 65536
CLOSE_TIMEOUT = 5.0  # seconds to wait for a stream's orderly close
STAGES = ("tcp", "tls", "sasl", "bind", "presence")  # of a login, in order


class LoginError(Exception):
    """A failed login; ``str()`` is a short reason ("sasl: not-authorized"),
    counted as is in the report."""


@dataclass(frozen=True)
class Account:
    jid: str
    password: str

    @property
    def localpart(self) -> str:
        return self.jid.partition("@")[0]


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    domain: str
    direct_tls: bool
    tls: ssl.SSLContext
    mechanism: str
    timeout: float  # one login, or one close, at most this long


def _cond(element: ET.Element) -> str:
    """The defined condition of a stream or SASL error, or of a stanza's <error/>."""
    scope = element
    if element.tag != STREAM_ERROR:
        scope = next((c for c in element if c.tag.split("}")[-1] == "error"), element)
    for child in scope:
        name = child.tag.split("}")[-1]
        if name != "text":
            return name
    return "undefined-condition"


class Client:
    """One c2s stream: negotiates up to available presence, then reads in a task."""

    def __init__(self, account: Account, target: Target, resource: str) -> None:
        self.account = account
        self.target = target
        self.resource = resource
        self.jid = ""  # the full JID the server bound
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.stage = "tcp"
        self.closed = False
        self.stream_error = ""
        self.on_message: Callable[[Client, ET.Element], None] | None = None
        self._parser: ET.XMLPullParser | None = None
        self._root: ET.Element | None = None
        self._depth = 0
        self._ready: deque[ET.Element] = deque()
        self._task: asyncio.Task[None] | None = None

    # -- XML ------------------------------------------------------------------

    def _restart(self) -> None:
        """A new stream (RFC 6120 §4.3.3): new parser, new header."""
        self._parser = ET.XMLPullParser(("start", "end"))
        self._root, self._depth = None, 0
        self._write(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
            f" xmlns:stream='{NS_STREAMS}' to={quoteattr(self.target.domain)}"
            " version='1.0' xml:lang='en'>"
        )

    def _feed(self, data: bytes) -> None:
        """Parse bytes; each complete top-level element is queued and dropped
        from the tree, so a long stream holds no history."""
        self._parser.feed(data)
        for event, element in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = element
            else:
                self._depth -= 1
                if self._depth == 1:
                    self._root.remove(element)
                    self._ready.append(element)
                elif self._depth == 0:
                    self.closed = True  # </stream:stream>

    def _write(self, text: str) -> None:
        self.writer.write(text.encode())

    async def _next(self, deadline: float) -> ET.Element:
        """The next top-level element, before ``deadline``."""
        while not self._ready:
            if self.closed:
                raise LoginError(f"{self.stage}: stream closed by the server")
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError
            data = await asyncio.wait_for(self.reader.read(READ_SIZE), remaining)
            if not data:
                raise LoginError(f"{self.stage}: connection closed by the server")
            self._feed(data)
        element = self._ready.popleft()
        if element.tag == STREAM_ERROR:
            raise LoginError(f"{self.stage}: stream error {_cond(element)}")
        return element

    async def _features(self, deadline: float) -> ET.Element:
        element = await self._next(deadline)
        if element.tag != FEATURES:
            raise LoginError(f"{self.stage}: expected features, got {element.tag}")
        return element

    # -- login ----------------------------------------------------------------

    async def login(self) -> dict[str, float]:
        """Connect and negotiate to available presence; returns each stage's
        seconds (tcp, tls, sasl, bind, presence). Raises :class:`LoginError`."""
        try:
            return await self._login(time.perf_counter() + self.target.timeout)
        except LoginError:
            raise
        except TimeoutError:
            raise LoginError(f"{self.stage}: timeout") from None
        except ScramException as e:
            raise LoginError(f"sasl: {e}") from None
        except ET.ParseError:
            raise LoginError(f"{self.stage}: malformed XML") from None
        except (OSError, ssl.SSLError) as e:
            raise LoginError(f"{self.stage}: {type(e).__name__}") from None

    async def _login(self, deadline: float) -> dict[str, float]:
        target = self.target
        stages: dict[str, float] = {}
        mark = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            stages[name] = now - mark
            mark = now
            following = STAGES.index(name) + 1
            self.stage = STAGES[following] if following < len(STAGES) else "available"

        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port), deadline - mark
        )
        lap("tcp")
        if target.direct_tls:  # XEP-0368
            await self._start_tls(deadline)
            self._restart()
            features = await self._features(deadline)
        else:  # RFC 6120 §5
            self._restart()
            features = await self._features(deadline)
            if features.find(f"{{{NS_TLS}}}starttls") is None:
                raise LoginError("tls: STARTTLS not offered")
            self._write(f"<starttls xmlns='{NS_TLS}'/>")
            proceed = await self._next(deadline)
            if proceed.tag != f"{{{NS_TLS}}}proceed":
                raise LoginError("tls: STARTTLS refused")
            await self._start_tls(deadline)
            self._restart()
            features = await self._features(deadline)
        lap("tls")
        offered = [m.text for m in features.iter(f"{{{NS_SASL}}}mechanism")]
        if target.mechanism not in offered:
            raise LoginError(f"sasl: {target.mechanism} not offered")
        await self._sasl(deadline)
        self._restart()
        features = await self._features(deadline)
        lap("sasl")
        await self._bind(features, deadline)
        lap("bind")
        self._write("<presence/>")
        while True:  # RFC 6121 §4.2.2: the server sends it back to the new resource
            element = await self._next(deadline)
            if element.tag == PRESENCE and element.get("from") == self.jid:
                break
        lap("presence")
        return stages

    async def _start_tls(self, deadline: float) -> None:
        remaining = deadline - time.perf_counter()
        await asyncio.wait_for(
            self.writer.start_tls(self.target.tls, server_hostname=self.target.domain), remaining
        )

    def _sasl_element(self, name: str, data: bytes, mechanism: str = "") -> None:
        payload = base64.b64encode(data).decode() if data else "="
        attr = f" mechanism='{mechanism}'" if mechanism else ""
        self._write(f"<{name} xmlns='{NS_SASL}'{attr}>{payload}</{name}>")

    async def _sasl_reply(self, deadline: float) -> tuple[str, bytes]:
        element = await self._next(deadline)
        name = element.tag.split("}")[-1]
        if element.tag == f"{{{NS_SASL}}}failure":
            raise LoginError(f"sasl: {_cond(element)}")
        text = (element.text or "").strip()
        return name, base64.b64decode(text) if text and text != "=" else b""

    async def _sasl(self, deadline: float) -> None:
        mechanism = self.target.mechanism
        if mechanism == "PLAIN":  # RFC 4616
            message = f"\0{self.account.localpart}\0{self.account.password}".encode()
            self._sasl_element("auth", message, mechanism)
            name, _ = await self._sasl_reply(deadline)
            if name != "success":
                raise LoginError(f"sasl: unexpected {name}")
            return
        scram = ScramClient([mechanism], self.account.localpart, self.account.password)
        self._sasl_element("auth", scram.get_client_first().encode(), mechanism)
        name, data = await self._sasl_reply(deadline)
        if name != "challenge":
            raise LoginError(f"sasl: unexpected {name}")
        scram.set_server_first(data.decode())
        self._sasl_element("response", scram.get_client_final().encode())
        name, data = await self._sasl_reply(deadline)
        if name == "challenge":  # server-final as a challenge (RFC 6120 §6.3.10)
            scram.set_server_final(data.decode())
            self._sasl_element("response", b"")
            name, data = await self._sasl_reply(deadline)
        elif name == "success":
            scram.set_server_final(data.decode())
        if name != "success":
            raise LoginError(f"sasl: unexpected {name}")

    async def _iq_result(self, iq_id: str, deadline: float) -> ET.Element:
        while True:
            element = await self._next(deadline)
            if element.tag == IQ and element.get("id") == iq_id:
                if element.get("type") != "result":
                    raise LoginError(f"{self.stage}: {_cond(element)}")
                return element

    async def _bind(self, features: ET.Element, deadline: float) -> None:
        if features.find(f"{{{NS_BIND}}}bind") is None:
            raise LoginError("bind: not offered")
        self._write(
            f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'>"
            f"<resource>{escape(self.resource)}</resource></bind></iq>"
        )
        result = await self._iq_result("bind", deadline)
        self.jid = result.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") or ""
        if not self.jid:
            raise LoginError("bind: no JID in the result")
        session = features.find(f"{{{NS_SESSION}}}session")
        if session is not None and session.find(f"{{{NS_SESSION}}}optional") is None:
            self._write(f"<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>")
            await self._iq_result("sess", deadline)  # RFC 3921 §3, for old servers

    # -- available ------------------------------------------------------------

    def start_reading(self, on_message: Callable[[Client, ET.Element], None]) -> None:
        """Read in a task until the stream ends: messages go to ``on_message``,
        pings and other requests are answered (an idle session must stay up)."""
        self.on_message = on_message
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while not self.closed:
                while self._ready:
                    self._dispatch(self._ready.popleft())
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                self._feed(data)
        except (OSError, ssl.SSLError, ET.ParseError) as e:
            self.stream_error = self.stream_error or type(e).__name__
        finally:
            self.closed = True

    def _dispatch(self, element: ET.Element) -> None:
        tag = element.tag
        if tag == MESSAGE:
            if self.on_message is not None:
                self.on_message(self, element)
        elif tag == IQ and element.get("type") in ("get", "set"):
            to = quoteattr(element.get("from", self.target.domain))
            iq_id = quoteattr(element.get("id", ""))
            if element.find(f"{{{NS_PING}}}ping") is not None:  # XEP-0199
                self._write(f"<iq type='result' to={to} id={iq_id}/>")
            else:
                self._write(
                    f"<iq type='error' to={to} id={iq_id}><error type='cancel'>"
                    f"<service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
                )
        elif tag == STREAM_ERROR:
            self.stream_error = _cond(element)

    def send_message(self, to: str, body: str) -> None:
        self._write(f"<message to={quoteattr(to)} type='chat'><body>{body}</body></message>")

    async def close(self) -> None:
        """``</stream:stream>`` and close, waiting at most ``CLOSE_TIMEOUT``."""
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                if not writer.is_closing():
                    writer.write(b"</stream:stream>")
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
            except (OSError, ssl.SSLError, TimeoutError):
                pass
        if self._task is not None:
            self._task.cancel()
        self.closed = True


# -- measurement helpers -------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def read_rss_kib(pid: int | None) -> int | None:
    """VmRSS of ``pid`` in KiB, from /proc; None when unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def read_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` so far (/proc/PID/stat)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Server and client CPU use over one phase, as % of one core."""

    def __init__(self, server_pid: int | None) -> None:
        self.pid = server_pid
        self.wall = time.perf_counter()
        self.client = time.process_time()
        self.server = read_cpu_seconds(server_pid)

    def read(self) -> tuple[float | None, float | None, float]:
        """Server CPU seconds and % since the start; client CPU %."""
        wall = max(time.perf_counter() - self.wall, 1e-9)
        client = 100 * (time.process_time() - self.client) / wall
        now = read_cpu_seconds(self.pid)
        if now is None or self.server is None:
            return None, None, client
        return now - self.server, 100 * (now - self.server) / wall, client


async def run_bounded(
    count: int, concurrency: int, deadline: float, job: Callable[[int], Awaitable[None]]
) -> int:
    """``job(0..count-1)``, ``concurrency`` at a time, none started after
    ``deadline``; returns how many were started."""
    indices = iter(range(count))
    started = 0

    async def worker() -> None:
        nonlocal started
        for i in indices:  # shared: each worker takes the next index
            if time.perf_counter() >= deadline:
                return
            started += 1
            await job(i)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return started


async def close_all(clients: list[Client]) -> None:
    for start in range(0, len(clients), 200):  # bounded fan-out
        await asyncio.gather(*(c.close() for c in clients[start : start + 200]))


def resource_name(i: int) -> str:
    return f"bench-{i}-{secrets.token_hex(4)}"


async def open_sessions(
    accounts: list[Account],
    target: Target,
    count: int,
    concurrency: int,
    deadline: float,
    on_message: Callable[[Client, ET.Element], None],
) -> tuple[list[Client], Counter[str], list[float]]:
    """``count`` available sessions (account ``i % len``), reading; the
    failures by reason; the login latencies."""
    clients: list[Client | None] = [None] * count
    failures: Counter[str] = Counter()
    latencies: list[float] = []

    async def job(i: int) -> None:
        client = Client(accounts[i % len(accounts)], target, resource_name(i))
        try:
            stages = await client.login()
        except LoginError as e:
            failures[str(e)] += 1
            await client.close()
            return
        latencies.append(sum(stages.values()))
        client.start_reading(on_message)
        clients[i] = client

    await run_bounded(count, concurrency, deadline, job)
    return [c for c in clients if c is not None], failures, latencies


# -- phases --------------------------------------------------------------------


@dataclass
class Row:
    """One line of the result table."""

    phase: str
    count: int = 0
    ok: int = 0
    failed: int = 0
    wall: float = 0.0
    rate: float = math.nan
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    max: float = math.nan
    server_cpu: float | None = None  # % of one core
    server_ms_per_op: float | None = None  # server CPU time per login, message, session
    client_cpu: float = 0.0
    notes: list[str] = field(default_factory=list)

    def latencies(self, seconds: list[float]) -> None:
        seconds.sort()
        self.p50, self.p90, self.p99 = (1000 * percentile(seconds, p) for p in (50, 90, 99))
        self.max = 1000 * seconds[-1] if seconds else math.nan

    def cpu(self, meter: CpuMeter, ops: int) -> None:
        seconds, self.server_cpu, self.client_cpu = meter.read()
        if seconds is not None and ops:
            self.server_ms_per_op = 1000 * seconds / ops


def _failure_notes(failures: Counter[str]) -> list[str]:
    return [f"{n}x {reason}" for reason, n in failures.most_common(5)]


async def phase_login(args: argparse.Namespace, accounts: list[Account], target: Target) -> Row:
    row = Row("login", count=args.logins)
    failures: Counter[str] = Counter()
    latencies: list[float] = []
    stage_times: dict[str, list[float]] = {s: [] for s in STAGES}

    async def job(i: int) -> None:
        client = Client(accounts[i % len(accounts)], target, resource_name(i))
        try:
            stages = await client.login()
        except LoginError as e:
            failures[str(e)] += 1
        else:
            latencies.append(sum(stages.values()))
            for name, seconds in stages.items():
                stage_times[name].append(seconds)
        finally:
            await client.close()

    meter = CpuMeter(args.server_pid)
    started = time.perf_counter()
    launched = await run_bounded(args.logins, args.concurrency, started + args.duration_limit, job)
    row.wall = time.perf_counter() - started
    row.cpu(meter, len(latencies))
    row.ok, row.failed = len(latencies), sum(failures.values())
    row.rate = row.ok / row.wall
    row.latencies(latencies)
    if launched < args.logins:
        row.notes.append(f"time limit: {launched} of {args.logins} started")
    medians = "  ".join(
        f"{s} {1000 * percentile(sorted(v), 50):.1f}" for s, v in stage_times.items() if v
    )
    if medians:
        row.notes.append(f"stage medians (ms): {medians}")
    row.notes += _failure_notes(failures)
    return row


@dataclass
class Flow:
    """One direction of a pair: at most ``window`` messages in flight."""

    sender: Client
    receiver: Client
    window: asyncio.Semaphore
    total: int
    sent: int = 0
    received: int = 0
    bounced: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self) -> None:
        self.window.release()
        if self.received + self.bounced >= self.total:
            self.done.set()


async def phase_messages(args: argparse.Namespace, accounts: list[Account], target: Target) -> Row:
    pairs, per_side = args.pairs, args.messages
    row = Row("messages", count=2 * pairs * per_side)
    deadline = time.perf_counter() + args.duration_limit
    inbound: dict[tuple[int, str], Flow] = {}  # (id(receiver), sender JID) -> flow
    outbound: dict[tuple[int, str], Flow] = {}  # (id(sender), receiver JID) -> flow
    latencies: list[float] = []
    last_received = 0.0
    unexpected = 0
    padding = "x" * max(0, args.body_size - 32)

    def on_message(client: Client, element: ET.Element) -> None:
        nonlocal last_received, unexpected
        now = time.perf_counter_ns()
        sender = element.get("from", "")
        if element.get("type") == "error":
            flow = outbound.get((id(client), sender))
            if flow is not None:
                flow.bounced += 1
                flow.settle()
            else:
                unexpected += 1
            return
        flow = inbound.get((id(client), sender))
        body = element.findtext(BODY) or ""
        if flow is None or not body[:1].isdigit():
            unexpected += 1
            return
        latencies.append((now - int(body.split(" ", 1)[0])) / 1e9)
        last_received = now / 1e9
        flow.received += 1
        flow.settle()

    clients, failures, _ = await open_sessions(
        accounts[: 2 * pairs], target, 2 * pairs, args.concurrency, deadline, on_message
    )
    if failures:
        row.notes.append("session failures: " + "; ".join(_failure_notes(failures)))
    flows = []
    for a, b in zip(clients[0::2], clients[1::2], strict=False):
        for sender, receiver in ((a, b), (b, a)):
            to = receiver.jid if args.address == "full" else receiver.jid.partition("/")[0]
            flow = Flow(sender, receiver, asyncio.Semaphore(args.window), per_side)
            inbound[(id(receiver), sender.jid)] = flow
            outbound[(id(sender), to)] = flow
            flows.append((flow, to))
    row.count = len(flows) * per_side

    async def send(flow: Flow, to: str) -> None:
        for seq in range(per_side):
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or flow.sender.closed:
                return
            try:
                await asyncio.wait_for(flow.window.acquire(), remaining)
            except TimeoutError:
                return
            flow.sender.send_message(to, f"{time.perf_counter_ns()} {seq} {padding}")
            flow.sent += 1
            try:
                await asyncio.wait_for(
                    flow.sender.writer.drain(), max(deadline - time.perf_counter(), 0.001)
                )
            except TimeoutError:
                return
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            try:
                await asyncio.wait_for(flow.done.wait(), remaining)
            except TimeoutError:
                pass

    meter = CpuMeter(args.server_pid)
    started = time.perf_counter()
    results = await asyncio.gather(*(send(f, to) for f, to in flows), return_exceptions=True)
    ended = time.perf_counter()
    row.cpu(meter, sum(f.received for f, _ in flows))
    crashed = [r for r in results if isinstance(r, BaseException)]
    sent = sum(f.sent for f, _ in flows)
    row.ok = sum(f.received for f, _ in flows)
    bounced = sum(f.bounced for f, _ in flows)
    row.failed = sent - row.ok
    row.wall = (last_received - started) if row.ok else ended - started
    row.rate = row.ok / row.wall if row.wall > 0 else math.nan
    row.latencies(latencies)
    row.notes.append(f"{len(flows) // 2} pairs, {per_side} messages each way, window {args.window}")
    if sent < row.count:
        row.notes.append(f"time limit: {sent} of {row.count} sent")
    if bounced or unexpected:
        row.notes.append(f"{bounced} bounced, {unexpected} unexpected messages")
    if crashed:
        row.notes.append(f"{len(crashed)} senders failed: {crashed[0]!r}")
    closed = [c for c in clients if c.closed]
    if closed:
        errors = Counter(c.stream_error or "closed" for c in closed)
        row.notes.append("streams lost: " + ", ".join(f"{n}x {e}" for e, n in errors.items()))
    await close_all(clients)
    return row


async def phase_idle(args: argparse.Namespace, accounts: list[Account], target: Target) -> Row:
    row = Row("idle", count=args.idle)
    deadline = time.perf_counter() + args.duration_limit
    await asyncio.sleep(args.settle)  # let the previous phase's closes finish
    before = read_rss_kib(args.server_pid)
    meter = CpuMeter(args.server_pid)
    started = time.perf_counter()
    clients, failures, latencies = await open_sessions(
        accounts, target, args.idle, args.concurrency, deadline, lambda c, e: None
    )
    row.wall = time.perf_counter() - started
    row.cpu(meter, len(clients))
    row.ok, row.failed = len(clients), sum(failures.values())
    row.rate = row.ok / row.wall
    row.latencies(latencies)
    await asyncio.sleep(args.settle)
    alive = [c for c in clients if not c.closed]
    during = read_rss_kib(args.server_pid)
    await close_all(clients)
    await asyncio.sleep(args.settle)
    after = read_rss_kib(args.server_pid)
    if before is not None and during is not None and after is not None and alive:
        per = (during - before) / len(alive)
        row.notes.append(
            f"server VmRSS {before} KiB -> {during} KiB with {len(alive)} sessions"
            f" -> {after} KiB after closing: {per:.1f} KiB per idle session"
            " (exact only on a freshly started server: freed memory is reused)"
        )
    elif args.server_pid is None:
        row.notes.append(f"{len(alive)} sessions held; give --server-pid for memory figures")
    else:
        row.notes.append("no memory figure: server VmRSS unreadable or no session held")
    if len(alive) < len(clients):
        row.notes.append(f"{len(clients) - len(alive)} sessions dropped while idle")
    row.notes += _failure_notes(failures)
    return row


# -- report ----------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:{spec}}"
    )


def print_table(rows: list[Row]) -> None:
    header = (
        "phase", "count", "ok", "failed", "wall s", "per s", "p50 ms", "p90 ms",
        "p99 ms", "max ms", "srv cpu%", "srv ms/op", "cli cpu%",
    )  # fmt: skip
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.phase,
                str(r.count),
                str(r.ok),
                str(r.failed),
                _fmt(r.wall, ".2f"),
                _fmt(r.rate),
                _fmt(r.p50),
                _fmt(r.p90),
                _fmt(r.p99),
                _fmt(r.max),
                _fmt(r.server_cpu, ".0f"),
                _fmt(r.server_ms_per_op, ".3f"),
                _fmt(r.client_cpu, ".0f"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))
    for r in rows:
        for note in r.notes:
            print(f"  {r.phase}: {note}")


# -- accounts ----------------------------------------------------------------------


def read_password(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        password = f.readline().rstrip("\r\n")
    if not password:
        raise SystemExit(f"--password-file: {path}: empty first line")
    return password


def read_accounts(path: str, password: str | None, limit: int) -> list[Account]:
    accounts = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.strip().split(None, 1)
            if not parts or parts[0].startswith("#"):
                continue
            secret = parts[1] if len(parts) > 1 else password
            if secret is None or "@" not in parts[0]:
                raise SystemExit(f"--accounts: {path}:{number}: expected 'jid password'")
            accounts.append(Account(parts[0], secret))
            if len(accounts) >= limit:
                break
    return accounts


def provision(config_path: str, count: int, password: str) -> list[Account]:
    """A new application with ``count`` users, through xmppd's Python API when
    it is importable (one process, batched transactions: seconds for
    thousands), else one ``xmppctl`` process per user (slow)."""
    name = f"bench {time.strftime('%Y-%m-%d %H:%M:%S')}"
    try:
        from xmppd import accounts as xa
        from xmppd.config import load_config
        from xmppd.registry import plugin_migration_dirs
        from xmppd.storage import Database
    except ImportError:
        return _provision_xmppctl(config_path, count, password, name)
    config = load_config(config_path)
    db = Database(config.storage.url, config.storage.pool_size)
    try:
        if config.storage.auto_migrate:
            db.migrate(plugin_migration_dirs(config))
        app = db.run_sync(xa.create_app, name)
        users = []
        for start in range(0, count, 100):  # short transactions: the server writes too
            batch = range(start, min(start + 100, count))
            users += db.run_sync(
                lambda conn, b: [xa.create_user(conn, app.id, f"bench{i}", password) for i in b],
                batch,
            )
    finally:
        db.stop()
    domain = config.server.domain
    print(f"provisioned app {app.id} with {len(users)} users (xmppd API)", file=sys.stderr)
    return [Account(u.jid(domain), password) for u in users]


def _provision_xmppctl(config_path: str, count: int, password: str, name: str) -> list[Account]:
    def ctl(*argv: str) -> list[str]:
        out = subprocess.run(
            ["xmppctl", "--config", config_path, *argv],
            input=password + "\n",  # read from stdin: not on the command line
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if out.returncode:
            raise SystemExit(f"xmppctl {' '.join(argv[:2])}: {out.stderr.strip()}")
        return out.stdout.split()

    app_id = ctl("app", "create", name)[0]
    accounts = []
    for i in range(count):
        jid = ctl("user", "add", "--app", app_id, "--login", f"bench{i}")
        accounts.append(Account(jid[-1], password))
    print(f"provisioned app {app_id} with {count} users (xmppctl)", file=sys.stderr)
    return accounts


def write_accounts(path: str, accounts: list[Account]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for account in accounts:
            f.write(f"{account.jid} {account.password}\n")


# -- main --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="XMPP server load benchmark: login rate, message throughput and "
        "latency, memory per idle session. Prints figures; asserts nothing.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, help="default: 5222 (STARTTLS) or 5223 (direct TLS)")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--starttls", dest="direct_tls", action="store_false", help="(default)")
    tls.add_argument("--direct-tls", dest="direct_tls", action="store_true", help="XEP-0368")
    p.set_defaults(direct_tls=False)
    p.add_argument(
        "--cafile", help="verify the server certificate with this CA (default: no check)"
    )
    p.add_argument("--domain", help="stream 'to' and TLS SNI; default: the accounts' domain")
    p.add_argument("--users", type=int, default=200, help="accounts to use (or provision)")
    p.add_argument(
        "--accounts", metavar="FILE", help="lines 'jid password' (written by --provision)"
    )
    p.add_argument(
        "--password-file",
        metavar="FILE",
        help="the password for lines with only a JID, and for --provision",
    )
    p.add_argument(
        "--provision",
        metavar="CONFIG",
        help="first create an app and --users users on the xmppd of CONFIG",
    )
    p.add_argument("--mechanism", choices=MECHANISMS, default="SCRAM-SHA-256")
    p.add_argument("--phases", default="login,messages,idle", help="comma-separated subset")
    p.add_argument("--logins", type=int, help="full logins in the login phase (default: --users)")
    p.add_argument("--concurrency", type=int, default=20, help="logins in flight at once")
    p.add_argument("--pairs", type=int, help="message pairs (default: min(20, users/2))")
    p.add_argument("--messages", type=int, default=500, help="messages each side of a pair sends")
    p.add_argument("--window", type=int, default=10, help="messages in flight per direction")
    p.add_argument("--body-size", type=int, default=64, help="approximate body bytes")
    p.add_argument("--address", choices=("bare", "full"), default="bare", help="message 'to'")
    p.add_argument("--idle", type=int, default=200, help="idle sessions to hold")
    p.add_argument("--server-pid", type=int, help="read the server's RSS and CPU from /proc")
    p.add_argument("--settle", type=float, default=2.0, help="seconds before each RSS reading")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds one login may take")
    p.add_argument("--duration-limit", type=float, default=120.0, help="seconds per phase at most")
    args = p.parse_args(argv)
    args.phases = [s.strip() for s in args.phases.split(",") if s.strip()]
    unknown = set(args.phases) - {"login", "messages", "idle"}
    if unknown:
        p.error(f"--phases: unknown {', '.join(sorted(unknown))}")
    if not args.accounts and not args.provision:
        p.error("give --accounts FILE or --provision CONFIG")
    for name in ("users", "concurrency", "messages", "window", "duration_limit", "timeout"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')}: must be positive")
    return args


def tls_context(cafile: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    if cafile is None:  # the default development certificate is self-signed
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed + 64 and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main_async(args: argparse.Namespace) -> int:
    password = read_password(args.password_file) if args.password_file else None
    if args.provision:
        password = password or secrets.token_urlsafe(12)
        accounts = provision(args.provision, args.users, password)
        if args.accounts:
            write_accounts(args.accounts, accounts)
    else:
        accounts = read_accounts(args.accounts, password, args.users)
    if not accounts:
        raise SystemExit("no accounts")
    domain = args.domain or accounts[0].jid.partition("@")[2].partition("/")[0]
    target = Target(
        host=args.host,
        port=args.port or (5223 if args.direct_tls else 5222),
        domain=domain,
        direct_tls=args.direct_tls,
        tls=tls_context(args.cafile),
        mechanism=args.mechanism,
        timeout=args.timeout,
    )
    args.logins = args.logins or len(accounts)
    args.pairs = min(args.pairs or 20, len(accounts) // 2)
    raise_fd_limit(max(args.idle, 2 * args.pairs, args.concurrency))
    print(
        f"target {target.host}:{target.port} ({'direct TLS' if target.direct_tls else 'STARTTLS'})"
        f" domain {domain}, {target.mechanism}, {len(accounts)} accounts;"
        f" logins {args.logins} at concurrency {args.concurrency};"
        f" pairs {args.pairs} x {args.messages} messages each way, window {args.window},"
        f" body ~{args.body_size} B, to {args.address} JID; idle {args.idle};"
        f" server pid {args.server_pid or '-'}; limits: {args.timeout:g} s per login,"
        f" {args.duration_limit:g} s per phase"
    )
    rows = []
    if "login" in args.phases:
        rows.append(await phase_login(args, accounts, target))
    if "messages" in args.phases:
        if args.pairs < 1:
            print("messages: skipped, needs at least 2 accounts", file=sys.stderr)
        else:
            rows.append(await phase_messages(args, accounts, target))
    if "idle" in args.phases and args.idle > 0:
        rows.append(await phase_idle(args, accounts, target))
    if not rows:
        return 0
    print_table(rows)
    print(
        "note: the client shares this machine's CPUs with the server; "
        "srv/cli cpu% is per phase, 100 = one core."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
