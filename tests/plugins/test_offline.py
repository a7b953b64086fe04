"""plugins/offline: XEP-0160 offline storage with XEP-0203 delay stamps, through the
real router and storage (SQLite file), on a ``task.Clock``."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
import pytest_twisted
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from plugins.destroy import SelfDestroyingMessages
from plugins.offline import OfflineMessages, store
from tests.harness import DOMAIN, Harness, parse
from xmppd import accounts
from xmppd.accounts import parse_localpart
from xmppd.config import parse_config
from xmppd.registry import plugin_migration_dirs
from xmppd.storage import Database
from xmppd.storage.tables import metadata

NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
T0 = 1_800_000_000.0


def start(tmp_path, *plugins: str, **options):
    return Harness.start(tmp_path, plugins={"enabled": ["offline", *plugins], **options})


def chat(to: str, body: str | None = "hi", extra: str = "", kind: str = "chat") -> str:
    body_xml = f"<body>{body}</body>" if body is not None else ""
    return f"<message to='{to}' type='{kind}' id='{body}'>{body_xml}{extra}</message>"


def waiting(h: Harness, login: str):
    user_id = parse_localpart(h.jid_of(login).split("@")[0])[0]
    return h.server.db.run(store.count, user_id)


def bodies(client) -> list[str]:
    return [str(m.body) for m in client.take() if m.name == "message" and m.body is not None]


def error_condition(stanza) -> str:
    assert stanza["type"] == "error", stanza.toXml()
    error = stanza.error
    return next(c.name for c in error.elements() if c.uri == NS_STANZAS)


@pytest_twisted.inlineCallbacks
def test_stored_then_delivered_in_order_with_delay(tmp_path):
    """XEP-0160 §2: stored while the recipient is offline, sent at its next available
    presence, oldest first, each with XEP-0203 <delay from='{domain}' stamp=.../>."""
    h = yield start(tmp_path)
    try:
        h.clock.advance(T0)
        alice = yield h.login("alice", available=True)
        yield h.user("bob")
        bob_jid = h.jid_of("bob")
        for text in ("one", "two", "three"):
            yield h.send(alice, chat(bob_jid, text))
            h.clock.advance(1.5)
        assert alice.take() == []  # stored: no error (§2 step 4)
        assert (yield waiting(h, "bob")) == 3
        bob = yield h.login("bob")
        yield h.send(bob, "<presence/>")
        got = [m for m in bob.take() if m.name == "message"]
        assert [str(m.body) for m in got] == ["one", "two", "three"]
        first = got[0]
        assert first["from"] == alice.jid and first["type"] == "chat"
        [delay] = list(first.elements(NS_DELAY, "delay"))
        assert delay["from"] == DOMAIN
        assert delay["stamp"] == "2027-01-15T08:00:00.000Z"
        assert (yield waiting(h, "bob")) == 0
        other = yield h.login("bob", "second")
        yield h.send(other, "<presence/>")
        assert bodies(other) == []  # delivered once
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_two_resources_online_at_once_get_each_message_once(tmp_path):
    """XEP-0160 §2 step 5, delivered once: two resources' initial presences routed
    together claim the store in one transaction each; every message reaches one."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        yield h.user("bob")
        for n in range(5):
            yield h.send(alice, chat(h.jid_of("bob"), f"m{n}"))
        first = yield h.login("bob", "first")
        second = yield h.login("bob", "second")
        h.server.router.receive(first.session, parse("<presence/>"))
        h.server.router.receive(second.session, parse("<presence/>"))
        yield h.settle()
        got = bodies(first) + bodies(second)
        assert sorted(got) == [f"m{n}" for n in range(5)]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_negative_priority_neither_receives_nor_blocks_storage(tmp_path):
    """XEP-0160 §2 steps 2 and 5, RFC 6121 §4.7.2.3: a resource of negative
    priority gets no bare-JID messages, so they are stored, and no offline
    messages; the next non-negative initial presence gets them."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        shy = yield h.login("bob", "shy")
        yield h.send(shy, "<presence><priority>-1</priority></presence>")
        shy.take()
        yield h.send(alice, chat(h.jid_of("bob"), "later"))
        assert bodies(shy) == [] and alice.take() == []
        assert (yield waiting(h, "bob")) == 1
        bob = yield h.login("bob", "main")
        yield h.send(bob, "<presence><priority>1</priority></presence>")
        assert bodies(bob) == ["later"]
        assert bodies(shy) == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_priority_raised_to_non_negative_gets_the_stored_messages(tmp_path):
    """RFC 6121 §8.5.2.1.1: a resource whose priority goes from negative to
    non-negative now receives bare-JID messages, so it gets the stored ones; a
    change that stays negative, or from 0 to 5, claims nothing."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        shy = yield h.login("bob", "shy")
        yield h.send(shy, "<presence><priority>-5</priority></presence>")
        yield h.send(alice, chat(h.jid_of("bob"), "kept"))
        yield h.send(shy, "<presence><priority>-1</priority></presence>")
        assert bodies(shy) == [] and (yield waiting(h, "bob")) == 1
        yield h.send(shy, "<presence><priority>0</priority></presence>")
        assert bodies(shy) == ["kept"] and (yield waiting(h, "bob")) == 0
        yield h.send(shy, "<presence><priority>5</priority></presence>")
        assert bodies(shy) == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_what_is_not_stored(tmp_path):
    """XEP-0160 §3, XEP-0334 §4: headline and error vanish (RFC 6121 §8.5.2.2.1),
    groupchat, a message without body or <store/>, one with <no-store/> and a
    standalone chat state bounce service-unavailable; <store/> alone is stored."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        yield h.user("bob")
        bob_jid = h.jid_of("bob")
        yield h.send(alice, chat(bob_jid, "news", kind="headline"))
        yield h.send(alice, chat(bob_jid, "oops", kind="error"))
        assert alice.take() == []
        hints = "urn:xmpp:hints"
        refused = [
            chat(bob_jid, "room", kind="groupchat"),
            chat(bob_jid, None, "<received xmlns='urn:xmpp:chat-markers:0' id='x'/>"),
            chat(bob_jid, "secret", f"<no-store xmlns='{hints}'/>"),
            chat(
                bob_jid,
                None,
                f"<composing xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='{hints}'/>",
            ),
        ]
        for stanza in refused:
            yield h.send(alice, stanza)
            [bounce] = alice.take()
            assert error_condition(bounce) == "service-unavailable", stanza
            assert bounce.error["code"] == "503"  # XEP-0086, SDK-CONTRACT §4.5
        yield h.send(alice, chat(bob_jid, None, f"<x xmlns='urn:e2e'/><store xmlns='{hints}'/>"))
        yield h.send(alice, chat(bob_jid, "plain", kind="normal"))
        assert alice.take() == []
        assert (yield waiting(h, "bob")) == 2
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_full_queue_bounces_service_unavailable(tmp_path):
    """XEP-0160 §2 step 3: beyond max_messages, service-unavailable (503)."""
    h = yield start(tmp_path, offline={"max_messages": 2})
    try:
        alice = yield h.login("alice", available=True)
        yield h.user("bob")
        for text in ("a", "b", "c"):
            yield h.send(alice, chat(h.jid_of("bob"), text))
        [bounce] = alice.take()
        assert bounce["id"] == "c" and error_condition(bounce) == "service-unavailable"
        assert (yield waiting(h, "bob")) == 2
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_storage_survives_a_restart(tmp_path):
    """Stored in the database: a server restarted on the same storage delivers it."""
    h = yield start(tmp_path)
    alice = yield h.login("alice", available=True)
    yield h.user("bob")
    yield h.send(alice, chat(h.jid_of("bob"), "before restart"))
    yield h.stop()
    again = yield start(tmp_path)
    try:
        again.app_id, again.users = h.app_id, h.users
        bob = yield again.login("bob")
        yield again.send(bob, "<presence/>")
        assert bodies(bob) == ["before restart"]
    finally:
        yield again.stop()


@pytest_twisted.inlineCallbacks
def test_deleted_user_takes_its_messages(tmp_path):
    """docs/plugins.md "Storage": rows go with their account (ON DELETE CASCADE)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.user("bob")
        yield h.send(alice, chat(h.jid_of("bob"), "gone"))
        assert (yield h.server.db.run(store.count, bob.id)) == 1
        yield h.accounts.delete_user(bob.id)
        assert (yield h.server.db.run(store.count, bob.id)) == 0
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_server_generated_messages_are_stored_too(tmp_path):
    """ctx.router.deliver (a plugin, the REST API) reaches message/offline as well."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        yield h.user("bob")
        stanza = parse(chat(h.jid_of("bob"), "from a plugin"))
        stanza["from"] = alice.jid
        yield h.server.router.deliver(stanza)
        yield h.settle()
        bob = yield h.login("bob")
        yield h.send(bob, "<presence/>")
        assert bodies(bob) == ["from a plugin"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_self_destroying_copy_expires(tmp_path):
    """plugins/destroy: an offline copy of <destroy after='N'/> is deleted N seconds
    after it was stored and never delivered later; other messages stay."""
    h = yield start(tmp_path)
    try:
        h.clock.advance(T0)
        alice = yield h.login("alice", available=True)
        yield h.user("bob")
        destroy = "<destroy xmlns='urn:xmpp:message-destroy-after:0' after='5'/>"
        yield h.send(alice, chat(h.jid_of("bob"), "burn", destroy))
        yield h.send(alice, chat(h.jid_of("bob"), "keep"))
        assert (yield waiting(h, "bob")) == 2
        h.clock.advance(4)
        yield h.settle()
        assert (yield waiting(h, "bob")) == 2
        h.clock.advance(1)  # the deadline: the timer purges it
        yield h.settle()
        assert (yield waiting(h, "bob")) == 1
        bob = yield h.login("bob")
        yield h.send(bob, "<presence/>")
        assert bodies(bob) == ["keep"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_expired_copy_is_not_delivered_before_the_purge(tmp_path):
    """The deadline holds at delivery too, and at start-up after a restart."""
    h = yield start(tmp_path)
    h.clock.advance(T0)
    alice = yield h.login("alice", available=True)
    yield h.user("bob")
    destroy = "<destroy xmlns='urn:xmpp:message-destroy-after:0' after='5'/>"
    yield h.send(alice, chat(h.jid_of("bob"), "burn", destroy))
    yield h.stop()  # the timer goes with the server
    again = yield start(tmp_path)
    try:
        again.app_id, again.users = h.app_id, h.users
        again.clock.advance(T0 + 10)
        bob = yield again.login("bob")
        yield again.send(bob, "<presence/>")
        assert bodies(bob) == []
        assert (yield waiting(again, "bob")) == 0
    finally:
        yield again.stop()


@pytest_twisted.inlineCallbacks
def test_messages_whose_session_ended_are_kept(tmp_path):
    """At most once, never lost to a session that ended before the send: claimed
    messages go back to the store."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        yield h.user("bob")
        yield h.send(alice, chat(h.jid_of("bob"), "kept"))
        bob = yield h.login("bob")
        plugin = h.server.plugins.plugins["offline"]
        yield plugin.flush(bob.session)  # bob is not available: nothing may be sent
        yield h.settle()
        assert bodies(bob) == []
        assert (yield waiting(h, "bob")) == 1
        yield h.send(bob, "<presence/>")
        assert bodies(bob) == ["kept"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_disco_advertises_msgoffline(tmp_path):
    """XEP-0160 §4: the server's disco#info lists msgoffline."""
    h = yield start(tmp_path, "disco")
    try:
        alice = yield h.login("alice")
        yield h.send(
            alice,
            f"<iq type='get' id='d1' to='{DOMAIN}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        [reply] = alice.take()
        features = [f["var"] for f in reply.firstChildElement().elements() if f.name == "feature"]
        assert "msgoffline" in features
    finally:
        yield h.stop()


@pytest.mark.parametrize("plugin", [OfflineMessages, SelfDestroyingMessages])
def test_options_are_in_the_example_and_the_reference(plugin):
    """docs/configuration.md and etc/xmppd.toml (commented) list every option with
    its default and its doc, as the core's options are (tests/core/test_config.py)."""
    root = Path(__file__).resolve().parents[2]
    example = (root / "etc" / "xmppd.toml").read_text()
    reference = (root / "docs" / "configuration.md").read_text()
    section = example.split(f"# [plugins.{plugin.name}]\n", 1)[1].split("\n\n", 1)[0]
    for field in dataclasses.fields(plugin.Config):
        doc, default = field.metadata["doc"], field.default
        assert f"# {field.name} = {default!r}" in section
        assert " ".join(line.lstrip("# ") for line in section.splitlines()).count(doc) == 1
        row = f"| `plugins.{plugin.name}.{field.name}` | integer, ≥ {field.metadata['min']} |"
        assert f"{row} `{default!r}` | {doc} |" in reference


# -- the store on SQLite and PostgreSQL (``db_url``) ---------------------------------


@pytest.fixture
def offline_db(db_url: str):
    """A database migrated for plugins/offline, and the ids of two users."""
    database = Database(db_url)
    database.migrate(plugin_migration_dirs(parse_config({"plugins": {"enabled": ["offline"]}})))

    def make(conn):
        app = accounts.create_app(conn, "one")
        return [accounts.create_user(conn, app.id, n, "password1").id for n in ("a", "b")]

    try:
        yield database, database.run_sync(make)
    finally:
        database.stop()


def test_store_claim_put_back_and_purge(offline_db):
    """The store's functions on each backend: the limit counts unexpired rows, a
    claim takes everything in order and drops the expired, put_back restores ids."""
    db, (a, b) = offline_db
    assert db.run_sync(store.store, a, "<m1/>", T0, None, 2)
    assert db.run_sync(store.store, a, "<m2/>", T0 + 1, T0 + 5, 2)
    assert not db.run_sync(store.store, a, "<m3/>", T0 + 2, None, 2)  # full
    assert db.run_sync(store.store, b, "<other/>", T0, None, 2)
    assert db.run_sync(store.store, a, "<m3/>", T0 + 6, None, 2)  # m2 has expired
    claimed = db.run_sync(store.claim, a, T0 + 6)
    assert [m.stanza for m in claimed] == ["<m1/>", "<m3/>"]
    assert db.run_sync(store.count, a) == 0 and db.run_sync(store.count, b) == 1
    db.run_sync(store.put_back, a, claimed)
    assert [m.id for m in db.run_sync(store.claim, a, T0 + 6)] == [m.id for m in claimed]
    assert db.run_sync(store.store, b, "<burn/>", T0, T0 + 3, 9)
    assert db.run_sync(store.purge, T0 + 1) == T0 + 3  # the next deadline
    assert db.run_sync(store.purge, T0 + 3) is None
    assert db.run_sync(store.count, b) == 1


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_two_claims_at_once_share_nothing(offline_db, db_url):
    """Delivered once: a claim that waits on another's open transaction finds the
    rows gone (PostgreSQL, several threads; SQLite has one writer anyway)."""
    db, (a, _) = offline_db
    for n in range(3):
        db.run_sync(store.store, a, f"<m{n}/>", T0, None, 10)
    first_claimed = threading.Event()
    results: dict[str, list] = {}

    def first() -> None:
        with db.engine.begin() as conn:
            results["first"] = store.claim(conn, a, T0)
            first_claimed.set()
            time.sleep(0.3)  # the second claim waits on these rows meanwhile

    def second() -> None:
        first_claimed.wait(10)
        with db.engine.begin() as conn:
            results["second"] = store.claim(conn, a, T0)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [m.stanza for m in results["first"]] == ["<m0/>", "<m1/>", "<m2/>"]
    assert results["second"] == []


def test_migration_matches_tables(offline_db):
    """docs/storage.md: offline_0001 creates exactly the table the plugin declares."""
    db, _ = offline_db
    assert "offline_0001" in db.current_revisions()
    mine = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(mine)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), mine)
    assert [d for d in diff if "offline_" in repr(d)] == []
