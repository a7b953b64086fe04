"""plugins/privacy: XEP-0016 privacy lists and XEP-0191 blocking over one store,
through the real router (tests/harness.py), with the ConnectyCube SDK's exact
stanzas (SDK-CONTRACT §4.7)."""

from __future__ import annotations

import pytest_twisted
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, func, select

from plugins.privacy import store
from plugins.privacy.lists import Contact, Item, PrivacyList, make_item
from plugins.privacy.tables import privacy_items, privacy_lists
from tests.harness import DOMAIN, Harness, parse
from xmppd import accounts
from xmppd.config import parse_config
from xmppd.im import roster_store
from xmppd.im.subscription import RosterItem
from xmppd.registry import plugin_migration_dirs
from xmppd.stanza import parse_jid
from xmppd.storage import Database
from xmppd.storage.tables import metadata

NS = "jabber:iq:privacy"
NS_BLOCKING = "urn:xmpp:blocking"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
ONE_WAY = "<message/><presence-in/><presence-out/><iq/>"


def start(tmp_path, **options):
    return Harness.start(tmp_path, plugins={"enabled": ["privacy"], "privacy": options})


def sdk_create(h, name, users, mutual):
    """chat.privacylist.create(): two items per user, bare JID then muc.{domain}/{id}."""
    items = []
    for n, login in enumerate(users):
        user_id = h.users[login].id
        children = "" if mutual else ONE_WAY
        for order, value in ((2 * n + 1, h.jid_of(login)), (2 * n + 2, f"muc.{DOMAIN}/{user_id}")):
            items.append(
                f"<item type='jid' value='{value}' action='deny' order='{order}'>{children}</item>"
            )
    return (
        f"<iq type='set' id='x:edit'><query xmlns='{NS}'><list name='{name}'>"
        + "".join(items)
        + "</list></query></iq>"
    )


def set_default(name):
    attr = f" name='{name}'" if name else ""
    return f"<iq type='set' id='x:default'><query xmlns='{NS}'><default{attr}/></query></iq>"


def chat(to, body="hi", id_="m1"):
    return f"<message type='chat' to='{to}' id='{id_}'><body>{body}</body></message>"


def error_of(stanza):
    error = next(stanza.elements(None, "error"), None) or next(
        (c for c in stanza.elements() if c.name == "error"), None
    )
    assert error is not None, stanza.toXml()
    return [c.name for c in error.elements() if c.uri == STANZAS][0], error


def iq_result(client, id_):
    """The reply with this id; everything else stays in ``client.out``."""
    [reply] = [s for s in client.out if s.name == "iq" and s.getAttribute("id") == id_]
    client.out.remove(reply)
    return reply


@pytest_twisted.inlineCallbacks
def test_migration_matches_tables_and_cascades(tmp_path):
    """docs/storage.md: privacy_0001 creates exactly the declared tables; a deleted
    user's lists and items go with him (ON DELETE CASCADE)."""
    h = yield start(tmp_path)
    try:
        db = h.server.db
        assert "privacy_0001" in db.current_revisions()
        mine = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.sorted_tables:
            table.to_metadata(mine)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), mine)
        assert [d for d in diff if "privacy_" in repr(d)] == []
        assert {privacy_lists.name, privacy_items.name} <= set(mine.tables)
        alice = yield h.login("alice")
        yield h.user("bob")
        yield h.send(alice, sdk_create(h, "l", ["bob"], mutual=True))
        user_id = h.users["alice"].id
        yield h.disconnect(alice)
        yield h.accounts.delete_user(user_id)
        count = yield db.run(
            lambda c: c.execute(select(func.count()).select_from(privacy_items)).scalar()
        )
        assert count == 0
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_sdk_lists_read_back_in_order_and_names(tmp_path):
    """SDK-CONTRACT §4.7, XEP-0016 §2.3: getNames lists default and names; getList
    returns the items sorted by 'order' whatever order they were sent in."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        yield h.user("bob")
        yield h.user("carol")
        shuffled = (
            f"<iq type='set' id='e1'><query xmlns='{NS}'><list name='mine'>"
            f"<item type='jid' value='{h.jid_of('carol')}' action='deny' order='3'>{ONE_WAY}</item>"
            f"<item type='jid' value='{h.jid_of('bob')}' action='deny' order='1'/>"
            f"<item type='jid' value='muc.{DOMAIN}/7' action='deny' order='2'/>"
            "</list></query></iq>"
        )
        yield h.send(alice, shuffled)
        assert iq_result(alice, "e1")["type"] == "result"
        yield h.send(alice, set_default("mine"))
        alice.take()
        yield h.send(alice, f"<iq type='get' id='n1'><query xmlns='{NS}'/></iq>")
        query = iq_result(alice, "n1").firstChildElement()
        assert [(c.name, c["name"]) for c in query.elements()] == [
            ("default", "mine"),
            ("list", "mine"),
        ]
        yield h.send(
            alice, f"<iq type='get' id='g1'><query xmlns='{NS}'><list name='mine'/></query></iq>"
        )
        items = list(iq_result(alice, "g1").firstChildElement().firstChildElement().elements())
        assert [i["order"] for i in items] == ["1", "2", "3"]
        assert items[0]["value"] == h.jid_of("bob") and not list(items[0].elements())
        assert sorted(c.name for c in items[2].elements()) == sorted(
            ["message", "presence-in", "presence-out", "iq"]
        )
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_mutual_block_refuses_both_ways_at_once(tmp_path):
    """SDK-CONTRACT §4.7 mutualBlock: no child element = every stanza both ways
    (XEP-0016 §2.13); a new default list applies to the current session at once (no
    <active/>). Inbound message: service-unavailable (§2.14); the blocker's own:
    not-acceptable with XEP-0191 <blocked/> (§3.3)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        yield h.send(alice, sdk_create(h, "cc", ["bob"], mutual=True))
        yield h.send(alice, set_default("cc"))
        alice.take()
        yield h.send(bob, chat(h.jid_of("alice")))
        condition, _ = error_of(bob.take()[0])
        assert condition == "service-unavailable" and alice.take() == []
        yield h.send(alice, chat(h.jid_of("bob"), id_="m2"))
        [refused] = alice.take()
        condition, error = error_of(refused)
        assert (refused["type"], refused["id"], condition) == ("error", "m2", "not-acceptable")
        assert [c.uri for c in error.elements() if c.name == "blocked"] == [
            "urn:xmpp:blocking:errors"
        ]
        assert error["code"] == "406" and bob.take() == []
        yield h.send(
            bob, f"<iq type='get' id='v1' to='{alice.jid}'><query xmlns='jabber:iq:version'/></iq>"
        )
        condition, _ = error_of(bob.take()[0])
        assert condition == "service-unavailable" and alice.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_one_way_block_lets_the_blocker_write(tmp_path):
    """SDK-CONTRACT §4.7 mutualBlock false: <message/><presence-in/><presence-out/><iq/>
    name inbound stanzas (XEP-0016 §2.1): the blocked user's message bounces
    (service-unavailable, 503), the blocker's own message is delivered."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        yield h.send(alice, sdk_create(h, "cc", ["bob"], mutual=False))
        yield h.send(alice, set_default("cc"))
        alice.take()
        yield h.send(bob, chat(h.jid_of("alice")))
        condition, error = error_of(bob.take()[0])
        assert (condition, error["code"]) == ("service-unavailable", "503")
        assert alice.take() == []
        yield h.send(alice, chat(h.jid_of("bob"), "still me"))
        [got] = bob.take()
        assert str(got.body) == "still me"
        # presence-out: alice's directed presence does not reach bob; bob's is dropped too.
        yield h.send(alice, f"<presence to='{bob.jid}'/>")
        yield h.send(bob, f"<presence to='{alice.jid}'/>")
        assert bob.take() == [] and alice.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_offline_user_default_list_applies(tmp_path):
    """XEP-0016 §2.2 rule 2: with no session, the default list (read from the store)
    decides; the blocked sender gets service-unavailable."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        yield h.send(alice, sdk_create(h, "cc", ["bob"], mutual=False))
        yield h.send(alice, set_default("cc"))
        yield h.disconnect(alice)
        h.server.plugins.plugins["privacy"].cache.clear()
        yield h.send(bob, chat(h.jid_of("alice")))
        condition, _ = error_of(bob.take()[0])
        assert condition == "service-unavailable"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_active_list_applies_to_its_session_only(tmp_path):
    """XEP-0016 §2.2 rule 1, §2.4: an active list affects only its session; decline
    with an empty <active/>."""
    h = yield start(tmp_path)
    try:
        phone = yield h.login("alice", "phone", available=True)
        desk = yield h.login("alice", "desk", available=True)
        bob = yield h.login("bob", available=True)
        yield h.send(phone, sdk_create(h, "quiet", ["bob"], mutual=False))
        yield h.send(
            phone, f"<iq type='set' id='a1'><query xmlns='{NS}'><active name='quiet'/></query></iq>"
        )
        assert iq_result(phone, "a1")["type"] == "result"
        phone.take(), desk.take()
        yield h.send(bob, chat(phone.jid))
        assert phone.take() == []
        yield h.send(bob, chat(h.jid_of("alice"), "to both"))
        assert phone.take() == [] and [str(m.body) for m in desk.take()] == ["to both"]
        yield h.send(phone, f"<iq type='get' id='n' ><query xmlns='{NS}'/></iq>")
        names = iq_result(phone, "n").firstChildElement()
        assert [(c.name, c["name"]) for c in names.elements()][0] == ("active", "quiet")
        yield h.send(phone, f"<iq type='set' id='a2'><query xmlns='{NS}'><active/></query></iq>")
        phone.take()
        yield h.send(bob, chat(phone.jid, "again"))
        assert [str(m.body) for m in phone.take()] == ["again"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_conflict_and_item_not_found_and_bad_request(tmp_path):
    """XEP-0016 §2.3-§2.8: unknown names are item-not-found; removing a list another
    resource uses, or changing the default it uses, is conflict; two lists in one get,
    two children in one set, duplicate orders and bad actions are bad-request."""
    h = yield start(tmp_path)
    try:
        one = yield h.login("alice", "one")
        two = yield h.login("alice", "two")
        yield h.user("bob")
        yield h.send(one, sdk_create(h, "a", ["bob"], mutual=True))
        yield h.send(one, sdk_create(h, "b", ["bob"], mutual=False))
        yield h.send(one, set_default("a"))
        one.take()

        def ask(xml, id_):
            return h.send(
                one, f"<iq type='{xml[0]}' id='{id_}'><query xmlns='{NS}'>{xml[1]}</query></iq>"
            )

        cases = [
            (("get", "<list name='zzz'/>"), "item-not-found"),
            (("set", "<active name='zzz'/>"), "item-not-found"),
            (("set", "<default name='zzz'/>"), "item-not-found"),
            (("set", "<list name='zzz'/>"), "item-not-found"),
            (("set", "<list name='a'/>"), "conflict"),  # 'two' uses the default list a
            (("set", "<default name='b'/>"), "conflict"),
            (("set", "<default/>"), "conflict"),
            (("get", "<list name='a'/><list name='b'/>"), "bad-request"),
            (("set", "<active/><default/>"), "bad-request"),
            (
                (
                    "set",
                    "<list name='c'><item action='deny' order='1'/><item action='allow' order='1'/></list>",
                ),
                "bad-request",
            ),
            (("set", "<list name='c'><item action='maybe' order='1'/></list>"), "bad-request"),
            (
                (
                    "set",
                    "<list name='c'><item type='subscription' value='x' action='deny' order='1'/></list>",
                ),
                "bad-request",
            ),
        ]
        for n, (xml, expected) in enumerate(cases):
            yield ask(xml, f"c{n}")
            reply = iq_result(one, f"c{n}")
            assert (reply["type"], error_of(reply)[0]) == ("error", expected), xml
        # 'two' declines the default for itself by activating b: now a may go.
        yield h.send(
            two, f"<iq type='set' id='t'><query xmlns='{NS}'><active name='b'/></query></iq>"
        )
        yield ask(("set", "<default name='b'/>"), "ok1")
        assert iq_result(one, "ok1")["type"] == "result"
        yield ask(("set", "<list name='a'/>"), "ok2")
        assert iq_result(one, "ok2")["type"] == "result"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_list_push_to_every_resource(tmp_path):
    """XEP-0016 §2.2 rule 10, §2.6: an edit pushes the list's name to each resource."""
    h = yield start(tmp_path)
    try:
        one = yield h.login("alice", "one")
        two = yield h.login("alice", "two")
        yield h.user("bob")
        yield h.send(one, sdk_create(h, "pushed", ["bob"], mutual=True))
        for client in (one, two):
            pushes = [s for s in client.take() if s.getAttribute("type") == "set"]
            assert len(pushes) == 1 and pushes[0]["to"] == client.jid
            [listed] = pushes[0].firstChildElement().elements()
            assert (listed.name, listed["name"], list(listed.elements())) == ("list", "pushed", [])
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_blocking_command_is_the_default_list(tmp_path):
    """XEP-0191 §3.2-§3.5 and §5: block creates the default list with the blocked
    JIDs first; the blocklist is its jid/deny/no-child items; pushes reach only
    resources that asked for the blocklist; unblock and unblock-all; no item is
    bad-request."""
    h = yield start(tmp_path)
    try:
        one = yield h.login("alice", "one", available=True)
        two = yield h.login("alice", "two", available=True)
        bob = yield h.login("bob", available=True)
        carol = yield h.user("carol")
        bob_jid, carol_jid = h.jid_of("bob"), h.jid_of("carol")
        yield h.send(one, f"<iq type='get' id='bl'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
        assert list(iq_result(one, "bl").firstChildElement().elements()) == []
        yield h.send(
            two,
            f"<iq type='set' id='b1'><block xmlns='{NS_BLOCKING}'><item jid='{bob_jid}'/>"
            f"<item jid='{carol_jid}'/></block></iq>",
        )
        assert iq_result(two, "b1")["type"] == "result"
        pushes = [s for s in one.take() if s.name == "iq" and s["type"] == "set"]
        pushes = [p for p in pushes if p.firstChildElement().uri == NS_BLOCKING]
        assert [[i["jid"] for i in p.firstChildElement().elements()] for p in pushes] == [
            [bob_jid, carol_jid]
        ]
        # 'two' never asked for the blocklist: only the XEP-0016 list push.
        assert [s.firstChildElement().uri for s in two.take() if s["type"] == "set"] == [NS]
        yield h.send(bob, chat(h.jid_of("alice")))
        assert error_of(bob.take()[0])[0] == "service-unavailable"
        yield h.send(one, f"<iq type='get' id='n'><query xmlns='{NS}'/></iq>")
        names = iq_result(one, "n").firstChildElement()
        assert [(c.name, c["name"]) for c in names.elements()] == [
            ("default", "blocklist"),
            ("list", "blocklist"),
        ]
        yield h.send(
            one,
            f"<iq type='set' id='u1'><unblock xmlns='{NS_BLOCKING}'><item jid='{bob_jid}'/></unblock></iq>",
        )
        pushes = [s for s in one.take() if s.name == "iq" and s["type"] == "set"]
        assert any(p.firstChildElement().name == "unblock" for p in pushes)
        yield h.send(bob, chat(h.jid_of("alice"), "back"))
        assert [str(m.body) for m in one.take() + two.take() if m.name == "message"] == [
            "back",
            "back",
        ]
        yield h.send(one, f"<iq type='set' id='u2'><unblock xmlns='{NS_BLOCKING}'/></iq>")
        yield h.send(one, f"<iq type='get' id='bl2'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
        assert list(iq_result(one, "bl2").firstChildElement().elements()) == []
        yield h.send(one, f"<iq type='set' id='b2'><block xmlns='{NS_BLOCKING}'/></iq>")
        assert error_of(iq_result(one, "b2"))[0] == "bad-request"
        yield h.send(
            one,
            f"<iq type='set' id='b3'><block xmlns='{NS_BLOCKING}'><item jid='@@'/></block></iq>",
        )
        assert error_of(iq_result(one, "b3"))[0] == "jid-malformed"
        assert carol.id
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_is_blocked_for_group_chat_with_the_muc_item(tmp_path):
    """Issue 4: a MUC plugin asks is_blocked(blocker, sender, kind); the SDK's
    muc.{domain}/{user_id} item matches that user in every room (hosted extension of
    XEP-0016 §2.1 domain/resource matching); other nicks and own JIDs are not blocked."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        yield h.user("bob")
        yield h.send(alice, sdk_create(h, "cc", ["bob"], mutual=False))
        yield h.send(alice, set_default("cc"))
        privacy = h.server.plugins.plugins["privacy"]
        bob_id = h.users["bob"].id
        room = f"{h.app_id}_65f0c0ffee0000000000abcd@muc.{DOMAIN}"
        me = h.jid_of("alice")
        assert privacy.is_blocked(me, f"{room}/{bob_id}", "message") is True
        assert privacy.is_blocked(me, f"{room}/{bob_id}1", "message") is False
        assert privacy.is_blocked(me, h.jid_of("bob") + "/phone", "message") is True
        assert privacy.is_blocked(me, f"{me}/other", "message") is False
        # domain/resource on the users' own domain keeps XEP-0016's strict meaning.
        assert privacy.is_blocked(me, f"someone@{DOMAIN}/{bob_id}", "message") is False
        # A user whose lists are not in memory: a Deferred.
        yield h.user("carol")
        answer = privacy.is_blocked(h.jid_of("carol"), me, "message")
        assert (yield answer) is False
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_limits_and_subscription_requests(tmp_path):
    """Config bounds max_lists and max_items (policy-violation); a subscription
    request from a user blocked by a no-child item is dropped (XEP-0016 §2.13, §2.14:
    no error for presence)."""
    h = yield start(tmp_path, max_lists=1, max_items=2)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        yield h.user("carol")
        yield h.send(alice, sdk_create(h, "one", ["bob"], mutual=True))
        yield h.send(alice, set_default("one"))
        alice.take()
        yield h.send(alice, sdk_create(h, "two", ["bob"], mutual=True))
        assert error_of(alice.take()[0])[0] == "policy-violation"
        yield h.send(alice, sdk_create(h, "one", ["bob", "carol"], mutual=True))
        assert error_of(alice.take()[0])[0] == "policy-violation"
        yield h.send(bob, f"<presence type='subscribe' to='{h.jid_of('alice')}'/>")
        assert alice.take() == [] and bob.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_cache_forgets_deleted_users_and_stays_bounded(tmp_path):
    """The routing cache: dropped on user-deleted; offline users beyond cache_users
    are evicted, online users never are."""
    h = yield start(tmp_path, cache_users=1)
    try:
        alice = yield h.login("alice")
        privacy = h.server.plugins.plugins["privacy"]
        for login in ("bob", "carol"):
            yield h.user(login)
            yield privacy.is_blocked(h.jid_of(login), h.jid_of("alice"), "message")
        assert alice.session.user_id in privacy.cache
        assert h.users["carol"].id in privacy.cache and h.users["bob"].id not in privacy.cache
        h.server.events.fire("user-deleted", h.users["carol"].id)
        assert h.users["carol"].id not in privacy.cache
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_default_list_edits_show_in_the_blocklist(tmp_path):
    """XEP-0191 §5 items 2 and 4: a XEP-0016 edit of the default list that adds or
    removes jid/deny/no-child items pushes block/unblock to the resources that asked
    for the blocklist; a new default list brings its blocked JIDs."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        yield h.user("bob")
        yield h.user("carol")
        yield h.send(alice, f"<iq type='get' id='bl'><blocklist xmlns='{NS_BLOCKING}'/></iq>")
        yield h.send(alice, sdk_create(h, "cc", ["bob"], mutual=True))
        yield h.send(alice, set_default("cc"))
        alice.take()
        yield h.send(alice, sdk_create(h, "cc", ["carol"], mutual=True))
        pushes = [
            s.firstChildElement() for s in alice.take() if s.name == "iq" and s["type"] == "set"
        ]
        blocking = {
            p.name: sorted(i["jid"] for i in p.elements()) for p in pushes if p.uri == NS_BLOCKING
        }
        bob_id, carol_id = h.users["bob"].id, h.users["carol"].id
        assert blocking == {
            "block": sorted([h.jid_of("carol"), f"muc.{DOMAIN}/{carol_id}"]),
            "unblock": sorted([h.jid_of("bob"), f"muc.{DOMAIN}/{bob_id}"]),
        }
    finally:
        yield h.stop()


def test_store_on_sqlite_and_postgresql(db_url):
    """The store on both backends (``db_url``): save, replace, default (one at a
    time), delete, max_lists, a roster-based list reads the roster."""

    db = Database(db_url)
    db.migrate(plugin_migration_dirs(parse_config({"plugins": {"enabled": ["privacy"]}})))
    try:
        app = db.run_sync(accounts.create_app, "one")
        uid = db.run_sync(accounts.create_user, app.id, "a", "password1").id
        jid_item = Item(1, "deny", "jid", f"5-{app.id}@{DOMAIN}", 1 | 4)
        first = PrivacyList("first", (jid_item, Item(2**32 - 1, "allow")))
        state = db.run_sync(store.save_list, uid, first, 2, DOMAIN, True)
        assert state.default == "first" and state.lists["first"].items[1].order == 2**32 - 1
        friend = f"6-{app.id}@{DOMAIN}"
        db.run_sync(
            roster_store.save_item,
            uid,
            RosterItem(friend, subscription="both", groups=("f",)),
            True,
        )
        roster = PrivacyList("second", (Item(3, "deny", "subscription", "none"),))
        state = db.run_sync(store.save_list, uid, roster, 2, DOMAIN)
        assert state.contacts == {friend: Contact("both", frozenset({"f"}))}
        assert state.default == "first"
        assert state.denies(roster, parse_jid(f"7-{app.id}@{DOMAIN}"), "message")
        assert not state.denies(roster, parse_jid(friend + "/r"), "message")
        assert db.run_sync(store.load, uid, DOMAIN).lists["first"].items[0].kinds == 5
        try:
            db.run_sync(store.save_list, uid, PrivacyList("third"), 2, DOMAIN)
            raise AssertionError("max_lists not enforced")
        except store.TooManyListsError:
            pass
        state = db.run_sync(store.set_default, uid, "second", DOMAIN)
        assert state.default == "second"
        assert db.run_sync(store.set_default, uid, "nope", DOMAIN) is None
        state = db.run_sync(store.set_default, uid, None, DOMAIN)
        assert state.default is None
        state = db.run_sync(store.delete_list, uid, "first", DOMAIN)
        assert list(state.lists) == ["second"]
        assert db.run_sync(store.delete_list, uid, "first", DOMAIN) is None
    finally:
        db.stop()


def test_jid_matching_forms():
    """XEP-0016 §2.1 / XEP-0191 §6: full JID, bare JID, domain/resource, domain (and
    its subdomains); a domain/resource on a service domain matches any localpart
    there (the hosted services' muc.{domain}/{user_id}), not on the users' domain."""

    def item(value):
        xml = f"<item type='jid' value='{value}' action='deny' order='1'/>"
        return make_item(parse(f"<iq>{xml}</iq>").firstChildElement(), DOMAIN)

    def matches(value, other):
        plist = PrivacyList("l", (item(value),))
        return plist.denies(parse_jid(other), "message")

    assert matches("a@x.test/r", "a@x.test/r") and not matches("a@x.test/r", "a@x.test/s")
    assert matches("a@x.test", "a@x.test/any") and not matches("a@x.test", "b@x.test")
    assert matches("x.test/r", "x.test/r") and not matches("x.test/r", "x.test/s")
    assert matches("x.test", "a@x.test/r") and matches("x.test", "a@sub.x.test")
    assert not matches("x.test", "a@notx.test")
    assert matches("muc.x.test/7", "1_ab@muc.x.test/7")
    assert not matches(f"{DOMAIN}/7", f"someone@{DOMAIN}/7")


@pytest_twisted.inlineCallbacks
def test_block_sends_unavailable_and_unblock_current_presence(tmp_path):
    """XEP-0191 §3.3/§3.4 and XEP-0016 §2.11 note: blocking a subscriber sends him
    the user's unavailable presence; unblocking sends the current presence; while
    blocked, presence updates do not reach him."""
    h = yield start(tmp_path)
    try:
        for me, other in (("alice", "bob"), ("bob", "alice")):
            yield h.user(me)
            yield h.user(other)
        for me, other in (("alice", "bob"), ("bob", "alice")):
            item = RosterItem(h.jid_of(other), subscription="both")
            yield h.server.db.run(roster_store.save_item, h.users[me].id, item, True)
        bob = yield h.login("bob", available=True)
        alice = yield h.login("alice", available=True)
        [hello] = [s for s in bob.take() if s.name == "presence"]
        assert hello["from"] == alice.jid and hello.getAttribute("type") is None
        bob_jid = h.jid_of("bob")
        block = f"<iq type='set' id='b'><block xmlns='{NS_BLOCKING}'><item jid='{bob_jid}'/></block></iq>"
        yield h.send(alice, block)
        [gone] = bob.take()
        assert (gone.name, gone["from"], gone["type"]) == ("presence", alice.jid, "unavailable")
        yield h.send(alice, "<presence><show>away</show></presence>")
        assert bob.take() == []
        unblock = f"<iq type='set' id='u'><unblock xmlns='{NS_BLOCKING}'><item jid='{bob_jid}'/></unblock></iq>"
        yield h.send(alice, unblock)
        [back] = bob.take()
        assert (back.name, back["from"], back.getAttribute("type")) == ("presence", alice.jid, None)
        assert [str(c) for c in back.elements() if c.name == "show"] == ["away"]
    finally:
        yield h.stop()
