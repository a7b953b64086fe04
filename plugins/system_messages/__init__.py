"""System messages of the hosted chat services (SDK-CONTRACT §4.5).

A system message is ``<message type='headline'>`` to a user's JID with
``<extraParams xmlns='jabber:client'><moduleIdentifier>SystemNotifications</moduleIdentifier>``
and free parameters beside it (``chat.sendSystemMessage``; the REST
``POST /chat/Message/system`` sends the same stanza, plugins/dialogs). "Route,
never store":

- the core delivers it to every available resource of non-negative priority
  and silently drops it when there is none (RFC 6121 §8.5.2.1.1, §8.5.2.2.1), so
  nothing is stored offline (also XEP-0160 §3);
- it is never saved to history: a ``save_to_history`` in it is removed before
  the dialogs plugin reads it (plugins/common/extra_params.py);
- it goes to one user only ("1-1 only", FEATURES.md; SECURITY H65): to a group
  chat address (a room at ``muc.{domain}``, SDK-CONTRACT §1.1, or
  ``type='groupchat'``) it is refused with ``not-allowed`` (RFC 6120 §8.3.3.9:
  no one may do this), not ``bad-request``, since the XML itself is fine.

Stores nothing.
"""

from __future__ import annotations

from twisted.words.xish import domish

from plugins.common.extra_params import BEFORE_HISTORY, NS_CLIENT, keep_out_of_history
from xmppd.plugin import Plugin, StanzaError, hook
from xmppd.router import StanzaEvent

SYSTEM_NOTIFICATIONS = "SystemNotifications"


def is_system_message(stanza: domish.Element) -> bool:
    """``extraParams/moduleIdentifier`` is ``SystemNotifications`` (§4.5)."""
    for extra in stanza.elements(NS_CLIENT, "extraParams"):
        for child in extra.elements():
            if child.name == "moduleIdentifier" and str(child).strip() == SYSTEM_NOTIFICATIONS:
                return True
    return False


class SystemMessages(Plugin):
    name = "system_messages"
    implements = ("ConnectyCube/QuickBlox system messages (SDK-CONTRACT §4.5)",)

    @hook("pre-message/bare", "pre-message/full", "pre-message/remote", priority=BEFORE_HISTORY)
    def route_only(self, event: StanzaEvent) -> None:
        if event.type not in ("headline", "groupchat") or not is_system_message(event.stanza):
            return
        # The hosted SDKs put group dialogs at muc.{chat domain} (SDK-CONTRACT §1.1).
        if event.type == "groupchat" or event.to.host == f"muc.{self.ctx.domain}":
            raise StanzaError("not-allowed", text="system messages go to one user")
        keep_out_of_history(event.stanza)  # route, never store (§4.5)
