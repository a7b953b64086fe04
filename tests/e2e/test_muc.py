"""Standard Multi-User Chat (XEP-0045) against a real ``twistd xmppd``, slixmpp's
xep_0045 (and xep_0030) as the clients: create, configure, join, talk, kick, ban,
destroy, and a persistent room across a restart."""

from __future__ import annotations

from typing import Any

import pytest
from slixmpp.exceptions import IqError, PresenceError

from .conftest import DOMAIN, XmppServer, run, session

pytestmark = pytest.mark.e2e

MUC = f"muc.{DOMAIN}"
PLUGINS = ("xep_0030", "xep_0045", "xep_0004", "xep_0203")
NS_OID = "urn:xmpp:occupant-id:0"


@pytest.fixture(scope="module")
def server_config() -> dict[str, Any]:
    return {"plugins": {"enabled": ["disco", "ping", "muc"]}}


@pytest.fixture(scope="module")
def server_users() -> tuple[str, ...]:
    return ("alice", "bob", "carol")


async def create(client: Any, room: str, nick: str, fields: dict[str, Any] | None = None) -> None:
    """§10.1.3: join (201, locked), fill in the configuration form, submit it."""
    muc = client.plugin["xep_0045"]
    presence, *_ = await muc.join_muc_wait(room, nick, timeout=10)
    codes = {int(c) for c in presence["muc"]["status_codes"]}
    assert codes >= {110, 201}
    form = await muc.get_room_config(room, timeout=10)
    form.set_values({f"muc#roomconfig_{var}": value for var, value in (fields or {}).items()})
    await muc.set_room_config(room, form, timeout=10)


def record_room(*clients: Any) -> None:
    """Make ``expect("groupchat_presence")`` and ``expect("groupchat_subject")`` see
    what slixmpp's xep_0045 takes for itself."""
    for client in clients:
        for event in ("groupchat_presence", "groupchat_subject"):
            client.add_event_handler(event, client._recorder(event))


def occupant_id(stanza: Any) -> str | None:
    found = stanza.xml.find(f"{{{NS_OID}}}occupant-id")
    return None if found is None else found.get("id")


def test_disco_create_join_talk_and_private_message(server: XmppServer) -> None:
    """§6: the service in the server's items, conference/text; §10.1: a room created
    and configured through the form, then listed with its features; §7.2: joining
    shows the others; §7.4: groupchat to all with occupant-ids; §7.5: a private
    message; §7.2.9: a taken nick is refused with conflict; §7.2.15: history."""
    room = f"lobby@{MUC}"

    async def scenario() -> None:
        async with (
            session(server, "alice", plugins=PLUGINS) as alice,
            session(server, "bob", plugins=PLUGINS) as bob,
        ):
            disco = alice.plugin["xep_0030"]
            items = await disco.get_items(jid=DOMAIN, timeout=10)
            assert MUC in [str(i[0]) for i in items["disco_items"]["items"]]
            info = await disco.get_info(jid=MUC, timeout=10)
            assert ("conference", "text") in [i[:2] for i in info["disco_info"]["identities"]]
            await create(alice, room, "Alice", {"roomname": "The lobby"})
            items = await disco.get_items(jid=MUC, timeout=10)
            assert room in [str(i[0]) for i in items["disco_items"]["items"]]
            info = await disco.get_info(jid=room, timeout=10)
            assert {"muc_public", "muc_open", "muc_temporary"} <= set(
                info["disco_info"]["features"]
            )
            alice.send_message(mto=room, mbody="before bob", mtype="groupchat")
            await alice.expect("message", lambda m: m["body"] == "before bob")
            muc = bob.plugin["xep_0045"]
            with pytest.raises(PresenceError) as refused:
                await muc.join_muc_wait(room, "Alice", timeout=10)
            assert refused.value.condition == "conflict"
            presence, subject, occupants, history = await muc.join_muc_wait(
                room, "Bob", maxstanzas=5, timeout=10
            )
            assert 110 in {int(c) for c in presence["muc"]["status_codes"]}
            assert [str(p["from"]) for p in occupants][0] == f"{room}/Alice"  # §7.2.3: first
            assert [m["body"] for m in history] == ["before bob"]
            bob.send_message(mto=room, mbody="hello all", mtype="groupchat")
            got = await alice.expect("message", lambda m: m["body"] == "hello all")
            assert str(got["from"]) == f"{room}/Bob" and got["type"] == "groupchat"
            assert occupant_id(got)
            alice.send_message(mto=f"{room}/Bob", mbody="psst", mtype="chat")
            pm = await bob.expect("message", lambda m: m["body"] == "psst")
            assert str(pm["from"]) == f"{room}/Alice"

    run(scenario())


def test_kick_ban_and_destroy(server: XmppServer) -> None:
    """§8.2 kick (307), §9.1 ban (301; the outcast is refused with forbidden, and
    listed), §9.2 the ban list, §10.9 destruction with an alternate venue."""
    room = f"strict@{MUC}"

    async def scenario() -> None:
        async with (
            session(server, "alice", plugins=PLUGINS) as alice,
            session(server, "bob", plugins=PLUGINS) as bob,
            session(server, "carol", plugins=PLUGINS) as carol,
        ):
            record_room(bob, carol)
            await create(alice, room, "Alice")
            owner = alice.plugin["xep_0045"]
            await bob.plugin["xep_0045"].join_muc_wait(room, "Bob", timeout=10)
            await carol.plugin["xep_0045"].join_muc_wait(room, "Carol", timeout=10)
            with pytest.raises(IqError) as refused:
                await bob.plugin["xep_0045"].set_role(room, "Carol", "none", timeout=10)
            assert refused.value.condition == "forbidden"
            await owner.set_role(room, "Bob", "none", reason="rude", timeout=10)
            kicked = await bob.expect(
                "groupchat_presence",
                lambda p: p["type"] == "unavailable" and p["from"].resource == "Bob",
            )
            assert {307, 110} <= {int(c) for c in kicked["muc"]["status_codes"]}
            carol_jid = server.users["carol"].jid
            await owner.set_affiliation(room, "outcast", jid=carol_jid, timeout=10)
            banned = await carol.expect(
                "groupchat_presence",
                lambda p: p["type"] == "unavailable" and p["from"].resource == "Carol",
            )
            assert 301 in {int(c) for c in banned["muc"]["status_codes"]}
            with pytest.raises(PresenceError) as refused_join:
                await carol.plugin["xep_0045"].join_muc_wait(room, "Carol2", timeout=10)
            assert refused_join.value.condition == "forbidden"
            outcasts = await owner.get_affiliation_list(room, "outcast", timeout=10)
            assert [str(j) for j in outcasts] == [carol_jid]
            await bob.plugin["xep_0045"].join_muc_wait(room, "Bob", timeout=10)
            await owner.destroy(room, reason="closing", altroom=f"lobby@{MUC}", timeout=10)
            gone = await bob.expect(
                "groupchat_presence",
                lambda p: p["type"] == "unavailable" and p.xml.find(".//{*}destroy") is not None,
            )
            assert gone.xml.find(".//{*}destroy").get("jid") == f"lobby@{MUC}"
            with pytest.raises(IqError) as missing:
                await alice.plugin["xep_0030"].get_info(jid=room, timeout=10)
            assert missing.value.condition == "item-not-found"

    run(scenario())


def test_persistent_room_survives_a_restart(server: XmppServer) -> None:
    """§10.2 persistentroom: the room, its name, subject and members-only setting
    with its member list come back after a restart; a non-member is refused with
    registration-required (§7.2.7)."""
    room = f"kept@{MUC}"
    bob_jid = server.users["bob"].jid

    async def before() -> None:
        async with session(server, "alice", plugins=PLUGINS) as alice:
            await create(alice, room, "Alice", {"persistentroom": True, "membersonly": True})
            muc = alice.plugin["xep_0045"]
            await muc.set_affiliation(room, "member", jid=bob_jid, timeout=10)
            record_room(alice)
            muc.set_subject(room, "Kept across restarts")
            await alice.expect(
                "groupchat_subject", lambda m: m["subject"] == "Kept across restarts"
            )

    async def after() -> None:
        async with (
            session(server, "bob", plugins=PLUGINS) as bob,
            session(server, "carol", plugins=PLUGINS) as carol,
        ):
            info = await bob.plugin["xep_0030"].get_info(jid=room, timeout=10)
            assert {"muc_persistent", "muc_membersonly"} <= set(info["disco_info"]["features"])
            _, subject, _, _ = await bob.plugin["xep_0045"].join_muc_wait(room, "Bob", timeout=10)
            assert subject["subject"] == "Kept across restarts"
            with pytest.raises(PresenceError) as refused:
                await carol.plugin["xep_0045"].join_muc_wait(room, "Carol", timeout=10)
            assert refused.value.condition == "registration-required"

    run(before())
    server.stop()
    server.start()
    run(after())


def test_two_sessions_one_nick_and_iq_to_an_occupant(server: XmppServer) -> None:
    """§7.2 multi-session nick: bob's laptop and phone both join as Bob; groupchat and
    private messages reach both; the phone leaving does not take Bob out; a kick
    (§8.2) removes both with 307. An IQ to ``room/Bob`` (disco#info, answered by
    slixmpp's xep_0030) is relayed and answered from ``room/Bob``."""
    room = f"shared@{MUC}"

    async def scenario() -> None:
        async with (
            session(server, "alice", plugins=PLUGINS) as alice,
            session(server, "bob", resource="laptop", plugins=PLUGINS) as laptop,
            session(server, "bob", resource="phone", plugins=PLUGINS) as phone,
        ):
            record_room(alice, laptop, phone)
            await create(alice, room, "Alice")
            await laptop.plugin["xep_0045"].join_muc_wait(room, "Bob", timeout=10)
            presence, *_ = await phone.plugin["xep_0045"].join_muc_wait(room, "Bob", timeout=10)
            assert 110 in {int(c) for c in presence["muc"]["status_codes"]}
            alice.send_message(mto=room, mbody="to all", mtype="groupchat")
            alice.send_message(mto=f"{room}/Bob", mbody="to bob", mtype="chat")
            for client in (laptop, phone):
                await client.expect("message", lambda m: m["body"] == "to all")
                pm = await client.expect("message", lambda m: m["body"] == "to bob")
                assert str(pm["from"]) == f"{room}/Alice"
            info = await alice.plugin["xep_0030"].get_info(jid=f"{room}/Bob", timeout=10)
            assert str(info["from"]) == f"{room}/Bob"
            assert "client" in [i[0] for i in info["disco_info"]["identities"]]
            phone.plugin["xep_0045"].leave_muc(room, "Bob")
            await phone.expect(
                "groupchat_presence",
                lambda p: p["type"] == "unavailable" and 110 in p["muc"]["status_codes"],
            )
            laptop.send_message(mto=room, mbody="still here", mtype="groupchat")
            await alice.expect("message", lambda m: m["body"] == "still here")
            assert not [
                p
                for p in alice.seen("groupchat_presence")
                if p["type"] == "unavailable" and p["from"].resource == "Bob"
            ]
            await phone.plugin["xep_0045"].join_muc_wait(room, "Bob", timeout=10)
            await alice.plugin["xep_0045"].set_role(room, "Bob", "none", timeout=10)
            for client in (laptop, phone):
                kicked = await client.expect(
                    "groupchat_presence",
                    lambda p: p["type"] == "unavailable" and 307 in p["muc"]["status_codes"],
                )
                assert 110 in {int(c) for c in kicked["muc"]["status_codes"]}

    run(scenario())
