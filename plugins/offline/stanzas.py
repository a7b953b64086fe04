"""Reading and writing the stanzas the offline store keeps."""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.words.xish import domish

from xmppd.stream.parser import Limits, StreamParser

NS_DESTROY = "urn:xmpp:message-destroy-after:0"

# Stored stanzas were bounded by the c2s parser when they arrived; reading our own
# rows back needs no tighter limits than that.
_STORED = Limits(1 << 24, 1 << 10, 1 << 20, 1 << 12, 1 << 24)
_OPEN = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def destroy_after(stanza: domish.Element) -> int | None:
    """The seconds of a self-destroying message (plugins/destroy checks the bounds)."""
    for element in stanza.elements(NS_DESTROY, "destroy"):
        value = element.getAttribute("after", "")
        if value.isascii() and value.isdigit() and len(value) <= 9 and int(value) > 0:
            return int(value)
    return None


def xep0082(seconds: float) -> str:
    """An XEP-0082 DateTime in UTC with milliseconds (XEP-0203 §3: "MUST be UTC")."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_stored(xml: str) -> domish.Element:
    found: list[domish.Element] = []
    StreamParser(lambda header: None, found.append, lambda: None, _STORED).feed(
        _OPEN + xml.encode()
    )
    return found[0]
