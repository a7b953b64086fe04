"""XEP-0424: Message Retraction (0.5.0, ``urn:xmpp:message-retract:1``), and the
hosted services' delete for everyone (SDK-CONTRACT §4.5).

Takes every message a local client sends with ``<retract
xmlns='urn:xmpp:message-retract:1' id='{original}'/>`` (XEP-0424 §3; its fallback
body and store hint ride along) or, COMPAT: ConnectyCube's own ``<remove
xmlns='urn:xmpp:message-delete:0' id='{original}'/>`` with ``<extraParams
xmlns='jabber:client'><dialog_id>`` (``chat.deleteMessage``).

Stores nothing of its own. Before it is routed, the message the id names is
deleted from the dialogs store's history for everyone, as ``DELETE
/chat/Message/{id}.json`` with ``force=1`` does (the unread counts of those who
had not read it drop, ``last_message*`` falls back):

- only its sender may: another's message is never deleted, and the request is
  refused with ``forbidden``, not delivered (SECURITY H61; XEP-0424 §6 "it's
  very important that the JID ... of message retractions are checked", which the
  SDK's ``onMessageDeleteListener`` does not do);
- a given ``dialog_id`` must be one the sender occupies, else ``forbidden`` (as
  for a saved message, H60; an unknown dialog looks the same);
- an id not in history (a message never saved) changes nothing, and the request
  is delivered.

Sends nothing of its own: the routed request is the other side's notice. It is
never saved as a message.
"""

from __future__ import annotations

from plugins.common.extra_params import BEFORE_HISTORY, child, dialog_id, keep_out_of_history
from xmppd.plugin import Plugin, StanzaError, hook
from xmppd.router import StanzaEvent

NS_RETRACT = "urn:xmpp:message-retract:1"
NS_DELETE = "urn:xmpp:message-delete:0"  # COMPAT: ConnectyCube's delete notification


class MessageDelete(Plugin):
    name = "message_delete"
    implements = ("XEP-0424 0.5.0", "ConnectyCube/QuickBlox delete for everyone")
    features = (NS_RETRACT,)  # XEP-0424 §2; the ConnectyCube namespace is not advertised
    depends = ("dialogs",)

    @hook("pre-message/bare", "pre-message/full", priority=BEFORE_HISTORY)
    async def delete(self, event: StanzaEvent) -> None:
        """A retraction or delete from a local client: the sender's stored message
        goes for everyone, another's is refused (``forbidden``), then it is
        delivered (``None``)."""
        request = child(event.stanza, NS_RETRACT, ("retract",))
        if request is None:
            request = child(event.stanza, NS_DELETE, ("remove",))
        if request is None or event.type == "error":
            return None  # RFC 6120 §8.3: a bounced request is not a request
        keep_out_of_history(event.stanza)
        origin, message_id = event.origin, request.getAttribute("id")
        if origin is None or origin.app_id is None or not message_id:
            return None
        store = self.ctx.plugin("dialogs")
        app_id, user_id = origin.app_id, origin.user_id
        dialog = dialog_id(event.stanza)
        if dialog is not None:
            try:
                d = await store.get(app_id, dialog, user_id)
            except store.NotFoundError:
                d = None
            if d is None or user_id not in d.occupants_ids:
                raise StanzaError("forbidden", text="not an occupant of this dialog")  # H60
        # The id names the stored message (its _id, §4.5) wherever it is.
        result, _ = await store.delete_messages(app_id, user_id, [message_id], True)
        if result["WrongPermissions"]:
            raise StanzaError("forbidden", text="only the sender may delete a message")  # H61
        return None  # deleted, or never saved (NotFound): routed either way
