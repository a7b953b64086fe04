"""Privacy lists as values: parsing, the wire form, and matching (XEP-0016 §2.1, §2.2).

A :class:`PrivacyList` is immutable and sorted by ``order``; :meth:`PrivacyList.denies`
answers "does this list refuse a stanza of this kind from or to that JID?" for the
routing hot path, without touching the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from xmppd.errors import StanzaError
from xmppd.stanza import parse_jid

NS_PRIVACY = "jabber:iq:privacy"
NS_BLOCKING = "urn:xmpp:blocking"  # XEP-0191
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"

# XEP-0016 §2.1: the child elements of an <item/>, as bits; no child is every stanza.
KIND_BITS = {"message": 1, "iq": 2, "presence-in": 4, "presence-out": 8}
ALL = 0
# A stanza kind no child element names (subscription presence, §2.13): only ALL items.
OTHER = "other"
ITEM_TYPES = ("jid", "group", "subscription")
SUBSCRIPTIONS = ("both", "to", "from", "none")
MAX_ORDER = 2**32 - 1  # 'order' is an xs:unsignedInt (§5 schema)


@dataclass(frozen=True)
class Item:
    order: int
    action: str  # allow | deny
    type: str | None = None  # jid | group | subscription; None is the fall-through (§2.1)
    value: str | None = None
    kinds: int = ALL
    jid: JID | None = field(default=None, compare=False)  # ``value`` parsed, type 'jid'
    any_user: bool = field(default=False, compare=False)  # see jid_matches

    def applies_to(self, kind: str) -> bool:
        return self.kinds == ALL or bool(self.kinds & KIND_BITS.get(kind, 0))

    def element(self) -> domish.Element:
        item = domish.Element((NS_PRIVACY, "item"))
        if self.type is not None:
            item["type"] = self.type
            item["value"] = self.value or ""
        item["action"] = self.action
        item["order"] = str(self.order)
        for name, bit in KIND_BITS.items():
            if self.kinds & bit:
                item.addElement(name)
        return item


@dataclass(frozen=True)
class Contact:
    """What a ``group`` or ``subscription`` item is matched against: the
    user's roster entry for the other party (RFC 6121 §2.1.2.5; 'none' when absent)."""

    subscription: str = "none"
    groups: frozenset[str] = frozenset()


NOT_IN_ROSTER = Contact()


@dataclass(frozen=True)
class PrivacyList:
    name: str
    items: tuple[Item, ...] = ()  # sorted by order (§2.2 rule 5)

    @property
    def uses_roster(self) -> bool:
        return any(item.type in ("group", "subscription") for item in self.items)

    def first_match(self, other: JID, kind: str, contact: Contact = NOT_IN_ROSTER) -> Item | None:
        """§2.2 rules 5, 6: the first item, in order, that applies to the stanza."""
        for item in self.items:
            if not item.applies_to(kind):
                continue
            if item.type is None:
                return item
            if item.type == "jid":
                if item.jid is not None and jid_matches(item.jid, other, item.any_user):
                    return item
            elif item.type == "subscription":
                if contact.subscription == item.value:
                    return item
            elif item.value in contact.groups:
                return item
        return None

    def denies(self, other: JID, kind: str, contact: Contact = NOT_IN_ROSTER) -> bool:
        """§2.2 rule 7: no matching item means allow."""
        item = self.first_match(other, kind, contact)
        return item is not None and item.action == "deny"

    def element(self, with_items: bool = True) -> domish.Element:
        element = domish.Element((NS_PRIVACY, "list"))
        element["name"] = self.name
        if with_items:
            for item in self.items:
                element.addChild(item.element())
        return element


def jid_matches(pattern: JID, other: JID, any_user: bool = False) -> bool:
    """XEP-0016 §2.1 (and XEP-0191 §6): user@domain/resource, user@domain,
    domain/resource, domain, in that order of precision.

    Hosted-services extension: a ``domain/resource`` item names that resource at
    that domain *with any localpart* when the domain is not a user domain (see
    :func:`on_service_domain`): ConnectyCube's ``muc.{domain}/{user_id}`` is that user in
    every room of the MUC service (SDK-CONTRACT §4.7).
    """
    if pattern.user is not None:
        if pattern.user != other.user or pattern.host != other.host:
            return False
        return pattern.resource is None or pattern.resource == other.resource
    if pattern.resource is not None:
        same = pattern.host == other.host and pattern.resource == other.resource
        return same and (other.user is None or any_user)
    return other.host == pattern.host or other.host.endswith("." + pattern.host)


def on_service_domain(jid: JID, user_domain: str) -> bool:
    """COMPAT: a ``domain/resource`` value on a domain other than the users' one
    (a MUC service) matches that resource under any localpart (SDK-CONTRACT §4.7)."""
    return jid.user is None and jid.resource is not None and jid.host != user_domain


def make_item(element: domish.Element, user_domain: str, max_value: int = 3071) -> Item:
    """One ``<item/>`` from a client, validated (§2.1); raises ``bad-request``."""
    action = element.getAttribute("action")
    if action not in ("allow", "deny"):
        raise StanzaError("bad-request", text="action must be allow or deny")
    try:
        order = int(element.getAttribute("order", ""))
    except ValueError:
        raise StanzaError("bad-request", text="order must be a non-negative integer") from None
    if not 0 <= order <= MAX_ORDER:
        raise StanzaError("bad-request", text="order must be a non-negative integer")
    kind = element.getAttribute("type")
    value = element.getAttribute("value")
    kinds = ALL
    for child in element.elements():
        if child.name not in KIND_BITS:
            raise StanzaError("bad-request", text=f"unknown item child <{child.name}/>")
        kinds |= KIND_BITS[child.name]
    if kind is None:
        return Item(order, action, kinds=kinds)
    if kind not in ITEM_TYPES:
        raise StanzaError("bad-request", text="type must be jid, group or subscription")
    if value is None or not value or len(value) > max_value:
        raise StanzaError("bad-request", text="a typed item needs a value")
    jid = None
    if kind == "jid":
        try:
            jid = parse_jid(value)
        except (InvalidFormat, UnicodeError, ValueError):
            raise StanzaError("bad-request", text="value is not a valid JID") from None
        value = jid.full()
    elif kind == "subscription" and value not in SUBSCRIPTIONS:
        raise StanzaError("bad-request", text="subscription must be both, to, from or none")
    any_user = jid is not None and on_service_domain(jid, user_domain)
    return Item(order, action, kind, value, kinds, jid, any_user)


def stored_item(
    order: int, action: str, type_: str | None, value: str | None, kinds: int, domain: str
) -> Item:
    """An item read back from the store (validated when it was written)."""
    if type_ != "jid" or not value:
        return Item(order, action, type_, value, kinds)
    jid = parse_jid(value)
    return Item(order, action, type_, value, kinds, jid, on_service_domain(jid, domain))


def make_list(name: str, items: Iterable[Item]) -> PrivacyList:
    """Items sorted by order; duplicate orders are ``bad-request`` (§2.1)."""
    ordered = tuple(sorted(items, key=lambda item: item.order))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.order == after.order:
            raise StanzaError("bad-request", text="order values must be unique")
    return PrivacyList(name, ordered)
