"""plugins/muc: the XEP-0045 service and its standard rooms, through the real router
(tests/harness.py). Dialog rooms are tested with plugins/muc/dialog_rooms.py."""

from __future__ import annotations

import pytest_twisted
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from plugins.muc import store
from plugins.muc.tables import muc_affiliations, muc_rooms
from tests.harness import DOMAIN, Harness
from xmppd.config import parse_config
from xmppd.registry import plugin_migration_dirs
from xmppd.storage import Database
from xmppd.storage.tables import metadata

MUC = f"muc.{DOMAIN}"
ROOM = f"lounge@{MUC}"
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_OID = "urn:xmpp:occupant-id:0"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
MALLORY = f"mallory@{DOMAIN}"
OWNER = f"olivia@{DOMAIN}"


def start(tmp_path, **options):
    return Harness.start(tmp_path, plugins={"enabled": ["disco", "muc"], "muc": options})


def condition(stanza):
    assert stanza["type"] == "error", stanza.toXml()
    error = next(c for c in stanza.elements() if c.name == "error")
    return next(c.name for c in error.elements() if c.uri == STANZAS)


def codes(presence):
    x = next(presence.elements(NS_USER, "x"))
    return {s["code"] for s in x.elements(NS_USER, "status")}


def item(presence):
    return next(next(presence.elements(NS_USER, "x")).elements(NS_USER, "item"))


def occupant_id(stanza):
    return next(stanza.elements(NS_OID, "occupant-id"))["id"]


def of_kind(client, name):
    return [s for s in client.take() if s.name == name]


def join(h, client, nick, room=ROOM, extra=""):
    return h.send(
        client, f"<presence to='{room}/{nick}'><x xmlns='{NS_MUC}'>{extra}</x></presence>"
    )


def iq(h, client, kind, to, payload, id_="q1"):
    return h.send(client, f"<iq type='{kind}' to='{to}' id='{id_}'>{payload}</iq>")


def reply(client, id_="q1"):
    [found] = [s for s in client.out if s.name == "iq" and s.getAttribute("id") == id_]
    client.out.remove(found)
    return found


INSTANT = f"<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"


def configure(h, owner, fields, room=ROOM):
    body = "".join(
        f"<field var='muc#roomconfig_{var}'><value>{value}</value></field>"
        for var, value in fields.items()
    )
    return iq(
        h,
        owner,
        "set",
        room,
        f"<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='submit'>{body}</x></query>",
        "cfg",
    )


@pytest_twisted.inlineCallbacks
def create(h, owner, nick="owner", room=ROOM, fields=None):
    """§10.1.2: create and unlock (instant room, or the given configuration)."""
    yield join(h, owner, nick, room)
    yield configure(h, owner, fields or {}, room)
    assert reply(owner, "cfg")["type"] == "result"
    owner.take()


@pytest_twisted.inlineCallbacks
def test_migration_matches_tables(tmp_path):
    """docs/storage.md: muc_0001 creates exactly the declared tables."""
    h = yield start(tmp_path)
    try:
        assert "muc_0001" in h.server.db.current_revisions()
        mine = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.sorted_tables:
            table.to_metadata(mine)
        with h.server.db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), mine)
        assert [d for d in diff if "muc_" in repr(d)] == []
        assert {muc_rooms.name, muc_affiliations.name} <= set(mine.tables)
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_service_in_server_items_with_identity_and_features(tmp_path):
    """XEP-0045 §6.1, §6.2: the server lists the service; it is conference/text with
    the MUC feature (occupant-id is a room feature, XEP-0421 §4)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        yield iq(h, alice, "get", DOMAIN, f"<query xmlns='{NS_ITEMS}'/>")
        items = [i["jid"] for i in reply(alice).firstChildElement().elements(NS_ITEMS, "item")]
        assert MUC in items
        yield iq(h, alice, "get", MUC, f"<query xmlns='{NS_INFO}'/>")
        query = reply(alice).firstChildElement()
        [identity] = query.elements(NS_INFO, "identity")
        assert (identity["category"], identity["type"]) == ("conference", "text")
        features = {f["var"] for f in query.elements(NS_INFO, "feature")}
        assert NS_MUC in features and NS_OID not in features  # XEP-0421 §4: per room
        yield iq(h, alice, "get", MUC, "<query xmlns='urn:xmpp:ping'/>")
        assert condition(reply(alice)) == "service-unavailable"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_instant_room_created_locked_then_listed(tmp_path):
    """§10.1.2: the creator gets 201 and 110 as owner/moderator; the room is locked
    (item-not-found for others, not listed) until the owner accepts the instant room."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        yield join(h, alice, "alice")
        [presence] = of_kind(alice, "presence")
        assert codes(presence) == {"110", "201"}
        assert (item(presence)["affiliation"], item(presence)["role"]) == ("owner", "moderator")
        assert presence["from"] == f"{ROOM}/alice"
        assert occupant_id(presence)
        yield join(h, bob, "bob")
        assert condition(of_kind(bob, "presence")[0]) == "item-not-found"
        yield iq(h, bob, "get", MUC, f"<query xmlns='{NS_ITEMS}'/>")
        assert list(reply(bob).firstChildElement().elements()) == []
        yield iq(h, alice, "set", ROOM, INSTANT)
        assert reply(alice)["type"] == "result"
        yield iq(h, bob, "get", MUC, f"<query xmlns='{NS_ITEMS}'/>")
        [listed] = reply(bob).firstChildElement().elements()
        assert listed["jid"] == ROOM
        yield join(h, bob, "bob")
        got = of_kind(bob, "presence")
        assert [p["from"] for p in got] == [f"{ROOM}/alice", f"{ROOM}/bob"]
        assert codes(got[1]) == {"110"}
        assert (item(got[1])["affiliation"], item(got[1])["role"]) == ("none", "participant")
        assert "jid" not in item(got[0]).attributes  # §7.2.3: semi-anonymous
        [seen] = of_kind(alice, "presence")
        assert seen["from"] == f"{ROOM}/bob" and item(seen)["jid"] == bob.jid  # moderator
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_nick_conflict_leave_and_nick_change(tmp_path):
    """§7.2.9: a nick in use is 409 conflict; §7.6: a nick change is unavailable with
    303 and the new nick, then available; §7.14: leaving is unavailable with 110 to
    the leaver; a session that ends leaves too."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        yield create(h, alice, "alice")
        yield join(h, bob, "alice")
        [refused] = of_kind(bob, "presence")
        assert condition(refused) == "conflict" and refused["from"] == f"{ROOM}/alice"
        yield join(h, bob, "bob")
        bob.take(), alice.take()
        yield h.send(bob, f"<presence to='{ROOM}/robert'/>")
        gone, back = of_kind(alice, "presence")
        assert gone["type"] == "unavailable" and codes(gone) == {"303"}
        assert item(gone)["nick"] == "robert" and back["from"] == f"{ROOM}/robert"
        mine = of_kind(bob, "presence")
        assert codes(mine[0]) == {"303", "110"} and codes(mine[1]) == {"110"}
        assert occupant_id(gone) == occupant_id(back)  # XEP-0421: stable across nicks
        yield h.send(bob, f"<presence to='{ROOM}/robert'><show>away</show></presence>")
        [status] = of_kind(alice, "presence")
        assert str(next(status.elements("jabber:client", "show"))) == "away"  # §7.7
        bob.take()
        yield h.send(bob, f"<presence type='unavailable' to='{ROOM}/robert'/>")
        [left] = of_kind(alice, "presence")
        assert left["type"] == "unavailable" and item(left)["role"] == "none"
        [own] = of_kind(bob, "presence")
        assert codes(own) == {"110"}
        yield join(h, bob, "bob")
        alice.take()
        yield h.disconnect(bob)
        [left] = of_kind(alice, "presence")
        assert left["from"] == f"{ROOM}/bob" and left["type"] == "unavailable"
        assert bob.session.jid not in h.server.plugins.plugins["muc"].joined
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_groupchat_history_and_subject(tmp_path):
    """§7.4: a groupchat message goes to every occupant from room/nick with an
    occupant-id (a client's own is dropped); non-occupants get not-acceptable;
    §7.2.15: history replays with delay stamps, honouring maxstanzas/maxchars/seconds;
    §8.1, §7.2.16: the subject is set by a moderator and sent on join."""
    h = yield start(tmp_path, history_size=3)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        carol = yield h.login("carol")
        yield create(h, alice, "alice")
        yield join(h, bob, "bob")
        bob.take()
        yield h.send(
            carol, f"<message type='groupchat' to='{ROOM}'><body>intruder</body></message>"
        )
        assert condition(carol.take()[0]) == "not-acceptable"
        for n in range(4):
            h.clock.advance(10)
            yield h.send(
                alice,
                f"<message type='groupchat' to='{ROOM}' id='m{n}'><body>hello {n}</body>"
                f"<occupant-id xmlns='{NS_OID}' id='forged'/></message>",
            )
        got = of_kind(bob, "message")
        assert [str(next(m.elements("jabber:client", "body"))) for m in got] == [
            f"hello {n}" for n in range(4)
        ]
        assert got[0]["from"] == f"{ROOM}/alice" and got[0]["to"] == bob.jid
        assert [o["id"] for o in got[0].elements(NS_OID, "occupant-id")] != ["forged"]
        assert len(of_kind(alice, "message")) == 4  # reflected to the sender
        yield h.send(
            alice, f"<message type='groupchat' to='{ROOM}'><subject>Tea</subject></message>"
        )
        yield h.send(
            bob, f"<message type='groupchat' to='{ROOM}'><subject>Mine</subject></message>"
        )
        assert condition(of_kind(bob, "message")[-1]) == "forbidden"
        yield join(h, carol, "carol")
        got = of_kind(carol, "message")
        assert [str(next(m.elements("jabber:client", "body"))) for m in got[:-1]] == [
            "hello 1",
            "hello 2",
            "hello 3",
        ]  # history_size 3
        assert next(got[0].elements("urn:xmpp:delay", "delay"))["from"] == ROOM
        assert str(next(got[-1].elements("jabber:client", "subject"))) == "Tea"
        assert got[-1]["from"] == f"{ROOM}/alice" and occupant_id(got[-1]) == occupant_id(got[0])
        yield h.send(carol, f"<presence type='unavailable' to='{ROOM}/carol'/>")
        yield join(h, carol, "carol", extra="<history maxstanzas='1'/>")
        got = of_kind(carol, "message")
        assert [str(next(m.elements("jabber:client", "body"))) for m in got[:-1]] == ["hello 3"]
        yield h.send(carol, f"<presence type='unavailable' to='{ROOM}/carol'/>")
        yield join(h, carol, "carol", extra="<history maxchars='0'/>")
        assert len(of_kind(carol, "message")) == 1  # the subject only
        yield h.send(carol, f"<presence type='unavailable' to='{ROOM}/carol'/>")
        h.clock.advance(5)
        yield join(h, carol, "carol", extra="<history seconds='12'/>")
        assert len(of_kind(carol, "message")) == 2  # hello 3 (5 s old) and the subject
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_private_messages_and_invitations(tmp_path):
    """§7.5: a private message goes from room/nick to the occupant; to an absent nick
    item-not-found; groupchat type bad-request. §7.8.2: a mediated invitation reaches
    the invitee from the room with the inviter's JID, and a decline goes back."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob")
        carol = yield h.login("carol", available=True)
        yield create(h, alice, "alice")
        yield join(h, bob, "bob")
        alice.take(), bob.take()
        yield h.send(alice, f"<message type='chat' to='{ROOM}/bob'><body>psst</body></message>")
        [pm] = of_kind(bob, "message")
        assert pm["from"] == f"{ROOM}/alice" and pm["to"] == bob.jid
        assert list(pm.elements(NS_USER, "x")) and occupant_id(pm)
        yield h.send(alice, f"<message type='chat' to='{ROOM}/nobody'><body>x</body></message>")
        assert condition(of_kind(alice, "message")[0]) == "item-not-found"
        yield h.send(alice, f"<message type='groupchat' to='{ROOM}/bob'><body>x</body></message>")
        assert condition(of_kind(alice, "message")[0]) == "bad-request"
        yield h.send(
            alice,
            f"<message to='{ROOM}'><x xmlns='{NS_USER}'><invite to='{carol.bare}'>"
            "<reason>tea?</reason></invite></x></message>",
        )
        [invitation] = of_kind(carol, "message")
        invite = next(next(invitation.elements(NS_USER, "x")).elements(NS_USER, "invite"))
        assert invitation["from"] == ROOM and invite["from"] == alice.jid
        yield h.send(
            carol,
            f"<message to='{ROOM}'><x xmlns='{NS_USER}'><decline to='{alice.bare}'/></x></message>",
        )
        [declined] = of_kind(alice, "message")
        decline = next(next(declined.elements(NS_USER, "x")).elements(NS_USER, "decline"))
        assert decline["from"] == carol.bare
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_kick_voice_and_ban(tmp_path):
    """§8.2: a moderator kicks (307, actor, reason); a participant may not (forbidden),
    nobody kicks an admin or owner (not-allowed). §8.3/§8.4: voice in a moderated
    room. §9.1: a ban removes with 301; the outcast cannot come back (§7.2.8)."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        carol = yield h.login("carol")
        yield create(h, alice, "alice", fields={"moderatedroom": "1"})
        yield join(h, bob, "bob")
        yield join(h, carol, "carol")
        [own] = [p for p in of_kind(carol, "presence") if p["from"] == f"{ROOM}/carol"]
        assert item(own)["role"] == "visitor"  # §5.1.2: moderated, no affiliation
        yield h.send(carol, f"<message type='groupchat' to='{ROOM}'><body>hi</body></message>")
        assert condition(of_kind(carol, "message")[-1]) == "forbidden"
        alice.take(), bob.take()
        voice = f"<query xmlns='{NS_ADMIN}'><item nick='carol' role='participant'/></query>"
        yield iq(h, bob, "set", ROOM, voice)
        assert condition(reply(bob)) == "forbidden"  # bob is no moderator
        yield iq(h, alice, "set", ROOM, voice)
        assert reply(alice)["type"] == "result"
        [granted] = of_kind(bob, "presence")
        carol.take()
        assert item(granted)["role"] == "participant"
        kick_alice = f"<query xmlns='{NS_ADMIN}'><item nick='alice' role='none'/></query>"
        yield iq(h, alice, "set", ROOM, kick_alice)
        assert condition(reply(alice)) == "not-allowed"
        kick = (
            f"<query xmlns='{NS_ADMIN}'><item nick='bob' role='none'>"
            "<reason>rude</reason></item></query>"
        )
        yield iq(h, alice, "set", ROOM, kick)
        assert reply(alice)["type"] == "result"
        [kicked] = of_kind(bob, "presence")
        assert kicked["type"] == "unavailable" and codes(kicked) == {"307", "110"}
        assert next(item(kicked).elements(NS_USER, "actor"))["nick"] == "alice"
        [seen] = of_kind(carol, "presence")
        assert codes(seen) == {"307"}
        ban = f"<query xmlns='{NS_ADMIN}'><item jid='{carol.bare}' affiliation='outcast'/></query>"
        yield iq(h, alice, "set", ROOM, ban)
        assert reply(alice)["type"] == "result"
        [banned] = of_kind(carol, "presence")
        assert codes(banned) == {"301", "110"} and item(banned)["affiliation"] == "outcast"
        yield join(h, carol, "carol")
        assert condition(of_kind(carol, "presence")[0]) == "forbidden"  # §7.2.8
        yield iq(
            h,
            alice,
            "get",
            ROOM,
            f"<query xmlns='{NS_ADMIN}'><item affiliation='outcast'/></query>",
        )
        [listed] = reply(alice).firstChildElement().elements()
        assert listed["jid"] == carol.bare
        yield iq(
            h, bob, "get", ROOM, f"<query xmlns='{NS_ADMIN}'><item affiliation='outcast'/></query>"
        )
        assert condition(reply(bob)) == "forbidden"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_members_only_password_and_affiliation_lists(tmp_path):
    """§7.2.7: registration-required for a non-member of a members-only room;
    §9.3/§9.5 members granted and listed; §10.3-§10.8: only owners grant admin, the
    last owner cannot go (conflict); §7.2.6: not-authorized for a wrong password."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        carol = yield h.login("carol")
        yield create(h, alice, "alice", fields={"membersonly": "1"})
        yield join(h, bob, "bob")
        assert condition(of_kind(bob, "presence")[0]) == "registration-required"
        member = f"<query xmlns='{NS_ADMIN}'><item jid='{bob.bare}' affiliation='member'/></query>"
        yield iq(h, alice, "set", ROOM, member)
        assert reply(alice)["type"] == "result"
        yield join(h, bob, "bob")
        assert codes(of_kind(bob, "presence")[-1]) == {"110"}
        yield iq(
            h, alice, "get", ROOM, f"<query xmlns='{NS_ADMIN}'><item affiliation='member'/></query>"
        )
        [listed] = reply(alice).firstChildElement().elements()
        assert (listed["jid"], listed["nick"]) == (bob.bare, "bob")
        admin = f"<query xmlns='{NS_ADMIN}'><item jid='{bob.bare}' affiliation='admin'/></query>"
        yield iq(h, alice, "set", ROOM, admin)
        assert reply(alice)["type"] == "result"
        bob.take()
        owner = f"<query xmlns='{NS_ADMIN}'><item jid='{carol.bare}' affiliation='owner'/></query>"
        yield iq(h, bob, "set", ROOM, owner)
        assert condition(reply(bob)) == "forbidden"  # §10.3: owners only
        drop_alice = (
            f"<query xmlns='{NS_ADMIN}'><item jid='{alice.bare}' affiliation='none'/></query>"
        )
        yield iq(h, alice, "set", ROOM, drop_alice)
        assert condition(reply(alice)) == "conflict"  # §10.4: the last owner
        yield iq(
            h,
            alice,
            "set",
            ROOM,
            f"<query xmlns='{NS_ADMIN}'><item jid='{bob.bare}' affiliation='none'/></query>",
        )
        assert reply(alice)["type"] == "result"
        [removed] = [p for p in of_kind(bob, "presence") if p.getAttribute("type")]
        assert codes(removed) == {"321", "110"}  # §9.4: no longer a member
        yield configure(
            h, alice, {"membersonly": "0", "passwordprotectedroom": "1", "roomsecret": "s3"}
        )
        assert reply(alice, "cfg")["type"] == "result"
        yield join(h, carol, "carol", extra="<password>nope</password>")
        assert condition(of_kind(carol, "presence")[0]) == "not-authorized"
        yield join(h, carol, "carol", extra="<password>s3</password>")
        assert codes(of_kind(carol, "presence")[-1]) == {"110"}
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_room_info_configuration_form_and_destroy(tmp_path):
    """§6.4: the room's disco#info says what it is, with the roominfo form; §10.2: the
    owner gets and submits muc#roomconfig (others: forbidden), occupants get 104;
    §10.9: destruction tells every occupant, with the alternate venue."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        yield create(h, alice, "alice")
        yield join(h, bob, "bob")
        yield iq(h, bob, "get", ROOM, f"<query xmlns='{NS_INFO}'/>")
        query = reply(bob).firstChildElement()
        features = {f["var"] for f in query.elements(NS_INFO, "feature")}
        assert {"muc_public", "muc_open", "muc_unmoderated", "muc_unsecured"} <= features
        assert {"muc_temporary", "muc_semianonymous", NS_MUC, NS_OID} <= features
        form = next(query.elements("jabber:x:data", "x"))
        values = {f["var"]: str(next(f.elements())) for f in form.elements() if f.name == "field"}
        assert values["FORM_TYPE"] == NS_MUC + "#roominfo"
        assert values["muc#roominfo_occupants"] == "2"
        yield iq(h, bob, "get", ROOM, f"<query xmlns='{NS_OWNER}'/>")
        assert condition(reply(bob)) == "forbidden"
        yield iq(h, alice, "get", ROOM, f"<query xmlns='{NS_OWNER}'/>")
        form = next(reply(alice).firstChildElement().elements("jabber:x:data", "x"))
        assert {f["var"] for f in form.elements("jabber:x:data", "field")} >= {
            "FORM_TYPE",
            "muc#roomconfig_roomname",
            "muc#roomconfig_membersonly",
            "muc#roomconfig_persistentroom",
            "muc#roomconfig_maxusers",
        }
        bob.take()
        yield configure(h, alice, {"roomname": "Lounge", "publicroom": "0", "whois": "anyone"})
        assert reply(alice, "cfg")["type"] == "result"
        [notice] = of_kind(bob, "message")
        assert codes(notice) == {"104", "172"}
        yield configure(h, alice, {"maxusers": "zero"})
        assert condition(reply(alice, "cfg")) == "not-acceptable"
        yield iq(h, bob, "get", ROOM, f"<query xmlns='{NS_INFO}'/>")
        features = {f["var"] for f in reply(bob).firstChildElement().elements(NS_INFO, "feature")}
        assert {"muc_hidden", "muc_nonanonymous"} <= features
        yield iq(h, bob, "get", MUC, f"<query xmlns='{NS_ITEMS}'/>")
        assert list(reply(bob).firstChildElement().elements()) == []  # hidden
        bob.take()
        destroy = (
            f"<query xmlns='{NS_OWNER}'><destroy jid='other@{MUC}'><reason>moved</reason>"
            "</destroy></query>"
        )
        yield iq(h, alice, "set", ROOM, destroy)
        assert reply(alice)["type"] == "result"
        [gone] = of_kind(bob, "presence")
        x = next(gone.elements(NS_USER, "x"))
        assert gone["type"] == "unavailable"
        assert next(x.elements(NS_USER, "destroy"))["jid"] == f"other@{MUC}"
        yield iq(h, bob, "get", ROOM, f"<query xmlns='{NS_INFO}'/>")
        assert condition(reply(bob)) == "item-not-found"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_persistent_room_survives_restart_temporary_does_not(tmp_path):
    """§10.2 persistentroom: its configuration, subject and affiliations are stored
    and back after a restart; a temporary room vanishes with its last occupant."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        yield create(h, alice, "alice", fields={"persistentroom": "1", "roomname": "Kept"})
        yield h.send(
            alice, f"<message type='groupchat' to='{ROOM}'><subject>Tea</subject></message>"
        )
        ban = f"<query xmlns='{NS_ADMIN}'><item jid='{MALLORY}' affiliation='outcast'/></query>"
        yield iq(h, alice, "set", ROOM, ban)
        owner = f"<query xmlns='{NS_ADMIN}'><item jid='{OWNER}' affiliation='owner'/></query>"
        yield iq(h, alice, "set", ROOM, owner)
        yield create(h, alice, "alice", room=f"temp@{MUC}")
        yield h.send(alice, f"<presence type='unavailable' to='temp@{MUC}/alice'/>")
        yield h.send(alice, f"<presence type='unavailable' to='{ROOM}/alice'/>")
    finally:
        yield h.stop()
    h = yield start(tmp_path)  # a new application: new JIDs for alice and bob
    try:
        bob = yield h.login("bob")
        yield iq(h, bob, "get", MUC, f"<query xmlns='{NS_ITEMS}'/>")
        [room] = reply(bob).firstChildElement().elements()
        assert (room["jid"], room["name"]) == (ROOM, "Kept")
        yield join(h, bob, "bob")
        own, subject = bob.take()
        assert item(own)["affiliation"] == "none" and codes(own) == {"110"}
        assert str(next(subject.elements("jabber:client", "subject"))) == "Tea"
        room = h.server.plugins.plugins["muc"].rooms["lounge"]
        assert room.affiliations[MALLORY][0] == "outcast"
        assert room.affiliations[OWNER][0] == "owner"
        assert "temp" not in h.server.plugins.plugins["muc"].rooms
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_optional_plugins_and_dialog_rooms_without_dialogs(tmp_path):
    """docs/plugins.md ``ctx.loaded``: an enabled plugin, or None. Without the dialogs
    plugin, a dialog room's JID ({app_id}_{dialog_id}) is item-not-found (issue 5)."""
    h = yield start(tmp_path)
    try:
        muc = h.server.plugins.plugins["muc"]
        assert muc.ctx.loaded("disco") is h.server.plugins.plugins["disco"]
        assert muc.ctx.loaded("dialogs") is None and muc.dialog_rooms is None
        alice = yield h.login("alice")
        dialog_room = f"{h.app_id}_{'a' * 24}@{MUC}"
        yield iq(h, alice, "get", dialog_room, f"<query xmlns='{NS_INFO}'/>")
        assert condition(reply(alice)) == "item-not-found"
        yield join(h, alice, "alice", room=dialog_room)
        assert condition(of_kind(alice, "presence")[0]) == "item-not-found"
        assert "lounge" not in muc.rooms
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_creation_rules_limits_and_cancel(tmp_path):
    """§10.1.1: the service may restrict creation (not-allowed; resource-constraint past
    max_rooms_per_user); §7.2.2: a nick is required (jid-malformed); §10.1.3:
    cancelling the first form destroys the room; §7.2.10: a full room is
    service-unavailable; §7.2.3: the self-presence reflects the join's id."""
    h = yield start(tmp_path, max_rooms_per_user=1, max_occupants=2)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        carol = yield h.login("carol")
        yield h.send(alice, f"<presence to='{ROOM}'><x xmlns='{NS_MUC}'/></presence>")
        assert condition(of_kind(alice, "presence")[0]) == "jid-malformed"
        yield h.send(alice, f"<presence id='j1' to='{ROOM}/alice'><x xmlns='{NS_MUC}'/></presence>")
        [own] = of_kind(alice, "presence")
        assert own["id"] == "j1" and codes(own) == {"110", "201"}
        yield join(h, alice, "alice", room=f"second@{MUC}")
        assert condition(of_kind(alice, "presence")[0]) == "resource-constraint"
        cancel = f"<query xmlns='{NS_OWNER}'><x xmlns='jabber:x:data' type='cancel'/></query>"
        yield iq(h, alice, "set", ROOM, cancel)
        assert reply(alice)["type"] == "result"
        assert "lounge" not in h.server.plugins.plugins["muc"].rooms
        yield create(h, alice, "alice", room=f"second@{MUC}")
        yield join(h, bob, "bob", room=f"second@{MUC}")
        yield join(h, carol, "carol", room=f"second@{MUC}")
        assert condition(of_kind(carol, "presence")[0]) == "service-unavailable"
    finally:
        yield h.stop()
    h = yield start(tmp_path, create_rooms="none")
    try:
        alice = yield h.login("alice")
        yield join(h, alice, "alice")
        assert condition(of_kind(alice, "presence")[0]) == "not-allowed"
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_blocked_sender_not_delivered(tmp_path):
    """Issue 5 / XEP-0191: a user who blocked the sender does not receive the sender's
    group messages; the others do."""
    h = yield Harness.start(tmp_path, plugins={"enabled": ["disco", "privacy", "muc"]})
    try:
        alice = yield h.login("alice", available=True)
        bob = yield h.login("bob", available=True)
        carol = yield h.login("carol", available=True)
        yield create(h, alice, "alice")
        yield join(h, bob, "bob")
        yield join(h, carol, "carol")
        yield iq(
            h,
            bob,
            "set",
            bob.bare,
            f"<block xmlns='urn:xmpp:blocking'><item jid='{alice.bare}'/></block>",
            "b1",
        )
        assert reply(bob, "b1")["type"] == "result"
        bob.take(), carol.take()
        yield h.send(alice, f"<message type='groupchat' to='{ROOM}'><body>hi</body></message>")
        assert of_kind(bob, "message") == []
        assert len(of_kind(carol, "message")) == 1
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_history_since(tmp_path):
    """§7.2.15: 'since' replays only the messages after that time."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        yield create(h, alice, "alice")
        h.clock.advance(100)
        yield h.send(alice, f"<message type='groupchat' to='{ROOM}'><body>old</body></message>")
        h.clock.advance(100)
        yield h.send(alice, f"<message type='groupchat' to='{ROOM}'><body>new</body></message>")
        yield join(h, bob, "bob", extra="<history since='1970-01-01T00:02:30Z'/>")
        bodies = [
            str(b) for m in of_kind(bob, "message") for b in m.elements("jabber:client", "body")
        ]
        assert bodies == ["new"]
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_locked_room_and_iq_to_occupant(tmp_path):
    """§7.2.11: a locked room is item-not-found to all but its creator, for messages
    and IQs too; leaving a room that does not exist says nothing."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        yield join(h, alice, "alice")
        yield h.send(bob, f"<message type='groupchat' to='{ROOM}'><body>x</body></message>")
        assert condition(of_kind(bob, "message")[0]) == "item-not-found"
        yield iq(h, bob, "get", ROOM, f"<query xmlns='{NS_INFO}'/>")
        assert condition(reply(bob)) == "item-not-found"
        yield h.send(bob, f"<presence type='unavailable' to='nowhere@{MUC}/bob'/>")
        assert bob.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_multi_session_nick(tmp_path):
    """§7.2 multi-session nicks (as Prosody, ejabberd): a second session of the same
    user joins the occupant (another user still gets conflict, §7.2.9); both get the
    room's presences, groupchat and private messages; a nick change is not-acceptable
    while sessions share the nick; an earlier session leaving gets only its own 110;
    a kick (§8.2) removes every session with 307; the occupant leaves with its last."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        phone = yield h.login("bob", resource="phone")
        carol = yield h.login("carol")
        yield create(h, alice, "alice")
        yield join(h, bob, "bob")
        yield join(h, carol, "carol")
        bob.take(), alice.take(), carol.take()
        yield join(h, alice, "bob")
        assert condition(of_kind(alice, "presence")[0]) == "conflict"  # someone else
        yield join(h, phone, "bob")
        got = phone.take()
        assert [s.name for s in got] == ["presence", "presence", "presence", "message"]
        assert [p["from"] for p in got[:3]] == [f"{ROOM}/alice", f"{ROOM}/carol", f"{ROOM}/bob"]
        assert codes(got[2]) == {"110"} and got[3].firstChildElement().name == "subject"
        [shown] = of_kind(alice, "presence")  # a moderator sees the now current session
        assert shown["from"] == f"{ROOM}/bob" and item(shown)["jid"] == phone.jid
        [again] = of_kind(bob, "presence")
        assert codes(again) == {"110"}
        [seen] = of_kind(carol, "presence")  # one occupant, still one nick
        assert seen["from"] == f"{ROOM}/bob" and seen.getAttribute("type") is None
        assert occupant_id(seen) == occupant_id(again)
        yield h.send(carol, f"<message type='groupchat' to='{ROOM}'><body>all</body></message>")
        yield h.send(carol, f"<message type='chat' to='{ROOM}/bob'><body>pm</body></message>")
        for session in (bob, phone):
            bodies = [str(next(m.elements("jabber:client", "body"))) for m in session.take()]
            assert bodies == ["all", "pm"]
        yield h.send(bob, f"<presence to='{ROOM}/robert'/>")
        assert condition(of_kind(bob, "presence")[0]) == "not-acceptable"
        carol.take(), phone.take()
        yield h.send(phone, f"<presence type='unavailable' to='{ROOM}/bob' id='bye'/>")
        [bye] = of_kind(phone, "presence")
        assert bye["type"] == "unavailable" and codes(bye) == {"110"} and bye["id"] == "bye"
        seen = of_kind(carol, "presence")  # bob is still in, as his other session shows
        assert seen and all(p.getAttribute("type") is None for p in seen)
        assert item(seen[-1])["role"] == "participant"
        yield h.send(carol, f"<message type='chat' to='{ROOM}/bob'><body>2</body></message>")
        assert of_kind(phone, "message") == [] and len(of_kind(bob, "message")) == 1
        yield join(h, phone, "bob")
        bob.take(), phone.take(), carol.take()
        kick = f"<query xmlns='{NS_ADMIN}'><item nick='bob' role='none'/></query>"
        yield iq(h, alice, "set", ROOM, kick)
        assert reply(alice)["type"] == "result"
        for session in (bob, phone):
            [kicked] = of_kind(session, "presence")
            assert kicked["type"] == "unavailable" and codes(kicked) == {"307", "110"}
        [seen] = of_kind(carol, "presence")
        assert seen["type"] == "unavailable" and codes(seen) == {"307"}
        yield h.send(carol, f"<message type='chat' to='{ROOM}/bob'><body>3</body></message>")
        assert condition(of_kind(carol, "message")[0]) == "item-not-found"
        assert bob.take() == [] and phone.take() == []
    finally:
        yield h.stop()


@pytest_twisted.inlineCallbacks
def test_iq_relayed_between_occupants(tmp_path):
    """IQs to ``room/nick`` (XEP-0045, as Prosody relays them): from ``room/asker`` to
    the target's real JID under another id; the answer goes back from
    ``room/target`` with the asker's id; an answer nobody waits for is dropped. A
    non-occupant gets not-acceptable, an absent nick item-not-found."""
    h = yield start(tmp_path)
    try:
        alice = yield h.login("alice")
        bob = yield h.login("bob")
        carol = yield h.login("carol")
        yield create(h, alice, "alice")
        yield join(h, bob, "bob")
        alice.take(), bob.take()
        yield iq(h, alice, "get", f"{ROOM}/bob", "<vCard xmlns='vcard-temp'/>", "v1")
        [asked] = bob.take()
        assert asked["from"] == f"{ROOM}/alice" and asked["to"] == bob.jid
        assert asked["type"] == "get" and asked["id"] != "v1"
        assert asked.firstChildElement().uri == "vcard-temp"
        yield h.send(carol, f"<iq type='result' to='{ROOM}/alice' id='{asked['id']}'/>")
        assert alice.take() == [] and carol.take() == []  # not from whom we asked
        yield h.send(
            bob,
            f"<iq type='result' to='{ROOM}/alice' id='{asked['id']}'>"
            "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard></iq>",
        )
        answer = reply(alice, "v1")
        assert answer["type"] == "result" and answer["from"] == f"{ROOM}/bob"
        assert answer["to"] == alice.jid and answer.firstChildElement().name == "vCard"
        yield h.send(bob, f"<iq type='result' to='{ROOM}/alice' id='{asked['id']}'/>")
        assert alice.take() == [] and bob.take() == []  # answered already: dropped
        yield iq(h, bob, "set", f"{ROOM}/alice", "<query xmlns='urn:example'/>", "s1")
        [asked] = alice.take()
        yield h.send(
            alice,
            f"<iq type='error' to='{ROOM}/bob' id='{asked['id']}'>"
            f"<error type='cancel'><feature-not-implemented xmlns='{STANZAS}'/></error></iq>",
        )
        assert condition(reply(bob, "s1")) == "feature-not-implemented"
        yield iq(h, carol, "get", f"{ROOM}/bob", "<vCard xmlns='vcard-temp'/>")
        assert condition(reply(carol)) == "not-acceptable"
        yield iq(h, alice, "get", f"{ROOM}/nobody", "<vCard xmlns='vcard-temp'/>")
        assert condition(reply(alice)) == "item-not-found"
        yield iq(h, alice, "get", f"{ROOM}/bob", "<vCard xmlns='vcard-temp'/>", "late")
        [asked] = bob.take()
        h.clock.advance(121)  # no answer in time: forgotten
        yield h.send(bob, f"<iq type='result' to='{ROOM}/alice' id='{asked['id']}'/>")
        assert alice.take() == []
    finally:
        yield h.stop()


def test_store_round_trip(db_url):
    """Persistent rooms on SQLite and PostgreSQL: a save replaces the room's row and
    affiliations; a delete takes both."""
    db = Database(db_url)
    db.migrate(plugin_migration_dirs(parse_config({"plugins": {"enabled": ["muc"]}})))
    row = dict(
        name="lounge",
        config='{"persistent": true}',
        subject="Tea",
        subject_by="alice",
        subject_author=f"alice@{DOMAIN}",
        creator=f"alice@{DOMAIN}",
        salt="00",
        created_at=1,
    )
    try:
        with db.engine.begin() as conn:
            store.save_room(
                conn, row, {f"alice@{DOMAIN}": ("owner", ""), MALLORY: ("outcast", "spam")}
            )
            store.save_room(conn, {**row, "subject": "Coffee"}, {f"alice@{DOMAIN}": ("owner", "")})
        with db.engine.begin() as conn:
            [loaded] = store.load_rooms(conn)
        assert loaded["subject"] == "Coffee"
        assert loaded["affiliations"] == {f"alice@{DOMAIN}": ("owner", "")}
        with db.engine.begin() as conn:
            store.delete_room(conn, "lounge")
            assert store.load_rooms(conn) == []
    finally:
        db.stop()
