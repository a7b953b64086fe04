"""XMPP over WebSocket (RFC 7395): the c2s stream with WebSocket framing.

Served by autobahn on the HTTP site at ``/xmpp-websocket`` (``http.websocket``).
A :class:`WebSocketStream` is a :class:`~xmppd.stream.c2s.ClientStream`: SASL,
binding, features, the router, timeouts, the slow-reader cap and shutdown are
the same code. Only the framing differs:

- The upgrade must offer sub-protocol ``xmpp``, which is echoed; otherwise HTTP
  400 (§3.1). With ``http.websocket_origins`` set, another Origin is HTTP 403.
- Each text frame holds exactly one complete element (§3.3.3). Frames go through
  the same hardened :class:`StreamParser` as TCP, primed with a synthetic
  ``<stream:stream xmlns='jabber:client'>`` start tag, so a DOCTYPE or a comment
  is ``restricted-xml`` here too (CVE-2022-0217). Two elements in a frame, or a
  part of one, is ``not-well-formed``; a binary frame is closed with 1003; a frame
  over ``c2s.max_stanza_size`` is closed by autobahn with 1009.
- ``<open/>`` opens and, after SASL success, restarts the stream (on a new
  parser); ``<close/>`` is answered with ``<close/>`` and the WebSocket closes.
  An old-style ``<stream:stream>`` header is ``invalid-namespace`` (§3.3.2).
- A stream error is a ``<stream:error>`` frame, then ``<close/>`` (§3.6).
- No STARTTLS: TLS comes from the HTTPS listener. A stream counts as secure on
  the TLS listener, and on the plain one only when the peer is loopback: the
  plain listener binds to 127.0.0.1 by default, a TLS-terminating proxy on the
  same machine connects from there, and the ConnectyCube SDK itself treats
  ``ws://localhost`` as secure (it then picks PLAIN or SCRAM freely). A plain
  stream from elsewhere is treated like a TCP stream before STARTTLS.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import ISSLTransport
from twisted.words.xish import domish

from xmppd.errors import StreamError
from xmppd.stream.c2s import NS_CLIENT, NS_STREAMS, ClientStream
from xmppd.stream.parser import Limits

if TYPE_CHECKING:
    from xmppd.service import Server

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
PATH = "/xmpp-websocket"
SUBPROTOCOL = "xmpp"
CLOSE_UNSUPPORTED_DATA = 1003  # RFC 6455 §7.4.1: a binary frame
# What each parser is primed with: frames are then top-level elements of this stream.
_PRIME = f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>".encode()
_OLD_STYLE = (b"<?xml", b"<stream:stream")


def is_secure(transport: Any) -> bool:
    """TLS listener, or a loopback peer on the plain one (see the module docstring)."""
    if ISSLTransport.providedBy(transport):
        return True
    host = getattr(transport.getPeer(), "host", "")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Frames:
    """The transport a :class:`WebSocketStream` writes to: each ``write`` is one
    text message; the rest goes to the WebSocket protocol or its TCP transport."""

    def __init__(self, ws: XmppWebSocketProtocol) -> None:
        self.ws = ws

    def write(self, data: bytes) -> None:
        if self.ws.state == self.ws.STATE_OPEN:  # nothing is sent once closing began
            self.ws.sendMessage(data, isBinary=False)

    def getPeer(self) -> Any:
        return self.ws.transport.getPeer()

    def getHost(self) -> Any:
        return self.ws.transport.getHost()

    def loseConnection(self) -> None:
        self.ws.sendClose(1000)

    def abortConnection(self) -> None:
        self.ws.dropConnection(abort=True)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        transport = self.ws.transport
        try:
            transport.registerProducer(producer, streaming)
        except RuntimeError:
            # twisted.web's channel registered itself before autobahn took the
            # connection over; it is gone, so the place is ours.
            transport.unregisterProducer()
            transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.ws.transport.unregisterProducer()

    # c2s.max_read_rate pauses the TCP connection under the WebSocket: frames
    # already read are processed, the next wait in the kernel (SECURITY H23).

    def pauseProducing(self) -> None:
        self.ws.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.ws.transport.resumeProducing()


class WebSocketStream(ClientStream):
    """A c2s stream whose elements travel one per WebSocket text frame."""

    starttls_offered = False

    def __init__(self, server: Server, secure: bool) -> None:
        super().__init__(server, direct_tls=secure)
        self._frame: list[domish.Element] = []  # the elements of the frame being fed

    def _new_parser(self, limits: Limits) -> None:
        super()._new_parser(limits)
        self.parser.feed(_PRIME)  # trusted bytes: its header callback is a no-op

    def _on_header(self, header: Any) -> None:
        pass  # the synthetic start tag; the client's header is <open/>

    def _feed(self, frame: bytes) -> None:
        if not frame.strip(b" \t\r\n"):
            return
        if not self.header_sent and frame.lstrip().startswith(_OLD_STYLE):
            raise StreamError("invalid-namespace", text="RFC 7395 framing opens with <open/>")
        # §3.3.3: the whole frame is checked before its element is acted on.
        self._frame = []
        self.parser.feed(frame)
        if len(self._frame) != 1:
            raise StreamError("not-well-formed", text="a frame must hold one complete element")
        self._dispatch(self._frame.pop())

    def _on_element(self, element: domish.Element) -> None:
        self._frame.append(element)
        if len(self._frame) > 1:
            raise StreamError("not-well-formed", text="a frame must hold one element")

    def _dispatch(self, element: domish.Element) -> None:
        if element.uri == NS_FRAMING and element.name == "open" and not self.header_sent:
            self._stream_opened(_attributes(element))  # §3.3.1, and §3.5 after SASL
        elif element.uri == NS_FRAMING and element.name == "close":
            self.close()  # §3.6: answered with <close/>
        elif not self.header_sent:
            raise StreamError("invalid-namespace", text="expected <open/>")  # §3.3.2
        elif element.uri == NS_FRAMING:
            raise StreamError("not-well-formed", text="the stream is already open")
        else:
            super()._on_element(element)

    def _send_header(self) -> None:
        super()._send_header()  # sets stream_id; its _send_raw is a no-op here
        opened = domish.Element((NS_FRAMING, "open"))
        opened["from"] = self.host or self.server.domain
        opened["id"] = self.stream_id
        opened["version"] = "1.0"
        opened[("http://www.w3.org/XML/1998/namespace", "lang")] = "en"
        self.transport.write(opened.toXml().encode("utf-8"))

    def _send_raw(self, text: str) -> None:
        pass  # no stream header or </stream:stream> in the framing

    def _serialise(self, element: domish.Element) -> bytes:
        """§3.3.3: every frame is a complete document, namespaces declared."""
        if element.uri == NS_STREAMS:
            xml = element.toXml(prefixes={NS_STREAMS: "stream"}, defaultUri=NS_CLIENT)
        else:
            xml = element.toXml(defaultUri=NS_CLIENT)
            if element.uri in (None, NS_CLIENT):
                head = len(element.name) + 1
                xml = f"{xml[:head]} xmlns='{NS_CLIENT}'{xml[head:]}"
        return xml.encode("utf-8")

    def close(self) -> None:
        if self.closing:
            return
        if not self.header_sent:
            self._send_header()
        self.transport.write(f"<close xmlns='{NS_FRAMING}'/>".encode())
        self.closing = True
        if self.parser is not None:
            self.parser.close()
        if self._producing:
            self.transport.unregisterProducer()
            self._producing = False
        self.transport.loseConnection()


def _attributes(element: domish.Element) -> dict[str, str]:
    """``<open/>``'s attributes as the TCP header's (``xml:lang`` by that name)."""
    attrs = {}
    for key, value in element.attributes.items():
        if isinstance(key, tuple):
            if key[0] != "http://www.w3.org/XML/1998/namespace":
                continue
            key = f"xml:{key[1]}"
        attrs[key] = value
    return attrs


class XmppWebSocketProtocol(WebSocketServerProtocol):
    """The autobahn side: the handshake rules, then frames to a WebSocketStream."""

    stream: WebSocketStream | None = None

    def onConnect(self, request: Any) -> str:
        if SUBPROTOCOL not in request.protocols:
            raise ConnectionDeny(400, "sub-protocol 'xmpp' required")  # RFC 7395 §3.1
        origins = self.factory.server.config.http.websocket_origins
        if origins and request.headers.get("origin") not in origins:
            raise ConnectionDeny(403, "origin not allowed")
        return SUBPROTOCOL

    def onOpen(self) -> None:
        self.stream = WebSocketStream(self.factory.server, is_secure(self.transport))
        self.stream.makeConnection(_Frames(self))

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.stream is None:
            return
        if isBinary:
            self.stream.closing = True  # §3.3.3: text frames only
            # sendClose() takes only application codes; 1003 is a protocol one.
            self.sendCloseFrame(CLOSE_UNSUPPORTED_DATA, b"text frames only")
            return
        self.stream.dataReceived(payload)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            stream.connectionLost()


class _Resource(WebSocketResource):
    def render(self, request: Any) -> Any:
        # The HTTP channel hands its connection over for good: its idle timer
        # must not fire on the WebSocket hours later.
        request.channel.setTimeout(None)
        return super().render(request)


def websocket_resource(server: Server) -> WebSocketResource:
    """The resource the core mounts at :data:`PATH` on the HTTP site."""
    factory = WebSocketServerFactory()
    factory.protocol = XmppWebSocketProtocol
    factory.server = server
    limit = server.config.c2s.max_stanza_size
    factory.setProtocolOptions(
        maxFramePayloadSize=limit,
        maxMessagePayloadSize=limit,
        autoFragmentSize=0,  # one frame per element out, as §3.3.3 asks of both sides
        failByDrop=False,  # a failure is a close frame with its code (1009), then TCP closes
    )
    return _Resource(factory)
