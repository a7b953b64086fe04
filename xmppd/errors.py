"""Stream and stanza errors (RFC 6120 §4.9, §8.3), with XEP-0086 legacy codes.

Twisted's classes already serialise the RFC 6120 conditions and the legacy
``code`` attribute; this module names them for the rest of the core.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.error import (
    NS_XMPP_STANZAS,
    NS_XMPP_STREAMS,
    STANZA_CONDITIONS,
    StanzaError,
    StreamError,
)
from twisted.words.xish import domish

__all__ = [
    "NS_XMPP_STANZAS",
    "NS_XMPP_STREAMS",
    "StanzaError",
    "StreamError",
    "error_reply",
    "is_error_or_result",
]


def error_reply(stanza: domish.Element, condition: str, text: str | None = None) -> domish.Element:
    """The error answer to ``stanza`` (RFC 6120 §8.3.1): addresses swapped,
    ``type='error'``, the original payload kept, a condition with its legacy
    ``code`` (XEP-0086)."""
    if condition not in STANZA_CONDITIONS:
        raise ValueError(condition)
    return StanzaError(condition, text=text).toResponse(stanza)


def is_error_or_result(stanza: domish.Element) -> bool:
    """RFC 6120 §8.3.1: never answer an error with an error; results neither."""
    return stanza.getAttribute("type") in ("error", "result")
