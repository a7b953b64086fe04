"""Hostile clients on raw sockets, while two slixmpp clients keep chatting.

Each attack reads until the server closes the connection (bounded by the
socket timeout) and checks the exact stream error (RFC 6120 §4.9.3) and the
closing ``</stream:stream>``; after each one the good pair, connected all
along, still exchanges messages and the server still answers a ping
(SECURITY.md §4.9, invariants 1 and 2).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import (
    DOMAIN,
    HOST,
    NS_SASL,
    NS_TLS,
    Client,
    LoopThread,
    RawStream,
    XmppServer,
    error_text,
    login,
    logout,
    plain_credentials,
    raw_stream,
    stream_header,
)

pytestmark = pytest.mark.e2e

NEGOTIATION_TIMEOUT = 2.0
MAX_STANZA_SIZE = 20_000


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {
        "c2s": {
            "negotiation_timeout": NEGOTIATION_TIMEOUT,
            "max_stanza_size": MAX_STANZA_SIZE,
            "pre_auth_max_stanza_size": 8192,
        }
    }


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "mallory")


class GoodPair:
    """Two clients connected for the whole module, on a loop in a thread."""

    def __init__(self, server: XmppServer) -> None:
        self.server = server
        self.thread = LoopThread()
        self.clients: list[Client] = []
        self.clients = self.thread.call(self._connect(server))

    async def _connect(self, server: XmppServer) -> list[Client]:
        clients = [
            await login(server, "alice", plugins=("xep_0199",)),
            await login(server, "bob", direct=True),
        ]
        for c in clients:
            c.send_presence()
        return clients

    async def _exchange(self) -> None:
        alice, bob = self.clients
        for sender, recipient in ((alice, bob), (bob, alice)):
            body = secrets.token_hex(8)
            sender.send_message(mto=recipient.boundjid.full, mbody=body, mtype="chat")
            got = await recipient.expect("message", lambda m, body=body: m["body"] == body)
            assert got["from"] == sender.boundjid
        pong = await alice.plugin["xep_0199"].send_ping(DOMAIN, timeout=5)
        assert pong["type"] == "result"

    def ping_rtt(self) -> float:
        """Seconds for one XEP-0199 ping of the server by alice."""

        async def one() -> float:
            started = time.monotonic()
            await self.clients[0].plugin["xep_0199"].send_ping(DOMAIN, timeout=5)
            return time.monotonic() - started

        return self.thread.call(one(), timeout=10)

    def check(self) -> None:
        """The pair is still connected and still exchanges messages both ways."""
        for c in self.clients:
            assert not c.seen("disconnected"), f"{c.boundjid} was disconnected"
        self.thread.call(self._exchange(), timeout=20)
        assert "Traceback" not in self.server.log_text()

    def close(self) -> None:
        try:
            self.thread.call(logout(*self.clients), timeout=20)
        finally:
            self.thread.close()


@pytest.fixture(scope="module")
def good_pair(server: XmppServer) -> Iterator[GoodPair]:
    pair = GoodPair(server)
    try:
        pair.check()
        yield pair
    finally:
        pair.close()


@contextlib.contextmanager
def attack(server: XmppServer, condition: str, **options: Any) -> Iterator[RawStream]:
    """A raw stream to the STARTTLS port (or ``port=``) that must end in ``condition``,
    logged once with the peer's address (SECURITY.md §4.9, invariant 5)."""
    line = f"closing stream from {HOST}: {condition}"
    before = server.log_text().count(line)
    with raw_stream(options.pop("port", server.port), **options) as raw:
        yield raw
        raw.expect_stream_error(condition)
    assert server.log_text().count(line) == before + 1


# -- restricted XML (RFC 6120 §11.1) ---------------------------------------------

BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + b"".join(
        f"<!ENTITY lol{i} '{f'&lol{i - 1};' * 10 if i > 1 else '&lol;' * 10}'>".encode()
        for i in range(1, 10)
    )
    + b"]><stream:stream to='localhost' xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>&lol9;"
)
EXTERNAL_ENTITY = (
    b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
    + stream_header()[len(b"<?xml version='1.0'?>") :]
    + b"<message><body>&xxe;</body></message>"
)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(EXTERNAL_ENTITY, id="external-entity"),
        pytest.param(stream_header() + b"<!-- x -->", id="comment"),
        pytest.param(stream_header() + b"<?foo bar?>", id="processing-instruction"),
    ],
)
def test_restricted_xml(server: XmppServer, good_pair: GoodPair, payload: bytes) -> None:
    """RFC 6120 §11.1, §4.9.3.18: a DTD, comment or PI is restricted-xml; nothing expanded."""
    with attack(server, "restricted-xml") as raw:
        raw.send(payload)
    assert b"lollol" not in raw.data and b"root:" not in raw.data
    good_pair.check()


# -- stream header and well-formedness (RFC 6120 §4.9.3) -----------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"<'/>", id="bad-tag"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", id="http"),
        pytest.param(stream_header() + b"<message><body>x</message>", id="mismatched-tag"),
    ],
)
def test_garbage_not_well_formed(server: XmppServer, good_pair: GoodPair, garbage: bytes) -> None:
    """RFC 6120 §4.9.3.13: bytes that are not well-formed XML end in not-well-formed."""
    with attack(server, "not-well-formed") as raw:
        raw.send(garbage)
    good_pair.check()


def test_wrong_stream_namespace(server: XmppServer, good_pair: GoodPair) -> None:
    """RFC 6120 §4.9.3.10: a stream element outside the streams namespace is invalid-namespace."""
    with attack(server, "invalid-namespace") as raw:
        raw.send(stream_header(stream_ns="http://example.com/not-streams"))
    good_pair.check()


def test_unknown_host(server: XmppServer, good_pair: GoodPair) -> None:
    """RFC 6120 §4.9.3.6: a stream 'to' a domain the server does not serve is host-unknown."""
    with attack(server, "host-unknown") as raw:
        raw.send(stream_header(to="example.org"))
    # §4.9.1.2: the server opened its own stream (from its domain) to send the error.
    assert b"from='localhost'" in raw.data or b'from="localhost"' in raw.data
    good_pair.check()


# -- authentication gate (RFC 6120 §5, §6) --------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "after-starttls"])
def test_stanza_before_auth(server: XmppServer, good_pair: GoodPair, tls: bool) -> None:
    """RFC 6120 §4.9.3.12: a stanza before authentication is not-authorized."""
    with attack(server, "not-authorized") as raw:
        raw.open()
        if tls:
            raw.starttls()
        raw.send(f"<message to='{good_pair.clients[1].boundjid.full}'><body>spam</body></message>")
    assert all(m["body"] != "spam" for m in good_pair.clients[1].seen("message"))
    good_pair.check()


def test_auth_before_starttls(server: XmppServer, good_pair: GoodPair) -> None:
    """RFC 6120 §6.5.4, §5.3.1: SASL before the required STARTTLS is encryption-required."""
    mallory = server.users["mallory"]
    with raw_stream(server.port) as raw:
        features = raw.open()
        assert features.find(f"{{{NS_TLS}}}starttls/{{{NS_TLS}}}required") is not None
        assert features.find(f"{{{NS_SASL}}}mechanisms") is None  # §5.3.1: nothing before TLS
        raw.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain_credentials(mallory)}</auth>")
        failure = raw.next_element()
        assert failure.tag == f"{{{NS_SASL}}}failure"
        assert [c.tag for c in failure] == [f"{{{NS_SASL}}}encryption-required"]
        # The stream survives the failure; closing it gets the server's close.
        raw.send("</stream:stream>")
        raw.read_until_closed()
        assert raw.ended and raw.data.rstrip().endswith(b"</stream:stream>")
        assert not [e for e in raw.elements if e.tag == f"{{{NS_SASL}}}success"]
    good_pair.check()


# -- limits (RFC 6120 §4.9.3.14) --------------------------------------------------------


def test_oversized_stanza_before_auth(server: XmppServer, good_pair: GoodPair) -> None:
    """RFC 6120 §4.9.3.14: an element over pre_auth_max_stanza_size (8 KiB) is policy-violation."""
    with attack(server, "policy-violation") as raw:
        raw.open()
        raw.send(f"<message><body>{'x' * 9000}</body></message>")
    good_pair.check()


def test_oversized_stanza_after_auth(server: XmppServer, good_pair: GoodPair) -> None:
    """RFC 6120 §4.9.3.14: after auth, a stanza over max_stanza_size is policy-violation."""
    with attack(server, "policy-violation") as raw:
        raw.open()
        raw.starttls()
        jid = raw.auth_plain(server.users["mallory"])
        # Under the limit (but over the pre-auth one) passes: a message to itself.
        body = "y" * (MAX_STANZA_SIZE // 2)
        raw.send(f"<message to='{jid}' id='m1'><body>{body}</body></message>")
        echoed = raw.next_element()
        assert echoed.tag == "{jabber:client}message" and echoed.get("from") == jid
        assert echoed.findtext("{jabber:client}body") == body
        raw.send(f"<message to='{jid}'><body>{'x' * (MAX_STANZA_SIZE + 1000)}</body></message>")
    good_pair.check()


def test_deep_nesting(server: XmppServer, good_pair: GoodPair) -> None:
    """RFC 6120 §4.9.3.14 (SECURITY.md H18): nesting deeper than max_depth is policy-violation."""
    with attack(server, "policy-violation") as raw:
        raw.open()
        raw.starttls()
        jid = raw.auth_plain(server.users["mallory"])
        depth = 1000  # ~7 KB: the depth limit (32), not the byte limit, must stop it
        raw.send(f"<message to='{jid}'>" + "<a>" * depth + "</a>" * depth + "</message>")
    assert "depth" in error_text(raw.elements[-1])
    assert not [e for e in raw.elements if e.tag == "{jabber:client}message"]
    good_pair.check()


def test_flood_is_slowed_down_and_others_keep_their_latency(
    server: XmppServer, good_pair: GoodPair
) -> None:
    """SECURITY.md H23: 3 000 pings in one burst from one client (about 280 KB) are
    read at c2s.max_read_rate (64 KiB/s after a 128 KiB bucket), so answering them
    all takes over a second, while another client's ping stays fast; nobody is cut off."""
    count = 3000
    with raw_stream(server.port) as raw:
        raw.open()
        raw.starttls()
        raw.auth_plain(server.users["mallory"])
        flood = "".join(
            f"<iq type='get' id='f{i}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>"
            for i in range(count)
        )
        started = time.monotonic()
        sender = threading.Thread(target=raw.send, args=(flood,), daemon=True)
        sender.start()
        during = [good_pair.ping_rtt() for _ in range(5)]
        sender.join(timeout=30)
        assert not sender.is_alive()
        answered = 0
        while answered < count:
            if raw.next_element().tag == "{jabber:client}iq":
                answered += 1
        elapsed = time.monotonic() - started
    assert elapsed > 1.0, f"{count} pings answered in {elapsed:.2f}s: not slowed down"
    assert max(during) < 0.5, during
    good_pair.check()


# -- timeouts and transport --------------------------------------------------------------


@pytest.mark.parametrize("send_header", [False, True], ids=["silent", "after-header"])
def test_idle_unauthenticated_connection(
    server: XmppServer, good_pair: GoodPair, send_header: bool
) -> None:
    """RFC 6120 §4.9.3.4 (SECURITY.md H88): unauthenticated after the timeout: closed."""
    started = time.monotonic()
    with attack(server, "connection-timeout", timeout=NEGOTIATION_TIMEOUT + 5) as raw:
        if send_header:
            raw.open()
    elapsed = time.monotonic() - started
    assert NEGOTIATION_TIMEOUT - 0.5 <= elapsed < NEGOTIATION_TIMEOUT + 5
    good_pair.check()


def test_plain_bytes_to_direct_tls_port(server: XmppServer, good_pair: GoodPair) -> None:
    """XEP-0368 §3 (SECURITY.md H32): plain bytes to the TLS port: closed, no XMPP reply."""
    with raw_stream(server.tls_port) as raw:
        raw.send(stream_header())
        received = b""
        while chunk := _recv_or_reset(raw):  # bounded by the socket timeout
            received += chunk
    # Nothing but (at most) a TLS alert record: content type 21.
    assert received == b"" or received[0] == 21, received
    assert b"stream" not in received, received
    good_pair.check()


def _recv_or_reset(raw: RawStream) -> bytes:
    try:
        return raw.sock.recv(4096)
    except ConnectionResetError:
        return b""
    except TimeoutError:
        raise AssertionError("the server kept the connection open") from None


def test_starttls_on_direct_tls_port(server: XmppServer, good_pair: GoodPair) -> None:
    """RFC 6120 §5.4.2.2 (SECURITY.md H31): STARTTLS inside TLS gets a failure and a close."""
    with raw_stream(server.tls_port, direct_tls=True) as raw:
        features = raw.open()
        assert features.find(f"{{{NS_TLS}}}starttls") is None
        raw.send(f"<starttls xmlns='{NS_TLS}'/>")
        raw.read_until_closed()
        assert [e.tag for e in raw.elements[1:]] == [f"{{{NS_TLS}}}failure"]
        assert raw.ended and raw.data.rstrip().endswith(b"</stream:stream>")
    good_pair.check()
