"""XEP-0079 rules: reading and validating them (§4.2, §2.2.1), deciding which
one a message meets (§2.2.3, §3.3), and the messages sent back to its sender
(§2.2.5, §3.4, §6). Pure functions: no I/O, no clock of their own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from twisted.words.xish import domish

from xmppd.errors import StanzaError
from xmppd.router import NS_CLIENT

NS_AMP = "http://jabber.org/protocol/amp"
NS_AMP_ERRORS = "http://jabber.org/protocol/amp#errors"
NS_AMP_FEATURE = "http://jabber.org/features/amp"
NS_HINTS = "urn:xmpp:hints"  # XEP-0334

# §3.3, §3.4: every defined condition and action is supported.
CONDITIONS = ("deliver", "expire-at", "match-resource")
ACTIONS = ("alert", "drop", "error", "notify")
VALUES = {
    "deliver": ("direct", "forward", "gateway", "none", "stored"),  # §3.3.1
    "match-resource": ("any", "exact", "other"),  # §3.3.3
}

# XEP-0082 §3.2 DateTime; §3.3.2: "the timezone MUST be UTC".
_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(?:Z|[+-]00:00)")


@dataclass(frozen=True)
class Rule:
    """One ``<rule/>`` (§4.2); attributes missing from the element are ``""``."""

    action: str
    condition: str
    value: str

    def element(self, namespace: str = NS_AMP) -> domish.Element:
        rule = domish.Element((namespace, "rule"))
        rule["action"], rule["condition"], rule["value"] = self.action, self.condition, self.value
        return rule


@dataclass(frozen=True)
class Destination:
    """§2.2.2: what the server would do with the message: deliver it now
    (``direct``, to ``resources``), keep it offline (``stored``) or neither
    (``none``)."""

    kind: str
    resources: frozenset[str] = frozenset()


def amp_of(stanza: domish.Element) -> domish.Element | None:
    for child in stanza.elements(NS_AMP, "amp"):
        return child
    return None


def request_of(stanza: domish.Element) -> domish.Element | None:
    """The ``<amp/>`` of a message asking for processing: not an error, not a
    server's reply (§4.1: those have a 'status')."""
    amp = amp_of(stanza)
    if amp is None or amp.hasAttribute("status") or stanza.getAttribute("type") == "error":
        return None
    return amp


def rules_of(amp: domish.Element) -> list[Rule]:
    return [
        Rule(*(e.getAttribute(name, "") for name in ("action", "condition", "value")))
        for e in amp.elements(NS_AMP, "rule")
    ]


def expiry(value: str) -> float | None:
    """An ``expire-at`` value as POSIX seconds, or None if it is not a UTC DateTime."""
    m = _DATETIME.fullmatch(value)
    if m is None:
        return None
    try:
        moment = datetime(*(int(x) for x in m.groups()[:6]), tzinfo=UTC)
    except ValueError:  # 2025-02-30, 25:00...
        return None
    return moment.timestamp() + float(m.group(7) or 0)


def problem(rule: Rule) -> str | None:
    """§2.2.1, §6.1: why the server cannot take ``rule``, as the specific
    condition to answer with; None if it can."""
    if rule.action not in ACTIONS:
        return "unsupported-actions"
    if rule.condition not in CONDITIONS:
        return "unsupported-conditions"
    # §4.2: 'value' "MUST NOT be an empty string"; §2.2.1: "the condition
    # contents are appropriate".
    if rule.condition == "expire-at":
        valid = expiry(rule.value) is not None
    else:
        valid = rule.value in VALUES[rule.condition]
    return None if valid else "invalid-rules"


def is_met(rule: Rule, where: Destination, intended: str | None, now: float) -> bool:
    """§3.3: whether ``rule``'s condition holds for a message going ``where``,
    addressed to resource ``intended`` (None: a bare JID), at ``now``."""
    if rule.condition == "deliver":
        # §3.3.1: forward and gateway never apply: this server does neither.
        return rule.value == where.kind
    if rule.condition == "expire-at":
        # §3.3.2: "If the current datetime is on or after that specified".
        return now >= (expiry(rule.value) or 0.0)
    # §3.3.3 match-resource; offline storage is "a destination JID without a
    # resource identifier".
    if where.kind == "stored":
        return rule.value == ("exact" if intended is None else "other")
    if where.kind != "direct":
        return False
    if rule.value == "any":
        return True
    if intended is None:
        return rule.value == "other"
    exact = where.resources == {intended}
    return exact if rule.value == "exact" else intended not in where.resources


def kept_offline(stanza: domish.Element) -> bool:
    """XEP-0160 §3 and XEP-0334 §4: offline storage keeps a chat or normal message
    with a body or a ``<store/>`` hint, never one with ``<no-store/>``."""
    hints = {hint.name for hint in stanza.elements(NS_HINTS)}
    if "no-store" in hints:
        return False
    return "store" in hints or any(True for _ in stanza.elements(stanza.uri, "body"))


def _message_to_sender(stanza: domish.Element, domain: str) -> domish.Element:
    # §1.3: the reply "MUST include the original value of the 'id' attribute";
    # §2.2.5: it "SHOULD NOT contain the non-AMP contents".
    reply = domish.Element((NS_CLIENT, "message"))
    reply["from"] = domain
    reply["to"] = stanza["from"]
    reply["id"] = stanza.getAttribute("id", "")
    return reply


def event_message(stanza: domish.Element, rule: Rule, domain: str) -> domish.Element:
    """§2.2.5: the alert (§3.4.1), error (§3.4.3) or notification (§3.4.4)
    for the sender of ``stanza``, naming the rule met."""
    reply = _message_to_sender(stanza, domain)
    amp = reply.addElement((NS_AMP, "amp"))
    amp["status"] = rule.action  # §4.1: "SHOULD be the value of the 'action' attribute"
    source = amp_of(stanza)
    for attribute in ("from", "to"):  # §4.1: the original sender and recipient
        amp[attribute] = source.getAttribute(attribute) or stanza.getAttribute(attribute, "")
    amp.addChild(rule.element())
    if rule.action == "error":
        # §3.4.3: type error, undefined-condition of type modify, <failed-rules/>.
        reply["type"] = "error"
        error = StanzaError("undefined-condition", type="modify").getElement()
        error.addElement((NS_AMP_ERRORS, "failed-rules")).addChild(rule.element(NS_AMP_ERRORS))
        reply.addChild(error)
    return reply


def refusal_message(
    stanza: domish.Element, condition: str, specific: str, rules: list[Rule], domain: str
) -> domish.Element:
    """§6.2: the error for semantics the server will not process: the rules
    sent, then ``condition`` with ``specific`` listing the rules at issue."""
    reply = _message_to_sender(stanza, domain)
    reply["type"] = "error"
    amp = reply.addElement((NS_AMP, "amp"))
    for rule in rules_of(amp_of(stanza)):
        amp.addChild(rule.element())
    error = StanzaError(condition, type="modify").getElement()
    holder = error.addElement((NS_AMP, specific))
    for rule in rules:
        holder.addChild(rule.element())
    reply.addChild(error)
    return reply
