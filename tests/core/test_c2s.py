"""Client-to-server stream negotiation (RFC 6120 §4-§7; XEP-0368), driven byte
by byte through a real ``ClientStream`` on a ``StringTransport``, with the real
core and storage behind it (the harness) and a ``task.Clock`` for timers.

TLS itself is not run here: a fake ``startTLS`` records the call, and streams
built with ``direct_tls=True`` count as secure, as on the XEP-0368 port.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import pytest_twisted
from scramp import ScramClient
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.words.xish import domish

from tests.harness import DOMAIN, Harness
from xmppd.stream.c2s import ClientStreamFactory
from xmppd.stream.parser import StreamHeader, StreamParser

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    " xmlns:stream='http://etherx.jabber.org/streams'{attrs}>"
)
PASSWORD = "secret"  # what Harness.user gives every account


def header(to: str | None = DOMAIN, version: str | None = "1.0") -> str:
    attrs = "".join(f" {k}='{v}'" for k, v in (("to", to), ("version", version)) if v is not None)
    return HEADER.format(attrs=attrs)


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def plain(localpart: str, password: str = PASSWORD, authzid: str = "") -> str:
    """RFC 4616 §2: [authzid] NUL authcid NUL passwd."""
    message = "\0".join((authzid, localpart, password))
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{b64(message)}</auth>"


def bind_iq(resource: str | None = None, iq_id: str = "b1") -> str:
    inner = f"<resource>{resource}</resource>" if resource is not None else ""
    return f"<iq type='set' id='{iq_id}'><bind xmlns='{NS_BIND}'>{inner}</bind></iq>"


class FakeTransport(StringTransport):
    """A ``StringTransport`` with a peer address and a ``startTLS`` that only records."""

    def __init__(self, host: str) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", host, 40000))
        self.tls_context: Any = None

    def startTLS(self, context: Any) -> None:
        self.tls_context = context


class Peer:
    """One client connection: writes bytes into the stream, parses what it answers."""

    def __init__(self, h: Harness, direct_tls: bool = False, host: str = "192.0.2.1") -> None:
        self.h = h
        self.transport = FakeTransport(host)
        self.stream = ClientStreamFactory(h.server, direct_tls=direct_tls).buildProtocol(None)
        self.stream.makeConnection(self.transport)
        self._offset = 0
        self._new_document()

    # -- the server's output --

    def _new_document(self) -> None:
        self.header: StreamHeader | None = None
        self.received: list[domish.Element] = []
        self.ended = False  # the server sent </stream:stream>
        self.parser = StreamParser(self._on_header, self.received.append, self._on_end)

    def _on_header(self, h: StreamHeader) -> None:
        self.header = h

    def _on_end(self) -> None:
        self.ended = True

    def _pump(self) -> None:
        data = self.transport.value()
        new, self._offset = data[self._offset :], len(data)
        self.parser.feed(new)

    def take(self) -> list[domish.Element]:
        """Everything the server has sent since the last take."""
        self._pump()
        got, self.received[:] = list(self.received), []
        return got

    @defer.inlineCallbacks
    def receive(self, count: int = 1):
        """Wait (for the database thread) until ``count`` elements came, then take them."""
        for _ in range(100):
            self._pump()
            if len(self.received) >= count or self.ended:
                break
            yield self.h.settle()
        return self.take()

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting

    # -- the client's input --

    def send(self, xml: str | bytes) -> None:
        self.stream.dataReceived(xml.encode() if isinstance(xml, str) else xml)

    def open(self, **kw: Any) -> list[domish.Element]:
        """Send a stream header (a restart opens a new XML document); return the features."""
        self._pump()  # the rest of the previous document
        self._new_document()
        self.send(header(**kw))
        return self.take()

    def features(self, **kw: Any) -> domish.Element:
        [features] = self.open(**kw)
        assert (features.uri, features.name) == (NS_STREAMS, "features")
        return features

    def starttls(self) -> None:
        self.open()
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        [proceed] = self.take()
        assert (proceed.uri, proceed.name) == (NS_TLS, "proceed")

    @defer.inlineCallbacks
    def login(self, localpart: str, password: str = PASSWORD):
        """PLAIN on a secure stream, then the restart; return the new features."""
        self.open()
        self.send(plain(localpart, password))
        [success] = yield self.receive()
        assert (success.uri, success.name) == (NS_SASL, "success"), success.toXml()
        return self.features()

    @defer.inlineCallbacks
    def login_to(self, localpart: str, to: str):
        """PLAIN with ``to`` in both headers; return the features after the restart."""
        self.open(to=to)
        self.send(plain(localpart))
        [success] = yield self.receive()
        assert (success.uri, success.name) == (NS_SASL, "success"), success.toXml()
        return self.features(to=to)

    @defer.inlineCallbacks
    def scram(self, localpart: str, password: str = PASSWORD, mechanism: str = "SCRAM-SHA-256"):
        """A SCRAM exchange (RFC 5802 §3) on an opened stream; return the last element."""
        client = ScramClient([mechanism], localpart, password)
        first = b64(client.get_client_first())
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{first}</auth>")
        [challenge] = yield self.receive()
        assert (challenge.uri, challenge.name) == (NS_SASL, "challenge"), challenge.toXml()
        client.set_server_first(base64.b64decode(str(challenge)).decode())
        self.send(f"<response xmlns='{NS_SASL}'>{b64(client.get_client_final())}</response>")
        [outcome] = yield self.receive()
        if outcome.name == "success":
            client.set_server_final(base64.b64decode(str(outcome)).decode())  # raises if forged
        return outcome

    @defer.inlineCallbacks
    def bind(self, resource: str | None = None, iq_id: str = "b1"):
        self.send(bind_iq(resource, iq_id))
        [reply] = yield self.receive()
        return reply

    def disconnect(self) -> None:
        """The TCP connection goes away (after ``loseConnection``, or the peer's)."""
        self.stream.connectionLost(Failure(ConnectionDone()))


def stream_error(peer: Peer, elements: list[domish.Element]) -> str:
    """RFC 6120 §4.9.1.1: the one condition of a stream error, which must be
    followed by ``</stream:stream>`` and the connection closing."""
    [error] = [e for e in elements if (e.uri, e.name) == (NS_STREAMS, "error")]
    assert elements[-1] is error, [e.toXml() for e in elements]
    [condition] = [c for c in error.elements() if c.uri == NS_STREAM_ERRORS and c.name != "text"]
    assert peer.ended and peer.closed
    return condition.name


def sasl_failure(element: domish.Element) -> str:
    assert (element.uri, element.name) == (NS_SASL, "failure"), element.toXml()
    [condition] = list(element.elements())
    return condition.name


def stanza_error(reply: domish.Element) -> tuple[str, str]:
    assert reply["type"] == "error", reply.toXml()
    error = next(reply.elements(NS_CLIENT, "error"))
    [condition] = [c for c in error.elements() if c.uri == NS_STANZA_ERRORS and c.name != "text"]
    return error["type"], condition.name


def mechanisms(features: domish.Element) -> list[str]:
    found = list(features.elements(NS_SASL, "mechanisms"))
    return [str(m) for m in found[0].elements(NS_SASL, "mechanism")] if found else []


def children(features: domish.Element) -> set[tuple[str, str]]:
    return {(c.uri, c.name) for c in features.elements()}


def c2s(**options: Any):
    """Run the test with these ``[c2s]`` options."""
    return pytest.mark.parametrize("h", [options], indirect=True, ids=[""])


@pytest.fixture
def h(request, tmp_path):
    """A core-only server (no plugins), ``[c2s]`` options from ``@c2s(...)``."""
    options = getattr(request, "param", {})
    harness = pytest_twisted.blockon(Harness.start(tmp_path, c2s=options, plugins={"enabled": []}))
    yield harness
    for stream in list(harness.server.streams):
        stream.connectionLost(Failure(ConnectionDone()))
    pytest_twisted.blockon(harness.stop())


@pytest.fixture
def localpart(h):
    """An account (password ``secret``): its localpart, ``{user_id}-{app_id}``."""
    pytest_twisted.blockon(h.user("alice"))
    return h.jid_of("alice").split("@")[0]


@defer.inlineCallbacks
def bound(h: Harness, localpart: str, resource: str | None = "res", **kw: Any):
    """A secure, authenticated stream with a bound resource."""
    peer = Peer(h, direct_tls=True, **kw)
    yield peer.login(localpart)
    reply = yield peer.bind(resource)
    assert reply["type"] == "result", reply.toXml()
    return peer


# -- stream headers (RFC 6120 §4.7, §4.9.3) ------------------------------------


def test_server_answers_header_with_its_own(h):
    """§4.7.1: the response header has a fresh id, from=our domain, version 1.0."""
    one, two = Peer(h), Peer(h)
    one.open()
    two.open()
    attrs = one.header.attrs
    assert attrs["from"] == DOMAIN and attrs["version"] == "1.0"
    assert len(attrs["id"]) >= 32 and attrs["id"] != two.header.attrs["id"]


@pytest.mark.parametrize("version", [None, "2.0", "0.9"])
def test_header_without_version_1_is_unsupported_version(h, version):
    """§4.7.5, §4.9.3.25: no version (pre-XMPP 1.0) or a major version not 1."""
    peer = Peer(h)
    out = peer.open(version=version)
    assert peer.header is not None  # §4.9.1.2: a header before the error
    assert stream_error(peer, out) == "unsupported-version"


def test_header_minor_version_is_accepted(h):
    """§4.7.5: a higher minor version is negotiated down to 1.0."""
    peer = Peer(h)
    assert mechanisms(peer.features(version="1.1")) == [] and not peer.closed


def test_header_to_unknown_domain_is_host_unknown(h):
    """§4.9.3.6 (SECURITY H9): 'to' names a domain we do not serve."""
    peer = Peer(h)
    assert stream_error(peer, peer.open(to="other.test")) == "host-unknown"


def test_header_without_to_is_improper_addressing(h):
    """§4.9.3.7 (SECURITY H10): a client stream header must say 'to'."""
    peer = Peer(h)
    assert stream_error(peer, peer.open(to=None)) == "improper-addressing"


def test_header_to_is_case_insensitive(h):
    """§4.7.2, RFC 5892: domain names compare case-insensitively."""
    peer = Peer(h)
    peer.features(to=DOMAIN.upper())
    assert not peer.closed


@pytest_twisted.inlineCallbacks
def test_header_to_an_alias_is_accepted_and_pinned_across_restarts(tmp_path):
    """§4.7.1, §4.9.3.6: a server.aliases name is a valid 'to', echoed in 'from';
    after SASL the restarted stream must name the same host; JIDs keep the domain."""
    alias = "chat.example.test"
    h = yield Harness.start(
        tmp_path, server={"domain": DOMAIN, "aliases": [alias]}, plugins={"enabled": []}
    )
    try:
        yield h.user("alice")
        localpart = h.jid_of("alice").split("@")[0]
        peer = Peer(h, direct_tls=True)
        features = yield peer.login_to(localpart, alias)
        assert peer.header.attrs["from"] == alias and (NS_BIND, "bind") in children(features)
        reply = yield peer.bind()
        jid = str(next(reply.elements(NS_BIND, "bind")).jid)
        assert jid.startswith(f"{localpart}@{DOMAIN}/")
        other = Peer(h, direct_tls=True)
        other.open(to=alias)
        other.send(plain(localpart))
        yield other.receive()
        assert stream_error(other, other.open(to=DOMAIN)) == "host-unknown"
    finally:
        for stream in list(h.server.streams):
            stream.connectionLost(Failure(ConnectionDone()))
        yield h.stop()


def test_client_closing_stream_is_answered_with_close(h):
    """§4.4: the client's ``</stream:stream>`` is answered in kind, then TCP closes."""
    peer = Peer(h)
    peer.open()
    peer.send("</stream:stream>")
    assert peer.take() == [] and peer.ended and peer.closed


def test_negotiation_timeout_is_connection_timeout(h):
    """§4.9.3.4: a connection that does not authenticate and bind in time is closed."""
    peer = Peer(h)
    peer.open()
    h.clock.advance(h.server.config.c2s.negotiation_timeout - 1)
    assert peer.take() == [] and not peer.closed
    h.clock.advance(1)
    assert stream_error(peer, peer.take()) == "connection-timeout"


def test_negotiation_timeout_without_header(h):
    """§4.9.3.4, §4.9.1.2: even a silent connection is closed, with a header first."""
    peer = Peer(h)
    h.clock.advance(h.server.config.c2s.negotiation_timeout)
    assert peer.header is None  # not parsed yet
    out = peer.take()
    assert peer.header is not None
    assert stream_error(peer, out) == "connection-timeout"


@pytest_twisted.inlineCallbacks
def test_bound_stream_is_not_timed_out(h, localpart):
    """§4.9.3.4: the negotiation timer stops once a resource is bound."""
    peer = yield bound(h, localpart)
    h.clock.advance(h.server.config.c2s.negotiation_timeout * 2)
    assert not peer.closed and not peer.ended


# -- STARTTLS (RFC 6120 §5) --------------------------------------------------------


def test_features_before_tls_require_starttls_and_offer_no_mechanisms(h):
    """§5.3.1, §6.4.1 (SECURITY H28): only <starttls><required/>, no SASL yet."""
    features = Peer(h).features()
    assert children(features) == {(NS_TLS, "starttls")}
    starttls = next(features.elements(NS_TLS, "starttls"))
    assert [c.name for c in starttls.elements()] == ["required"]


@c2s(allow_plaintext=True)
def test_features_with_plaintext_allowed_offer_optional_starttls(h):
    """§5.3.1: TLS optional when configured; PLAIN still only under TLS (RFC 4616 §6)."""
    features = Peer(h).features()
    starttls = next(features.elements(NS_TLS, "starttls"))
    assert list(starttls.elements()) == []
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]


def test_starttls_proceeds_and_starts_tls(h):
    """§5.4.2.3: <proceed/>, then the TLS handshake with the server's context."""
    peer = Peer(h)
    peer.starttls()
    assert peer.transport.tls_context is h.server.tls
    assert peer.stream.secure and not peer.closed


def test_features_after_tls_offer_mechanisms_strongest_first(h):
    """§5.4.3.3, §6.4.1: after TLS the restart offers SCRAM-SHA-256, SCRAM-SHA-1, PLAIN."""
    peer = Peer(h)
    peer.starttls()
    features = peer.features()
    assert children(features) == {(NS_SASL, "mechanisms")}
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


@c2s(allow_anonymous=True)
def test_anonymous_offered_only_when_configured(h):
    """RFC 4505; SECURITY H34: ANONYMOUS is offered only with c2s.allow_anonymous."""
    assert mechanisms(Peer(h, direct_tls=True).features())[-1] == "ANONYMOUS"


def test_direct_tls_offers_no_starttls(h):
    """XEP-0368 §3: a direct-TLS stream is already secure: mechanisms at once."""
    features = Peer(h, direct_tls=True).features()
    assert children(features) == {(NS_SASL, "mechanisms")}
    assert "ANONYMOUS" not in mechanisms(features)


@pytest_twisted.inlineCallbacks
def test_bytes_after_starttls_in_same_chunk_are_discarded(h, localpart):
    """§5.3.3, §5.4.3.3 (SECURITY H30): plaintext pipelined after <starttls/> is never processed."""
    peer = Peer(h)
    peer.open()
    injected = plain(localpart) + "<message to='x@example.test'><body>hi</body></message>"
    peer.send(f"<starttls xmlns='{NS_TLS}'/>{injected}")
    [proceed] = peer.take()
    assert proceed.name == "proceed" and peer.transport.tls_context is not None
    yield h.settle()
    assert peer.take() == [] and not peer.closed
    features = peer.features()  # not authenticated: SASL is still on offer
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    assert peer.stream.authenticated is None


def test_starttls_on_direct_tls_stream_fails_and_closes(h):
    """§5.4.2.2 (SECURITY H31): <starttls/> on a secure stream → TLS <failure/>, close."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(f"<starttls xmlns='{NS_TLS}'/>")
    [failure] = peer.take()
    assert (failure.uri, failure.name) == (NS_TLS, "failure")
    assert peer.ended and peer.closed


def test_second_starttls_fails_and_closes(h):
    """§5.4.2.2 (SECURITY H31): a second <starttls/> after TLS → <failure/>, close."""
    peer = Peer(h)
    peer.starttls()
    peer.open()
    peer.transport.tls_context = None
    peer.send(f"<starttls xmlns='{NS_TLS}'/>")
    [failure] = peer.take()
    assert (failure.uri, failure.name) == (NS_TLS, "failure")
    assert peer.ended and peer.closed and peer.transport.tls_context is None


# -- SASL (RFC 6120 §6) ------------------------------------------------------------


class RecordingCredentials:
    """The accounts layer, wrapped to record every credential lookup."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lookups: list[str] = []

    def scram_candidates(self, username: str, hash_name: str) -> Any:
        self.lookups.append(username)
        return self.inner.scram_candidates(username, hash_name)

    def verify_plain(self, username: str, password: str) -> Any:
        self.lookups.append(username)
        return self.inner.verify_plain(username, password)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
@pytest_twisted.inlineCallbacks
def test_auth_before_tls_is_encryption_required(h, localpart, mechanism):
    """§6.5.4 (SECURITY H28): <auth> before TLS fails; no credential is checked."""
    h.server.credentials = recorder = RecordingCredentials(h.server.credentials)
    peer = Peer(h)
    peer.open()
    peer.send(plain(localpart).replace("PLAIN", mechanism))
    [failure] = yield peer.receive()
    assert sasl_failure(failure) == "encryption-required"
    assert recorder.lookups == [] and peer.stream.authenticated is None


@pytest.mark.parametrize("mechanism", ["X-UNKNOWN", "ANONYMOUS", "SCRAM-SHA-256-PLUS", ""])
def test_mechanism_not_offered_is_invalid_mechanism(h, mechanism):
    """§6.5.7 (SECURITY H34): unknown, disabled or absent mechanism → invalid-mechanism."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>=</auth>")
    [failure] = peer.take()
    assert sasl_failure(failure) == "invalid-mechanism" and not peer.closed


@pytest.mark.parametrize(
    "payload", ["!!not base64!!", "AGFsaWNl\nAHNlY3JldA==", "YW=j", "YWJ", "é"]
)
def test_bad_base64_is_incorrect_encoding(h, payload):
    """§6.5.5 (SECURITY H35): <auth> text that is not strict base64."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
    [failure] = peer.take()
    assert sasl_failure(failure) == "incorrect-encoding"


@pytest_twisted.inlineCallbacks
def test_wrong_password_and_unknown_user_fail_alike(h, localpart):
    """§6.5.10 (SECURITY H37): wrong password and unknown user: the same <not-authorized/>."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(plain(localpart, "wrong"))
    [first] = yield peer.receive()
    peer.send(plain("999-999", PASSWORD))
    [second] = yield peer.receive()
    assert first.toXml() == second.toXml()
    assert sasl_failure(first) == "not-authorized"


@pytest_twisted.inlineCallbacks
def test_plain_with_foreign_authzid_is_invalid_authzid(h, localpart):
    """§6.5.6 (SECURITY H36): an authzid naming another user is refused."""
    yield h.user("bob")
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(plain(localpart, authzid=h.jid_of("bob")))
    [failure] = yield peer.receive()
    assert sasl_failure(failure) == "invalid-authzid" and peer.stream.authenticated is None


def test_response_without_auth_is_malformed_request(h):
    """§6.4.3, §6.5.8 (SECURITY H40): a <response/> with no exchange in progress."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(f"<response xmlns='{NS_SASL}'>=</response>")
    [failure] = peer.take()
    assert sasl_failure(failure) == "malformed-request"


@pytest_twisted.inlineCallbacks
def test_abort_mid_exchange_is_aborted(h, localpart):
    """§6.4.4, §6.5.1 (SECURITY H40): <abort/> after a challenge ends the exchange."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    client = ScramClient(["SCRAM-SHA-256"], localpart, PASSWORD)
    first = b64(client.get_client_first())
    peer.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>")
    [challenge] = yield peer.receive()
    assert challenge.name == "challenge"
    peer.send(f"<abort xmlns='{NS_SASL}'/>")
    [failure] = peer.take()
    assert sasl_failure(failure) == "aborted" and peer.stream.authenticated is None
    client.set_server_first(base64.b64decode(str(challenge)).decode())
    peer.send(f"<response xmlns='{NS_SASL}'>{b64(client.get_client_final())}</response>")
    [late] = peer.take()
    assert sasl_failure(late) == "malformed-request"  # §6.4.3: no exchange any more


@pytest_twisted.inlineCallbacks
def test_three_failed_attempts_close_the_stream(h, localpart):
    """§6.4.5 (SECURITY H38): after 3 failures on one stream, policy-violation."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    for attempt in range(3):
        peer.send(plain(localpart, f"wrong{attempt}"))
        out = yield peer.receive()
        assert sasl_failure(out[0]) == "not-authorized"
    assert stream_error(peer, out) == "policy-violation"


@c2s(max_auth_failures=2, auth_lockout=30.0)
@pytest_twisted.inlineCallbacks
def test_ip_locked_after_failures_until_lockout_passes(h, localpart):
    """§13.1 (SECURITY H38): after max_auth_failures an address is refused until auth_lockout."""
    guesser = Peer(h, direct_tls=True, host="192.0.2.7")
    guesser.open()
    for _ in range(2):
        guesser.send(plain(localpart, "wrong"))
        [failure] = yield guesser.receive()
        assert sasl_failure(failure) == "not-authorized"

    h.server.credentials = recorder = RecordingCredentials(h.server.credentials)
    same_ip = Peer(h, direct_tls=True, host="192.0.2.7")
    same_ip.open()
    same_ip.send(plain(localpart))
    [failure] = yield same_ip.receive()
    assert sasl_failure(failure) == "not-authorized"
    assert recorder.lookups == []  # locked: the password is not even looked at

    other_ip = Peer(h, direct_tls=True, host="198.51.100.1")
    yield other_ip.login(localpart)

    h.clock.advance(29)
    again = Peer(h, direct_tls=True, host="192.0.2.7")
    again.open()
    again.send(plain(localpart))
    [failure] = yield again.receive()
    assert sasl_failure(failure) == "not-authorized"

    h.clock.advance(1)
    after = Peer(h, direct_tls=True, host="192.0.2.7")
    yield after.login(localpart)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
@pytest_twisted.inlineCallbacks
def test_scram_login_through_the_stream(h, localpart, mechanism):
    """§6.4.2-§6.4.6, §6.3.10; RFC 5802, RFC 7677: challenge, response, verified server-final."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    success = yield peer.scram(localpart, mechanism=mechanism)
    assert (success.uri, success.name) == (NS_SASL, "success")
    assert (NS_BIND, "bind") in children(peer.features())


@pytest_twisted.inlineCallbacks
def test_scram_wrong_password_is_not_authorized(h, localpart):
    """§6.5.10, RFC 5802 §5.1 (SECURITY H39): a bad client proof fails."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    failure = yield peer.scram(localpart, "wrong")
    assert sasl_failure(failure) == "not-authorized" and peer.stream.authenticated is None


@c2s(allow_plaintext=True)
@pytest_twisted.inlineCallbacks
def test_plaintext_allowed_scram_works_but_plain_is_not_offered(h, localpart):
    """§5.3.1, §6.5.7; RFC 4616 §6: without TLS, SCRAM logs in; PLAIN is invalid-mechanism."""
    peer = Peer(h)
    peer.open()
    peer.send(plain(localpart))
    [failure] = yield peer.receive()
    assert sasl_failure(failure) == "invalid-mechanism"
    success = yield peer.scram(localpart)
    assert success.name == "success" and not peer.stream.secure
    assert (NS_BIND, "bind") in children(peer.features())


@pytest_twisted.inlineCallbacks
def test_plain_login_then_restart_offers_bind_session_and_roster_features(h, localpart):
    """§6.4.6, §7.2; RFC 6121 §3.4; XEP-0237 §2.1: bind, optional session, ver, sub after auth."""
    peer = Peer(h, direct_tls=True)
    features = yield peer.login(localpart)
    assert children(features) == {
        (NS_BIND, "bind"),
        (NS_SESSION, "session"),
        (NS_ROSTERVER, "ver"),
        (NS_PREAPPROVAL, "sub"),
    }
    session = next(features.elements(NS_SESSION, "session"))
    assert [c.name for c in session.elements()] == ["optional"]


@pytest_twisted.inlineCallbacks
def test_auth_after_success_is_a_stream_error(h, localpart):
    """§6.4.6: SASL is over once it succeeded; a second <auth> is refused."""
    peer = Peer(h, direct_tls=True)
    yield peer.login(localpart)
    peer.send(plain(localpart))
    assert stream_error(peer, peer.take()) == "not-authorized"


@pytest_twisted.inlineCallbacks
def test_restart_after_auth_with_other_to_is_host_unknown(h, localpart):
    """§4.9.3.6 (SECURITY H43, CVE-2018-10847): the restart cannot switch host."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(plain(localpart))
    [success] = yield peer.receive()
    assert success.name == "success"
    assert stream_error(peer, peer.open(to="other.test")) == "host-unknown"


@c2s(allow_anonymous=True)
@pytest_twisted.inlineCallbacks
def test_anonymous_login_binds_a_fresh_identity(h):
    """RFC 4505, RFC 6120 §7: an ANONYMOUS login gets an unguessable localpart."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'>=</auth>")
    [success] = yield peer.receive()
    assert success.name == "success"
    peer.features()
    reply = yield peer.bind("r")
    jid = str(next(next(reply.elements(NS_BIND, "bind")).elements(NS_BIND, "jid")))
    assert re.fullmatch(rf"anon-[0-9a-f]{{16}}@{re.escape(DOMAIN)}/r", jid)


# -- stanzas before negotiation ends --------------------------------------------------


@pytest.mark.parametrize(
    "stanza",
    [
        "<message to='a@example.test'><body>x</body></message>",
        "<presence/>",
        "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>",
    ],
)
@pytest.mark.parametrize("direct_tls", [False, True])
def test_stanza_before_auth_is_not_authorized(h, stanza, direct_tls):
    """§4.9.3.12 (SECURITY H29): no stanza before authentication."""
    peer = Peer(h, direct_tls=direct_tls)
    peer.open()
    peer.send(stanza)
    assert stream_error(peer, peer.take()) == "not-authorized"


@pytest_twisted.inlineCallbacks
def test_stanza_after_auth_before_bind_is_not_authorized(h, localpart):
    """§7.1: after SASL, nothing but binding (and the legacy session) before a resource."""
    peer = Peer(h, direct_tls=True)
    yield peer.login(localpart)
    peer.send("<message to='a@example.test'><body>x</body></message>")
    assert stream_error(peer, peer.take()) == "not-authorized"


def test_unknown_element_before_auth_is_unsupported_stanza_type(h):
    """§4.9.3.24 (SECURITY H44): e.g. <compress/>, which is never offered."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(
        "<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>"
    )
    assert stream_error(peer, peer.take()) == "unsupported-stanza-type"


# -- resource binding (RFC 6120 §7) ----------------------------------------------------


def bound_jid(reply: domish.Element) -> str:
    assert reply["type"] == "result", reply.toXml()
    bind = next(reply.elements(NS_BIND, "bind"))
    return str(next(bind.elements(NS_BIND, "jid")))


@pytest_twisted.inlineCallbacks
def test_bind_client_resource(h, localpart):
    """§7.7.2.2: the client's resource is used; the result carries the full JID."""
    peer = Peer(h, direct_tls=True)
    yield peer.login(localpart)
    reply = yield peer.bind("phone", iq_id="bind-1")
    assert reply["id"] == "bind-1"
    assert bound_jid(reply) == f"{localpart}@{DOMAIN}/phone"
    assert h.server.sessions.get(peer.stream.session.jid) is peer.stream.session


@pytest_twisted.inlineCallbacks
def test_bind_server_generated_resource(h, localpart):
    """§7.6.2.1: a server-made resource is random and long (≥ 32 hex characters)."""
    resources = []
    for _ in range(2):
        peer = Peer(h, direct_tls=True)
        yield peer.login(localpart)
        reply = yield peer.bind(None)
        resources.append(bound_jid(reply).split("/", 1)[1])
    for resource in resources:
        assert re.fullmatch(r"[0-9a-f]{32,}", resource)
    assert resources[0] != resources[1]


@pytest.mark.parametrize("resource", ["a&#9;b", "x" * 1024, "a\u2028b", "é" * 512])
@pytest_twisted.inlineCallbacks
def test_bind_invalid_resource_is_bad_request(h, localpart, resource):
    """§7.7.2.1 (SECURITY H45): control characters, > 1023 bytes: modify/bad-request."""
    # "é" * 512 is 512 characters but 1024 UTF-8 bytes: RFC 7622 §3.1 counts bytes.
    peer = Peer(h, direct_tls=True)
    yield peer.login(localpart)
    reply = yield peer.bind(resource)
    assert stanza_error(reply) == ("modify", "bad-request")
    assert peer.stream.session is None and not peer.closed


@pytest_twisted.inlineCallbacks
def test_second_bind_of_same_resource_replaces_first_with_conflict(h, localpart):
    """§7.7.2.2, §4.9.3.3 (SECURITY H46): the older stream gets <conflict/>; the new one stays."""
    first = yield bound(h, localpart, "res")
    second = yield bound(h, localpart, "res")
    assert stream_error(first, first.take()) == "conflict"
    assert not second.closed
    jid = second.stream.session.jid
    first.disconnect()
    assert h.server.sessions.get(jid) is second.stream.session
    assert h.server.sessions.count(jid.userhost()) == 1


@c2s(max_sessions_per_user=2)
@pytest_twisted.inlineCallbacks
def test_too_many_sessions_is_resource_constraint(h, localpart):
    """§7.6.2.1, §8.3.3.18 (SECURITY H47): over max_sessions_per_user: wait/resource-constraint."""
    yield bound(h, localpart, "one")
    yield bound(h, localpart, "two")
    third = Peer(h, direct_tls=True)
    yield third.login(localpart)
    reply = yield third.bind("three")
    assert stanza_error(reply) == ("wait", "resource-constraint")
    assert third.stream.session is None
    reply = yield third.bind("two", iq_id="b2")
    assert bound_jid(reply).endswith("/two")


@pytest_twisted.inlineCallbacks
def test_legacy_session_iq_is_answered_with_result(h, localpart):
    """RFC 3921 §3, RFC 6121 Appendix E: the legacy <session/> iq gets an empty result."""
    peer = Peer(h, direct_tls=True)
    yield peer.login(localpart)
    session_iq = (
        "<iq type='set' id='{}'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
    )
    peer.send(session_iq.format("s1"))
    [before] = peer.take()
    yield peer.bind("res")
    peer.send(session_iq.format("s2"))
    [after] = yield peer.receive()
    for reply, iq_id in ((before, "s1"), (after, "s2")):
        assert (reply.name, reply["type"], reply["id"]) == ("iq", "result", iq_id)
        assert list(reply.elements()) == []


@pytest_twisted.inlineCallbacks
def test_unknown_top_level_element_after_bind_is_unsupported_stanza_type(h, localpart):
    """§4.9.3.24 (SECURITY H50): <foo/> in jabber:client is not a stanza."""
    peer = yield bound(h, localpart)
    peer.send("<foo/>")
    assert stream_error(peer, peer.take()) == "unsupported-stanza-type"


@pytest_twisted.inlineCallbacks
def test_closing_bound_stream_ends_the_session(h, localpart):
    """§4.4: ``</stream:stream>`` from a bound client: closed, and the session is gone."""
    peer = yield bound(h, localpart)
    jid = peer.stream.session.jid
    peer.send("</stream:stream>")
    assert peer.take() == [] and peer.ended and peer.closed
    peer.disconnect()
    assert h.server.sessions.get(jid) is None and peer.stream not in h.server.streams


# -- limits and malformed input through the stream -------------------------------------


def test_garbage_instead_of_header_gets_header_then_not_well_formed(h):
    """§4.9.1.2, §4.9.3.13 (SECURITY H1): garbage bytes; the error follows a header of ours."""
    peer = Peer(h)
    peer.send("<'/>")
    out = peer.take()
    assert peer.header is not None and peer.header.attrs["from"] == DOMAIN
    assert stream_error(peer, out) == "not-well-formed"


def test_second_header_without_restart_is_not_well_formed(h):
    """§4.9.3.13 (SECURITY H16): a header inside an open stream is a second root."""
    peer = Peer(h)
    peer.open()
    peer.send(header())
    assert stream_error(peer, peer.take()) == "not-well-formed"


def test_big_element_before_auth_is_policy_violation(h):
    """§4.9.3.14 (SECURITY H41, H17): pre-auth elements are capped (8 KiB by default)."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{'A' * 9000}</auth>")
    assert stream_error(peer, peer.take()) == "policy-violation"


@c2s(max_stanza_size=16_384)
@pytest_twisted.inlineCallbacks
def test_limit_after_auth_is_max_stanza_size(h, localpart):
    """§4.9.3.14, §6.4.6 (SECURITY H17): after the SASL restart the cap is max_stanza_size."""
    peer = yield bound(h, localpart)
    peer.send(f"<message to='{localpart}@{DOMAIN}'><body>{'x' * 9000}</body></message>")
    yield h.settle()
    assert not peer.closed
    peer.take()
    peer.send(f"<message to='{localpart}@{DOMAIN}'><body>{'x' * 17_000}</body></message>")
    assert stream_error(peer, peer.take()) == "policy-violation"


@c2s(max_auth_failures=3)
@pytest_twisted.inlineCallbacks
def test_login_to_own_account_does_not_reset_address_failures(h, localpart):
    """§13.1 (SECURITY H38): failures on one account are not washed out by another's login."""
    yield h.user("mallory")
    mallory = h.jid_of("mallory").split("@")[0]
    ip = "203.0.113.9"
    guesser = Peer(h, direct_tls=True, host=ip)
    guesser.open()
    for attempt in range(2):
        guesser.send(plain(localpart, f"guess{attempt}"))
        yield guesser.receive()
    yield Peer(h, direct_tls=True, host=ip).login(mallory)
    again = Peer(h, direct_tls=True, host=ip)
    again.open()
    again.send(plain(localpart, "guess2"))  # the third failure from this address
    yield again.receive()
    right = Peer(h, direct_tls=True, host=ip)
    right.open()
    right.send(plain(localpart))
    [outcome] = yield right.receive()
    assert sasl_failure(outcome) == "not-authorized"  # the address is locked


# -- serialisation -----------------------------------------------------------------------


def test_stream_namespace_elements_use_the_stream_prefix(h):
    """§4.8.5: clients MAY accept only the 'stream' prefix: <stream:features>, <stream:error>."""
    peer = Peer(h, direct_tls=True)
    peer.open()
    peer.send("<foo/>")
    raw = peer.transport.value().decode()
    assert "<stream:features>" in raw and "<stream:error>" in raw, raw
    assert "xmlns='http://etherx.jabber.org/streams'" not in raw.split(">", 2)[2]


@pytest_twisted.inlineCallbacks
def test_stream_prefix_does_not_leak_into_routed_stanzas(h, localpart):
    """§4.8.5, §8: a client's own 'stream' prefix on a payload keeps its namespace when routed."""
    peer = yield bound(h, localpart)
    payload = (
        "<stream:x xmlns:stream='urn:example:evil'>"
        "<y xmlns='http://etherx.jabber.org/streams'/></stream:x>"
    )
    peer.send(f"<iq type='get' id='q1' to='{localpart}@{DOMAIN}/res'>{payload}</iq>")
    [iq] = yield peer.receive()
    x = next(iq.elements("urn:example:evil", "x"))
    assert [(c.uri, c.name) for c in x.elements()] == [(NS_STREAMS, "y")]


# -- SECURITY H23, H90: read rate and connection caps ---------------------------


@c2s(max_read_rate=1024, max_stanza_size=10_000)
def test_a_fast_sender_is_slowed_down_not_cut_off(h):
    """c2s.max_read_rate: past the bucket (2 s worth, at least one whole stanza)
    reading pauses for as long as the debt takes to pay back, then resumes; bytes
    that still arrive meanwhile wait until then; the stream stays open."""
    peer = Peer(h)
    peer.open()
    assert peer.transport.producerState == "producing"
    peer.send(b" " * 9_000)  # within the 10 000-byte bucket (whitespace: RFC 6120 §4.6.1)
    assert peer.transport.producerState == "producing"
    peer.send(b" " * 3_048)  # over 2 048 bytes in debt (with the header): > 2 s at 1 KiB/s
    assert peer.transport.producerState == "paused"
    peer.take()
    peer.send(f"<auth xmlns='{NS_SASL}' mechanism='X-UNKNOWN'/>")  # already in flight
    assert peer.take() == []  # held, not parsed, while paused
    h.clock.advance(1.9)
    assert peer.transport.producerState == "paused"
    h.clock.advance(0.5)
    assert peer.transport.producerState == "producing"
    [failure] = peer.take()  # parsed once the debt was paid
    assert failure.name == "failure"
    assert not peer.closed


@c2s(max_connections_per_ip=2, max_connections=3)
def test_connections_beyond_the_caps_are_refused(h):
    """c2s.max_connections_per_ip and c2s.max_connections: the factory builds no
    stream (Twisted closes the connection at once); a closed one frees its place."""
    factory = ClientStreamFactory(h.server, direct_tls=False)
    first, second = Peer(h, host="192.0.2.7"), Peer(h, host="192.0.2.7")
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 1)) is None
    third = Peer(h, host="198.51.100.1")
    assert factory.buildProtocol(IPv4Address("TCP", "198.51.100.9", 1)) is None  # 3 in all
    first.disconnect()
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 1)) is not None
    assert h.server.streams_by_ip == {"192.0.2.7": 1, "198.51.100.1": 1}
    second.disconnect()
    third.disconnect()
    assert h.server.streams_by_ip == {}
