"""XEP-0333: Chat Markers (0.4; 1.0.0 "Displayed Markers"), with the hosted
services' delivered and read state (SDK-CONTRACT §4.5).

Takes every message a local client sends with a ``received``, ``displayed`` or
``acknowledged`` marker and routes it unchanged. A ``markable`` message is an
ordinary message: it is routed, and saved to history when it asks to be.

Stores nothing of its own. When a marker names its message's dialog
(``<extraParams xmlns='jabber:client'><dialog_id>``: the ConnectyCube SDK adds it
to every marker, sent ``type='chat'`` to the original sender's user JID, group
messages too), the dialogs store records the marker's sender on that message:
``received`` in ``delivered_ids``, ``displayed`` and ``acknowledged`` in
``read_ids`` (his unread count drops, ``last_message_status`` follows), as
``PUT /chat/Message`` does. Only the named message is marked: the hosted
services' read status is per message (``chat.sendReadStatus({messageId})``; the
whole dialog is a separate REST call), where XEP-0333 reads "all messages up to
and including" it (0.4 §6; 1.0.0 §1). Nothing changes for a message of one's
own, a sender who does not occupy the dialog, an unknown dialog or message, or a
marker without ``dialog_id``; the marker is delivered all the same.

Sends nothing of its own. A marker for a user with no available resource is
dropped without an error (``message/offline``): the SDK sends ``received`` for
every message on its own, and a bounce would reach its error callback; what the
marker says is already in history. A marker is never saved as a message: XEP-0333 0.4 §6
wants it alone in its stanza; one riding on a message with a ``<body>`` leaves that
message to be saved as usual.
"""

from __future__ import annotations

from plugins.common.extra_params import (
    BEFORE_HISTORY,
    NS_CLIENT,
    child,
    dialog_id,
    keep_out_of_history,
)
from xmppd.plugin import Plugin, Priority, hook
from xmppd.router import StanzaEvent

NS_MARKERS = "urn:xmpp:chat-markers:0"
# XEP-0333 0.4 §6 lists the markers "in order of significance": received, displayed,
# acknowledged; a more significant one implies the lesser, so acknowledged is read.
RECEIPT = {"received": "delivered", "displayed": "read", "acknowledged": "read"}


class Markers(Plugin):
    name = "markers"
    implements = ("XEP-0333 0.4", "ConnectyCube/QuickBlox delivered and read status")
    features = (NS_MARKERS,)  # XEP-0333 §4 (0.4): "Determining support"
    depends = ("dialogs",)

    @hook("message/offline", priority=Priority.FILTER)
    def drop_for_offline(self, event: StanzaEvent) -> bool | None:
        # Like a chat state (XEP-0085 §5.8), a lone marker is no message to keep
        # (XEP-0160 §3; XEP-0334 §4.4 lets an explicit <store/> keep it).
        stanza = event.stanza
        if child(stanza, NS_MARKERS, tuple(RECEIPT)) is None:
            return None
        if next(stanza.elements(NS_CLIENT, "body"), None) is not None:
            return None
        if next(stanza.elements("urn:xmpp:hints", "store"), None) is not None:
            return None
        return True

    @hook("pre-message/bare", "pre-message/full", priority=BEFORE_HISTORY)
    async def marker(self, event: StanzaEvent) -> None:
        """A marker from a local client: recorded in history when it names a
        dialog the sender occupies, then delivered (``None``: routing goes on)."""
        marker = child(event.stanza, NS_MARKERS, tuple(RECEIPT))
        if marker is None or event.type == "error":
            return None  # RFC 6120 §8.3: a bounced marker is an error, not a marker
        if next(event.stanza.elements(NS_CLIENT, "body"), None) is None:
            keep_out_of_history(event.stanza)  # a marker alone (§6) is never a message
        origin, dialog = event.origin, dialog_id(event.stanza)
        message_id = marker.getAttribute("id")
        if origin is None or origin.app_id is None or not dialog or not message_id:
            return None  # a plain XEP-0333 marker: routed only
        store = self.ctx.plugin("dialogs")
        changes = {RECEIPT[marker.name]: "1"}
        try:
            # One id, never an empty list (that would mark the whole dialog). The
            # store marks only messages of others, only for an occupant.
            await store.update_messages(
                origin.app_id, origin.user_id, dialog, [message_id], changes
            )
        except store.DialogError:
            pass  # unknown dialog, or not his: the marker changes nothing
        return None
