"""XEP-0016: Privacy Lists (1.6) and XEP-0191: Blocking Command (1.3), over one store.

Takes ``jabber:iq:privacy`` get/set (names, a list, active, default, edit, remove)
and ``urn:xmpp:blocking`` blocklist/block/unblock, from the user's own sessions.
Stores lists and items (``privacy_lists``, ``privacy_items``), cached in memory per
user for routing: always for users with a session here, the rest in a bounded LRU.
Sends privacy list pushes (XEP-0016 §2.2 rule 10) to every resource, block / unblock
pushes (XEP-0191 §3.3, §3.4) to the resources that asked for the blocklist, and the
user's unavailable (or, unblocked, current) presence to subscribers a change hides from.

Blocking view (XEP-0191 §5): the blocklist is the ``jid``/``deny`` items with no child
element of the user's *default* list. Blocking creates that list (``blocklist_name``)
when the user has no default list, and puts new items first.

Enforcement, at ``Priority.FILTER``:

- inbound to a user (message, iq, presence-in; §2.9-§2.12): the target session's list
  (its active one, else the default one); the account's default list when the stanza
  is for the account itself or nobody is online (§2.2 rules 1-2). Refused messages and
  IQ get/set are answered ``service-unavailable``; presence is dropped silently (§2.14);
- outbound from a user: an item with no child element refuses everything both ways
  (§2.13), answered ``not-acceptable`` with XEP-0191's ``<blocked/>`` (§3.3);
  ``presence-out`` items drop the user's presence notifications to that JID (§2.11);
- per session, an outgoing filter applies that session's list to whatever reaches it,
  so a session's active list never affects another one (§2.2 rule 1).

The hosted services' SDK (SDK-CONTRACT §4.7) never sends ``<active/>``: a newly set
default list applies at once to every session without an active list. Its
``muc.{domain}/{user_id}`` items match that user in every room (``lists.jid_matches``).
Other plugins (MUC) ask :meth:`Privacy.is_blocked`.

Layout: this module keeps the cache; ``routing.py`` the checks above; ``commands.py``
the IQ handlers and pushes; ``lists.py`` items and matching; ``store.py`` the SQL.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID

from plugins.privacy import store
from plugins.privacy.commands import Commands
from plugins.privacy.lists import NS_BLOCKING, NS_PRIVACY, PrivacyList
from plugins.privacy.routing import Routing
from plugins.privacy.store import NOTHING, UserPrivacy
from plugins.privacy.tables import privacy_items, privacy_lists
from xmppd.accounts import parse_localpart
from xmppd.config import opt
from xmppd.plugin import Plugin, PluginContext, Priority, hook
from xmppd.sessions import Session
from xmppd.stanza import parse_jid


class Privacy(Routing, Commands, Plugin):
    """Privacy lists and blocking; fires no events."""

    name = "privacy"
    implements = ("XEP-0016 1.6", "XEP-0191 1.3")
    features = (NS_PRIVACY, NS_BLOCKING)
    tables = (privacy_lists, privacy_items)
    migrations = "migrations"

    @dataclass(frozen=True)
    class Config:
        max_lists: int = opt(20, "Most privacy lists one user may keep.", min=1, max=1000)
        max_items: int = opt(
            500, "Most items in one privacy list (the blocklist included).", min=1, max=100000
        )
        cache_users: int = opt(
            10000, "Users whose lists stay in memory besides those online here.", min=0
        )
        blocklist_name: str = opt(
            "blocklist", "Name of the default list created by the first XEP-0191 block."
        )
        default_in_use_conflict: bool = opt(
            True,
            "Refuse to change or decline the default list while another resource of the "
            "user uses it (XEP-0016 §2.5 'conflict').",
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: Privacy.Config = ctx.config
        self.domain = ctx.domain
        self.cache: OrderedDict[int, UserPrivacy] = OrderedDict()  # user id -> lists
        self.loading: dict[int, list[defer.Deferred]] = {}  # user id -> waiting for a load
        self.bound: dict[int, int] = {}  # user id -> sessions on this node
        self.active = ctx.session_slot("active")  # the session's active list name (§2.4)
        self.wants_blocklist = ctx.session_slot("blocklist", False)  # XEP-0191 §3.2
        self.push_seq = 0

    # -- the cache ---------------------------------------------------------------

    def user_of(self, jid: JID) -> int | None:
        """The user id of a local account's JID; None for anything else."""
        if jid.host != self.domain or not jid.user:
            return None
        ids = parse_localpart(jid.user)
        return ids[0] if ids else None

    def lists_of(self, user_id: int) -> UserPrivacy | defer.Deferred:
        """The user's lists: at once when cached, else a Deferred (one load at a time)."""
        found = self.cache.get(user_id)
        if found is not None:
            self.cache.move_to_end(user_id)
            return found
        waiters = self.loading.get(user_id)
        if waiters is None:
            waiters = self.loading[user_id] = []
            self.ctx.db.run(store.load, user_id, self.domain).addBoth(self._loaded, user_id)
        waiter: defer.Deferred = defer.Deferred()
        waiters.append(waiter)
        return waiter

    def _loaded(self, result: Any, user_id: int) -> None:
        if isinstance(result, UserPrivacy) and user_id not in self.cache:
            self.remember(user_id, result)  # (a write meanwhile already set a newer one)
        state = self.cache.get(user_id, result)
        for waiter in self.loading.pop(user_id, []):
            if isinstance(result, UserPrivacy):
                waiter.callback(state)
            else:
                waiter.errback(result)

    def remember(self, user_id: int, state: UserPrivacy) -> None:
        self.cache[user_id] = state
        self.cache.move_to_end(user_id)
        excess = len(self.cache) - len(self.bound) - self.config.cache_users
        if excess <= 0:
            return
        for old in list(self.cache)[:-1]:  # least recently used first
            if excess <= 0:
                break
            if old not in self.bound:  # users online here always stay
                del self.cache[old]
                excess -= 1

    def with_lists(self, jid: JID, decide: Any) -> Any:
        """``decide(state)`` for the local account of ``jid``, now or once loaded."""
        user_id = self.user_of(jid)
        if user_id is None:
            return decide(NOTHING)
        state = self.lists_of(user_id)
        if isinstance(state, defer.Deferred):
            return state.addCallback(decide)
        return decide(state)

    @hook("session-bound")
    def session_bound(self, session: Session) -> Any:
        session.add_filter(lambda stanza: self.keep(session, stanza), Priority.FILTER)
        user_id = session.user_id
        if user_id is None:
            return None
        self.bound[user_id] = self.bound.get(user_id, 0) + 1
        if user_id not in self.cache:
            return self.lists_of(user_id).addCallback(lambda _: None)
        return None

    @hook("session-closed")
    def session_closed(self, session: Session) -> None:
        user_id = session.user_id
        if user_id in self.bound:
            self.bound[user_id] -= 1
            if not self.bound[user_id]:
                del self.bound[user_id]

    @hook("user-deleted")
    def user_deleted(self, user_id: int) -> None:
        self.cache.pop(user_id, None)

    def list_for(self, session: Session | None, state: UserPrivacy) -> PrivacyList | None:
        """§2.2 rules 1-2: the session's active list, else the default list."""
        if session is not None:
            name = self.active.get(session)
            if name is not None and name in state.lists:
                return state.lists[name]
        return state.default_list

    # -- the check other plugins call --------------------------------------------------

    def is_blocked(self, user_bare: JID | str, sender_jid: JID | str, kind: str) -> Any:
        """Whether ``user_bare``'s default list refuses ``kind`` ('message', 'iq',
        'presence-in', 'presence-out') from or to ``sender_jid``. A bool, or a
        Deferred firing with one when the user's lists are not in memory. For a MUC
        plugin: a blocker receives no groupchat message from a user he blocked."""
        user = parse_jid(user_bare) if isinstance(user_bare, str) else user_bare
        other = parse_jid(sender_jid) if isinstance(sender_jid, str) else sender_jid
        if other.userhost() == user.userhost():
            return False  # §2.1 note: never between one's own resources

        def decide(state: UserPrivacy) -> bool:
            return state.denies(state.default_list, other, kind)

        return self.with_lists(user, decide)
