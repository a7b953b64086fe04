"""Small helpers on ``domish`` stanzas shared by the core and plugins."""

from __future__ import annotations

from functools import lru_cache

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish


def clone(element: domish.Element) -> domish.Element:
    """A deep copy (``copy.deepcopy`` recurses forever on domish elements)."""
    copy = domish.Element((element.uri, element.name), element.defaultUri)
    copy.attributes = dict(element.attributes)
    copy.localPrefixes = dict(element.localPrefixes)
    for child in element.children:
        if isinstance(child, domish.Element):
            copy.addChild(clone(child))  # sets the child's parent
        else:
            copy.children.append(child)
    return copy


def first_child(
    element: domish.Element, uri: str, name: str | None = None
) -> domish.Element | None:
    """The first child element in namespace ``uri`` (named ``name``, if given)."""
    for child in element.elements():
        if child.uri == uri and (name is None or child.name == name):
            return child
    return None


@lru_cache(maxsize=16384)
def parse_jid(text: str) -> JID:
    """``JID(text)``, remembered: stringprep (RFC 6122) is the costliest step of
    routing a stanza, and the same few addresses recur. Bounded, so hostile
    input cannot grow it. Raises ``InvalidFormat`` like ``JID``."""
    return JID(text)


def bare_jid(jid: JID) -> JID:
    """``jid.userhostJID()`` without preparing the parts again."""
    return jid if jid.resource is None else parse_jid(jid.userhost())
