"""RFC 6121 §3 and Appendix A: the presence subscription state machine.

Pure functions, no I/O. Each transition takes the user's roster row for one
contact (or ``None`` when there is no row) and returns an :class:`Outcome`:
the row afterwards and what the caller must do (save, push, route, answer).

"Outbound" stanzas are sent by the user's client to the contact (Appendix
A.2); "inbound" ones arrive for the user from the contact (Appendix A.3).
The nine states of Appendix A.1 are ``subscription`` plus two flags: ``ask``
(Pending Out) and ``pending_in`` (Pending In). ``approved`` is a pre-approval
(§3.4), which we support (stream feature ``urn:xmpp:features:pre-approval``).

A row with ``in_roster=False`` only remembers an inbound request for a
contact the user never added (§3.1.3); it is never shown nor pushed, and it is
dropped as soon as it has nothing left to remember (§3.2.2, §3.3.3).

No transition needs a presence probe: after an approval the approving side
sends its current presence itself (§3.1.5), which ``send_presence`` asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

NONE, TO, FROM, BOTH = "none", "to", "from", "both"
SUBSCRIPTIONS = (NONE, TO, FROM, BOTH)

# Server-configured limits of §2.3.3 (the column sizes of roster_items).
MAX_NAME_LENGTH = 1023
MAX_GROUP_LENGTH = 1023
MAX_GROUPS = 100

__all__ = [
    "INBOUND",
    "OUTBOUND",
    "Outcome",
    "RosterError",
    "RosterItem",
    "RosterSetItem",
    "check_roster_set",
    "check_roster_size",
    "inbound_subscribe",
    "inbound_subscribed",
    "inbound_unsubscribe",
    "inbound_unsubscribed",
    "outbound_subscribe",
    "outbound_subscribed",
    "outbound_unsubscribe",
    "outbound_unsubscribed",
    "remove_item",
    "set_item",
    "state_name",
]


def _subscription(to: bool, from_: bool) -> str:
    return BOTH if to and from_ else TO if to else FROM if from_ else NONE


@dataclass(frozen=True, slots=True)
class RosterItem:
    """One row of ``roster_items`` (RFC 6121 §2.1.2), keyed by the contact's bare JID."""

    contact: str
    name: str | None = None
    subscription: str = NONE
    ask: bool = False  # Pending Out: ask='subscribe' (§3.1.2)
    pending_in: bool = False  # a stored inbound request (§3.1.3)
    approved: bool = False  # pre-approval (§3.4)
    groups: tuple[str, ...] = ()
    in_roster: bool = True

    @property
    def to(self) -> bool:
        """The user receives the contact's presence."""
        return self.subscription in (TO, BOTH)

    @property
    def from_(self) -> bool:
        """The contact receives the user's presence."""
        return self.subscription in (FROM, BOTH)

    @property
    def state(self) -> str:
        """The Appendix A.1 name of the state, e.g. ``"None + Pending Out+In"``."""
        return state_name(self)


def state_name(item: RosterItem | None) -> str:
    """Appendix A.1 state of ``item``; no row is "None"."""
    if item is None:
        return "None"
    base = item.subscription.capitalize()
    pending = {(True, True): "Out+In", (True, False): "Out", (False, True): "In"}.get(
        (item.ask, item.pending_in)
    )
    return f"{base} + Pending {pending}" if pending else base


def _visible(item: RosterItem | None) -> tuple | None:
    """What a roster result or push shows of ``item`` (§2.1.2); None when not shown."""
    if item is None or not item.in_roster:
        return None
    return (item.name, item.subscription, item.ask, item.approved, item.groups)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a transition asks of the caller.

    ``item``: the row afterwards; ``None`` means no row (delete it if there was one).
    ``write``: the row differs from before: save ``item``, or delete when it is None.
    ``changed``: an in-roster item's visible state changed: bump the roster version
        and push the item (or ``subscription='remove'`` when ``item`` is None) to the
        user's interested resources (§2.1.6).
    ``added``: a contact joins the user's roster: enforce the roster size limit
        (:func:`check_roster_size`) before writing.
    ``route``: outbound: route the stanza to the contact (stamped with the user's
        bare JID); inbound: deliver it to the user's available resources (a request
        also stays stored through ``pending_in``, §3.1.3).
    ``auto_reply``: a presence type the server sends from the user's bare JID to the
        contact on the user's behalf (``"subscribed"``, §3.1.3, §3.4).
    ``send_presence``: send the user's current presence from each available resource
        to the contact (§3.1.5).
    ``send_unavailable``: send presence of type ``unavailable`` from each of the
        user's available resources to the contact, before anything routed (§3.2.2,
        §3.3.3).
    ``send``: presence types the server sends from the user to the contact, in
        order, after a roster removal (§2.5.2).
    """

    item: RosterItem | None
    write: bool = False
    changed: bool = False
    added: bool = False
    route: bool = False
    auto_reply: str | None = None
    send_presence: bool = False
    send_unavailable: bool = False
    send: tuple[str, ...] = ()


def _outcome(
    old: RosterItem | None,
    new: RosterItem | None,
    *,
    route: bool = False,
    auto_reply: str | None = None,
    send_presence: bool = False,
    send_unavailable: bool = False,
) -> Outcome:
    # A tracking-only row with nothing left to track goes (§3.2.2, §3.3.3).
    if new is not None and not (new.in_roster or new.pending_in or new.approved):
        new = None
    return Outcome(
        item=new,
        write=new != old,
        changed=_visible(new) != _visible(old),
        added=_visible(old) is None and _visible(new) is not None,
        route=route,
        auto_reply=auto_reply,
        send_presence=send_presence,
        send_unavailable=send_unavailable,
    )


def _blank(contact: str, in_roster: bool) -> RosterItem:
    return RosterItem(contact=contact, in_roster=in_roster)


# --- Appendix A.2: outbound (the user's client sends these to the contact) ---


def outbound_subscribe(item: RosterItem | None, contact: str) -> Outcome:
    """A.2.1, §3.1.2: always routed; Pending Out unless already 'to'; the contact
    joins the roster (pushed with ask='subscribe')."""
    cur = item or _blank(contact, in_roster=False)
    # None→None+PO, None+PI→None+PO+In, From→From+PO; 'to' states unchanged.
    new = replace(cur, in_roster=True, ask=not cur.to)
    return _outcome(item, new, route=True)


def outbound_unsubscribe(item: RosterItem | None, contact: str) -> Outcome:
    """A.2.2, §3.3.2: always routed; drops 'to' and Pending Out."""
    if item is None:
        return _outcome(None, None, route=True)
    # None+PO→None, None+PO+In→None+PI, To→None, To+PI→None+PI, From+PO→From, Both→From.
    new = replace(item, subscription=_subscription(False, item.from_), ask=False)
    return _outcome(item, new, route=True)


def outbound_subscribed(
    item: RosterItem | None, contact: str, *, preapproval: bool = True
) -> Outcome:
    """A.2.3, §3.1.5 and §3.4.1: approve a pending request, or pre-approve."""
    if item is not None and item.from_:
        # §3.4.1 rule 1, A.2.3 From / From+PO / Both: silently ignored.
        return _outcome(item, item)
    if item is not None and item.pending_in:
        # §3.4.1 rule 2, A.2.3 None+PI→From, None+PO+In→From+PO, To+PI→Both: a normal
        # approval (§3.1.5), routed, pushed, then the user's presence goes out.
        new = replace(
            item,
            subscription=_subscription(item.to, True),
            pending_in=False,
            approved=False,
            in_roster=True,
        )
        return _outcome(item, new, route=True, send_presence=True)
    # A.2.3 None / None+PO / To, footnote [1]: not routed.
    if not preapproval:
        return _outcome(item, item)
    # §3.4.1 rules 3 and 4: note the pre-approval (creating a "None" item if there
    # is none) and push it; never route the stanza.
    new = replace(item or _blank(contact, in_roster=True), approved=True, in_roster=True)
    return _outcome(item, new)


def outbound_unsubscribed(item: RosterItem | None, contact: str) -> Outcome:
    """A.2.4, §3.2.2: deny a pending request or cancel the contact's subscription."""
    if item is None:
        # §3.2.2 rule 1: not in the roster: not routed.
        return _outcome(None, None)
    if not (item.from_ or item.pending_in):
        # §3.2.2 rules 1-2, A.2.4 None / None+PO / To: not routed; a pre-approval
        # is cancelled (and pushed).
        return _outcome(item, replace(item, approved=False))
    # §3.2.2 rule 3, A.2.4 None+PI→None, None+PO+In→None+PO, To+PI→To, From→None,
    # From+PO→None+PO, Both→To: routed and pushed. While the contact is still
    # subscribed, it gets 'unavailable' from the user's resources first. (A
    # contact that only had a pending request never saw the user's presence: as in
    # Prosody, nothing is sent then.)
    new = replace(
        item,
        subscription=_subscription(item.to, False),
        pending_in=False,
        approved=False,
    )
    return _outcome(item, new, route=True, send_unavailable=item.from_)


# --- Appendix A.3: inbound (the contact sends these to the user) ---


def inbound_subscribe(item: RosterItem | None, contact: str) -> Outcome:
    """A.3.1, §3.1.3, §3.4: store and deliver a request, or answer it ourselves."""
    if item is not None and item.from_:
        # §3.1.3 rule 2, A.3.1 From / From+PO / Both: not delivered; the server
        # answers "subscribed". Sending current presence too is not in the RFC but
        # lets a peer that lost its state resync (Prosody does the same).
        return _outcome(item, item, auto_reply="subscribed", send_presence=True)
    if item is not None and item.approved:
        # §3.4: pre-approved (None / None+PO / To): approved on the user's behalf as
        # if the user sent "subscribed" (§3.1.5), the pre-approval is used up.
        new = replace(
            item,
            subscription=_subscription(item.to, True),
            approved=False,
            pending_in=False,
            in_roster=True,
        )
        return _outcome(item, new, auto_reply="subscribed", send_presence=True)
    if item is not None and item.pending_in:
        # A.3.1 None+PI / None+PO+In / To+PI: already pending, not delivered again.
        return _outcome(item, item)
    # A.3.1 None→None+PI, None+PO→None+PO+In, To→To+PI: delivered and stored until
    # the user answers (§3.1.3 rules 3-4). Not in the roster: a tracking-only row.
    new = replace(item or _blank(contact, in_roster=False), pending_in=True)
    return _outcome(item, new, route=True)


def inbound_subscribed(item: RosterItem | None, contact: str) -> Outcome:
    """A.3.3, §3.1.6: the contact approved the user's request."""
    if item is None or not item.ask or item.to:
        # §3.1.6: no pending outbound request: ignored (not delivered, no push).
        return _outcome(item, item)
    # None+PO→To, None+PO+In→To+PI, From+PO→Both: delivered and pushed.
    new = replace(item, subscription=_subscription(True, item.from_), ask=False)
    return _outcome(item, new, route=True)


def inbound_unsubscribe(item: RosterItem | None, contact: str) -> Outcome:
    """A.3.2, §3.3.3: the contact unsubscribes from the user's presence (or
    withdraws a pending request)."""
    if item is None or not (item.from_ or item.pending_in):
        # A.3.2 None / None+PO / To: not delivered, no change.
        return _outcome(item, item)
    # None+PI→None, None+PO+In→None+PO, To+PI→To, From→None, From+PO→None+PO,
    # Both→To: delivered, pushed; a tracking-only row is removed (§3.3.3). A
    # former subscriber gets 'unavailable' from the user's resources (§3.3.3 rule 3).
    new = replace(item, subscription=_subscription(item.to, False), pending_in=False)
    return _outcome(item, new, route=True, send_unavailable=item.from_)


def inbound_unsubscribed(item: RosterItem | None, contact: str) -> Outcome:
    """A.3.4, §3.2.3: the contact denied the user's request or cancelled the
    user's subscription."""
    if item is None or not (item.to or item.ask):
        # A.3.4 None / None+PI / From: not delivered, no change.
        return _outcome(item, item)
    # None+PO→None, None+PO+In→None+PI, To→None, To+PI→None+PI, From+PO→From,
    # Both→From: delivered and pushed.
    new = replace(item, subscription=_subscription(False, item.from_), ask=False)
    return _outcome(item, new, route=True)


Transition = Callable[[RosterItem | None, str], Outcome]

# By presence type, for the router: OUTBOUND[stanza_type](item, contact).
OUTBOUND: dict[str, Transition] = {
    "subscribe": outbound_subscribe,
    "subscribed": outbound_subscribed,
    "unsubscribe": outbound_unsubscribe,
    "unsubscribed": outbound_unsubscribed,
}
INBOUND: dict[str, Transition] = {
    "subscribe": inbound_subscribe,
    "subscribed": inbound_subscribed,
    "unsubscribe": inbound_unsubscribe,
    "unsubscribed": inbound_unsubscribed,
}


# --- §2.3-§2.5: roster set and remove ---


class RosterError(Exception):
    """A roster set the server refuses: the IQ handler answers with ``condition``
    and ``type`` (RFC 6120 §8.3)."""

    def __init__(self, condition: str, type: str, text: str | None = None) -> None:
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.type = type
        self.text = text


@dataclass(frozen=True, slots=True)
class RosterSetItem:
    """One ``<item/>`` of a roster set, as parsed by the IQ handler.

    ``contact`` is the 'jid' attribute already normalised to a bare JID (None when
    missing); ``groups`` are the ``<group/>`` texts in document order; ``remove`` is
    ``subscription='remove'``. Other 'subscription', 'ask' and 'approved' values
    from a client are ignored (§2.1.2.5, §2.1.2.1).
    """

    contact: str | None
    name: str | None = None
    groups: tuple[str, ...] = ()
    remove: bool = False


def check_roster_set(
    items: Sequence[RosterSetItem],
    user: str,
    *,
    max_name: int = MAX_NAME_LENGTH,
    max_group: int = MAX_GROUP_LENGTH,
    max_groups: int = MAX_GROUPS,
) -> RosterSetItem:
    """§2.3.3: the one valid item of a roster set, or :class:`RosterError`.

    ``user`` is the user's own bare JID. An empty 'name' counts as none.
    """
    if len(items) != 1:
        raise RosterError("bad-request", "modify", "a roster set holds exactly one item")
    item = items[0]
    if not item.contact:
        raise RosterError("bad-request", "modify", "the item has no 'jid'")
    if item.contact == user:
        # Not in the RFC: the user's own JID is not a contact (Prosody: not-allowed).
        raise RosterError("not-allowed", "cancel", "cannot add yourself")
    if item.remove:
        return item
    if item.name is not None and len(item.name) > max_name:
        raise RosterError("not-acceptable", "modify", "name too long")
    if len(item.groups) > max_groups:
        raise RosterError("not-acceptable", "modify", "too many groups")
    for group in item.groups:
        if not group:
            raise RosterError("not-acceptable", "modify", "empty group")
        if len(group) > max_group:
            raise RosterError("not-acceptable", "modify", "group name too long")
    if len(set(item.groups)) != len(item.groups):
        raise RosterError("bad-request", "modify", "duplicate group")
    return replace(item, name=item.name or None)


def check_roster_size(count: int, max_items: int) -> None:
    """Refuse a new contact when the roster already holds ``max_items`` (SECURITY.md H26).

    RFC 6121 names no condition for a full roster. ``not-allowed`` (RFC 6120
    §8.3.3.12, type cancel) says retrying will not help; ``resource-constraint``
    (§8.3.3.18) defaults to type wait, which invites retries that cannot succeed.
    """
    if count >= max_items:
        raise RosterError("not-allowed", "cancel", f"roster limit of {max_items} items reached")


def set_item(
    existing: RosterItem | None, contact: str, name: str | None, groups: Sequence[str]
) -> Outcome:
    """§2.3.2 / §2.4.2: add or update an item; subscription state is kept.

    Groups are stored sorted (they are a set). A set that changes nothing
    changes no version and needs no push.
    """
    cur = existing or _blank(contact, in_roster=True)
    new = replace(cur, name=name or None, groups=tuple(sorted(groups)), in_roster=True)
    return _outcome(existing, new)


def remove_item(existing: RosterItem | None) -> Outcome:
    """§2.5.2: delete the item, ending both subscriptions and denying a pending
    request; ``send`` lists what goes to the contact, after ``send_unavailable``.

    Raises ``item-not-found`` (§2.5.3) when the contact is not in the roster.
    """
    if existing is None or not existing.in_roster:
        raise RosterError("item-not-found", "cancel")
    send = []
    if existing.to or existing.ask:  # the user's subscription or request (§3.3)
        send.append("unsubscribe")
    if existing.from_ or existing.pending_in:  # the contact's (§3.2)
        send.append("unsubscribed")
    return Outcome(
        item=None,
        write=True,
        changed=True,
        send_unavailable=existing.from_,
        send=tuple(send),
    )
