"""XEP-0079: Advanced Message Processing, through the real core, with the real
offline storage plugin where a test needs messages kept offline."""

import dataclasses
from calendar import timegm
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer

from plugins.amp import Amp
from tests.harness import DOMAIN, Harness

NS_AMP = "http://jabber.org/protocol/amp"
NS_AMP_ERRORS = "http://jabber.org/protocol/amp#errors"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
ACTIONS = ("alert", "drop", "error", "notify")
EXPIRY = "2030-01-01T00:00:00Z"
EXPIRY_SECONDS = timegm((2030, 1, 1, 0, 0, 0))


def start(tmp_path, *, offline=True, **amp):
    enabled = ["disco", "offline", "amp"] if offline else ["disco", "amp"]
    plugins = {"enabled": enabled, **({"amp": amp} if amp else {})}
    return Harness.start(tmp_path, plugins=plugins)


@pytest.fixture
def harness(tmp_path):
    h = pytest_twisted.blockon(start(tmp_path))
    yield h
    pytest_twisted.blockon(h.stop())


@pytest.fixture
def no_offline(tmp_path):
    h = pytest_twisted.blockon(start(tmp_path, offline=False))
    yield h
    pytest_twisted.blockon(h.stop())


@defer.inlineCallbacks
def friends(h, sender="alice", recipient="bob", resource="res"):
    """``sender`` online and subscribed to ``recipient``'s presence (RFC 6121 §3.1),
    ``recipient`` bound as ``resource`` but not yet available."""
    a = yield h.login(sender, available=True)
    b = yield h.login(recipient, resource)
    yield h.send(a, f"<presence to='{b.bare}' type='subscribe'/>")
    yield h.send(b, f"<presence to='{a.bare}' type='subscribed'/>")
    a.take(), b.take()
    return a, b


def amp_message(to, *rules, mid="m1", kind="chat", body="hi", per_hop=False):
    hop = " per-hop='true'" if per_hop else ""
    rules_xml = "".join(f"<rule action='{a}' condition='{c}' value='{v}'/>" for a, c, v in rules)
    text = f"<body>{body}</body>" if body else ""
    return (
        f"<message to='{to}' id='{mid}' type='{kind}'>{text}"
        f"<amp xmlns='{NS_AMP}'{hop}>{rules_xml}</amp></message>"
    )


def rules(element):
    return [
        (r["action"], r["condition"], r["value"]) for r in element.elements() if r.name == "rule"
    ]


def amp_of(stanza):
    return next(stanza.elements(NS_AMP, "amp"))


def check_event(stanza, sender, rule, to):
    """§2.2.5: the sender gets a message with the original id, the rule met and no body."""
    action = rule[0]
    assert stanza.name == "message" and stanza["from"] == DOMAIN and stanza["to"] == sender.jid
    assert stanza["id"] == "m1" and not list(stanza.elements(None, "body"))
    amp = amp_of(stanza)
    assert amp["status"] == action and rules(amp) == [rule]
    assert (amp["from"], amp["to"]) == (sender.jid, to)  # §4.1
    if action == "error":  # §3.4.3
        assert stanza["type"] == "error"
        error = stanza.error
        assert error["type"] == "modify" and error["code"] == "500"
        assert next(error.elements(NS_STANZAS, "undefined-condition"))
        assert rules(next(error.elements(NS_AMP_ERRORS, "failed-rules"))) == [rule]
    else:
        assert stanza.getAttribute("type") is None


def check_outcome(rule, sender_got, recipient_got, sender, to, *, delivered_otherwise=True):
    """§3.4: what each action leaves the sender and the recipient with."""
    action = rule[0]
    if action == "drop":  # §3.4.2: silently discarded, "MUST NOT result in other responses"
        assert sender_got == [] and recipient_got == []
        return
    [event] = sender_got
    check_event(event, sender, rule, to)
    if action == "notify":  # §3.4.4: the default behaviour follows
        assert [m["id"] for m in recipient_got] == (["m1"] if delivered_otherwise else [])
    else:  # §3.4.1, §3.4.3: otherwise "behaves as drop"
        assert recipient_got == []


def messages(client):
    return [s for s in client.take() if s.name == "message"]


@defer.inlineCallbacks
def come_online(h, client):
    """Initial presence: what the offline store sends arrives now (XEP-0160 §2 step 5)."""
    yield h.send(client, "<presence/>")
    return messages(client)


# -- discovery (§2.1.1) ---------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_disco_feature_and_node_list_every_action_and_condition(harness):
    """§2.1.1: the server reports the feature, and its node every supported action and
    condition; the node asked of an account is not ours (item-not-found)."""
    alice = yield harness.login("alice")
    yield harness.send(
        alice, f"<iq type='get' id='d1' to='{DOMAIN}'><query xmlns='{NS_INFO}'/></iq>"
    )
    [root] = alice.take()
    assert NS_AMP in [f["var"] for f in root.query.elements(NS_INFO, "feature")]
    yield harness.send(
        alice,
        f"<iq type='get' id='d2' to='{DOMAIN}'><query xmlns='{NS_INFO}' node='{NS_AMP}'/></iq>",
    )
    [node] = alice.take()
    assert node["type"] == "result" and node.query["node"] == NS_AMP
    assert sorted(f["var"] for f in node.query.elements(NS_INFO, "feature")) == sorted(
        [NS_AMP]
        + [f"{NS_AMP}?action={a}" for a in ACTIONS]
        + [f"{NS_AMP}?condition={c}" for c in ("deliver", "expire-at", "match-resource")]
    )
    assert [(i["category"], i["type"]) for i in node.query.elements(NS_INFO, "identity")] == [
        ("server", "im")
    ]
    yield harness.send(
        alice, f"<iq type='get' id='d3'><query xmlns='{NS_INFO}' node='{NS_AMP}'/></iq>"
    )
    [own] = alice.take()
    assert own["type"] == "error" and own.error.firstChildElement().name == "item-not-found"


def test_stream_feature(harness):
    """§8: <amp xmlns='http://jabber.org/features/amp'/> among the stream features."""
    contributed = harness.server.events.fire_all("stream-features", None)
    assert any(
        getattr(f, "uri", None) == "http://jabber.org/features/amp" and f.name == "amp"
        for f in contributed
    )


# -- deliver (§3.3.1) -------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
@pytest_twisted.inlineCallbacks
def test_deliver_direct(harness, action):
    """§3.3.1 'direct' (the recipient has an available resource) with each action (§3.4)."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    rule = (action, "deliver", "direct")
    yield harness.send(alice, amp_message(bob.bare, rule))
    check_outcome(rule, messages(alice), messages(bob), alice, bob.bare)


@pytest.mark.parametrize("action", ACTIONS)
@pytest_twisted.inlineCallbacks
def test_deliver_stored(harness, action):
    """§3.3.1 'stored' (offline and offline storage is on) with each action: drop,
    alert and error keep it out of storage (§3.4.2), notify lets it be stored."""
    alice, bob = yield friends(harness)
    rule = (action, "deliver", "stored")
    yield harness.send(alice, amp_message(bob.bare, rule))
    sender_got = messages(alice)
    check_outcome(rule, sender_got, (yield come_online(harness, bob)), alice, bob.bare)


@pytest.mark.parametrize("action", ACTIONS)
@pytest_twisted.inlineCallbacks
def test_deliver_none_without_offline_storage(no_offline, action):
    """§3.3.1 'none' ("the intended recipient is offline and message storage is not
    enabled") with each action; after notify the core bounces it (RFC 6121 §8.5.2.2.1)."""
    alice, bob = yield friends(no_offline)
    rule = (action, "deliver", "none")
    yield no_offline.send(alice, amp_message(bob.bare, rule))
    got = messages(alice)
    if action == "notify":
        event, bounce = got
        assert bounce["type"] == "error" and bounce.error.firstChildElement().name == (
            "service-unavailable"
        )
        got = [event]
    check_outcome(rule, got, messages(bob), alice, bob.bare, delivered_otherwise=False)


@pytest_twisted.inlineCallbacks
def test_deliver_none_for_what_storage_does_not_keep(harness):
    """§3.3.1: a message offline storage would not keep (no body: XEP-0334 §4) is 'none',
    not 'stored'; forward and gateway never apply here."""
    alice, bob = yield friends(harness)
    yield harness.send(
        alice,
        amp_message(
            bob.bare,
            ("error", "deliver", "stored"),
            ("error", "deliver", "forward"),
            ("error", "deliver", "gateway"),
            ("alert", "deliver", "none"),
            body=None,
        ),
    )
    [event] = messages(alice)
    check_event(event, alice, ("alert", "deliver", "none"), bob.bare)


@pytest_twisted.inlineCallbacks
def test_rules_run_in_order_first_met_wins(harness):
    """§2.2.3: rules are processed in order and processing ends at the first one met."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    yield harness.send(
        alice,
        amp_message(
            bob.bare,
            ("error", "deliver", "stored"),  # not met
            ("notify", "deliver", "direct"),  # met: the message goes on
            ("drop", "deliver", "direct"),  # never reached
        ),
    )
    [event] = messages(alice)
    check_event(event, alice, ("notify", "deliver", "direct"), bob.bare)
    [delivered] = messages(bob)
    amp = amp_of(delivered)
    assert delivered.body and (amp["from"], amp["to"]) == (alice.jid, bob.bare)  # §4.1


@pytest_twisted.inlineCallbacks
def test_no_rule_met_delivers_normally(harness):
    """§2.2: "If no conditions are met, perform 'default' behavior"."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    yield harness.send(alice, amp_message(bob.bare, ("error", "deliver", "stored")))
    assert messages(alice) == [] and [m["id"] for m in messages(bob)] == ["m1"]


# -- expire-at (§3.3.2) -------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
@pytest_twisted.inlineCallbacks
def test_expire_at_passed_before_delivery(harness, action):
    """§3.3.2: "If the current datetime is on or after that specified, the condition
    is met", with each action."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    harness.clock.advance(EXPIRY_SECONDS)
    rule = (action, "expire-at", EXPIRY)
    yield harness.send(alice, amp_message(bob.bare, rule))
    check_outcome(rule, messages(alice), messages(bob), alice, bob.bare)


@pytest_twisted.inlineCallbacks
def test_expire_at_in_the_future_delivers(harness):
    """§3.3.2: before the time the condition is not met; the message is delivered once."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    harness.clock.advance(EXPIRY_SECONDS - 1)
    yield harness.send(alice, amp_message(bob.bare, ("error", "expire-at", EXPIRY)))
    assert messages(alice) == [] and [m["id"] for m in messages(bob)] == ["m1"]


@pytest.mark.parametrize("action", ACTIONS)
@pytest_twisted.inlineCallbacks
def test_expire_at_passed_in_offline_storage(harness, action):
    """§3.3.2, §7: a stored message is checked again when it leaves storage; expired,
    it is not delivered (or only after the notification), with each action."""
    alice, bob = yield friends(harness)
    harness.clock.advance(EXPIRY_SECONDS - 60)
    rule = (action, "expire-at", EXPIRY)
    yield harness.send(alice, amp_message(bob.bare, rule))
    assert messages(alice) == []  # stored, not yet expired
    harness.clock.advance(60)
    recipient_got = yield come_online(harness, bob)
    check_outcome(rule, messages(alice), recipient_got, alice, bob.bare)


@pytest_twisted.inlineCallbacks
def test_expire_at_not_passed_in_offline_storage(harness):
    """§3.3.2: a stored message that has not expired is delivered, stamped by storage."""
    alice, bob = yield friends(harness)
    yield harness.send(alice, amp_message(bob.bare, ("error", "expire-at", EXPIRY)))
    [delivered] = yield come_online(harness, bob)
    assert delivered["id"] == "m1" and messages(alice) == []


# -- match-resource (§3.3.3) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "value", "met"),
    [
        ("res", "exact", True),  # the intended resource is there
        ("res", "other", False),
        ("res", "any", True),
        ("gone", "exact", False),  # it falls back to the bare JID: resource 'res'
        ("gone", "other", True),
        ("gone", "any", True),
        (None, "any", True),  # to the bare JID, delivered to 'res'
        (None, "other", True),  # "would not deliver to a destination JID without a resource"
        (None, "exact", False),
    ],
)
@pytest.mark.parametrize("action", ACTIONS)
@pytest_twisted.inlineCallbacks
def test_match_resource_online(harness, to, value, met, action):
    """§3.3.3: the resource actually delivered to against the one intended."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    address = f"{bob.bare}/{to}" if to else bob.bare
    rule = (action, "match-resource", value)
    yield harness.send(alice, amp_message(address, rule))
    if met:
        check_outcome(rule, messages(alice), messages(bob), alice, address)
    else:
        assert messages(alice) == [] and [m["id"] for m in messages(bob)] == ["m1"]


@pytest.mark.parametrize(
    ("to", "value", "met"),
    [
        (None, "exact", True),  # offline storage: "a destination JID without a resource"
        (None, "other", False),
        (None, "any", False),
        ("res", "other", True),  # the intended resource went away: stored instead
        ("res", "exact", False),
    ],
)
@pytest_twisted.inlineCallbacks
def test_match_resource_offline_storage(harness, to, value, met):
    """§3.3.3: a message kept offline goes to a destination without a resource."""
    alice, bob = yield friends(harness)
    yield harness.disconnect(bob)
    address = f"{bob.bare}/{to}" if to else bob.bare
    rule = ("error", "match-resource", value)
    yield harness.send(alice, amp_message(address, rule))
    got = messages(alice)
    if met:
        [event] = got
        check_event(event, alice, rule, address)
    else:
        assert got == []


@pytest_twisted.inlineCallbacks
def test_match_resource_ignored_per_hop(harness):
    """§3.3.3: with per-hop='true' a match-resource rule "shall be ignored"."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    yield harness.send(
        alice, amp_message(f"{bob.bare}/res", ("drop", "match-resource", "exact"), per_hop=True)
    )
    assert [m["id"] for m in messages(bob)] == ["m1"]


# -- refusals (§2.2.1, §6) ----------------------------------------------------------------


def check_refusal(stanza, condition, code, specific, at_issue, sent):
    """§6.2: type error from the server, the rules sent, then the condition with the
    specific one listing the rules at issue."""
    assert stanza.name == "message" and stanza["type"] == "error" and stanza["id"] == "m1"
    assert stanza["from"] == DOMAIN
    assert rules(amp_of(stanza)) == sent
    error = stanza.error
    assert (error["type"], error["code"]) == ("modify", code)
    assert next(error.elements(NS_STANZAS, condition))
    assert rules(next(error.elements(NS_AMP, specific))) == at_issue


@pytest.mark.parametrize(
    ("sent", "condition", "code", "specific", "at_issue"),
    [
        (
            [("bounce", "deliver", "direct"), ("drop", "deliver", "stored")],
            "bad-request",
            "400",
            "unsupported-actions",
            [0],
        ),
        (
            [("drop", "received", "yes"), ("bounce", "seen", "yes")],
            "bad-request",
            "400",
            "unsupported-actions",  # reported first; the other problems wait
            [1],
        ),
        ([("drop", "received", "yes")], "bad-request", "400", "unsupported-conditions", [0]),
        (
            [
                ("drop", "deliver", "sometimes"),
                ("drop", "expire-at", "tomorrow"),
                ("drop", "expire-at", "2030-01-01T00:00:00+02:00"),  # §3.3.2: MUST be UTC
                ("drop", "expire-at", "2030-02-30T00:00:00Z"),
                ("drop", "match-resource", "partial"),  # §3.3.3: no partial matching
                ("drop", "deliver", ""),  # §4.2: MUST NOT be empty
                ("drop", "expire-at", "2030-01-01T00:00:00.5Z"),  # fine
            ],
            "not-acceptable",
            "406",
            "invalid-rules",
            [0, 1, 2, 3, 4, 5],
        ),
    ],
)
@pytest_twisted.inlineCallbacks
def test_rules_the_server_cannot_take(harness, sent, condition, code, specific, at_issue):
    """§2.2.1, §6.1: unsupported actions, unsupported conditions, unacceptable values:
    the error names every rule at issue and the message goes no further."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    yield harness.send(alice, amp_message(bob.bare, *sent))
    [refusal] = messages(alice)
    check_refusal(refusal, condition, code, specific, [sent[i] for i in at_issue], sent)
    assert messages(bob) == []


@pytest.mark.parametrize(
    "stanza",
    [
        # §1.3: the message MUST have a non-empty id.
        f"<message to='TO'><body>x</body><amp xmlns='{NS_AMP}'>"
        "<rule action='drop' condition='deliver' value='direct'/></amp></message>",
        # §4.1: a client MUST NOT send 'status'.
        f"<message to='TO' id='m1'><amp xmlns='{NS_AMP}' status='notify'>"
        "<rule action='notify' condition='deliver' value='direct'/></amp></message>",
        # §4.1: one or more rules.
        f"<message to='TO' id='m1'><body>x</body><amp xmlns='{NS_AMP}'/></message>",
    ],
)
@pytest_twisted.inlineCallbacks
def test_malformed_amp_is_a_bad_request(harness, stanza):
    """§1.3, §4.1: a message AMP cannot work with gets bad-request (RFC 6120 §8.3.3.1)."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    yield harness.send(alice, stanza.replace("TO", bob.bare))
    [error] = messages(alice)
    assert error["type"] == "error" and error.error.firstChildElement().name == "bad-request"
    assert messages(bob) == []


@pytest_twisted.inlineCallbacks
def test_error_messages_are_not_processed(harness):
    """RFC 6120 §8.3.1: never answer an error; its <amp/> is not acted on."""
    alice, bob = yield friends(harness)
    yield come_online(harness, bob)
    yield harness.send(
        alice, amp_message(bob.bare, ("alert", "deliver", "direct"), kind="error", body=None)
    )
    assert messages(alice) == [] and len(messages(bob)) == 1


# -- security (§9) ----------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_stranger_may_not_ask_what_reveals_presence(harness):
    """§9 (RECOMMENDED): alert, error and notify rules from a sender not subscribed to the
    recipient's presence get not-acceptable with <invalid-rules/>; nothing is delivered."""
    _, bob = yield friends(harness)
    carol = yield harness.login("carol", available=True)
    yield come_online(harness, bob)
    sent = [("drop", "deliver", "stored"), ("notify", "deliver", "direct")]
    yield harness.send(carol, amp_message(bob.bare, *sent))
    [refusal] = messages(carol)
    check_refusal(refusal, "not-acceptable", "406", "invalid-rules", [sent[1]], sent)
    assert messages(bob) == []


@pytest_twisted.inlineCallbacks
def test_stranger_may_drop(harness):
    """§9: "drop" answers nothing, so it tells a stranger nothing: accepted."""
    _, bob = yield friends(harness)
    carol = yield harness.login("carol", available=True)
    yield harness.send(carol, amp_message(bob.bare, ("drop", "deliver", "stored")))
    assert messages(carol) == []
    assert (yield come_online(harness, bob)) == []


@pytest_twisted.inlineCallbacks
def test_one_way_subscription_is_not_enough_the_other_way(harness):
    """§9: what matters is whether the sender may see the recipient's presence: alice
    receives bob's (bob's roster: alice 'from'), bob does not receive alice's."""
    alice, bob = yield friends(harness)  # alice receives bob's presence
    yield come_online(harness, bob)
    yield harness.send(bob, amp_message(alice.bare, ("notify", "deliver", "direct")))
    [refusal] = messages(bob)
    assert refusal.error.firstChildElement().name == "not-acceptable"
    yield harness.send(alice, amp_message(bob.bare, ("notify", "deliver", "direct")))
    [event] = messages(alice)
    assert amp_of(event)["status"] == "notify"


@pytest_twisted.inlineCallbacks
def test_own_account_needs_no_subscription(harness):
    """§9: a user may always learn about their own resources."""
    alice = yield harness.login("alice", "one", available=True)
    yield harness.send(alice, amp_message(alice.bare, ("alert", "deliver", "direct")))
    [event] = messages(alice)
    check_event(event, alice, ("alert", "deliver", "direct"), alice.bare)


@pytest_twisted.inlineCallbacks
def test_trusted_network_skips_the_subscription_check(tmp_path):
    """§9: "An exception might be fully-trusted or closed networks":
    require_presence_subscription = false."""
    h = yield start(tmp_path, require_presence_subscription=False)
    try:
        carol = yield h.login("carol", available=True)
        bob = yield h.login("bob", available=True)
        yield h.send(carol, amp_message(bob.bare, ("notify", "deliver", "direct")))
        [event] = messages(carol)
        check_event(event, carol, ("notify", "deliver", "direct"), bob.bare)
        assert len(messages(bob)) == 1
    finally:
        yield h.stop()


# -- configuration -----------------------------------------------------------------------------


def test_options_are_in_the_example_and_the_reference():
    """docs/configuration.md and etc/xmppd.toml (commented) list every option with its
    default and its doc, as the core's options are (tests/core/test_config.py)."""
    root = Path(__file__).resolve().parents[2]
    example = (root / "etc" / "xmppd.toml").read_text()
    reference = (root / "docs" / "configuration.md").read_text()
    section = example.split("# [plugins.amp]\n", 1)[1].split("\n\n", 1)[0]
    for field in dataclasses.fields(Amp.Config):
        doc, default = field.metadata["doc"], field.default
        assert f"# {field.name} = {str(default).lower()}" in section
        assert " ".join(line.lstrip("# ") for line in section.splitlines()).count(doc) == 1
        row = f"| `plugins.amp.{field.name}` | boolean | `{str(default).lower()}` | {doc} |"
        assert row in reference
