"""Self-destroying messages of the hosted chat services (ConnectyCube real-time
API, "Self-destroy message"; FEATURES.md): ``<destroy
xmlns='urn:xmpp:message-destroy-after:0' after='N'/>`` in a message asks that no
copy of it outlive N seconds. The receiving client removes it from its screen;
the server routes it and keeps no copy past N seconds:

- ``after`` must be a whole number of seconds from 1 to ``max_after``, and a
  message has at most one ``<destroy/>``; else ``bad-request`` (RFC 6120
  §8.3.3.1);
- it is never saved to history: a ``save_to_history`` in it is removed before
  the dialogs plugin reads it (plugins/common/extra_params.py);
- a copy stored for an offline recipient (plugins/offline, which reads ``after``
  itself) is never delivered, and is deleted, N seconds after it was stored.

Advertises the namespace. Stores nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugins.common.extra_params import BEFORE_HISTORY, keep_out_of_history
from xmppd.config import opt
from xmppd.plugin import Plugin, PluginContext, StanzaError, hook
from xmppd.router import StanzaEvent

NS_DESTROY = "urn:xmpp:message-destroy-after:0"


class SelfDestroyingMessages(Plugin):
    name = "destroy"
    implements = ("ConnectyCube message-destroy-after:0",)
    features = (NS_DESTROY,)

    @dataclass(frozen=True)
    class Config:
        max_after: int = opt(
            604800, "Longest self-destroy delay in seconds a message may ask for.", min=1
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: SelfDestroyingMessages.Config = ctx.config

    @hook("pre-message/bare", "pre-message/full", "pre-message/remote", priority=BEFORE_HISTORY)
    def check_and_keep_out_of_history(self, event: StanzaEvent) -> None:
        found = list(event.stanza.elements(NS_DESTROY, "destroy"))
        if not found:
            return
        after = found[0].getAttribute("after", "")
        limit = self.config.max_after
        valid = after.isascii() and after.isdigit() and len(after) <= 9 and 1 <= int(after) <= limit
        if len(found) > 1 or not valid:
            raise StanzaError("bad-request", text=f"one <destroy after='1..{limit}'/>")
        keep_out_of_history(event.stanza)  # the server keeps no copy: no history
