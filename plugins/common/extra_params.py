"""The hosted services' ``<extraParams xmlns='jabber:client'>`` (SDK-CONTRACT §4.5)
as the plugins that act on stored messages read it: the dialog a marker, an edit or
a delete names, and keeping such a notification out of history.

The dialogs plugin saves a message that carries ``<save_to_history>`` at
``Priority.ANNOTATE`` (docs/dialogs.md); a plugin whose stanza is a notification
about another message runs at :data:`BEFORE_HISTORY` and drops that child first.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd.events import Priority

NS_CLIENT = "jabber:client"
# Between FILTER and ANNOTATE: after privacy and limits may have refused the stanza,
# before the dialogs plugin's save_to_history handler (ANNOTATE) reads it.
BEFORE_HISTORY = Priority.ANNOTATE + 10


def child(stanza: domish.Element, ns: str, names: tuple[str, ...]) -> domish.Element | None:
    """The first child of ``stanza`` in ``ns`` named one of ``names``."""
    return next((c for c in stanza.elements(ns) if c.name in names), None)


def dialog_id(stanza: domish.Element) -> str | None:
    """``extraParams/dialog_id`` (§4.5), stripped; ``None`` when absent or empty."""
    for extra in stanza.elements(NS_CLIENT, "extraParams"):
        for element in extra.elements():
            if element.name == "dialog_id":
                return str(element).strip() or None
    return None


def keep_out_of_history(stanza: domish.Element) -> None:
    """Drop every ``save_to_history`` so the dialogs plugin never stores this
    notification as a message of its own (its presence is what asks, §4.5)."""
    for extra in stanza.elements(NS_CLIENT, "extraParams"):
        for element in [e for e in extra.elements() if e.name == "save_to_history"]:
            extra.children.remove(element)
