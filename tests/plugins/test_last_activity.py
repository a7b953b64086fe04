"""plugins/last_activity: XEP-0012 through the real router (tests/harness.py) and
ConnectyCube's status streaming (SDK-CONTRACT §4.8), with the SDK's exact stanzas."""

from __future__ import annotations

import pytest_twisted
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, select

from plugins.last_activity import read_logout, write_logout
from plugins.last_activity.tables import last_activity_logouts
from tests.harness import DOMAIN, Harness
from xmppd import accounts
from xmppd.config import parse_config
from xmppd.registry import plugin_migration_dirs
from xmppd.storage import Database
from xmppd.storage.tables import metadata

NS = "jabber:iq:last"
NS_STATUS = "https://connectycube.com/protocol/status_streaming"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def start(tmp_path, **options):
    return Harness.start(
        tmp_path,
        plugins={"enabled": ["privacy", "last_activity"], "last_activity": options},
    )


def ask(to, id_="u1:lastActivity"):
    """getLastUserActivity(): an IQ get to the user's bare JID."""
    return f"<iq type='get' to='{to}' id='{id_}'><query xmlns='{NS}'/></iq>"


def watch(jid, enable="true", id_="s1:statusStreaming"):
    """subscribeToUserLastActivityStatus(): no 'to'."""
    return (
        f"<iq type='set' id='{id_}'><subscribe xmlns='{NS_STATUS}' user_jid='{jid}'"
        f" enable='{enable}'/></iq>"
    )


def reply(client, id_):
    [found] = [s for s in client.out if s.name == "iq" and s.getAttribute("id") == id_]
    client.out.remove(found)
    return found


def seconds(iq):
    assert iq["type"] == "result", iq.toXml()
    return int(iq.firstChildElement()["seconds"])


def condition(iq):
    assert iq["type"] == "error", iq.toXml()
    error = next(c for c in iq.elements() if c.name == "error")
    return next(c.name for c in error.elements() if c.uri == STANZAS)


@pytest_twisted.inlineCallbacks
def test_migration_matches_tables(tmp_path):
    """docs/storage.md: last_activity_0001 creates exactly the declared table."""
    h = yield start(tmp_path)
    try:
        assert "last_activity_0001" in h.server.db.current_revisions()
        mine = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.sorted_tables:
            table.to_metadata(mine)
        with h.server.db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), mine)
        assert [d for d in diff if "last_activity_" in repr(d)] == []
        assert last_activity_logouts.name in mine.tables
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_uptime_online_zero_and_seconds_since_logout(tmp_path):
    """XEP-0012 §5 uptime; §3: 0 while the user has an available resource, else the
    seconds since the last one went, with its unavailable <status/>; no subscription
    needed (SDK-CONTRACT §4.4); the answer comes from the bare JID the SDK reads."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        h.clock.advance(90)
        yield h.send(bob, f"<iq type='get' to='{DOMAIN}' id='up'><query xmlns='{NS}'/></iq>")
        assert seconds(reply(bob, "up")) == 90
        yield h.send(bob, ask(h.jid_of("alice")))
        answer = reply(bob, "u1:lastActivity")
        assert (seconds(answer), answer["from"]) == (0, h.jid_of("alice"))
        yield h.send(alice, "<presence type='unavailable'><status>Heading Home</status></presence>")
        h.clock.advance(903)
        yield h.send(bob, ask(h.jid_of("alice"), "u2"))
        answer = reply(bob, "u2")
        assert (seconds(answer), str(answer.firstChildElement())) == (903, "Heading Home")
        # own account, available again: 0
        yield h.send(alice, "<presence/>")
        yield h.send(alice, f"<iq type='get' id='me'><query xmlns='{NS}'/></iq>")
        assert seconds(reply(alice, "me")) == 0
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_logout_survives_a_restart(tmp_path):
    """The last logout is stored when the last resource goes (also an unclean stream
    end, SDK-CONTRACT §4.10) and read back by a new server on the same database."""
    h = yield start(tmp_path)
    alice = yield h.login("alice", available=True)
    alice_jid = h.jid_of("alice")
    h.clock.advance(10)
    yield h.disconnect(alice)
    logout_at = int(h.clock.seconds())
    rows = yield h.server.db.run(
        lambda c: c.execute(select(last_activity_logouts.c.logout_at)).scalars().all()
    )
    assert rows == [logout_at]
    # A session that never sent presence logs out too; shutdown records who is online.
    bob = yield h.login("bob")
    h.clock.advance(5)
    yield h.disconnect(bob)
    yield h.login("carol", available=True)
    bob_jid, carol_jid = h.jid_of("bob"), h.jid_of("carol")
    h.clock.advance(5)
    yield h.stop()
    stop_at = int(h.clock.seconds())
    assert len(h.users) == 3
    h2 = yield start(tmp_path)
    try:
        h2.clock.advance(logout_at + 42)
        bob = yield h2.login("bob")
        yield h2.send(bob, ask(alice_jid))
        assert seconds(reply(bob, "u1:lastActivity")) == 42
        yield h2.send(bob, ask(carol_jid, "carol"))
        assert seconds(reply(bob, "carol")) == logout_at + 42 - stop_at
        yield h2.send(bob, ask(bob_jid, "bob"))
        assert seconds(reply(bob, "bob")) == 42 - 5  # bound, not available: still out
        yield h2.send(bob, ask(f"999999-{h2.app_id}@{DOMAIN}", "nobody"))
        assert condition(reply(bob, "nobody")) == "service-unavailable"
    finally:
        yield h2.stop()


@pytest_twisted.inlineCallbacks
def test_idle_time_of_a_resource(tmp_path):
    """XEP-0012 §4: a full JID's idle time, the seconds since it last sent a message
    or its own presence (pings and IQs do not count)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        h.clock.advance(30)
        yield h.send(alice, f"<message to='{bob.jid}' type='chat'><body>x</body></message>")
        h.clock.advance(20)
        yield h.send(
            alice, f"<iq type='get' to='{DOMAIN}' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        h.clock.advance(5)
        yield h.send(bob, ask(alice.jid, "idle"))
        answer = reply(bob, "idle")
        assert (seconds(answer), answer["from"]) == (25, alice.jid)
        assert [s for s in alice.out if s.name == "iq" and s["type"] == "get"] == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_refusals(tmp_path):
    """XEP-0012 §8 as restricted by XEP-0016: a user whose list refuses presence to
    the requester is 'forbidden'; a list refusing IQs answers first with
    service-unavailable (XEP-0016 §2.14); require_subscription needs a subscription."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        carol = yield h.login("carol", available=True)
        lst = (
            "<iq type='set' id='e'><query xmlns='jabber:iq:privacy'><list name='l'>"
            f"<item type='jid' value='{h.jid_of('bob')}' action='deny' order='1'><presence-out/></item>"
            f"<item type='jid' value='{h.jid_of('carol')}' action='deny' order='2'>"
            "<message/><presence-in/><presence-out/><iq/></item>"
            "</list></query></iq>"
        )
        yield h.send(alice, lst)
        yield h.send(
            alice,
            "<iq type='set' id='d'><query xmlns='jabber:iq:privacy'><default name='l'/></query></iq>",
        )
        yield h.send(bob, ask(h.jid_of("alice")))
        assert condition(reply(bob, "u1:lastActivity")) == "forbidden"
        yield h.send(bob, ask(alice.jid, "full"))
        assert condition(reply(bob, "full")) == "forbidden"
        yield h.send(carol, ask(h.jid_of("alice")))
        assert condition(reply(carol, "u1:lastActivity")) == "service-unavailable"
        yield h.send(bob, watch(h.jid_of("alice")))
        assert condition(reply(bob, "s1:statusStreaming")) == "forbidden"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_require_subscription(tmp_path):
    """XEP-0012 §3 with require_subscription: only subscribed contacts may ask."""
    h = yield start(tmp_path, require_subscription=True)
    try:
        yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        yield h.send(bob, ask(h.jid_of("alice")))
        assert condition(reply(bob, "u1:lastActivity")) == "forbidden"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_status_streaming_pushes_online_and_offline(tmp_path):
    """SDK-CONTRACT §4.8: after subscribe, the session gets an IQ result from the
    watched bare JID with seconds 0 when the user comes online and >0 when the last
    resource goes; enable='false' stops it; other apps' users are forbidden;
    max_watched bounds one session; the watch ends with the session."""
    h = yield start(tmp_path, max_watched=1)
    try:
        bob = yield h.login("bob", available=True)
        yield h.user("alice")
        alice_jid = h.jid_of("alice")
        yield h.send(bob, watch(alice_jid))
        assert reply(bob, "s1:statusStreaming")["type"] == "result"
        bob.take()
        alice = yield h.login("alice", available=True)
        [push] = bob.take()
        assert (push["type"], push["from"], push["to"], seconds(push)) == (
            "result",
            alice_jid,
            bob.jid,
            0,
        )
        second = yield h.login("alice", "two", available=True)
        yield h.disconnect(second)
        assert bob.take() == []  # still online
        yield h.disconnect(alice)
        [push] = bob.take()
        assert seconds(push) > 0 and push["from"] == alice_jid
        yield h.user("carol")
        yield h.send(bob, watch(h.jid_of("carol"), id_="s2"))
        assert condition(reply(bob, "s2")) == "policy-violation"
        yield h.send(bob, watch(alice_jid, "false", "s3"))
        assert reply(bob, "s3")["type"] == "result"
        yield h.login("alice", available=True)
        assert bob.take() == []
        yield h.send(bob, watch(f"5-{h.app_id + 1}@{DOMAIN}", id_="s4"))
        assert condition(reply(bob, "s4")) == "forbidden"
        yield h.send(bob, watch("not a jid@@", id_="s5"))
        assert condition(reply(bob, "s5")) == "jid-malformed"
        plugin = h.server.plugins.plugins["last_activity"]
        yield h.send(bob, watch(h.jid_of("carol"), id_="s6"))
        assert h.jid_of("carol") in plugin.watchers
        yield h.disconnect(bob)
        assert plugin.watchers == {}
    finally:
        yield h.stop()


def test_logout_store_on_sqlite_and_postgresql(db_url):
    """write_logout upserts one row per user; read_logout reads it back (both backends)."""

    enabled = {"plugins": {"enabled": ["privacy", "last_activity"]}}
    db = Database(db_url)
    db.migrate(plugin_migration_dirs(parse_config(enabled)))
    try:
        app = db.run_sync(accounts.create_app, "one")
        uid = db.run_sync(accounts.create_user, app.id, "a", "password1").id
        assert db.run_sync(read_logout, uid) is None
        db.run_sync(write_logout, uid, 1_800_000_000, "bye")
        db.run_sync(write_logout, uid, 1_800_000_100, None)
        assert db.run_sync(read_logout, uid) == (1_800_000_100, None)
    finally:
        db.stop()
