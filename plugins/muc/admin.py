"""XEP-0045 §8 (moderator), §9 (admin) and §10 (owner) IQs of a standard room."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from plugins.muc import config
from plugins.muc.rooms import AFFILIATION_RANK, NS_ADMIN, NS_CLIENT, NS_OWNER, NS_USER
from xmppd.errors import StanzaError
from xmppd.router import StanzaEvent
from xmppd.stanza import first_child

if TYPE_CHECKING:
    from plugins.muc.rooms import Occupant, Room

NS_DATA = "jabber:x:data"


def admin_iq(room: Room, event: StanzaEvent, query: domish.Element) -> domish.Element:
    actor_bare = event.sender.userhost()
    actor = room.occupant_of(event.sender)
    items = list(query.elements(NS_ADMIN, "item"))
    if not items:
        raise StanzaError("bad-request")
    if event.type == "get":
        return event.result(list_items(room, actor_bare, actor, items[0]))
    for item in items:
        if item.getAttribute("affiliation"):
            set_affiliation(room, actor_bare, actor, item)
        elif item.getAttribute("role"):
            set_role(room, actor_bare, actor, item)
        else:
            raise StanzaError("bad-request")
    return event.result()


# -- roles (§8.2 kick, §8.3/§8.4 voice, §9.6/§9.7 moderator) ------------------------------


def set_role(room: Room, actor_bare: str, actor: Occupant | None, item: domish.Element) -> None:
    role, nick = item["role"], item.getAttribute("nick")
    if role not in ("moderator", "participant", "visitor", "none") or not nick:
        raise StanzaError("bad-request")
    if actor is None or actor.role != "moderator":
        raise StanzaError("forbidden")  # §8: only moderators change roles
    target = room.occupants.get(nick)
    if target is None:
        raise StanzaError("item-not-found")
    actor_rank = AFFILIATION_RANK[room.affiliation(actor_bare)]
    target_rank = AFFILIATION_RANK[room.affiliation(target.bare)]
    if role == "moderator" or target.role == "moderator":
        if actor_rank < AFFILIATION_RANK["admin"]:
            raise StanzaError("forbidden")  # §9.6, §9.7: admins grant and revoke moderator
    if role != "moderator" and target_rank >= AFFILIATION_RANK["admin"]:
        raise StanzaError("not-allowed")  # §8.2, §8.4: not an admin's or owner's
    reason = reason_of(item)
    if role == "none":
        room.leave(target, codes=["307"], actor=actor.nick, reason=reason)  # §8.2: kicked
        return
    target.role = role
    room.broadcast_presence(target, actor=actor.nick, reason=reason)


# -- affiliations (§9.1 ban, §9.3/§9.4 members, §10.3-§10.8 owners and admins) -------------


def set_affiliation(
    room: Room, actor_bare: str, actor: Occupant | None, item: domish.Element
) -> None:
    affiliation = item["affiliation"]
    if affiliation not in AFFILIATION_RANK:
        raise StanzaError("bad-request")
    target_bare = target_of(room, item)
    actor_rank = AFFILIATION_RANK[room.affiliation(actor_bare)]
    current = room.affiliation(target_bare)
    if actor_rank < AFFILIATION_RANK["admin"]:
        raise StanzaError("forbidden")  # §9: admins and owners only
    needs_owner = ("owner", "admin")
    if (affiliation in needs_owner or current in needs_owner) and actor_rank < 4:
        # §9.1: an admin may not ban an admin or owner; §10.3-§10.8: owners only
        raise StanzaError("not-allowed" if current in needs_owner else "forbidden")
    owners = [j for j, (a, _) in room.affiliations.items() if a == "owner"]
    if current == "owner" and affiliation != "owner" and owners == [target_bare]:
        raise StanzaError("conflict")  # §10.4, §10.5: a room keeps at least one owner
    reason = reason_of(item) or ""
    if affiliation == "none":
        room.affiliations.pop(target_bare, None)
    else:
        room.affiliations[target_bare] = (affiliation, reason)
    room.save()
    actor_nick = actor.nick if actor is not None else None
    for occupant in [o for o in room.occupants.values() if o.bare == target_bare]:
        if affiliation == "outcast":
            # §9.1: banned: removed with 301
            room.leave(occupant, codes=["301"], actor=actor_nick, reason=reason or None)
        elif affiliation == "none" and room.config.members_only:
            # §9.4: no longer a member of a members-only room: removed with 321
            room.leave(occupant, codes=["321"], actor=actor_nick, reason=reason or None)
        else:
            occupant.role = room.default_role(affiliation)  # §5.1.2
            room.broadcast_presence(occupant, reason=reason or None)


def target_of(room: Room, item: domish.Element) -> str:
    if item.getAttribute("jid"):
        try:
            return JID(item["jid"]).userhost()
        except (InvalidFormat, UnicodeError, ValueError):
            raise StanzaError("jid-malformed") from None
    occupant = room.occupants.get(item.getAttribute("nick") or "")
    if occupant is None:
        raise StanzaError("item-not-found" if item.getAttribute("nick") else "bad-request")
    return occupant.bare


def reason_of(item: domish.Element) -> str | None:
    reason = first_child(item, NS_ADMIN, "reason")
    return str(reason) if reason is not None else None


# -- lists (§8.5 voice, §9.2 ban, §9.5 member, §9.8 moderator, §10.5/§10.8 owner, admin) --


def list_items(
    room: Room, actor_bare: str, actor: Occupant | None, asked: domish.Element
) -> domish.Element:
    result = domish.Element((NS_ADMIN, "query"))
    rank = AFFILIATION_RANK[room.affiliation(actor_bare)]
    if asked.getAttribute("affiliation"):
        affiliation = asked["affiliation"]
        if affiliation not in AFFILIATION_RANK or affiliation == "none":
            raise StanzaError("bad-request")
        if rank < AFFILIATION_RANK["admin"]:
            raise StanzaError("forbidden")  # §9.2, §9.5, §10.5: admins and owners
        for jid, (aff, reason) in sorted(room.affiliations.items()):
            if aff == affiliation:
                item = result.addElement("item")
                item["jid"], item["affiliation"] = jid, aff
                present = next((o for o in room.occupants.values() if o.bare == jid), None)
                if present is not None:
                    item["nick"], item["role"] = present.nick, present.role
                if reason:
                    item.addElement("reason", content=reason)
        return result
    role = asked.getAttribute("role")
    if role not in ("moderator", "participant", "visitor"):
        raise StanzaError("bad-request")
    if actor is None or actor.role != "moderator":
        raise StanzaError("forbidden")  # §8.5, §9.8: moderators
    for occupant in sorted(room.occupants.values(), key=lambda o: o.nick):
        if occupant.role == role:
            item = result.addElement("item")
            item["nick"], item["role"] = occupant.nick, occupant.role
            item["affiliation"] = room.affiliation(occupant.bare)
            item["jid"] = occupant.jid.full()
    return result


# -- owner: configuration (§10.1, §10.2) and destruction (§10.9) ----------------------------


def owner_iq(room: Room, event: StanzaEvent, query: domish.Element) -> domish.Element:
    if room.affiliation(event.sender.userhost()) != "owner":
        raise StanzaError("forbidden")  # §10.1.3, §10.2, §10.9: owners only
    if event.type == "get":
        result = domish.Element((NS_OWNER, "query"))
        result.addChild(config.config_form(room))
        return event.result(result)
    destroy = first_child(query, NS_OWNER, "destroy")
    if destroy is not None:
        reason = first_child(destroy, NS_OWNER, "reason")
        room.destroy(str(reason) if reason is not None else None, destroy.getAttribute("jid"))
        return event.result()
    form = first_child(query, NS_DATA, "x")
    if form is None:
        raise StanzaError("bad-request")
    if form.getAttribute("type") == "cancel":
        if room.locked:
            room.destroy()  # §10.1.3: a new room whose configuration is cancelled
        return event.result()
    if form.getAttribute("type") != "submit":
        raise StanzaError("bad-request")
    was = (room.config.whois, room.config.persistent, room.config.members_only)
    config.apply_form(room, form, room.plugin.config.max_occupants)
    room.locked = False  # §10.1.2 (instant: an empty form) and §10.1.3: unlocked
    if was[1] and not room.config.persistent:
        room.forget()
    room.save()
    if not was[2] and room.config.members_only:
        for occupant in list(room.occupants.values()):
            if room.affiliation(occupant.bare) == "none":
                room.leave(occupant, codes=["322"])  # §10.2: the room became members-only
    codes = ["104"]  # §10.2.1: the configuration changed
    if was[0] != room.config.whois:
        codes.append("172" if room.config.whois == "anyone" else "173")
    for occupant in room.occupants.values():
        notice = domish.Element((NS_CLIENT, "message"))
        notice["type"], notice["from"], notice["to"] = (
            "groupchat",
            room.jid.full(),
            occupant.jid.full(),
        )
        x = notice.addElement((NS_USER, "x"))
        for code in codes:
            x.addElement("status")["code"] = code
        room.send_to(occupant, notice)
    if not room.occupants and not room.config.persistent:
        room.plugin.room_gone(room)
    return event.result()
