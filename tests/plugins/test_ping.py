"""XEP-0199: XMPP Ping, through the real router, with a task.Clock."""

import pytest
import pytest_twisted

from tests.harness import DOMAIN, Harness
from xmppd.config import ConfigError, parse_config
from xmppd.registry import check

NS_PING = "urn:xmpp:ping"
INTERVAL, TIMEOUT = 300, 60  # the defaults
UNSUPPORTED = (  # §4.1: a client without XEP-0199
    "<error type='cancel'>"
    "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
)


def start(tmp_path, **options):
    plugins = {"enabled": ["ping"], "ping": options}
    return Harness.start(tmp_path, plugins=plugins)


@pytest.fixture
def harness(tmp_path):
    h = pytest_twisted.blockon(start(tmp_path))
    yield h
    pytest_twisted.blockon(h.stop())


def wait(h, seconds):
    """Let ``seconds`` pass on the server's clock, a second at a time."""
    h.clock.pump([1] * seconds)


def pings(client):
    return [s for s in client.take() if s.name == "iq" and s.firstChildElement().uri == NS_PING]


def answer(h, client, ping, type="result"):
    """The client answers; like the c2s stream, note that it spoke."""
    client.session.last_received = h.clock.seconds()
    payload = UNSUPPORTED if type == "error" else ""
    return h.send(client, f"<iq type='{type}' id='{ping['id']}' to='{DOMAIN}'>{payload}</iq>")


@pytest.mark.parametrize("to", [f" to='{DOMAIN}'", " to='{bare}'", ""])
@pytest_twisted.inlineCallbacks
def test_client_to_server_ping(harness, to):
    """§4.2: to the server, the own bare JID or no 'to': an empty IQ-result."""
    alice = yield harness.login("alice")
    to = to.format(bare=alice.bare)
    yield harness.send(alice, f"<iq type='get' id='c2s1'{to}><ping xmlns='{NS_PING}'/></iq>")
    [reply] = alice.take()
    assert (reply["type"], reply["id"], list(reply.elements())) == ("result", "c2s1", [])


@pytest_twisted.inlineCallbacks
def test_idle_client_is_pinged_and_result_clears(harness):
    """§4.1: a client silent for `interval` is pinged; the IQ-result is the pong."""
    alice = yield harness.login("alice")
    wait(harness, INTERVAL - 1)
    assert pings(alice) == []
    wait(harness, 1)
    [ping] = pings(alice)
    assert (ping["type"], ping["from"], ping["to"]) == ("get", DOMAIN, alice.jid)
    yield answer(harness, alice, ping)
    wait(harness, TIMEOUT * 2)
    assert alice.stream.closed_with is None
    wait(harness, INTERVAL - TIMEOUT * 2 - 1)
    assert pings(alice) == []  # silent again for less than `interval`
    wait(harness, 1)
    assert len(pings(alice)) == 1


@pytest_twisted.inlineCallbacks
def test_error_reply_counts_as_alive(harness):
    """§4.1: a client without XEP-0199 answers service-unavailable; the stream lives."""
    alice = yield harness.login("alice")
    wait(harness, INTERVAL)
    [ping] = pings(alice)
    yield answer(harness, alice, ping, type="error")
    wait(harness, INTERVAL)
    assert alice.stream.closed_with is None
    assert len(pings(alice)) == 1  # answered, so pinged again when next silent


@pytest_twisted.inlineCallbacks
def test_no_answer_closes_with_connection_timeout(tmp_path):
    """RFC 6120 §4.9.3.4: no pong within `timeout` ends the stream, connection-timeout."""
    h = yield start(tmp_path, timeout=120)  # longer than a look (75 s): no second ping meanwhile
    try:
        alice = yield h.login("alice")
        wait(h, INTERVAL)
        assert len(pings(alice)) == 1
        wait(h, 119)
        assert alice.stream.closed_with is None
        assert pings(alice) == []
        wait(h, 1)
        assert alice.stream.closed_with == "connection-timeout"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_closed_session_is_forgotten(harness):
    """§4.1: a session that ends while pinged leaves no timer waiting for its pong."""
    alice = yield harness.login("alice")
    wait(harness, INTERVAL)
    assert len(pings(alice)) == 1
    yield harness.disconnect(alice)
    assert len(harness.clock.getDelayedCalls()) == 1  # only the next look at the sessions


@pytest_twisted.inlineCallbacks
def test_pings_per_look_are_bounded(tmp_path):
    """§4.1 at scale: at most `max_pings` per look; the others on the next one."""
    h = yield start(tmp_path, max_pings=1)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        wait(h, INTERVAL)
        assert len(pings(alice)) + len(pings(bob)) == 1
        wait(h, INTERVAL // 4)
        assert len(pings(alice)) + len(pings(bob)) == 1
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_client_pings_can_be_turned_off(tmp_path):
    """§4.1 is optional: with ping_clients = false idle clients are left alone."""
    h = yield start(tmp_path, ping_clients=False)
    try:
        alice = yield h.login("alice")
        wait(h, INTERVAL * 2)
        assert pings(alice) == []
    finally:
        yield h.stop()


def test_interval_has_a_floor():
    """§4.1 pings must not flood clients: an interval below 5 s stops start-up, naming the key."""
    config = parse_config({"plugins": {"enabled": ["ping"], "ping": {"interval": 1}}})
    with pytest.raises(ConfigError, match=r"^plugins\.ping\.interval: must be >= 5"):
        check(config)
