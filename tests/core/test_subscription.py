"""RFC 6121 §3 and Appendix A: the subscription state machine, roster set/remove
(§2.3-§2.5) and roster set validation (§2.3.3)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from xmppd.im.subscription import (
    INBOUND,
    OUTBOUND,
    RosterError,
    RosterItem,
    RosterSetItem,
    check_roster_set,
    check_roster_size,
    inbound_subscribe,
    inbound_subscribed,
    inbound_unsubscribe,
    inbound_unsubscribed,
    outbound_subscribe,
    outbound_subscribed,
    outbound_unsubscribe,
    outbound_unsubscribed,
    remove_item,
    set_item,
    state_name,
)

C = "contact@example.org"
USER = "user@example.com"

# Appendix A.1: the nine states, as in-roster items.
STATES = {
    "None": RosterItem(C),
    "None + Pending Out": RosterItem(C, ask=True),
    "None + Pending In": RosterItem(C, pending_in=True),
    "None + Pending Out+In": RosterItem(C, ask=True, pending_in=True),
    "To": RosterItem(C, subscription="to"),
    "To + Pending In": RosterItem(C, subscription="to", pending_in=True),
    "From": RosterItem(C, subscription="from"),
    "From + Pending Out": RosterItem(C, subscription="from", ask=True),
    "Both": RosterItem(C, subscription="both"),
}

SAME = None  # "no state change"

# (table, type, existing state, route/deliver?, new state, auto-reply) row by row.
TABLES = [
    # A.2.1 outbound "subscribe"
    ("A.2.1", OUTBOUND["subscribe"], "None", True, "None + Pending Out", None),
    ("A.2.1", OUTBOUND["subscribe"], "None + Pending Out", True, SAME, None),
    ("A.2.1", OUTBOUND["subscribe"], "None + Pending In", True, "None + Pending Out+In", None),
    ("A.2.1", OUTBOUND["subscribe"], "None + Pending Out+In", True, SAME, None),
    ("A.2.1", OUTBOUND["subscribe"], "To", True, SAME, None),
    ("A.2.1", OUTBOUND["subscribe"], "To + Pending In", True, SAME, None),
    ("A.2.1", OUTBOUND["subscribe"], "From", True, "From + Pending Out", None),
    ("A.2.1", OUTBOUND["subscribe"], "From + Pending Out", True, SAME, None),
    ("A.2.1", OUTBOUND["subscribe"], "Both", True, SAME, None),
    # A.2.2 outbound "unsubscribe"
    ("A.2.2", OUTBOUND["unsubscribe"], "None", True, SAME, None),
    ("A.2.2", OUTBOUND["unsubscribe"], "None + Pending Out", True, "None", None),
    ("A.2.2", OUTBOUND["unsubscribe"], "None + Pending In", True, SAME, None),
    ("A.2.2", OUTBOUND["unsubscribe"], "None + Pending Out+In", True, "None + Pending In", None),
    ("A.2.2", OUTBOUND["unsubscribe"], "To", True, "None", None),
    ("A.2.2", OUTBOUND["unsubscribe"], "To + Pending In", True, "None + Pending In", None),
    ("A.2.2", OUTBOUND["unsubscribe"], "From", True, SAME, None),
    ("A.2.2", OUTBOUND["unsubscribe"], "From + Pending Out", True, "From", None),
    ("A.2.2", OUTBOUND["unsubscribe"], "Both", True, "From", None),
    # A.2.3 outbound "subscribed" (pre-approval [1] is tested apart, with preapproval off)
    ("A.2.3", OUTBOUND["subscribed"], "None + Pending In", True, "From", None),
    ("A.2.3", OUTBOUND["subscribed"], "None + Pending Out+In", True, "From + Pending Out", None),
    ("A.2.3", OUTBOUND["subscribed"], "To + Pending In", True, "Both", None),
    ("A.2.3", OUTBOUND["subscribed"], "From", False, SAME, None),
    ("A.2.3", OUTBOUND["subscribed"], "From + Pending Out", False, SAME, None),
    ("A.2.3", OUTBOUND["subscribed"], "Both", False, SAME, None),
    # A.2.4 outbound "unsubscribed"
    ("A.2.4", OUTBOUND["unsubscribed"], "None", False, SAME, None),
    ("A.2.4", OUTBOUND["unsubscribed"], "None + Pending Out", False, SAME, None),
    ("A.2.4", OUTBOUND["unsubscribed"], "None + Pending In", True, "None", None),
    ("A.2.4", OUTBOUND["unsubscribed"], "None + Pending Out+In", True, "None + Pending Out", None),
    ("A.2.4", OUTBOUND["unsubscribed"], "To", False, SAME, None),
    ("A.2.4", OUTBOUND["unsubscribed"], "To + Pending In", True, "To", None),
    ("A.2.4", OUTBOUND["unsubscribed"], "From", True, "None", None),
    ("A.2.4", OUTBOUND["unsubscribed"], "From + Pending Out", True, "None + Pending Out", None),
    ("A.2.4", OUTBOUND["unsubscribed"], "Both", True, "To", None),
    # A.3.1 inbound "subscribe" (* = the server auto-replies "subscribed", §3.1.3)
    ("A.3.1", INBOUND["subscribe"], "None", True, "None + Pending In", None),
    ("A.3.1", INBOUND["subscribe"], "None + Pending Out", True, "None + Pending Out+In", None),
    ("A.3.1", INBOUND["subscribe"], "None + Pending In", False, SAME, None),
    ("A.3.1", INBOUND["subscribe"], "None + Pending Out+In", False, SAME, None),
    ("A.3.1", INBOUND["subscribe"], "To", True, "To + Pending In", None),
    ("A.3.1", INBOUND["subscribe"], "To + Pending In", False, SAME, None),
    ("A.3.1", INBOUND["subscribe"], "From", False, SAME, "subscribed"),
    ("A.3.1", INBOUND["subscribe"], "From + Pending Out", False, SAME, "subscribed"),
    ("A.3.1", INBOUND["subscribe"], "Both", False, SAME, "subscribed"),
    # A.3.2 inbound "unsubscribe"
    ("A.3.2", INBOUND["unsubscribe"], "None", False, SAME, None),
    ("A.3.2", INBOUND["unsubscribe"], "None + Pending Out", False, SAME, None),
    ("A.3.2", INBOUND["unsubscribe"], "None + Pending In", True, "None", None),
    ("A.3.2", INBOUND["unsubscribe"], "None + Pending Out+In", True, "None + Pending Out", None),
    ("A.3.2", INBOUND["unsubscribe"], "To", False, SAME, None),
    ("A.3.2", INBOUND["unsubscribe"], "To + Pending In", True, "To", None),
    ("A.3.2", INBOUND["unsubscribe"], "From", True, "None", None),
    ("A.3.2", INBOUND["unsubscribe"], "From + Pending Out", True, "None + Pending Out", None),
    ("A.3.2", INBOUND["unsubscribe"], "Both", True, "To", None),
    # A.3.3 inbound "subscribed"
    ("A.3.3", INBOUND["subscribed"], "None", False, SAME, None),
    ("A.3.3", INBOUND["subscribed"], "None + Pending Out", True, "To", None),
    ("A.3.3", INBOUND["subscribed"], "None + Pending In", False, SAME, None),
    ("A.3.3", INBOUND["subscribed"], "None + Pending Out+In", True, "To + Pending In", None),
    ("A.3.3", INBOUND["subscribed"], "To", False, SAME, None),
    ("A.3.3", INBOUND["subscribed"], "To + Pending In", False, SAME, None),
    ("A.3.3", INBOUND["subscribed"], "From", False, SAME, None),
    ("A.3.3", INBOUND["subscribed"], "From + Pending Out", True, "Both", None),
    ("A.3.3", INBOUND["subscribed"], "Both", False, SAME, None),
    # A.3.4 inbound "unsubscribed"
    ("A.3.4", INBOUND["unsubscribed"], "None", False, SAME, None),
    ("A.3.4", INBOUND["unsubscribed"], "None + Pending Out", True, "None", None),
    ("A.3.4", INBOUND["unsubscribed"], "None + Pending In", False, SAME, None),
    ("A.3.4", INBOUND["unsubscribed"], "None + Pending Out+In", True, "None + Pending In", None),
    ("A.3.4", INBOUND["unsubscribed"], "To", True, "None", None),
    ("A.3.4", INBOUND["unsubscribed"], "To + Pending In", True, "None + Pending In", None),
    ("A.3.4", INBOUND["unsubscribed"], "From", False, SAME, None),
    ("A.3.4", INBOUND["unsubscribed"], "From + Pending Out", True, "From", None),
    ("A.3.4", INBOUND["unsubscribed"], "Both", True, "From", None),
]


def _visible(item):
    return None if item is None else (item.subscription, item.ask, item.approved)


@pytest.mark.parametrize(
    "fn, state, route, new_state, reply",
    [row[1:] for row in TABLES],
    ids=[f"{row[0]} {row[1].__name__} {row[2]}" for row in TABLES],
)
def test_appendix_a_row(fn, state, route, new_state, reply):
    """Appendix A.2/A.3: each row's route/deliver column and new state; a push
    (changed) exactly when the visible state (subscription, ask) moved."""
    old = STATES[state]
    if fn is outbound_subscribed:
        out = outbound_subscribed(old, C, preapproval=False)
    else:
        out = fn(old, C)
    assert out.route is route
    assert state_name(out.item) == (new_state or state)
    assert out.auto_reply == reply
    assert out.changed == (_visible(old) != _visible(out.item))
    assert out.write == (out.item != old)
    assert out.item.in_roster and not out.added
    assert out.item.contact == C


def test_every_state_of_every_table_is_covered():
    """Each of the eight tables lists all nine states of A.1."""
    for table in ("A.2.1", "A.2.2", "A.2.4", "A.3.1", "A.3.2", "A.3.3", "A.3.4"):
        assert {row[2] for row in TABLES if row[0] == table} == set(STATES)
    # A.2.3's other three rows are the pre-approval footnote [1], below.
    assert {row[2] for row in TABLES if row[0] == "A.2.3"} | {
        "None",
        "None + Pending Out",
        "To",
    } == set(STATES)


def test_state_names():
    """A.1: state names computed from subscription, ask and pending_in."""
    for name, item in STATES.items():
        assert item.state == name
    assert state_name(None) == "None"


# --- No row at all (the contact is not in the roster, nothing tracked) ---


def test_outbound_subscribe_without_row_adds_the_contact():
    """§3.1.2: the contact is added with ask='subscribe', pushed, and the request routed."""
    out = outbound_subscribe(None, C)
    assert out.item == RosterItem(C, ask=True)
    assert out.route and out.changed and out.added and out.write


def test_outbound_unsubscribe_without_row_is_routed_only():
    """A.2.2 "None": routed, no state change, no row created."""
    out = outbound_unsubscribe(None, C)
    assert out.route and out.item is None and not (out.write or out.changed)


def test_outbound_unsubscribed_without_row_is_not_routed():
    """§3.2.2 rule 1: not in the roster: neither routed nor stored."""
    out = outbound_unsubscribed(None, C)
    assert out == type(out)(item=None)


@pytest.mark.parametrize("fn", [inbound_subscribed, inbound_unsubscribe, inbound_unsubscribed])
def test_inbound_without_row_is_ignored(fn):
    """A.3.2-A.3.4 "None": not delivered, nothing stored."""
    out = fn(None, C)
    assert out == type(out)(item=None)


def test_inbound_subscribe_without_row_tracks_the_request():
    """§3.1.3: the request is delivered and remembered in a row that is not part
    of the roster (no push, no version change)."""
    out = inbound_subscribe(None, C)
    assert out.item == RosterItem(C, pending_in=True, in_roster=False)
    assert out.route and out.write
    assert not out.changed and not out.added and out.auto_reply is None


# --- Tracking-only rows (a pending request from a contact the user never added) ---

TRACKED = RosterItem(C, pending_in=True, in_roster=False)


def test_repeated_inbound_subscribe_on_tracked_request():
    """A.3.1 "None + Pending In": not delivered again, nothing changes."""
    out = inbound_subscribe(TRACKED, C)
    assert out.item == TRACKED and not (out.route or out.write or out.changed)


def test_outbound_unsubscribed_denies_and_drops_tracked_request():
    """§3.2.2: the denial is routed and the tracking row is removed (not pushed)."""
    out = outbound_unsubscribed(TRACKED, C)
    assert out.route and out.item is None and out.write
    assert not out.changed and not out.send_unavailable


def test_inbound_unsubscribe_withdraws_tracked_request():
    """§3.3.3: the record of the request is simply removed; delivered (A.3.2)."""
    out = inbound_unsubscribe(TRACKED, C)
    assert out.route and out.item is None and out.write and not out.changed


def test_outbound_subscribed_approves_tracked_request():
    """§3.1.5: the approval adds the contact with subscription 'from', pushes,
    routes, and the user's presence goes to the contact."""
    out = outbound_subscribed(TRACKED, C)
    assert out.item == RosterItem(C, subscription="from")
    assert out.route and out.changed and out.added and out.send_presence


def test_outbound_subscribe_on_tracked_request_adds_contact():
    """A.2.1 "None + Pending In" → "None + Pending Out+In", now in the roster."""
    out = outbound_subscribe(TRACKED, C)
    assert out.item == RosterItem(C, ask=True, pending_in=True)
    assert out.route and out.changed and out.added


def test_outbound_unsubscribe_on_tracked_request_changes_nothing():
    """A.2.2 "None + Pending In": routed, no state change, still not in the roster."""
    out = outbound_unsubscribe(TRACKED, C)
    assert out.route and out.item == TRACKED and not (out.write or out.changed)


# --- Side effects of approvals and cancellations ---


@pytest.mark.parametrize("state", ["None + Pending In", "None + Pending Out+In", "To + Pending In"])
def test_approval_sends_current_presence(state):
    """§3.1.5: after routing "subscribed" the server sends the user's presence."""
    out = outbound_subscribed(STATES[state], C)
    assert out.send_presence and out.route and not out.item.pending_in


@pytest.mark.parametrize(
    "state, unavailable",
    [
        ("None + Pending In", False),
        ("None + Pending Out+In", False),
        ("To + Pending In", False),
        ("From", True),
        ("From + Pending Out", True),
        ("Both", True),
    ],
)
def test_outbound_unsubscribed_sends_unavailable_to_a_former_subscriber(state, unavailable):
    """§3.2.2 rule 3: a subscriber gets 'unavailable' before the cancellation."""
    out = outbound_unsubscribed(STATES[state], C)
    assert out.route and out.send_unavailable is unavailable


@pytest.mark.parametrize(
    "state, unavailable",
    [
        ("None + Pending In", False),
        ("To + Pending In", False),
        ("From", True),
        ("From + Pending Out", True),
        ("Both", True),
    ],
)
def test_inbound_unsubscribe_sends_unavailable(state, unavailable):
    """§3.3.3 rule 3: 'unavailable' from each of the user's resources to the contact."""
    assert inbound_unsubscribe(STATES[state], C).send_unavailable is unavailable


@pytest.mark.parametrize("state", ["From", "From + Pending Out", "Both"])
def test_already_subscribed_request_is_answered(state):
    """§3.1.3 rule 2: not delivered, answered "subscribed" with current presence."""
    out = inbound_subscribe(STATES[state], C)
    assert out.auto_reply == "subscribed" and out.send_presence
    assert not (out.route or out.write or out.changed)


# --- Pre-approval (§3.4) ---


@pytest.mark.parametrize("state", ["None", "None + Pending Out", "To"])
def test_preapproval_is_noted_not_routed(state):
    """§3.4.1 rule 3, A.2.3 footnote [1]: approved='true', pushed, never routed."""
    out = outbound_subscribed(STATES[state], C)
    assert out.item == replace(STATES[state], approved=True)
    assert out.changed and out.write and not out.route and not out.send_presence


def test_preapproval_without_row_creates_item():
    """§3.4.1 rule 4: a "None" item with approved='true' is created and pushed."""
    out = outbound_subscribed(None, C)
    assert out.item == RosterItem(C, approved=True)
    assert out.changed and out.added and not out.route


def test_preapproval_disabled_ignores_subscribed():
    """A.2.3 [1] without pre-approval support: no state change, not routed."""
    out = outbound_subscribed(None, C, preapproval=False)
    assert out.item is None and not (out.write or out.route)


def test_repeated_preapproval_changes_nothing():
    """A second pre-approval is a no-op: no push, no route."""
    item = RosterItem(C, approved=True)
    out = outbound_subscribed(item, C)
    assert out.item == item and not (out.changed or out.write or out.route)


@pytest.mark.parametrize(
    "state, new_state",
    [("None", "From"), ("None + Pending Out", "From + Pending Out"), ("To", "Both")],
)
def test_preapproved_request_is_approved_by_the_server(state, new_state):
    """§3.4: an inbound request for a pre-approved contact is not delivered; the
    server answers "subscribed", sends presence, and the pre-approval is used up."""
    old = replace(STATES[state], approved=True)
    out = inbound_subscribe(old, C)
    assert state_name(out.item) == new_state and not out.item.approved
    assert out.auto_reply == "subscribed" and out.send_presence
    assert out.changed and not out.route


@pytest.mark.parametrize("state", ["None", "None + Pending Out", "To"])
def test_unsubscribed_cancels_preapproval(state):
    """§3.2.2 rule 2: the pre-approval is removed (pushed) and nothing routed."""
    out = outbound_unsubscribed(replace(STATES[state], approved=True), C)
    assert out.item == STATES[state]
    assert out.changed and not out.route and not out.send_unavailable


# --- Roster set and remove (§2.3-§2.5) ---


def test_set_item_adds_contact_with_subscription_none():
    """§2.3.2: a new item has subscription 'none' and is pushed."""
    out = set_item(None, C, "Nurse", ["Servants", "Friends"])
    assert out.item == RosterItem(C, name="Nurse", groups=("Friends", "Servants"))
    assert out.changed and out.added and out.write and not out.route


def test_set_item_keeps_subscription_state():
    """§2.4.2: updating name/groups never touches the subscription state."""
    old = RosterItem(C, subscription="from", ask=True, name="Old", groups=("A",))
    out = set_item(old, C, "New", [])
    assert out.item == replace(old, name="New", groups=())
    assert out.changed and not out.added


def test_set_item_unchanged_needs_no_push():
    """Setting the same name and groups changes no version."""
    old = RosterItem(C, name="N", groups=("A", "B"))
    out = set_item(old, C, "N", ["B", "A"])
    assert not (out.changed or out.write)


def test_set_item_on_tracked_request_adds_it_keeping_the_request():
    """Adding a contact whose request is pending keeps "None + Pending In"."""
    out = set_item(TRACKED, C, None, [])
    assert out.item == RosterItem(C, pending_in=True)
    assert out.added and out.changed


def test_set_item_empty_name_is_no_name():
    assert set_item(None, C, "", []).item.name is None


@pytest.mark.parametrize(
    "state, send, unavailable",
    [
        ("None", (), False),
        ("None + Pending Out", ("unsubscribe",), False),
        ("None + Pending In", ("unsubscribed",), False),
        ("None + Pending Out+In", ("unsubscribe", "unsubscribed"), False),
        ("To", ("unsubscribe",), False),
        ("To + Pending In", ("unsubscribe", "unsubscribed"), False),
        ("From", ("unsubscribed",), True),
        ("From + Pending Out", ("unsubscribe", "unsubscribed"), True),
        ("Both", ("unsubscribe", "unsubscribed"), True),
    ],
)
def test_remove_item(state, send, unavailable):
    """§2.5.2: the row goes (pushed as 'remove'); 'unsubscribe' ends the user's
    subscription or request, 'unsubscribed' the contact's."""
    out = remove_item(STATES[state])
    assert out.item is None and out.write and out.changed
    assert out.send == send and out.send_unavailable is unavailable and not out.route


def test_remove_preapproved_item_sends_nothing():
    """A pre-approval disappears with the item; nothing goes to the contact."""
    assert remove_item(RosterItem(C, approved=True)).send == ()


@pytest.mark.parametrize("existing", [None, TRACKED])
def test_remove_unknown_item(existing):
    """§2.5.3: item-not-found for a contact that is not in the roster."""
    with pytest.raises(RosterError) as err:
        remove_item(existing)
    assert (err.value.condition, err.value.type) == ("item-not-found", "cancel")


# --- Roster set validation (§2.3.3, SECURITY.md H26/H56) ---


def _refused(items, **kw):
    with pytest.raises(RosterError) as err:
        check_roster_set(items, USER, **kw)
    return err.value.condition, err.value.type


@pytest.mark.parametrize(
    "items, expected",
    [
        ([], ("bad-request", "modify")),
        ([RosterSetItem(C), RosterSetItem("x@example.org")], ("bad-request", "modify")),
        ([RosterSetItem(None)], ("bad-request", "modify")),
        ([RosterSetItem(USER)], ("not-allowed", "cancel")),
        ([RosterSetItem(USER, remove=True)], ("not-allowed", "cancel")),
        ([RosterSetItem(C, name="n" * 1024)], ("not-acceptable", "modify")),
        ([RosterSetItem(C, groups=("",))], ("not-acceptable", "modify")),
        ([RosterSetItem(C, groups=("g" * 1024,))], ("not-acceptable", "modify")),
        ([RosterSetItem(C, groups=("A", "B", "A"))], ("bad-request", "modify")),
        ([RosterSetItem(C, groups=tuple(map(str, range(101))))], ("not-acceptable", "modify")),
    ],
    ids=[
        "no item",
        "two items",
        "no jid",
        "self",
        "remove self",
        "name 1024",
        "empty group",
        "group 1024",
        "duplicate group",
        "101 groups",
    ],
)
def test_roster_set_refused(items, expected):
    """§2.3.3: bad-request for item count and duplicate groups, not-acceptable for
    oversized names/groups and empty groups; not-allowed for the user's own JID."""
    assert _refused(items) == expected


def test_roster_set_accepted_at_the_limits():
    item = RosterSetItem(C, name="n" * 1023, groups=("g" * 1023, "h"))
    assert check_roster_set([item], USER) == item


def test_roster_set_empty_name_is_none():
    assert check_roster_set([RosterSetItem(C, name="")], USER).name is None


def test_roster_remove_skips_name_and_group_checks():
    """§2.5.1: a remove only needs the 'jid'."""
    item = RosterSetItem(C, name="n" * 5000, groups=("", ""), remove=True)
    assert check_roster_set([item], USER) is item


def test_roster_limits_are_parameters():
    assert _refused([RosterSetItem(C, name="abc")], max_name=2) == ("not-acceptable", "modify")


def test_roster_size_limit():
    """SECURITY.md H26: the 301st item of a 300-item roster is refused with
    not-allowed, type cancel."""
    check_roster_size(299, 300)
    with pytest.raises(RosterError) as err:
        check_roster_size(300, 300)
    assert (err.value.condition, err.value.type) == ("not-allowed", "cancel")
