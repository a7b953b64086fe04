"""XEP-0202: Entity Time, through the real router."""

from datetime import UTC, datetime

import pytest
import pytest_twisted

from tests.harness import DOMAIN, Harness

NS_TIME = "urn:xmpp:time"


@pytest.fixture
def harness(tmp_path):
    h = pytest_twisted.blockon(Harness.start(tmp_path, plugins={"enabled": ["time"]}))
    yield h
    pytest_twisted.blockon(h.stop())


@pytest_twisted.inlineCallbacks
def test_server_time_is_utc_from_the_clock(harness):
    """§2: <tzo/> is a XEP-0082 TZD, <utc/> a XEP-0082 dateTime in UTC (seconds)."""
    harness.clock.advance(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() + 0.75)
    alice = yield harness.login("alice")
    yield harness.send(
        alice, f"<iq type='get' id='t1' to='{DOMAIN}'><time xmlns='{NS_TIME}'/></iq>"
    )
    [reply] = alice.take()
    assert (reply["type"], reply["id"], reply["from"]) == ("result", "t1", DOMAIN)
    time = reply.firstChildElement()
    assert (time.uri, time.name) == (NS_TIME, "time")
    assert str(time.tzo) == "+00:00"
    assert str(time.utc) == "2026-01-02T03:04:05Z"


@pytest_twisted.inlineCallbacks
def test_time_of_an_account_is_not_answered(harness):
    """The server's time only; for an account, RFC 6121 §8.5.2.1.3 service-unavailable."""
    alice = yield harness.login("alice")
    yield harness.send(alice, f"<iq type='get' id='t2'><time xmlns='{NS_TIME}'/></iq>")
    [reply] = alice.take()
    assert reply["type"] == "error"
    assert reply.error.firstChildElement().name == "service-unavailable"
