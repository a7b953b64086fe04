"""Every shipped plugin together: they load side by side, and the server's disco
answer (XEP-0030 §3.1) advertises exactly what they implement, no more."""

from __future__ import annotations

import pytest_twisted

from tests.harness import DOMAIN, Harness

ALL = [
    *("disco", "ping", "time", "version", "offline", "carbons", "chatstates", "csi"),
    *("privacy", "last_activity", "amp", "dialogs", "chat_api", "markers", "correction"),
    *("message_delete", "system_messages", "destroy", "muc"),
]

# What a client may rely on, by specification (each plugin's docs/ page says why).
EXPECTED_FEATURES = {
    "http://jabber.org/protocol/disco#info",  # XEP-0030
    "http://jabber.org/protocol/disco#items",
    "urn:xmpp:ping",  # XEP-0199
    "urn:xmpp:time",  # XEP-0202
    "jabber:iq:version",  # XEP-0092
    "msgoffline",  # XEP-0160 §5
    "urn:xmpp:carbons:2",  # XEP-0280
    "urn:xmpp:carbons:rules:0",
    "http://jabber.org/protocol/chatstates",  # XEP-0085
    "jabber:iq:privacy",  # XEP-0016
    "urn:xmpp:blocking",  # XEP-0191
    "jabber:iq:last",  # XEP-0012
    "https://connectycube.com/protocol/status_streaming",  # the hosted status streaming
    "urn:xmpp:message-destroy-after:0",  # the hosted self-destroying messages
    "http://jabber.org/protocol/amp",  # XEP-0079
    "urn:xmpp:chat-markers:0",  # XEP-0333
    "urn:xmpp:message-correct:0",  # XEP-0308
    "urn:xmpp:message-retract:1",  # XEP-0424
}


@pytest_twisted.inlineCallbacks
def test_every_plugin_loads_and_disco_lists_exactly_their_features(tmp_path):
    h = yield Harness.start(tmp_path, plugins={"enabled": ALL})
    try:
        alice = yield h.login("alice")
        yield h.send(
            alice,
            f"<iq type='get' id='d1' to='{DOMAIN}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        [reply] = alice.take()
        assert reply["type"] == "result"
        query = reply.firstChildElement()
        features = [f["var"] for f in query.elements() if f.name == "feature"]
        assert len(features) == len(set(features)), "a feature listed twice"
        assert set(features) - EXPECTED_FEATURES == set(), "advertised, not expected"
        assert EXPECTED_FEATURES - set(features) == set(), "expected, not advertised"
    finally:
        yield h.stop()
