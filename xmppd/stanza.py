"""Small helpers on ``domish`` stanzas shared by the core and plugins."""

from __future__ import annotations

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
