"""XMPP over WebSocket (RFC 7395; xmppd/stream/websocket.py): a real server's HTTP
listeners on loopback ports, driven by autobahn's Twisted WebSocket client.

slixmpp 1.x has no WebSocket transport, so there is no slixmpp test here; an
end-to-end run of the official ConnectyCube SDK (WebSocket only) is still to come.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from scramp import ScramClient
from twisted.internet import defer, endpoints, protocol, reactor, ssl, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from zope.interface import implementer

from tests.harness import DOMAIN, Harness, parse
from tests.webclient import Web
from xmppd.stream.tls import self_signed
from xmppd.stream.websocket import WebSocketStream, is_secure

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
OPEN = f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'/>"
CLOSE = f"<close xmlns='{NS_FRAMING}'/>"
TIMEOUT = 5  # seconds any one answer may take


class _Protocol(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.frames.put(payload.decode())

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(reason))
        self.factory.closed.callback(code)


class WsClient:
    """One WebSocket connection: text frames out, frames and the close code in."""

    def __init__(self, proto: _Protocol, factory: WebSocketClientFactory) -> None:
        self.proto = proto
        self.factory = factory

    @classmethod
    @defer.inlineCallbacks
    def connect(cls, web: Web, tls: bool = False, protocols: Any = ("xmpp",)):
        port = (web.tls_port if tls else web.port).getHost().port
        scheme = "wss" if tls else "ws"
        factory = WebSocketClientFactory(
            f"{scheme}://localhost:{port}/xmpp-websocket", protocols=list(protocols)
        )
        factory.protocol = _Protocol
        factory.opened, factory.closed = defer.Deferred(), defer.Deferred()
        factory.frames = defer.DeferredQueue()
        if tls:
            with open(web.cert, "rb") as f:
                root = ssl.Certificate.loadPEM(f.read())
            creator = ssl.optionsForClientTLS(DOMAIN, trustRoot=root)
            endpoint = endpoints.SSL4ClientEndpoint(reactor, "127.0.0.1", port, creator)
        else:
            endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        yield endpoint.connect(factory)
        proto = yield factory.opened.addTimeout(TIMEOUT, reactor)
        return cls(proto, factory)

    def send(self, text: str) -> None:
        self.proto.sendMessage(text.encode(), isBinary=False)

    def recv_raw(self) -> defer.Deferred:
        return self.factory.frames.get().addTimeout(TIMEOUT, reactor)

    @defer.inlineCallbacks
    def recv(self):
        """The next frame, parsed (each frame is one namespaced element)."""
        text = yield self.recv_raw()
        return parse(text)

    def closed(self) -> defer.Deferred:
        """Fires with the close code once the WebSocket is closed."""
        return self.factory.closed.addTimeout(TIMEOUT, reactor)

    def disconnect(self) -> None:
        if not self.factory.closed.called:
            self.proto.dropConnection(abort=True)

    @defer.inlineCallbacks
    def open(self, to: str = DOMAIN):
        """§3.3.1: send <open/>; return the server's <open/> and its features."""
        self.send(f"<open xmlns='{NS_FRAMING}' to='{to}' version='1.0'/>")
        opened = yield self.recv()
        features = yield self.recv()
        return opened, features


def mechanisms(features: domish.Element) -> list[str]:
    found = list(features.elements(NS_SASL, "mechanisms"))
    return [str(m) for m in found[0].elements(NS_SASL, "mechanism")] if found else []


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


@defer.inlineCallbacks
def stream_error(client: WsClient):
    """§3.6: a <stream:error> frame, then <close/>, then the WebSocket closes."""
    error = yield client.recv()
    assert (error.uri, error.name) == (NS_STREAMS, "error"), error.toXml()
    closing = yield client.recv()
    assert (closing.uri, closing.name) == (NS_FRAMING, "close")
    yield client.closed()
    [condition] = [c for c in error.elements() if c.uri == NS_STREAM_ERRORS and c.name != "text"]
    return condition.name


@defer.inlineCallbacks
def started(tmp_path: Any, **sections: Any):
    web = yield Web.start(tmp_path, **sections)
    web.cert, _ = self_signed(DOMAIN, os.path.join(web.h.server.var_dir, "tls"))
    return web


@defer.inlineCallbacks
def raw_handshake(web: Web, headers: dict[str, str]):
    """An HTTP upgrade request with ``headers``; return the status code and headers."""
    done: defer.Deferred = defer.Deferred()

    class Raw(protocol.Protocol):
        data = b""

        def connectionMade(self) -> None:
            lines = [
                "GET /xmpp-websocket HTTP/1.1",
                "Host: localhost",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version: 13",
                *(f"{k}: {v}" for k, v in headers.items()),
            ]
            self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

        def dataReceived(self, data: bytes) -> None:
            self.data += data
            if b"\r\n\r\n" in self.data and not done.called:
                head = self.data.split(b"\r\n\r\n")[0].decode().split("\r\n")
                fields = dict(line.split(": ", 1) for line in head[1:])
                done.callback((int(head[0].split()[1]), {k.lower(): v for k, v in fields.items()}))
                self.transport.loseConnection()

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", web.port.getHost().port)
    yield endpoint.connect(protocol.Factory.forProtocol(Raw))
    result = yield done.addTimeout(TIMEOUT, reactor)
    return result


@defer.inlineCallbacks
def until(check: Any):
    for _ in range(100):
        if check():
            return
        yield task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition never held")


# -- the handshake -------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_upgrade_echoes_xmpp_and_refuses_without_it(tmp_path):
    """RFC 7395 §3.1 (SECURITY H82): sub-protocol 'xmpp' is echoed; without it, HTTP 400."""
    web = yield started(tmp_path)
    try:
        code, fields = yield raw_handshake(web, {"Sec-WebSocket-Protocol": "xmpp"})
        assert (code, fields["sec-websocket-protocol"]) == (101, "xmpp")
        code, _ = yield raw_handshake(web, {})
        assert code == 400
        code, _ = yield raw_handshake(web, {"Sec-WebSocket-Protocol": "mqtt"})
        assert code == 400
    finally:
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_origin_outside_the_allowlist_is_403(tmp_path):
    """SECURITY H83: with http.websocket_origins set, another Origin is HTTP 403."""
    web = yield started(tmp_path, http={"websocket_origins": ["https://app.test"]})
    try:
        code, _ = yield raw_handshake(
            web, {"Sec-WebSocket-Protocol": "xmpp", "Origin": "https://evil.test"}
        )
        assert code == 403
        code, _ = yield raw_handshake(
            web, {"Sec-WebSocket-Protocol": "xmpp", "Origin": "https://app.test"}
        )
        assert code == 101
    finally:
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_disabled_is_not_mounted(tmp_path):
    """http.websocket = false: /xmpp-websocket is an ordinary 404."""
    web = yield started(tmp_path, http={"websocket": False})
    try:
        r = yield web.request("GET", "/xmpp-websocket")
        assert r.code == 404
    finally:
        yield web.stop()


# -- a whole session -------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_plain_login_bind_and_messages_both_ways(tmp_path):
    """RFC 7395 §3.3-§3.5: <open/>, features, PLAIN on loopback, a new <open/>, bind;
    then a normal session: messages to and from a TCP c2s session."""
    web = yield started(tmp_path)
    h = web.h
    client = None
    try:
        yield h.user("alice")
        bob = yield h.login("bob")
        localpart = h.jid_of("alice").split("@")[0]
        client = yield WsClient.connect(web)
        opened, features = yield client.open()
        assert (opened.uri, opened.name) == (NS_FRAMING, "open")
        assert opened["from"] == DOMAIN and opened["version"] == "1.0" and opened["id"]
        assert (features.uri, features.name) == (NS_STREAMS, "features")
        assert "PLAIN" in mechanisms(features)  # loopback counts as secure
        assert not list(features.elements(NS_TLS, "starttls"))  # §3.8: no STARTTLS
        credentials = b64(f"\0{localpart}\0secret")
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{credentials}</auth>")
        success = yield client.recv()
        assert success.name == "success", success.toXml()
        _, features = yield client.open()  # §3.5: the restart is a new <open/>
        assert list(features.elements(NS_BIND, "bind"))
        client.send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
        raw = yield client.recv_raw()
        assert "xmlns='jabber:client'" in raw  # §3.3.3: each frame is self-contained
        jid = str(next(parse(raw).elements(NS_BIND, "bind")).jid)
        assert jid.startswith(f"{localpart}@{DOMAIN}/")
        client.send(
            f"<message xmlns='jabber:client' to='{bob.jid}' type='chat'><body>hi</body></message>"
        )
        yield until(lambda: bob.out)
        [message] = bob.take()
        assert (message["from"], str(message.body)) == (jid, "hi")
        yield h.send(bob, f"<message to='{jid}' type='chat'><body>back</body></message>")
        back = yield client.recv()
        assert (back.name, back["from"], str(back.body)) == ("message", bob.jid, "back")
        client.send(CLOSE)
        closing = yield client.recv()
        assert (closing.uri, closing.name) == (NS_FRAMING, "close")  # §3.6
        yield client.closed()
        yield until(lambda: h.server.sessions.get(JID(jid)) is None)
    finally:
        if client is not None:
            client.disconnect()
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_scram_sha1_over_the_tls_listener(tmp_path):
    """RFC 7395 §3.8 (wss): the TLS listener is secure; SCRAM-SHA-1, as the
    ConnectyCube SDK picks it, logs in."""
    web = yield started(tmp_path)
    client = None
    try:
        yield web.h.user("alice")
        localpart = web.h.jid_of("alice").split("@")[0]
        client = yield WsClient.connect(web, tls=True)
        _, features = yield client.open()
        assert {"SCRAM-SHA-1", "PLAIN"} <= set(mechanisms(features))
        scram = ScramClient(["SCRAM-SHA-1"], localpart, "secret")
        client.send(
            f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{b64(scram.get_client_first())}</auth>"
        )
        challenge = yield client.recv()
        scram.set_server_first(base64.b64decode(str(challenge)).decode())
        client.send(f"<response xmlns='{NS_SASL}'>{b64(scram.get_client_final())}</response>")
        success = yield client.recv()
        assert success.name == "success", success.toXml()
        scram.set_server_final(base64.b64decode(str(success)).decode())
        [stream] = web.h.server.streams
        assert ISSLTransport.providedBy(stream.transport.ws.transport) and stream.secure
        yield client.open()
        client.send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
        bound = yield client.recv()
        assert bound["type"] == "result" and stream.session is not None
    finally:
        if client is not None:
            client.disconnect()
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_alias_in_open_is_accepted(tmp_path):
    """SDK-CONTRACT §1.1: the stream 'to' may be the URL's host, an alias of the domain."""
    web = yield started(tmp_path, server={"domain": DOMAIN, "aliases": ["ws.example.test"]})
    client = None
    try:
        client = yield WsClient.connect(web)
        opened, features = yield client.open(to="ws.example.test")
        assert opened["from"] == "ws.example.test" and features.name == "features"
    finally:
        if client is not None:
            client.disconnect()
        yield web.stop()


# -- framing errors --------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_frame_errors(tmp_path):
    """RFC 7395 §3.3.2, §3.3.3, §3.6 (SECURITY H84-H86): each bad frame is a
    <stream:error> frame, <close/>, and the WebSocket closes."""
    web = yield started(tmp_path)
    cases = [
        (None, f"<!DOCTYPE open>{OPEN}", "restricted-xml"),
        (
            None,
            f"<open xmlns='{NS_FRAMING}' to='{DOMAIN}' version='1.0'><!-- x --></open>",
            "restricted-xml",
        ),
        (
            None,
            f"<stream:stream xmlns='jabber:client' xmlns:stream='{NS_STREAMS}' to='{DOMAIN}' version='1.0'>",
            "invalid-namespace",
        ),
        (
            None,
            f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{NS_STREAMS}'>",
            "invalid-namespace",
        ),
        (None, "<message xmlns='jabber:client'/>", "invalid-namespace"),
        (None, f"<open xmlns='{NS_FRAMING}' to='other.test' version='1.0'/>", "host-unknown"),
        (
            OPEN,
            "<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>",
            "not-well-formed",
        ),
        (OPEN, "<message xmlns='jabber:client'>", "not-well-formed"),
        (OPEN, "<presence xmlns='jabber:client'/>", "not-authorized"),
    ]
    try:
        for first, bad, condition in cases:
            client = yield WsClient.connect(web)
            try:
                if first is not None:
                    yield client.open()
                client.send(bad)
                if first is None:
                    opened = yield client.recv()  # an error before the header needs one
                    assert opened.name == "open"
                got = yield stream_error(client)
                assert got == condition, bad
            finally:
                client.disconnect()
    finally:
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_binary_frame_closes_1003_and_oversized_frame_1009(tmp_path):
    """RFC 7395 §3.3.3 (SECURITY H85): text frames only (close 1003); a frame over
    c2s.max_stanza_size is closed with 1009."""
    web = yield started(tmp_path, c2s={"max_stanza_size": 10_000})
    try:
        client = yield WsClient.connect(web)
        yield client.open()
        client.proto.sendMessage(b"<presence/>", isBinary=True)
        code = yield client.closed()
        assert code == 1003
        client = yield WsClient.connect(web)
        yield client.open()
        client.send("<message xmlns='jabber:client'><body>" + "x" * 20_000 + "</body></message>")
        code = yield client.closed()
        assert code == 1009
    finally:
        yield web.stop()


@pytest_twisted.inlineCallbacks
def test_shutdown_sends_system_shutdown(tmp_path):
    """RFC 6120 §4.9.3.20 over RFC 7395 §3.6: the stream is in server.streams like
    any other, and closes with an error frame and <close/>."""
    web = yield started(tmp_path)
    try:
        client = yield WsClient.connect(web)
        yield client.open()
        for stream in list(web.h.server.streams):
            stream.close_with_error("system-shutdown")
        assert (yield stream_error(client)) == "system-shutdown"
    finally:
        yield web.stop()


def test_plain_listener_is_secure_only_from_loopback():
    """The rule in xmppd/stream/websocket.py: plain ws:// counts as secure only
    from a loopback peer (a local client or TLS-terminating proxy)."""

    def transport(peer: Any) -> StringTransport:
        return StringTransport(peerAddress=peer)

    assert is_secure(transport(IPv4Address("TCP", "127.0.0.1", 1)))
    assert is_secure(transport(IPv6Address("TCP", "::1", 1)))
    assert not is_secure(transport(IPv4Address("TCP", "192.0.2.1", 1)))
    assert is_secure(TlsTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 1)))


@implementer(ISSLTransport)
class TlsTransport(StringTransport):
    """A transport that says it is TLS (as TLSMemoryBIOProtocol does)."""


class FakeFrames:
    """Stands in for the WebSocket: records the text frames written."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.lost = False

    def write(self, data: bytes) -> None:
        self.frames.append(data.decode())

    def getPeer(self) -> Any:
        return IPv4Address("TCP", "192.0.2.1", 1)

    def loseConnection(self) -> None:
        self.lost = True


@pytest_twisted.inlineCallbacks
def test_insecure_stream_offers_neither_starttls_nor_mechanisms(tmp_path):
    """RFC 7395 §3.8: no STARTTLS over WebSocket; a plain stream from a remote peer
    is not secure, so (without c2s.allow_plaintext) no mechanism is offered and
    <starttls/> fails and closes (RFC 6120 §5.4.2.2)."""
    h = yield Harness.start(tmp_path, plugins={"enabled": []})
    try:
        frames = FakeFrames()
        stream = WebSocketStream(h.server, secure=False)
        stream.makeConnection(frames)
        stream.dataReceived(OPEN.encode())
        opened, features = (parse(f) for f in frames.frames)
        assert opened.name == "open" and list(features.elements()) == []
        stream.dataReceived(f"<starttls xmlns='{NS_TLS}'/>".encode())
        failure, closing = (parse(f) for f in frames.frames[2:])
        assert (failure.uri, failure.name, closing.name) == (NS_TLS, "failure", "close")
        assert frames.lost
        stream.connectionLost()
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_a_fast_sender_is_slowed_down_over_websocket_too(tmp_path):
    """c2s.max_read_rate (SECURITY H23): past the bucket the TCP connection under
    the WebSocket stops being read until the debt is paid back; the stream lives."""
    web = yield started(tmp_path, c2s={"max_read_rate": 1024, "max_stanza_size": 10_000})
    client = None
    try:
        client = yield WsClient.connect(web)
        yield client.open()
        [stream] = [s for s in web.h.server.streams if isinstance(s, WebSocketStream)]
        tcp = stream.transport.ws.transport
        junk = b64("x" * 4000)  # not a valid PLAIN message: answered with a failure
        for _ in range(2):
            client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{junk}</auth>")
            failure = yield client.recv()
            assert failure.name == "failure"
        yield until(lambda: tcp not in reactor.getReaders())  # 2 x 5.4 KB > 10 000
        web.h.clock.advance(5)
        yield until(lambda: tcp in reactor.getReaders())
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{b64('x')}</auth>")
        assert (yield client.recv()).name == "failure"  # still served
    finally:
        if client is not None:
            client.disconnect()
        yield web.stop()
