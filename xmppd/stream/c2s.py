"""Client-to-server streams (RFC 6120): negotiation, then stanzas to the router.

One :class:`ClientStream` per TCP connection walks RFC 6120 §4.3's sequence:
stream header → features → STARTTLS (§5) → SASL (§6) → restart → resource
binding (§7) → stanzas. Until it is bound, a connection may only negotiate;
``negotiation_timeout`` after connecting it is closed with
``<connection-timeout/>`` (§4.9.3.4). Every violation ends with the stream
error RFC 6120 §4.9.3 names, and never disturbs another stream.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from xmppd.errors import StanzaError, StreamError
from xmppd.sessions import Session
from xmppd.stream import sasl
from xmppd.stream.parser import Limits, StreamHeader, StreamParser

if TYPE_CHECKING:
    from xmppd.service import Server

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
STANZAS = frozenset(("message", "presence", "iq"))
MAX_SASL_ATTEMPTS = 3  # RFC 6120 §6.4.5: "at least 2 and no more than 5"

log = Logger()


class ClientStream(protocol.Protocol):
    """One client connection (TCP, with STARTTLS or direct TLS).

    Other transports subclass it and override only the framing: how bytes reach
    the parser (``_feed``), how an element is written (``_serialise``), the
    stream header and the close (``_send_header``, ``close``); see
    ``xmppd/stream/websocket.py``.
    """

    starttls_offered = True  # False where TLS comes from the transport (WebSocket)

    def __init__(self, server: Server, direct_tls: bool) -> None:
        self.server = server
        self.config = server.config.c2s
        self.secure = direct_tls
        self.direct_tls = direct_tls
        self.peer_address = "?"
        self.stream_id = ""
        self.lang = "en"
        self.header_sent = False
        self.authenticated: sasl.Success | None = None
        self.session: Session | None = None
        self.exchange: sasl.SaslExchange | None = None
        self.sasl_failures = 0
        self.closing = False
        self.parser: StreamParser | None = None
        self.binding = False
        self.host: str | None = None  # the stream's 'to', pinned across restarts
        self._timeout: Any = None
        self._producing = False  # registered as the transport's producer
        self._unread: int | None = None  # bytes queued while the transport is full
        self._allowance = float(max(self.config.max_read_rate * 2, self.config.max_stanza_size))
        self._allowance_at = server.clock.seconds()
        self._reading_paused: Any = None  # the call that resumes reading
        self._held: list[bytes] | None = None  # read while paused, parsed on resume

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer_address = getattr(peer, "host", str(peer))
        self.server.streams[self] = Deferred()  # fires when the connection is gone
        self.server.streams_by_ip[self.peer_address] += 1
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(True)  # stanzas are small and latency-bound
        self._new_parser(
            Limits(
                max_stanza_bytes=self.config.pre_auth_max_stanza_size,
                max_depth=self.config.max_depth,
                max_elements=32,
            )
        )
        self._timeout = self.server.clock.callLater(
            self.config.negotiation_timeout, self._negotiation_timed_out
        )

    def _new_parser(self, limits: Limits) -> None:
        if self.parser is not None:
            self.parser.close()
        self.parser = StreamParser(
            self._on_header, self._on_element, self._on_end, limits=limits, content_ns=NS_CLIENT
        )

    def dataReceived(self, data: bytes) -> None:
        if self.closing or self.parser is None:
            return
        if self._held is not None:  # reading is paused; TLS had decrypted this already
            self._held.append(data)
            return
        self._limit_reading(len(data))
        if self.session is not None:
            self.session.last_received = self.server.clock.seconds()
        try:
            self._feed(data)
        except StreamError as e:
            self._close_with(e)
        except Exception:
            log.failure("unexpected error on stream from {peer}", peer=self.peer_address)
            self.close_with_error("internal-server-error")

    def _feed(self, data: bytes) -> None:
        self.parser.feed(data)

    # A client that sends faster than c2s.max_read_rate is slowed down, not cut
    # off (SECURITY H23): a token bucket (two seconds' worth, at least one whole
    # stanza) pays for what was read; once in debt, reading pauses until it is
    # paid back, and TCP flow control makes the client wait. Bytes that arrive
    # while paused (one read's worth at most) are held, not parsed, till then.

    def _limit_reading(self, size: int) -> None:
        rate = self.config.max_read_rate
        now = self.server.clock.seconds()
        burst = max(rate * 2, self.config.max_stanza_size)
        self._allowance = min(burst, self._allowance + (now - self._allowance_at) * rate) - size
        self._allowance_at = now
        if self._allowance >= 0 or self._reading_paused is not None:
            return
        pause = getattr(self.transport, "pauseProducing", None)
        if pause is None:
            return
        pause()
        self._held = []
        delay = -self._allowance / rate
        self._reading_paused = self.server.clock.callLater(delay, self._resume_reading)

    def _resume_reading(self) -> None:
        self._reading_paused = None
        held, self._held = self._held or [], None
        for index, data in enumerate(held):
            self.dataReceived(data)
            if self._held is not None:  # in debt again: keep the rest for later
                self._held.extend(held[index + 1 :])
                return
        if not self.closing:
            self.transport.resumeProducing()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.closing = True
        if self in self.server.streams:
            self.server.streams.pop(self).callback(None)
            by_ip = self.server.streams_by_ip
            by_ip[self.peer_address] -= 1
            if by_ip[self.peer_address] <= 0:
                del by_ip[self.peer_address]
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        if self._reading_paused is not None and self._reading_paused.active():
            self._reading_paused.cancel()
        if self.parser is not None:
            self.parser.close()
        if self.session is not None:
            session, self.session = self.session, None
            session.closed = True
            self.server.session_closed(session)

    def _negotiation_timed_out(self) -> None:
        self._timeout = None
        if self.session is None:
            self.close_with_error("connection-timeout")  # RFC 6120 §4.9.3.4

    # -- output -------------------------------------------------------------

    def send(self, element: domish.Element) -> None:
        if self.closing:
            return
        data = self._serialise(element)
        if self._unread is not None:
            self._unread += len(data)
            if self._unread > self.config.max_send_buffer:
                self._drop_slow_reader()
                return
        self.transport.write(data)

    def _serialise(self, element: domish.Element) -> bytes:
        if element.uri == NS_STREAMS:
            # RFC 6120 §4.8.5: a client MAY accept only the 'stream' prefix the
            # header declared (<stream:features>, <stream:error>). Only our own
            # top-level elements get it: in a routed stanza a client may have
            # bound 'stream' to another namespace, which domish does not track.
            xml = element.toXml(
                prefixes={NS_STREAMS: "stream"}, defaultUri=NS_CLIENT, prefixesInScope=["stream"]
            )
        else:
            xml = element.toXml(defaultUri=NS_CLIENT)
        return xml.encode("utf-8")

    # A client that stops reading must not make the server buffer without end
    # (SECURITY H24): once the transport's buffer is full it pauses us; if more
    # than c2s.max_send_buffer is queued while paused, the connection is cut.

    def pauseProducing(self) -> None:
        self._unread = 0

    def resumeProducing(self) -> None:
        self._unread = None

    def stopProducing(self) -> None:
        pass

    def _drop_slow_reader(self) -> None:
        log.info(
            "dropping {peer}: over {limit} bytes unread",
            peer=self.peer_address,
            limit=self.config.max_send_buffer,
        )
        self.closing = True
        self.transport.abortConnection()

    def _send_raw(self, text: str) -> None:
        self.transport.write(text.encode("utf-8"))

    def _send_header(self) -> None:
        self.stream_id = secrets.token_hex(16)
        self.header_sent = True
        self._send_raw(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
            " xmlns:stream='http://etherx.jabber.org/streams'"
            f" id='{self.stream_id}' from='{self.host or self.server.domain}'"
            " version='1.0' xml:lang='en'>"
        )

    def close_with_error(self, condition: str, text: str | None = None) -> None:
        """RFC 6120 §4.9.1.1: the error, then ``</stream:stream>``, then close."""
        self._close_with(StreamError(condition, text=text))

    def _close_with(self, error: StreamError) -> None:
        condition = error.condition
        if self.closing:
            return
        if not self.header_sent:
            self._send_header()  # §4.9.1.2: an error before the header needs one
        log.info(
            "closing stream from {peer}: {condition}", peer=self.peer_address, condition=condition
        )
        self.send(error.getElement())  # keeps an application condition (XEP-0478)
        self.close()

    def close(self) -> None:
        if self.closing:
            return
        if not self.header_sent:
            self._send_header()
        self._send_raw("</stream:stream>")
        self.closing = True
        if self.parser is not None:
            self.parser.close()
        if self._producing:
            # TLS does not close while a producer is registered.
            self.transport.unregisterProducer()
            self._producing = False
        self.transport.loseConnection()

    # -- negotiation ----------------------------------------------------------

    def _on_header(self, header: StreamHeader) -> None:
        self._stream_opened(header.attrs)

    def _stream_opened(self, attrs: dict[str, str]) -> None:
        """The client opened (or restarted) the stream: check its header, answer
        with ours and the features (RFC 6120 §4.7)."""
        to = (attrs.get("to") or "").lower()
        # §4.9.3.6: the domain or one of its aliases (a WebSocket client may put
        # the URL's host in 'to'); whichever it is, it may not change on restart.
        known = to == self.server.domain or to in self.server.config.server.aliases
        if known and self.host in (None, to):
            self.host = to
        self._send_header()  # 'from' echoes an accepted 'to' (§4.7.1)
        version = attrs.get("version")
        if version is None or version.split(".")[0] != "1":
            raise StreamError("unsupported-version")  # RFC 6120 §4.7.5
        if "to" not in attrs:
            raise StreamError("improper-addressing")  # §4.9.3.7
        if self.host != to:
            raise StreamError("host-unknown")  # §4.9.3.6; also pins the host across restarts
        self.lang = attrs.get("xml:lang", "en")[:35]
        self.send(self._features())

    def _features(self) -> domish.Element:
        """RFC 6120 §4.3.2: the features for the stream's current stage."""
        features = domish.Element((NS_STREAMS, "features"))
        if self.authenticated is not None:
            features.addElement((NS_BIND, "bind"))
            features.addElement((NS_SESSION, "session")).addElement("optional")  # RFC 3921bis
            for contributed in self.server.events.fire_all("stream-features", self):
                for child in contributed if isinstance(contributed, list) else [contributed]:
                    features.addChild(child)
            return features
        if not self.secure:
            starttls = None
            if self.starttls_offered:
                starttls = features.addElement((NS_TLS, "starttls"))
            if not self.config.allow_plaintext:
                if starttls is not None:
                    starttls.addElement("required")
                return features  # §5.3.1: mechanisms only after TLS
        mechanisms = features.addElement((NS_SASL, "mechanisms"))
        for name in self._mechanisms():
            mechanisms.addElement("mechanism", content=name)
        return features

    def _mechanisms(self) -> list[str]:
        return sasl.offered_mechanisms(
            secure=self.secure, allow_anonymous=self.config.allow_anonymous
        )

    def _on_element(self, element: domish.Element) -> None:
        if self.session is not None:
            self._bound_element(element)
        elif element.uri == NS_TLS and element.name == "starttls":
            self._starttls()
        elif element.uri == NS_SASL:
            self._sasl(element)
        elif self.authenticated is not None and element.uri == NS_CLIENT and element.name == "iq":
            self._iq_before_bind(element)
        elif element.uri == NS_CLIENT and element.name in STANZAS:
            raise StreamError("not-authorized")  # RFC 6120 §4.9.3.12
        else:
            raise StreamError("unsupported-stanza-type")  # §4.9.3.24

    def _on_end(self) -> None:
        self.close()

    def _starttls(self) -> None:
        if self.secure or self.authenticated is not None or not self.starttls_offered:
            # RFC 6120 §5.4.2.2: failure, then close the stream.
            self.send(domish.Element((NS_TLS, "failure")))
            self.close()
            return
        self.send(domish.Element((NS_TLS, "proceed")))
        # §5.4.3.3: bytes after <starttls/> are discarded; a new parser waits
        # for the header that follows the handshake.
        self._new_parser(self.parser.limits)
        self.header_sent = False
        self.transport.startTLS(self.server.tls)
        self.secure = True

    def _sasl(self, element: domish.Element) -> None:
        if self.authenticated is not None:
            raise StreamError("not-authorized")
        if element.name == "auth":
            self._sasl_auth(element)
        elif element.name == "response":
            if self.exchange is None:
                self._sasl_failure("malformed-request")
                return
            self._sasl_step(self.exchange.respond, element)
        elif element.name == "abort":
            if self.exchange is not None:
                self.exchange.abort()
            self.exchange = None
            self._sasl_failure("aborted")  # RFC 6120 §6.4.4
        else:
            raise StreamError("unsupported-stanza-type")

    def _sasl_auth(self, element: domish.Element) -> None:
        if not self.secure and not self.config.allow_plaintext:
            self._sasl_failure("encryption-required")  # §6.5.4, no credential checked
            return
        mechanism = element.getAttribute("mechanism", "")
        if self.server.login_throttle.is_locked(self.peer_address):
            self._sasl_failure("not-authorized")  # throttled: no hint why
            return
        if mechanism not in self._mechanisms():
            self._sasl_failure("invalid-mechanism")  # §6.5.7
            return
        self.exchange = sasl.SaslExchange(
            mechanism,
            self.server.credentials,
            secure=self.secure,
            allow_anonymous=self.config.allow_anonymous,
            domain=self.server.domain,
        )
        self._sasl_step(self.exchange.start, element, initial=True)

    def _sasl_step(self, step: Any, element: domish.Element, initial: bool = False) -> None:
        text = str(element).strip()
        try:
            if initial and not text:
                data = None  # no initial response (RFC 6120 §6.4.2)
            else:
                data = sasl.decode_payload(text)
        except sasl.SaslError as e:
            self.exchange = None
            self._sasl_failure(e.condition)
            return
        exchange = self.exchange
        d = step(data)
        d.addCallback(self._sasl_outcome, exchange)
        d.addErrback(self._sasl_crashed, exchange)

    def _sasl_crashed(self, failure: Failure, exchange: Any) -> None:
        if self.closing or exchange is not self.exchange:
            return
        log.failure("SASL exchange failed", failure)
        self.exchange = None
        self._sasl_failure("temporary-auth-failure")  # §6.5.11

    def _sasl_outcome(self, outcome: Any, exchange: Any) -> None:
        if self.closing or exchange is not self.exchange:
            return  # aborted meanwhile (RFC 6120 §6.4.4)
        if isinstance(outcome, sasl.Challenge):
            challenge = domish.Element((NS_SASL, "challenge"))
            challenge.addContent(sasl.encode_payload(outcome.data))
            self.send(challenge)
        elif isinstance(outcome, sasl.Success):
            self.exchange = None
            # Failures are not forgiven by a success: a guesser with an account of
            # their own would otherwise reset the count (SECURITY H38).
            success = domish.Element((NS_SASL, "success"))
            if outcome.data:
                success.addContent(sasl.encode_payload(outcome.data))
            self.send(success)
            self.authenticated = outcome
            # §6.4.6: the stream restarts; the parser after success is new.
            self._new_parser(
                Limits(
                    max_stanza_bytes=self.config.max_stanza_size,
                    max_depth=self.config.max_depth,
                    max_elements=1000,
                )
            )
            self.header_sent = False
        else:
            self.exchange = None
            if outcome.condition == "not-authorized":
                self.server.login_throttle.failed(self.peer_address)
            self._sasl_failure(outcome.condition)

    def _sasl_failure(self, condition: str) -> None:
        failure = domish.Element((NS_SASL, "failure"))
        failure.addElement(condition)
        self.send(failure)
        self.sasl_failures += 1
        if self.sasl_failures >= MAX_SASL_ATTEMPTS:
            self.close_with_error("policy-violation", "too many failed authentication attempts")

    # -- binding (RFC 6120 §7) ------------------------------------------------

    def _iq_before_bind(self, iq: domish.Element) -> None:
        payload = next(iq.elements(), None)
        if iq.getAttribute("type") == "set" and payload is not None and payload.uri == NS_BIND:
            self._bind(iq, payload)
        elif iq.getAttribute("type") == "set" and payload is not None and payload.uri == NS_SESSION:
            self.send(self._result(iq))  # RFC 3921 §3: answered for old clients
        else:
            raise StreamError("not-authorized")  # §7.1: bind before anything else

    def _result(self, iq: domish.Element) -> domish.Element:
        reply = domish.Element((None, "iq"))
        reply["type"] = "result"
        reply["id"] = iq.getAttribute("id", "")
        return reply

    def _bind_error(self, iq: domish.Element, condition: str, text: str | None = None) -> None:
        self.send(StanzaError(condition, text=text).toResponse(iq))

    def _bind(self, iq: domish.Element, bind: domish.Element) -> None:
        if self.binding:
            self._bind_error(iq, "not-allowed", "binding in progress")
            return
        auth = self.authenticated
        if auth.anonymous:
            # RFC 4505: a fresh, unguessable identity for each anonymous login.
            localpart = f"anon-{secrets.token_hex(8)}"
            user_id, app_id = None, self.config.anonymous_app_id or None
        else:
            user_id, app_id = auth.user_id, auth.app_id
            localpart = f"{user_id}-{app_id}"
        requested = next((str(e) for e in bind.elements(NS_BIND, "resource")), "")
        # §7.6: a server-made resource is long and random: some SDKs drop
        # messages whose 'from' merely contains their own resource.
        resource = requested or secrets.token_hex(16)
        try:
            if len(resource.encode("utf-8")) > 1023:
                raise InvalidFormat("resource too long")
            jid = JID(tuple=(localpart, self.server.domain, resource))
        except (InvalidFormat, UnicodeError, ValueError):
            self._bind_error(iq, "bad-request", "invalid resource")  # §7.7.2.1
            return
        directory = self.server.sessions
        replacing = directory.get(jid)
        if (
            replacing is None
            and directory.count(jid.userhost()) >= self.config.max_sessions_per_user
        ):
            self._bind_error(iq, "resource-constraint")  # §7.6.2.1
            return
        self.binding = True
        session = Session(jid, self, user_id, app_id)
        session.last_received = self.server.clock.seconds()
        d = self.server.bind_session(session)
        d.addCallback(self._bound, iq, session)
        d.addErrback(self._bind_failed, iq)

    def _bound(self, _: Any, iq: domish.Element, session: Session) -> None:
        self.binding = False
        if self.closing:
            self.server.session_closed(session)
            return
        self.session = session
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        # From now on stanzas flow to this client: watch its unread output.
        self.transport.registerProducer(self, True)
        self._producing = True
        reply = self._result(iq)
        reply.addElement((NS_BIND, "bind")).addElement("jid", content=session.jid.full())
        self.send(reply)

    def _bind_failed(self, failure: Failure, iq: domish.Element) -> None:
        self.binding = False
        log.failure("binding failed", failure)
        self._bind_error(iq, "internal-server-error")

    # -- bound ----------------------------------------------------------------

    def _bound_element(self, element: domish.Element) -> None:
        if element.uri == NS_CLIENT:
            if element.name not in STANZAS:
                raise StreamError("unsupported-stanza-type")  # §4.9.3.24
            if element.name == "iq" and element.firstChildElement() is not None:
                payload = element.firstChildElement()
                if payload.uri == NS_SESSION and element.getAttribute("type") == "set":
                    self.send(self._result(element))  # legacy session: a no-op
                    return
            self.server.router.receive(self.session, element)
        else:
            self.server.router.nonza(self.session, element)


class ClientStreamFactory(protocol.Factory):
    noisy = False

    def __init__(self, server: Server, direct_tls: bool) -> None:
        self.server = server
        self.direct_tls = direct_tls

    def buildProtocol(self, addr: Any) -> ClientStream | None:
        """A stream for a new connection, or ``None`` (Twisted closes it at once)
        beyond c2s.max_connections or c2s.max_connections_per_ip (SECURITY H90)."""
        config = self.server.config.c2s
        host = getattr(addr, "host", str(addr))
        if len(self.server.streams) >= config.max_connections:
            log.warn("refusing {peer}: {n} connections open", peer=host, n=len(self.server.streams))
            return None
        from_host = self.server.streams_by_ip[host]
        if from_host >= config.max_connections_per_ip:
            log.warn("refusing {peer}: {n} connections from it", peer=host, n=from_host)
            return None
        stream = ClientStream(self.server, self.direct_tls)
        stream.factory = self
        return stream
