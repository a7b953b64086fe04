"""XEP-0079: Advanced Message Processing (1.2).

Takes ``<message/>`` stanzas from local clients that carry
``<amp xmlns='http://jabber.org/protocol/amp'>`` rules; all three defined
conditions (``deliver``, ``expire-at``, ``match-resource``) and all four
actions (``alert``, ``drop``, ``error``, ``notify``) are supported.

1. ``pre-message/*`` (``Priority.FILTER``): validates the rules before anything
   else sees the message (§2.2.1). Unknown actions or conditions and bad values
   get the §6 error message, and so do alert/error/notify rules from a sender who
   may not see the recipient's presence (§9, unless
   ``require_presence_subscription`` is off); the message then goes no further.
2. ``message/bare``, ``message/full`` (just after the filters): works out what the
   core would do with the message (§2.2.2): deliver it to resources now
   (``direct``), keep it offline (``stored``: a loaded plugin advertises XEP-0160's
   ``msgoffline``) or neither (``none``); runs the first rule met (§2.2.3).
   ``drop``, ``alert`` and ``error`` stop the message, offline storage included;
   ``notify`` lets it go on. alert, error and notify send the sender a message (§2.2.5).
3. An outgoing filter on every session: a message kept offline is checked again
   against its ``expire-at`` rules when it is finally sent (§3.3.2, §7).

Advertises the feature, the ``http://jabber.org/protocol/amp`` disco node with
every action and condition (§2.1.1) and the stream feature (§8). ``per-hop`` is
honoured only as §3.3.3 asks (its match-resource rules are ignored): this server
is both edge servers and has no server-to-server links. Stores nothing; fires
no events.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.words.xish import domish

from plugins.amp.rules import (
    ACTIONS,
    CONDITIONS,
    NS_AMP,
    NS_AMP_FEATURE,
    Destination,
    Rule,
    amp_of,
    event_message,
    is_met,
    kept_offline,
    problem,
    refusal_message,
    request_of,
    rules_of,
)
from xmppd.config import opt
from xmppd.im import roster_store
from xmppd.im.roster import user_id_of
from xmppd.plugin import Identity, Plugin, PluginContext, Priority, StanzaError, hook
from xmppd.router import StanzaEvent, message_recipients
from xmppd.sessions import Session

NS_MSGOFFLINE = "msgoffline"  # XEP-0160 §4: offline storage is on
NOWHERE = Destination("none")
# Just after Priority.FILTER: a message that privacy lists or blocking stop is
# not delivered, and AMP must neither say otherwise nor act on it.
AFTER_FILTERS = Priority.FILTER - 1


def may_see_presence(conn: Any, owner_id: int, contact: str) -> bool:
    """RFC 6121 §3: ``contact`` receives the owner's presence (from or both)."""
    item = roster_store.get_item(conn, owner_id, contact, lock=False)
    return item is not None and item.from_


class Amp(Plugin):
    name = "amp"
    implements = ("XEP-0079 1.2",)
    features = (NS_AMP,)

    @dataclass(frozen=True)
    class Config:
        require_presence_subscription: bool = opt(
            True,
            "XEP-0079 §9: refuse alert, error and notify rules (not-acceptable) unless the"
            " sender may see the recipient's presence (subscription from or both); false"
            " only on a closed, fully trusted network.",
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: Amp.Config = ctx.config
        # Messages whose rules were processed as they went straight to resources:
        # the outgoing filter must not process them again.
        self.settled: weakref.WeakSet[domish.Element] = weakref.WeakSet()

    # -- discovery (§2.1.1, §8) -------------------------------------------------

    @hook("disco-info")
    def supported_rules(self, query: Any) -> list[Any] | None:
        # §2.1.1: the node lists "the individual actions and conditions it supports".
        if query.dest != "host" or query.node != NS_AMP:
            return None
        return [
            Identity("server", "im"),
            NS_AMP,
            *(f"{NS_AMP}?action={action}" for action in ACTIONS),
            *(f"{NS_AMP}?condition={condition}" for condition in CONDITIONS),
        ]

    @hook("stream-features")
    def stream_feature(self, stream: Any) -> domish.Element:
        return domish.Element((NS_AMP_FEATURE, "amp"))  # §8

    # -- 1. validation (§2.2.1, §9) ---------------------------------------------

    @hook(
        "pre-message/bare",
        "pre-message/full",
        "pre-message/host",
        "pre-message/remote",
        priority=Priority.FILTER,
    )
    def validate(self, event: StanzaEvent) -> Any:
        amp = amp_of(event.stanza)
        if amp is None or event.type == "error":
            return None
        if amp.getAttribute("status") is not None:
            # §4.1: from client to server 'status' "MUST NOT be present".
            raise StanzaError("bad-request", text="XEP-0079 §4.1: 'status' is for servers")
        if not event.stanza.getAttribute("id"):
            raise StanzaError("bad-request", text="XEP-0079 §1.3: AMP needs a message 'id'")
        rules = rules_of(amp)
        if not rules:
            raise StanzaError("bad-request", text="XEP-0079 §4.1: <amp/> without <rule/>")
        # §2.2.1: "validate all the semantics before returning an error".
        for specific in ("unsupported-actions", "unsupported-conditions", "invalid-rules"):
            at_issue = [rule for rule in rules if problem(rule) == specific]
            if at_issue:
                return self.refuse(event, specific, at_issue)
        # §9: alerts, errors and notifications would tell whether the recipient
        # is online; "drop" tells nothing.
        telling = [rule for rule in rules if rule.action != "drop"]
        recipient = event.to.userhostJID()
        if (
            not telling
            or not self.config.require_presence_subscription
            or event.dest not in ("bare", "full")
            or recipient == event.sender.userhostJID()
        ):
            return None
        owner_id = user_id_of(recipient, self.ctx.domain)
        if owner_id is None:
            return self.refuse(event, "invalid-rules", telling)
        d = self.ctx.db.run(may_see_presence, owner_id, event.sender.userhost())
        return d.addCallback(
            lambda allowed: None if allowed else self.refuse(event, "invalid-rules", telling)
        )

    def refuse(self, event: StanzaEvent, specific: str, rules: list[Rule]) -> bool:
        # §6.1: unsupported-* under bad-request; invalid-rules under not-acceptable.
        condition = "not-acceptable" if specific == "invalid-rules" else "bad-request"
        self.ctx.router.deliver(
            refusal_message(event.stanza, condition, specific, rules, self.ctx.domain)
        )
        return True

    # -- 2. processing (§2.2.2-§2.2.5) ------------------------------------------

    @hook("message/bare", "message/full", priority=AFTER_FILTERS)
    def process(self, event: StanzaEvent) -> Any:
        amp = request_of(event.stanza)
        if amp is None or event.origin is None:
            return None  # not a client's request (a server's event, a stored message)
        # §4.1: a supporting server names the original sender and recipient.
        amp["from"], amp["to"] = event.sender.full(), event.to.full()
        where = self.destination(event)
        if isinstance(where, Deferred):
            return where.addCallback(self.apply_rules, event, amp)
        return self.apply_rules(where, event, amp)

    def destination(self, event: StanzaEvent) -> Destination | Deferred:
        """§2.2.2: what RFC 6121 §8.5 delivery (xmppd/im/delivery.py) would do."""
        kind = event.type or "normal"
        if event.dest == "full" and self.ctx.sessions.get(event.to) is not None:
            return Destination("direct", frozenset([event.to.resource]))
        if kind == "groupchat" or (event.dest == "full" and kind == "headline"):
            return NOWHERE
        recipients = event.recipients
        if recipients is None or event.dest == "full":  # §8.5.3.2.1: as if to the bare JID
            recipients = message_recipients(self.ctx.router, event)
        if recipients:
            return Destination("direct", frozenset(s.jid.resource for s in recipients))
        if kind == "headline":
            return NOWHERE  # §8.5.2.2.1: silently ignored
        exists = self.ctx.router.account_exists(event.to.userhostJID())
        if isinstance(exists, Deferred):
            return exists.addCallback(self.offline_destination, event.stanza)
        return self.offline_destination(exists, event.stanza)

    def offline_destination(self, exists: bool, stanza: domish.Element) -> Destination:
        # RFC 6121 §8.5.2.2.1: stored if offline storage is on and keeps this one.
        stored = exists and NS_MSGOFFLINE in self.ctx.features() and kept_offline(stanza)
        return Destination("stored") if stored else NOWHERE

    def apply_rules(self, where: Destination, event: StanzaEvent, amp: domish.Element) -> Any:
        per_hop = amp.getAttribute("per-hop") == "true"
        now = self.ctx.clock.seconds()
        # §2.2.3: "serially, and in the order they are presented"; the first met wins.
        for rule in rules_of(amp):
            if per_hop and rule.condition == "match-resource":
                continue  # §3.3.3: "this <rule/> shall be ignored"
            if problem(rule) is None and is_met(rule, where, event.to.resource, now):
                return self.execute(rule, event.stanza, where.kind == "direct")
        if where.kind == "direct":
            self.settled.add(event.stanza)
        return None

    def execute(self, rule: Rule, stanza: domish.Element, delivered_now: bool) -> bool | None:
        if rule.action != "drop":  # §3.4.2: a drop "MUST NOT result in other responses"
            self.ctx.router.deliver(event_message(stanza, rule, self.ctx.domain))
        if rule.action != "notify":
            return True  # §3.4.1-§3.4.3: discarded, and "not placed into offline storage"
        if delivered_now:
            self.settled.add(stanza)
        return None  # §3.4.4: "the server then executes its default behavior"

    # -- 3. offline messages leaving storage (§3.3.2, §7) -------------------------

    @hook("session-bound")
    def watch(self, session: Session) -> None:
        # Among the filters, after privacy's and before client state indication holds
        # stanzas back: what CSI queues has been checked already.
        session.add_filter(self.expire_late, AFTER_FILTERS)

    def expire_late(self, stanza: domish.Element) -> domish.Element | None:
        """§7: "keep track of which offline messages are subject to expiration and
        not deliver those which have expired"."""
        if stanza.name != "message" or stanza in self.settled:
            return stanza
        amp = request_of(stanza)
        if amp is None:
            return stanza
        now = self.ctx.clock.seconds()
        for rule in rules_of(amp):
            if rule.condition == "expire-at" and problem(rule) is None:
                if is_met(rule, Destination("direct"), None, now):
                    return stanza if self.execute(rule, stanza, True) is None else None
        return stanza
