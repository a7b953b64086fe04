"""XEP-0308: Last Message Correction (1.2.1), and the hosted services' message
edit (SDK-CONTRACT §4.5).

Takes every message a local client sends with ``<replace
xmlns='urn:xmpp:message-correct:0' id='{original}'/>``. The ConnectyCube SDK's
edit is ``<body>new</body><replace id=.. last='true|false'/>`` with
``<extraParams xmlns='jabber:client'><dialog_id>``.

Stores nothing of its own. When the correction names a dialog, the dialogs store
checks it before it is routed:

- the dialog must be one the sender occupies, else ``forbidden`` (as for a saved
  message's ``dialog_id``, SECURITY H60: an unknown dialog looks the same);
- a message of that dialog's history sent by someone else is never changed and
  the correction is refused with ``forbidden``, not delivered (H61). XEP-0308 §4
  leaves the "same sender" check to receivers because a plain server cannot
  know; this one does, and the SDK's ``onMessageUpdateListener`` reports an edit
  whoever sent it (Gajim CVE-2022-39835 is that bug in a client);
- the sender's own message gets the new body and ``updated_at`` (and the
  dialog's ``last_message`` when it is the last one), as ``PUT /chat/Message``;
- an id not in that history (a message never saved) changes nothing, and the
  correction is delivered.

A correction without ``dialog_id`` (a plain XMPP client) is routed unchanged:
XEP-0308 §4, "A correction MUST only be allowed when both the original message
and correction originate from the same sender", is the receiver's check there.

Sends nothing of its own. A correction is never saved as a new message.
"""

from __future__ import annotations

from plugins.common.extra_params import (
    BEFORE_HISTORY,
    NS_CLIENT,
    child,
    dialog_id,
    keep_out_of_history,
)
from xmppd.plugin import Plugin, StanzaError, hook
from xmppd.router import StanzaEvent

NS_CORRECT = "urn:xmpp:message-correct:0"


class Correction(Plugin):
    name = "correction"
    implements = ("XEP-0308 1.2.1", "ConnectyCube/QuickBlox message edit")
    features = (NS_CORRECT,)  # XEP-0308 §2
    depends = ("dialogs",)

    @hook("pre-message/bare", "pre-message/full", priority=BEFORE_HISTORY)
    async def correction(self, event: StanzaEvent) -> None:
        """A correction from a local client: applied to the sender's stored message,
        refused for another's (``forbidden``), then delivered (``None``)."""
        replace = child(event.stanza, NS_CORRECT, ("replace",))
        if replace is None or event.type == "error":
            return None  # RFC 6120 §8.3: a bounced correction is not a correction
        keep_out_of_history(event.stanza)
        origin, dialog = event.origin, dialog_id(event.stanza)
        original = replace.getAttribute("id")
        if origin is None or origin.app_id is None or not dialog or not original:
            return None  # XEP-0308 §4: the receiver checks the sender
        store = self.ctx.plugin("dialogs")
        app_id, user_id = origin.app_id, origin.user_id
        try:
            d = await store.get(app_id, dialog, user_id)
        except store.NotFoundError:
            d = None
        if d is None or user_id not in d.occupants_ids:
            raise StanzaError("forbidden", text="not an occupant of this dialog")  # H60
        try:
            found = await store.messages(
                app_id, user_id, dialog, {"_id": original, "mark_as_read": "0"}
            )
        except store.DialogError:
            return None  # not an id the store can look up: routed, history unchanged
        if not found["items"]:
            return None  # never saved: routed, history unchanged
        if found["items"][0]["sender_id"] != user_id:
            raise StanzaError("forbidden", text="only the sender may correct a message")  # H61
        body = next(event.stanza.elements(NS_CLIENT, "body"), None)
        if body is not None:
            try:
                await store.update_messages(
                    app_id, user_id, dialog, [original], {"message": str(body)}
                )
            except store.DialogError:
                pass  # deleted meanwhile: nothing left to correct
        return None
