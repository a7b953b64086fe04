"""XEP-0045 (1.35.1) standard rooms: occupants, roles, affiliations, history; XEP-0421 ids.

One :class:`Room` per room in memory; what it sends goes out through
``plugin.send`` (the router). Admin and owner IQs are in :mod:`plugins.muc.admin`,
the configuration form in :mod:`plugins.muc.config`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from plugins.muc import store
from plugins.muc.config import RoomConfig
from xmppd.errors import StanzaError
from xmppd.router import NS_CLIENT, StanzaEvent
from xmppd.stanza import clone, first_child

if TYPE_CHECKING:
    from plugins.muc import Muc

NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_DELAY = "urn:xmpp:delay"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DATA = "jabber:x:data"

# §5.2: affiliations, highest first
AFFILIATION_RANK = {"owner": 4, "admin": 3, "member": 2, "none": 1, "outcast": 0}
ROLES = ("moderator", "participant", "visitor", "none")


class Occupant:
    """A nick in the room: one real bare JID, one or more of its sessions (§7.2
    multi-session nicks, as Prosody and ejabberd do). The most recently active session
    is last: its full JID and presence are the occupant's."""

    def __init__(
        self, nick: str, jid: JID, role: str, presence: domish.Element | None = None
    ) -> None:
        self.nick, self.role = nick, role
        self.sessions: dict[JID, domish.Element | None] = {jid: presence}  # full JID -> presence

    @property
    def jid(self) -> JID:
        return next(reversed(self.sessions))

    @property
    def presence(self) -> domish.Element | None:
        return self.sessions[self.jid]

    @presence.setter
    def presence(self, stanza: domish.Element | None) -> None:
        self.sessions[self.jid] = stanza

    def active(self, jid: JID, stanza: domish.Element | None) -> None:
        """``jid`` sent ``stanza``: it becomes the occupant's current session."""
        self.sessions.pop(jid, None)
        self.sessions[jid] = stanza

    @property
    def bare(self) -> str:
        return self.jid.userhost()


@dataclass
class Room:
    plugin: Muc
    name: str
    creator: str
    config: RoomConfig
    salt: str
    created_at: int
    affiliations: dict[str, tuple[str, str]] = field(default_factory=dict)  # bare -> (aff, why)
    occupants: dict[str, Occupant] = field(default_factory=dict)  # nick -> occupant
    history: deque = field(default_factory=deque)  # (seconds, stanza, chars)
    subject: str = ""
    subject_by: str = ""  # the nick that set it
    subject_author: str = ""  # and its bare JID
    locked: bool = False

    @classmethod
    def create(cls, plugin: Muc, name: str, owner: str) -> Room:
        # §10.1.1: the creator is the owner; the room stays locked until configured
        room = cls(
            plugin,
            name,
            owner,
            RoomConfig(max_users=plugin.config.max_occupants),
            secrets.token_hex(16),
            int(plugin.ctx.clock.seconds()),
            locked=True,
        )
        room.affiliations[owner] = ("owner", "")
        return room

    @classmethod
    def restore(cls, plugin: Muc, row: dict[str, Any]) -> Room:
        config = RoomConfig(**json.loads(row["config"]))
        room = cls(plugin, row["name"], row["creator"], config, row["salt"], row["created_at"])
        room.affiliations = dict(row["affiliations"])
        room.subject, room.subject_by = row["subject"], row["subject_by"]
        room.subject_author = row["subject_author"]
        return room

    # -- who is who ---------------------------------------------------------------

    @property
    def jid(self) -> JID:
        return self.plugin.room_jid(self.name)

    @property
    def title(self) -> str:
        return self.config.name or self.name

    def affiliation(self, bare: str) -> str:
        return self.affiliations.get(bare, ("none", ""))[0]

    def occupant_of(self, jid: JID) -> Occupant | None:
        return next((o for o in self.occupants.values() if jid in o.sessions), None)

    def send_to(self, occupant: Occupant, stanza: domish.Element) -> None:
        """To every session of the occupant (§7.2 multi-session nicks)."""
        for jid in list(occupant.sessions):
            copy = clone(stanza)
            copy["to"] = jid.full()
            self.plugin.send(copy)

    def is_occupant(self, jid: JID) -> bool:
        return self.occupant_of(jid) is not None

    def default_role(self, affiliation: str) -> str:
        # §5.1.2: owners and admins moderate; in a moderated room a non-member is a visitor
        if affiliation in ("owner", "admin"):
            return "moderator"
        if affiliation == "outcast":
            return "none"
        if self.config.moderated and affiliation == "none":
            return "visitor"
        return "participant"

    def occupant_id(self, bare: str) -> str:
        # XEP-0421 §4.1: stable per room and real bare JID (HMAC with the room's secret)
        digest = hmac.new(self.salt.encode(), bare.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest[:18]).decode()

    def sees_jids(self, viewer: Occupant) -> bool:
        # §4.2: non-anonymous rooms show real JIDs to all, semi-anonymous to moderators
        return self.config.whois == "anyone" or viewer.role == "moderator"

    # -- presence (§7.2, §7.6, §7.7, §7.14) ---------------------------------------------

    def presence(self, event: StanzaEvent) -> None:
        occupant = self.occupant_of(event.sender)
        kind = event.type
        if kind in ("unavailable", "error"):
            if occupant is not None:  # §7.14; an error: its client is gone
                self.leave_session(occupant, event.sender, event.stanza)
            return
        if kind is not None:
            return  # subscriptions mean nothing to a room
        nick = event.to.resource
        if not nick or not nick.strip():
            raise StanzaError("jid-malformed")  # §7.2.2: a nickname is required
        if occupant is None:
            self.enter(event, nick)
        elif nick != occupant.nick:
            self.change_nick(occupant, nick, event.stanza)
        else:
            occupant.active(event.sender, event.stanza)  # §7.7: a status change
            self.broadcast_presence(occupant, reflect=event.stanza.getAttribute("id"))

    def enter(self, event: StanzaEvent, nick: str) -> None:
        bare = event.sender.userhost()
        affiliation = self.affiliation(bare)
        if self.locked and bare != self.creator:
            raise StanzaError("item-not-found")  # §10.1.1: locked until configured
        if affiliation == "outcast":
            raise StanzaError("forbidden")  # §7.2.8: banned
        same = self.occupants.get(nick)
        if same is not None and same.bare != bare:
            raise StanzaError("conflict")  # §7.2.9: the nick is in use by someone else
        if self.config.members_only and affiliation == "none":
            raise StanzaError("registration-required")  # §7.2.7: members only
        full = len(self.occupants) >= self.config.max_users
        if same is None and full and affiliation not in ("owner", "admin"):
            raise StanzaError("service-unavailable")  # §7.2.10: the room is full
        joining = first_child(event.stanza, NS_MUC, "x")
        if self.config.password_protected and affiliation != "owner":
            given = first_child(joining, NS_MUC, "password") if joining is not None else None
            if given is None or str(given) != self.config.password:
                raise StanzaError("not-authorized")  # §7.2.6: a wrong or no password
        created = self.locked and not self.occupants
        codes = ["100"] if self.config.whois == "anyone" else []  # §7.2.4 non-anonymous
        if same is not None:
            # §7.2 multi-session nick (Prosody, ejabberd): another session of the same
            # user joins the occupant; it gets the room like a newcomer, the others its
            # (now current) presence
            occupant = same
            occupant.active(event.sender, event.stanza)
        else:
            occupant = Occupant(nick, event.sender, self.default_role(affiliation), event.stanza)
            if created:
                codes.append("201")  # §10.1.2: a new room, locked until configured
        # §7.2.3: first the others' presence to the newcomer, then its own to all
        for other in self.occupants.values():
            if other is not occupant:
                self.plugin.send(self.presence_of(other, occupant))
        self.occupants[nick] = occupant
        self.plugin.occupancy(event.sender, self.name, True)
        self.broadcast_presence(occupant, self_codes=codes, reflect=event.stanza.getAttribute("id"))
        self.replay_history(occupant, joining)  # §7.2.15
        subject = domish.Element((NS_CLIENT, "message"))  # §7.2.16: always, maybe empty
        subject["type"] = "groupchat"
        subject["from"] = self.plugin.room_jid(self.name, self.subject_by or None).full()
        subject["to"] = occupant.jid.full()
        subject.addElement("subject", content=self.subject)
        if self.subject_author:  # XEP-0421 §4: on every message from an occupant
            author = subject.addElement((NS_OCCUPANT_ID, "occupant-id"))
            author["id"] = self.occupant_id(self.subject_author)
        self.plugin.send(subject)

    def change_nick(self, occupant: Occupant, nick: str, stanza: domish.Element) -> None:
        if len(occupant.sessions) > 1:
            # §7.6 with a multi-session nick: the other sessions did not ask for it, so
            # it is refused while they share the nick (Prosody's muc.lib.lua would split
            # this session off to the new nick instead)
            raise StanzaError("not-acceptable")
        if nick in self.occupants:
            raise StanzaError("conflict")  # §7.6: the new nick is in use
        # §7.6: unavailable with 303 and the new nick, then available under the new one
        self.broadcast_presence(occupant, "unavailable", codes=["303"], new_nick=nick)
        del self.occupants[occupant.nick]
        occupant.nick, occupant.presence = nick, stanza
        self.occupants[nick] = occupant
        self.broadcast_presence(occupant, reflect=stanza.getAttribute("id"))

    def leave(
        self,
        occupant: Occupant,
        stanza: domish.Element | None = None,
        codes: list[str] | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> None:
        """§7.14 (and §8.2, §9.1 with 307/301): unavailable to all, the leaver last."""
        if stanza is not None:
            occupant.presence = stanza
        elif codes:
            occupant.presence = None
        occupant.role = "none"
        own_id = stanza.getAttribute("id") if stanza is not None else None
        self.broadcast_presence(
            occupant, "unavailable", codes=codes, reflect=own_id, actor=actor, reason=reason
        )
        self.occupants.pop(occupant.nick, None)
        for jid in occupant.sessions:
            self.plugin.occupancy(jid, self.name, False)
        if not self.occupants and (self.locked or not self.config.persistent):
            self.plugin.room_gone(self)  # §10.1.1 and §9: a temporary room dies empty

    def leave_session(
        self, occupant: Occupant, jid: JID, stanza: domish.Element | None = None
    ) -> None:
        """§7.14 for one session: the occupant leaves with its last session; an earlier
        one gets only its own unavailable self-presence (110) and the others see the
        occupant's presence as the remaining current session has it."""
        if len(occupant.sessions) == 1:
            self.leave(occupant, stanza)
            return
        was_current = occupant.jid == jid
        del occupant.sessions[jid]
        own = self.presence_of(occupant, occupant, "unavailable")
        own["to"] = jid.full()
        if stanza is not None and stanza.getAttribute("id"):
            own["id"] = stanza["id"]
        self.plugin.send(own)
        self.plugin.occupancy(jid, self.name, False)
        if was_current:
            self.broadcast_presence(occupant)  # the occupant now shows another session

    def gone(self, jid: JID) -> None:
        """The occupant's session went unavailable or ended."""
        occupant = self.occupant_of(jid)
        if occupant is not None:
            self.leave_session(occupant, jid)

    def presence_of(
        self,
        occupant: Occupant,
        viewer: Occupant,
        kind: str | None = None,
        codes: list[str] | None = None,
        new_nick: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> domish.Element:
        """The occupant's presence as ``viewer`` gets it (§7.2.3, §7.2.4)."""
        presence = domish.Element((NS_CLIENT, "presence"))
        presence["from"] = self.plugin.room_jid(self.name, occupant.nick).full()
        presence["to"] = viewer.jid.full()
        if kind:
            presence["type"] = kind
        for extra in occupant.presence.elements() if occupant.presence is not None else ():
            if extra.uri not in (NS_MUC, NS_USER, NS_OCCUPANT_ID):
                presence.addChild(clone(extra))
        x = presence.addElement((NS_USER, "x"))
        item = x.addElement("item")
        item["affiliation"] = self.affiliation(occupant.bare)
        item["role"] = occupant.role
        if self.sees_jids(viewer):
            item["jid"] = occupant.jid.full()
        if new_nick:
            item["nick"] = new_nick
        if actor:
            item.addElement("actor")["nick"] = actor
        if reason:
            item.addElement("reason", content=reason)
        for code in codes or ():
            x.addElement("status")["code"] = code
        if viewer is occupant:
            x.addElement("status")["code"] = "110"  # §7.2.3: this is you
        presence.addElement((NS_OCCUPANT_ID, "occupant-id"))["id"] = self.occupant_id(occupant.bare)
        return presence

    def broadcast_presence(
        self,
        occupant: Occupant,
        kind: str | None = None,
        codes: list[str] | None = None,
        self_codes: list[str] | None = None,
        reflect: str | None = None,
        **item: Any,
    ) -> None:
        for viewer in list(self.occupants.values()):
            if viewer is not occupant:
                self.send_to(viewer, self.presence_of(occupant, viewer, kind, codes, **item))
        mine = [*(codes or ()), *(self_codes or ())]
        own = self.presence_of(occupant, occupant, kind, mine, **item)
        for jid in list(occupant.sessions):
            copy = clone(own)
            copy["to"] = jid.full()
            if reflect and jid == occupant.jid:
                copy["id"] = reflect  # §7.2.3: the self-presence reflects the client's id
            self.plugin.send(copy)

    # -- history (§7.2.15) -------------------------------------------------------------

    def remember(self, stanza: domish.Element) -> None:
        limit = self.plugin.config.history_size
        if limit == 0:
            return
        self.history.append((self.plugin.ctx.clock.seconds(), stanza, len(stanza.toXml())))
        while len(self.history) > limit:
            self.history.popleft()

    def replay_history(self, occupant: Occupant, joining: domish.Element | None) -> None:
        asked = first_child(joining, NS_MUC, "history") if joining is not None else None
        entries = list(self.history)
        if asked is not None:
            try:
                if asked.getAttribute("since"):
                    since = datetime.fromisoformat(asked["since"].replace("Z", "+00:00"))
                    entries = [e for e in entries if e[0] >= since.timestamp()]
                if asked.getAttribute("seconds"):
                    oldest = self.plugin.ctx.clock.seconds() - int(asked["seconds"])
                    entries = [e for e in entries if e[0] >= oldest]
                if asked.getAttribute("maxstanzas"):
                    count = int(asked["maxstanzas"])
                    entries = entries[len(entries) - count :] if count > 0 else []
                if asked.getAttribute("maxchars"):
                    budget, kept = int(asked["maxchars"]), []
                    for entry in reversed(entries):
                        budget -= entry[2]
                        if budget < 0:
                            break
                        kept.append(entry)
                    entries = kept[::-1]
            except ValueError:
                pass  # a malformed request: the whole history, as if none was given
        for at, stanza, _ in entries:
            replay = clone(stanza)
            replay["to"] = occupant.jid.full()
            delay = replay.addElement((NS_DELAY, "delay"))  # §7.2.15: XEP-0203 stamps
            delay["from"] = self.jid.full()
            delay["stamp"] = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.plugin.send(replay)

    # -- messages (§7.4, §7.5, §7.8, §8.1) ---------------------------------------------

    def message(self, event: StanzaEvent) -> None:
        kind = event.type or "normal"
        if kind == "error":
            return
        sender = self.occupant_of(event.sender)
        if event.to.resource is not None:
            return self.private_message(event, sender, kind)
        user = first_child(event.stanza, NS_USER, "x")
        if user is not None and (
            first_child(user, NS_USER, "invite") or first_child(user, NS_USER, "decline")
        ):
            return self.invitation(event, sender, user)
        if sender is None:
            raise StanzaError("not-acceptable")  # §7.4: only occupants may send
        if kind != "groupchat":
            raise StanzaError("bad-request")
        if sender.role == "visitor":
            raise StanzaError("forbidden")  # §7.4 / §8.3: no voice in a moderated room
        subject = first_child(event.stanza, NS_CLIENT, "subject")
        if subject is not None and first_child(event.stanza, NS_CLIENT, "body") is None:
            # §8.1: moderators, or participants if the room lets them
            if sender.role != "moderator" and not self.config.change_subject:
                raise StanzaError("forbidden")
            self.subject, self.subject_by = str(subject), sender.nick
            self.subject_author = sender.bare
            self.save()
        out = clone(event.stanza)
        out["from"] = self.plugin.room_jid(self.name, sender.nick).full()
        for extra in list(out.elements(NS_OCCUPANT_ID, "occupant-id")):
            out.children.remove(extra)  # XEP-0421 §4: never a client's own
        out.addElement((NS_OCCUPANT_ID, "occupant-id"))["id"] = self.occupant_id(sender.bare)
        out.attributes.pop("to", None)
        if subject is None or first_child(event.stanza, NS_CLIENT, "body") is not None:
            self.remember(out)
        for occupant in list(self.occupants.values()):
            for jid in list(occupant.sessions):  # every session of a multi-session nick
                copy = clone(out)
                copy["to"] = jid.full()
                self.deliver_unless_blocked(copy, occupant, sender)

    def deliver_unless_blocked(
        self, stanza: domish.Element, to: Occupant, sender: Occupant
    ) -> None:
        privacy = self.plugin.privacy
        if privacy is None:
            self.plugin.send(stanza)
            return
        # issue 5: whoever blocked the sender does not get its group messages
        d = defer.maybeDeferred(privacy.is_blocked, to.bare, sender.jid, "message")
        d.addCallback(lambda blocked: None if blocked else self.plugin.send(stanza))
        d.addErrback(lambda f: self.plugin.ctx.log.failure("cannot check blocking", f))

    def private_message(self, event: StanzaEvent, sender: Occupant | None, kind: str) -> None:
        if kind == "groupchat":
            raise StanzaError("bad-request")  # §7.5: a private message is not groupchat
        if sender is None:
            raise StanzaError("not-acceptable")  # §7.5: only occupants
        target = self.occupants.get(event.to.resource or "")
        if target is None:
            raise StanzaError("item-not-found")  # §7.5: no such occupant
        out = clone(event.stanza)
        out["from"] = self.plugin.room_jid(self.name, sender.nick).full()
        if first_child(out, NS_USER, "x") is None:
            out.addElement((NS_USER, "x"))  # §7.5: marks it as from a room occupant
        out.addElement((NS_OCCUPANT_ID, "occupant-id"))["id"] = self.occupant_id(sender.bare)
        self.send_to(target, out)  # §7.5: to every session of the nick

    def invitation(self, event: StanzaEvent, sender: Occupant | None, user: domish.Element) -> None:
        """§7.8.2 mediated invitations and §7.8.2 declines (XEP-0249 direct ones go
        from user to user and never reach the room)."""
        for decline in user.elements(NS_USER, "decline"):
            to = decline.getAttribute("to")
            if not to:
                raise StanzaError("bad-request")
            out = domish.Element((NS_CLIENT, "message"))
            out["from"], out["to"] = self.jid.full(), to
            x = out.addElement((NS_USER, "x"))
            forwarded = x.addElement("decline")
            forwarded["from"] = event.sender.userhost()
            reason = first_child(decline, NS_USER, "reason")
            if reason is not None:
                forwarded.addElement("reason", content=str(reason))
            self.plugin.send(out)
        invites = list(user.elements(NS_USER, "invite"))
        if not invites:
            return
        if sender is None:
            raise StanzaError("not-acceptable")  # §7.8.2: occupants invite
        rank = AFFILIATION_RANK[self.affiliation(sender.bare)]
        if self.config.members_only and not self.config.allow_invites and rank < 3:
            raise StanzaError("forbidden")  # §7.8.2: only admins invite here
        for invite in invites:
            to = invite.getAttribute("to")
            if not to:
                raise StanzaError("bad-request")
            try:
                invitee = JID(to)
            except Exception:
                raise StanzaError("jid-malformed") from None
            out = domish.Element((NS_CLIENT, "message"))
            out["from"], out["to"] = self.jid.full(), invitee.full()
            x = out.addElement((NS_USER, "x"))
            forwarded = x.addElement("invite")
            forwarded["from"] = sender.jid.full()
            reason = first_child(invite, NS_USER, "reason")
            if reason is not None:
                forwarded.addElement("reason", content=str(reason))
            if self.config.password_protected:
                x.addElement("password", content=self.config.password)
            out.addElement("body", content=f"{sender.bare} invites you to {self.jid.full()}")
            if self.config.members_only and self.affiliation(invitee.userhost()) == "none":
                # §7.8.2: the service may add the invitee to the member list
                self.affiliations[invitee.userhost()] = ("member", "")
                self.save()
            self.plugin.send(out)

    # -- IQs: disco (§6.4), admin (§8, §9), owner (§10) ---------------------------------

    def iq(self, event: StanzaEvent) -> domish.Element | None:
        from plugins.muc import admin, config

        payload = event.stanza.firstChildElement()
        if event.to.resource is not None:
            return self.relay_iq(event)
        if payload is None:
            raise StanzaError("service-unavailable")
        what = (event.type, payload.uri, payload.name)
        if what == ("get", NS_DISCO_INFO, "query"):
            return event.result(config.room_info(self, payload.getAttribute("node")))
        if what == ("get", NS_DISCO_ITEMS, "query"):
            # §6.5: the occupant list MAY be given; xmppd keeps it to occupants
            return event.result(domish.Element((NS_DISCO_ITEMS, "query")))
        if payload.uri == NS_ADMIN and payload.name == "query":
            return admin.admin_iq(self, event, payload)
        if payload.uri == NS_OWNER and payload.name == "query":
            return admin.owner_iq(self, event, payload)
        raise StanzaError("service-unavailable")

    def relay_iq(self, event: StanzaEvent) -> None:
        """An IQ get/set to ``room/nick`` goes to that occupant's current session from
        ``room/sender-nick`` under an id of ours; its answer comes back through
        :meth:`Muc.relay_answer`. XEP-0045 leaves IQs to occupants to the service; the
        errors are §7.5's for private messages, as in Prosody's ``handle_iq_to_occupant``
        (muc.lib.lua), which relays them the same way."""
        sender = self.occupant_of(event.sender)
        if sender is None:
            raise StanzaError("not-acceptable")  # only occupants, as for §7.5
        target = self.occupants.get(event.to.resource or "")
        if target is None:
            raise StanzaError("item-not-found")  # §7.5: no such occupant
        out = clone(event.stanza)
        out["from"] = self.plugin.room_jid(self.name, sender.nick).full()
        out["to"] = target.jid.full()
        out["id"] = self.plugin.pending_iq(event, target.jid, self.name, target.nick)
        self.plugin.send(out)

    # -- storage and end -------------------------------------------------------------

    def save(self) -> None:
        if not self.config.persistent or self.locked:
            return
        row = dict(
            name=self.name,
            config=json.dumps(self.config.__dict__),
            subject=self.subject,
            subject_by=self.subject_by,
            subject_author=self.subject_author,
            creator=self.creator,
            salt=self.salt,
            created_at=self.created_at,
        )
        self.plugin.write(store.save_room, row, dict(self.affiliations))

    def forget(self) -> None:
        self.plugin.write(store.delete_room, self.name)

    def destroy(self, reason: str | None = None, venue: str | None = None) -> None:
        """§10.9: every occupant is told, with the alternate venue if given."""
        for occupant in list(self.occupants.values()):
            presence = domish.Element((NS_CLIENT, "presence"))
            presence["from"] = self.plugin.room_jid(self.name, occupant.nick).full()
            presence["to"] = occupant.jid.full()
            presence["type"] = "unavailable"
            x = presence.addElement((NS_USER, "x"))
            item = x.addElement("item")
            item["affiliation"], item["role"] = "none", "none"
            destroy = x.addElement("destroy")
            if venue:
                destroy["jid"] = venue
            if reason:
                destroy.addElement("reason", content=reason)
            occupant_id = presence.addElement((NS_OCCUPANT_ID, "occupant-id"))  # XEP-0421 §4
            occupant_id["id"] = self.occupant_id(occupant.bare)
            self.send_to(occupant, presence)
            for jid in occupant.sessions:
                self.plugin.occupancy(jid, self.name, False)
        self.occupants.clear()
        self.plugin.room_gone(self)
        self.forget()
