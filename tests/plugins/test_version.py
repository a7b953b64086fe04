"""XEP-0092: Software Version, through the real router."""

import platform

import pytest
import pytest_twisted

import xmppd
from tests.harness import DOMAIN, Harness
from xmppd.config import ConfigError, parse_config
from xmppd.registry import check

NS_VERSION = "jabber:iq:version"
QUERY = f"<iq type='get' id='v1' to='{DOMAIN}'><query xmlns='{NS_VERSION}'/></iq>"


def start(tmp_path, **options):
    plugins = {"enabled": ["version"], "version": options}
    return Harness.start(tmp_path, plugins=plugins)


def answer(reply):
    query = reply.firstChildElement()
    assert (reply["type"], reply["id"], query.uri) == ("result", "v1", NS_VERSION)
    return {child.name: str(child) for child in query.elements()}


@pytest_twisted.inlineCallbacks
def test_name_and_version_without_os_by_default(tmp_path):
    """§2: <name/> and <version/> are REQUIRED; §5: the OS is not revealed by default."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        yield h.send(alice, QUERY)
        [reply] = alice.take()
        assert answer(reply) == {"name": "xmppd", "version": xmppd.__version__}
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_configured_name_version_and_os(tmp_path):
    """§2: <os/> is OPTIONAL; §5: an administrator decides whether to share it."""
    h = yield start(tmp_path, name="chat", version="1.2", hide_os=False)
    try:
        alice = yield h.login("alice")
        yield h.send(alice, QUERY)
        [reply] = alice.take()
        found = answer(reply)
        assert (found["name"], found["version"]) == ("chat", "1.2")
        assert found["os"].startswith(platform.system())
    finally:
        yield h.stop()


def test_bad_option_names_its_key():
    """§5's switch is a boolean; a wrong value stops start-up naming the key."""
    config = parse_config({"plugins": {"enabled": ["version"], "version": {"hide_os": "yes"}}})
    with pytest.raises(ConfigError, match=r"^plugins\.version\.hide_os: expected a boolean"):
        check(config)
