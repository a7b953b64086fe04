"""The protocol: XEP-0016 list management (§2.3-§2.8) and XEP-0191 commands (§3.2-§3.5).

Mixed into :class:`plugins.privacy.Privacy`. Every change goes to the store, then
replaces the cached state (it applies at once, XEP-0016 §2.2 rule 8), then the pushes
go out (XEP-0016 §2.2 rule 10; XEP-0191 §3.3, §3.4 and §5).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import InvalidFormat
from twisted.words.xish import domish

from plugins.privacy import store
from plugins.privacy.lists import (
    ALL,
    NS_BLOCKING,
    NS_PRIVACY,
    Item,
    PrivacyList,
    make_item,
    make_list,
)
from plugins.privacy.store import TooManyListsError, UserPrivacy
from xmppd.plugin import PluginContext, SessionSlot, StanzaError, iq_get, iq_set
from xmppd.router import NS_CLIENT, StanzaEvent
from xmppd.sessions import Session
from xmppd.stanza import clone, parse_jid


def blocked_jids(plist: PrivacyList | None) -> list[str]:
    """XEP-0191 §5: the blocklist view of the default list."""
    if plist is None:
        return []
    return [i.value for i in plist.items if is_block(i)]


def is_block(item: Item) -> bool:
    return item.type == "jid" and item.action == "deny" and item.kinds == ALL


class Commands:
    """IQ handlers for ``jabber:iq:privacy`` and ``urn:xmpp:blocking``."""

    ctx: PluginContext
    config: Any
    domain: str
    active: SessionSlot
    wants_blocklist: SessionSlot
    push_seq: int
    lists_of: Any
    list_for: Any
    remember: Any

    # -- XEP-0016: privacy lists ---------------------------------------------------------

    def state_of(self, event: StanzaEvent) -> Any:
        session = event.origin
        if session is None or session.user_id is None:
            raise StanzaError("forbidden")
        return self.lists_of(session.user_id)

    @iq_get(NS_PRIVACY, "query", to="self")
    async def get_lists(self, event: StanzaEvent) -> domish.Element:
        state: UserPrivacy = await defer.maybeDeferred(self.state_of, event)
        asked = list(event.stanza.firstChildElement().elements())
        query = domish.Element((NS_PRIVACY, "query"))
        if not asked:  # §2.3: the names, after the active and default ones
            active = self.active.get(event.origin)
            if active in state.lists:
                query.addElement("active")["name"] = active
            if state.default:
                query.addElement("default")["name"] = state.default
            for name in sorted(state.lists):
                query.addElement("list")["name"] = name
            return event.result(query)
        if len(asked) > 1 or asked[0].name != "list":
            raise StanzaError("bad-request", text="ask for one list at a time")  # §2.3
        plist = state.lists.get(asked[0].getAttribute("name", ""))
        if plist is None:
            raise StanzaError("item-not-found")  # §2.3
        query.addChild(plist.element())  # in 'order': the SDK reads them as pairs
        return event.result(query)

    @iq_set(NS_PRIVACY, "query", to="self")
    async def set_lists(self, event: StanzaEvent) -> domish.Element:
        state: UserPrivacy = await defer.maybeDeferred(self.state_of, event)
        children = list(event.stanza.firstChildElement().elements())
        if len(children) != 1:
            raise StanzaError("bad-request", text="one of active, default or list")  # §2.1
        [child] = children
        name = child.getAttribute("name")
        if child.name == "active":  # §2.4
            if name is not None and name not in state.lists:
                raise StanzaError("item-not-found")
            self.active.set(event.origin, name)
            return event.result()
        if child.name == "default":  # §2.5
            return await self.set_default(event, state, name)
        if child.name == "list" and name is not None:
            items = list(child.elements())
            if not items:
                return await self.remove_list(event, state, name)  # §2.8
            return await self.edit_list(event, state, name, items)  # §2.6, §2.7
        raise StanzaError("bad-request")

    def others_using(self, event: StanzaEvent, state: UserPrivacy, name: str | None) -> bool:
        """§2.2 rule 11: does list ``name`` apply to another resource of the user?"""
        for session in self.ctx.sessions.of(event.origin.bare):
            if session is not event.origin and name is not None:
                if self.list_for(session, state) is state.lists.get(name):
                    return True
        return False

    async def set_default(self, event: StanzaEvent, state: UserPrivacy, name: str | None):
        if name is not None and name not in state.lists:
            raise StanzaError("item-not-found")
        if (
            self.config.default_in_use_conflict
            and name != state.default
            and self.others_using(event, state, state.default)
        ):
            raise StanzaError("conflict")  # §2.5
        after = await self.ctx.db.run(store.set_default, event.origin.user_id, name, self.domain)
        if after is None:
            raise StanzaError("item-not-found")  # removed meanwhile
        await self.changed(event.origin, state, after, None)
        return event.result()

    async def remove_list(self, event: StanzaEvent, state: UserPrivacy, name: str):
        if name not in state.lists:
            raise StanzaError("item-not-found")
        if self.others_using(event, state, name):
            raise StanzaError("conflict")  # §2.8
        after = await self.ctx.db.run(store.delete_list, event.origin.user_id, name, self.domain)
        if after is None:
            raise StanzaError("item-not-found")
        if self.active.get(event.origin) == name:
            self.active.set(event.origin, None)
        await self.changed(event.origin, state, after, name)
        return event.result()

    async def edit_list(self, event: StanzaEvent, state: UserPrivacy, name: str, elements: list):
        if len(elements) > self.config.max_items:
            raise StanzaError("policy-violation", text="too many items in one list")
        if len(name) > 255:
            raise StanzaError("bad-request", text="list name too long")
        plist = make_list(name, (make_item(e, self.domain) for e in elements))
        await self.save(event.origin, state, plist)
        return event.result()

    async def save(
        self, session: Session, state: UserPrivacy, plist: PrivacyList, default: bool = False
    ) -> None:
        try:
            after = await self.ctx.db.run(
                store.save_list,
                session.user_id,
                plist,
                self.config.max_lists,
                self.domain,
                default,
            )
        except TooManyListsError:
            raise StanzaError("policy-violation", text="too many privacy lists") from None
        await self.changed(session, state, after, plist.name)

    async def changed(
        self, session: Session, before: UserPrivacy, after: UserPrivacy, name: str | None
    ) -> None:
        """Presence the change hides goes out as 'unavailable' while the old lists still
        apply; then the new state is cached (§2.2 rule 8: it applies at once), the pushes
        go out, and presence the change reveals is sent (§2.11 note; XEP-0191 §3.3, §3.4)."""
        hide, show = await self.presence_changes(session, before, after)
        for source, contact in hide:
            self.send_presence(source, contact, unavailable=True)
        self.remember(session.user_id, after)
        resources = self.ctx.sessions.of(session.bare)
        if name is not None:  # §2.2 rule 10, §2.6: the list's name to every resource
            query = domish.Element((NS_PRIVACY, "query"))
            query.addElement("list")["name"] = name
            self.push(resources, query)
        # XEP-0191 §5: edits of the default list show in the blocklist.
        old = set(blocked_jids(before.default_list))
        new = blocked_jids(after.default_list)
        interested = [s for s in resources if self.wants_blocklist.get(s)]
        added = [jid for jid in new if jid not in old]
        removed = sorted(old.difference(new))
        for command, jids in (("block", added), ("unblock", removed)):
            if jids and interested:
                element = domish.Element((NS_BLOCKING, command))
                for jid in jids:
                    element.addElement("item")["jid"] = jid
                self.push(interested, element)

        for source, contact in show:
            self.send_presence(source, contact)

    async def presence_changes(
        self, session: Session, before: UserPrivacy, after: UserPrivacy
    ) -> tuple[list[tuple[Session, str]], list[tuple[Session, str]]]:
        """(source resource, subscriber) pairs whose presence-out the change refuses
        (hide) or allows again (show); only subscribers get presence (RFC 6121 §4.2.2)."""
        sources = [s for s in self.ctx.sessions.of(session.bare) if s.available and s.presence]
        if not sources:
            return [], []
        subscribers = await self.ctx.db.run(store.subscribers, session.user_id)
        hide, show = [], []
        for source in sources:
            was, now = self.list_for(source, before), self.list_for(source, after)
            for contact in subscribers:
                jid = parse_jid(contact)
                refused = before.denies(was, jid, "presence-out")
                if refused != after.denies(now, jid, "presence-out"):
                    (show if refused else hide).append((source, contact))
        return hide, show

    def send_presence(self, source: Session, contact: str, unavailable: bool = False) -> None:
        if unavailable:
            presence = domish.Element((NS_CLIENT, "presence"))
            presence["type"] = "unavailable"
        else:
            presence = clone(source.presence)
        presence["from"] = source.jid.full()
        presence["to"] = contact
        self.ctx.router.deliver(presence)

    def push(self, sessions: list[Session], payload: domish.Element) -> None:
        for session in sessions:
            self.push_seq += 1
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"] = "set"
            iq["id"] = f"privacy-push-{self.push_seq}"
            iq["to"] = session.jid.full()
            iq.addChild(payload)
            session.send(iq)

    # -- XEP-0191: blocking command ------------------------------------------------------

    @iq_get(NS_BLOCKING, "blocklist", to="self")
    async def blocklist(self, event: StanzaEvent) -> domish.Element:
        state: UserPrivacy = await defer.maybeDeferred(self.state_of, event)
        self.wants_blocklist.set(event.origin, True)  # §3.3: it gets the pushes
        element = domish.Element((NS_BLOCKING, "blocklist"))
        for jid in blocked_jids(state.default_list):
            element.addElement("item")["jid"] = jid
        return event.result(element)

    def requested_jids(self, event: StanzaEvent) -> list[str]:
        jids = []
        for item in event.stanza.firstChildElement().elements(NS_BLOCKING, "item"):
            try:
                jids.append(parse_jid(item.getAttribute("jid", "")).full())
            except (InvalidFormat, UnicodeError, ValueError):
                raise StanzaError("jid-malformed") from None  # RFC 6120 §8.3.3.8
        return list(dict.fromkeys(jids))

    @iq_set(NS_BLOCKING, "block", to="self")
    async def block(self, event: StanzaEvent) -> domish.Element:
        state: UserPrivacy = await defer.maybeDeferred(self.state_of, event)
        jids = self.requested_jids(event)
        if not jids:
            raise StanzaError("bad-request", text="block at least one JID")  # §3.3
        current = state.default_list or PrivacyList(self.config.blocklist_name)
        fresh = [j for j in jids if j not in blocked_jids(current)]
        if fresh:
            # §5: blocked items come first; the list's own order follows.
            items = [make_item(self._block_item(j), self.domain) for j in fresh]
            plist = renumber(current.name, items + list(current.items))
            if len(plist.items) > self.config.max_items:
                raise StanzaError("policy-violation", text="blocklist full")
            await self.save(event.origin, state, plist, default=state.default_list is None)
        return event.result()

    @staticmethod
    def _block_item(jid: str) -> domish.Element:
        item = domish.Element((NS_PRIVACY, "item"))
        item.attributes.update(type="jid", value=jid, action="deny", order="0")
        return item

    @iq_set(NS_BLOCKING, "unblock", to="self")
    async def unblock(self, event: StanzaEvent) -> domish.Element:
        state: UserPrivacy = await defer.maybeDeferred(self.state_of, event)
        jids = set(self.requested_jids(event))  # none: unblock everyone (§3.5)
        current = state.default_list
        if current is not None:
            kept = [i for i in current.items if not (is_block(i) and (not jids or i.value in jids))]
            if len(kept) != len(current.items):
                await self.save(event.origin, state, PrivacyList(current.name, tuple(kept)))
        return event.result()


def renumber(name: str, items: list[Item]) -> PrivacyList:
    """``items`` in this order, with orders 1, 2, ... (XEP-0016 §2.6: not fixed)."""
    return PrivacyList(
        name,
        tuple(
            Item(n, i.action, i.type, i.value, i.kinds, i.jid, i.any_user)
            for n, i in enumerate(items, 1)
        ),
    )
