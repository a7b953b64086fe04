"""XEP-0012: Last Activity (2.0), and ConnectyCube's last-activity status streaming.

Takes ``<iq type='get'><query xmlns='jabber:iq:last'/></iq>``:

- to the server: its uptime (§5);
- to a user's bare JID (or one's own): ``seconds='0'`` while the user has an available
  resource (§3), else the seconds since the last one went, with the status text of
  its unavailable presence; no record (never logged out, or no such account) is
  ``service-unavailable``, as for a blocked requester (SECURITY H53);
- to a full JID, answered on the resource's behalf (``answer_for_resources``): its
  idle time (§4), the seconds since it last sent a message or a presence of its own.
  Keep-alives and IQs are not activity (§7: "the time since the resource was last
  active"), so ``Session.last_received`` is not used.

Who may ask (§3, §8): anyone in the domain unless the user's privacy lists refuse
them presence (``presence-out``: ``forbidden``; lists refusing IQs answer first, with
``service-unavailable``, XEP-0016 §2.14). XEP-0012 says a server MUST require a presence
subscription; the hosted services' SDKs have no roster (SDK-CONTRACT §4.4), so that is
``require_subscription``, off by default.

Status streaming (SDK-CONTRACT §4.8): ``<iq type='set'><subscribe
xmlns='https://connectycube.com/protocol/status_streaming' user_jid='...'
enable='true|false'/></iq>`` watches a user of the same application for the rest of the
session (at most ``max_watched``); when the user's first resource becomes available,
or the last one goes, the session gets ``<iq type='result' from='{user}' id='...'>
<query xmlns='jabber:iq:last' seconds='N'/></iq>``: 0 online, else the seconds since
logout, at least 1 (0 means online).

Stores, per user, the time and status of the last logout (``last_activity_logouts``),
written when the last available resource goes (also at shutdown), so it survives restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from plugins.last_activity.tables import last_activity_logouts
from xmppd.accounts import parse_localpart
from xmppd.config import opt
from xmppd.im.roster_store import get_item
from xmppd.plugin import Plugin, PluginContext, Priority, StanzaError, hook, iq_get, iq_set
from xmppd.router import NS_CLIENT, StanzaEvent
from xmppd.sessions import Session
from xmppd.stanza import bare_jid, parse_jid

NS_LAST = "jabber:iq:last"
NS_STATUS = "https://connectycube.com/protocol/status_streaming"
MAX_STATUS = 1024  # characters of <status/> kept


def write_logout(conn: Any, user_id: int, at: int, status: str | None) -> None:
    values = dict(logout_at=at, status=status)
    t = last_activity_logouts
    if not conn.execute(update(t).where(t.c.user_id == user_id).values(values)).rowcount:
        conn.execute(insert(t).values(user_id=user_id, **values))


def read_logout(conn: Any, user_id: int) -> tuple[int, str | None] | None:
    t = last_activity_logouts
    row = conn.execute(select(t.c.logout_at, t.c.status).where(t.c.user_id == user_id)).first()
    return (row.logout_at, row.status) if row else None


def subscribed(conn: Any, user_id: int, contact: str) -> bool:
    """RFC 6121 §2.1.2.5: does ``contact`` receive the user's presence?"""
    item = get_item(conn, user_id, contact, lock=False)
    return item is not None and item.from_


def last_query(seconds: int, status: str | None = None) -> domish.Element:
    query = domish.Element((NS_LAST, "query"))
    query["seconds"] = str(max(0, int(seconds)))
    if status:
        query.addContent(status)
    return query


class LastActivity(Plugin):
    """Last activity and status streaming; fires no events."""

    name = "last_activity"
    implements = ("XEP-0012 2.0", "ConnectyCube status streaming")
    features = (NS_LAST, NS_STATUS)
    depends = ("privacy",)  # whom a user refuses presence to may not ask (§8)
    tables = (last_activity_logouts,)
    migrations = "migrations"

    @dataclass(frozen=True)
    class Config:
        require_subscription: bool = opt(
            False,
            "Answer only contacts subscribed to the user's presence (XEP-0012 §3 says "
            "MUST; the hosted services' SDKs have no roster, hence off).",
        )
        answer_for_resources: bool = opt(
            True,
            "Answer a query to a full JID with that resource's idle time (XEP-0012 §4) "
            "instead of passing it to the client.",
        )
        max_watched: int = opt(
            100, "Most users one session may watch through status streaming.", min=0
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: LastActivity.Config = ctx.config
        self.privacy = ctx.plugin("privacy")
        self.started = ctx.clock.seconds()
        self.active_at = ctx.session_slot("active_at", 0.0)  # last message or own presence
        self.status = ctx.session_slot("status")  # <status/> of its unavailable presence
        self.recorded = ctx.session_slot("recorded", False)  # its logout is written
        self.watching = ctx.session_slot("watching")  # bare JIDs this session watches
        self.watchers: dict[str, set[Session]] = {}  # bare JID -> sessions watching it
        self.unwritten: dict[int, tuple[int, str | None]] = {}  # logouts being written
        self.writes: set[defer.Deferred] = set()
        self.push_seq = 0

    def start(self) -> None:
        self.started = self.ctx.clock.seconds()

    def stop(self) -> Any:
        for session in self.ctx.sessions.local():  # shutting down: everyone logs out now
            if session.available and not self.recorded.get(session):
                self.record_logout(session)
        return defer.DeferredList(list(self.writes), consumeErrors=True)

    def now(self) -> int:
        return int(self.ctx.clock.seconds())

    # -- activity and logouts ----------------------------------------------------------

    @hook("session-bound")
    def session_bound(self, session: Session) -> None:
        self.active_at.set(session, self.ctx.clock.seconds())

    @hook(
        "pre-message/full",
        "pre-message/bare",
        "pre-message/host",
        "pre-message/remote",
        "pre-presence/self",
        priority=Priority.FILTER + 1,  # before any filter stops it: trying is activity too
    )
    def activity(self, event: StanzaEvent) -> None:
        session = event.origin
        if session is None:
            return
        self.active_at.set(session, self.ctx.clock.seconds())
        if event.kind == "presence" and event.type == "unavailable":
            status = next(event.stanza.elements(event.stanza.uri, "status"), None)
            self.status.set(session, str(status)[:MAX_STATUS] if status is not None else None)

    def online(self, bare: JID | str, but: Session | None = None) -> bool:
        return any(s.available and s is not but for s in self.ctx.sessions.of(bare))

    @hook("session-available")
    def came_online(self, session: Session) -> None:
        self.recorded.set(session, False)
        self.status.set(session, None)
        if not self.online(session.bare, but=session):
            self.notify(session.bare.userhost(), 0)

    @hook("session-unavailable")
    def went_offline(self, session: Session) -> None:
        if not self.online(session.bare, but=session):
            self.record_logout(session)
            self.notify(session.bare.userhost(), 1)

    @hook("session-closed")
    def session_closed(self, session: Session) -> None:
        for bare in self.watching.get(session) or ():
            self.unwatch(session, bare)
        # A session that never sent presence logs out too.
        if not self.recorded.get(session) and not self.online(session.bare, but=session):
            self.record_logout(session)

    def unwatch(self, session: Session, bare: str) -> None:
        watchers = self.watchers.get(bare)
        if watchers is not None:
            watchers.discard(session)
            if not watchers:
                del self.watchers[bare]

    def record_logout(self, session: Session) -> None:
        self.recorded.set(session, True)
        if session.user_id is None:
            return
        user_id, entry = session.user_id, (self.now(), self.status.get(session))
        self.unwritten[user_id] = entry
        d = self.ctx.db.run(write_logout, user_id, *entry)
        self.writes.add(d)

        def written(result: Any) -> None:
            self.writes.discard(d)
            if self.unwritten.get(user_id) == entry:
                del self.unwritten[user_id]
            if isinstance(result, Failure):
                self.ctx.log.failure("last logout not stored", result)

        d.addBoth(written)

    # -- who may know -------------------------------------------------------------------

    def may_see(self, user: JID, requester: JID) -> defer.Deferred:
        """§8 (XEP-0016/0191 restricted) and, if configured, a subscription (§3)."""
        if requester.userhost() == user.userhost():
            return defer.succeed(True)
        blocked = defer.maybeDeferred(self.privacy.is_blocked, user, requester, "presence-out")

        def then(refused: bool) -> Any:
            if refused:
                return False
            if not self.config.require_subscription:
                return True
            user_id = self.user_id(user)
            if user_id is None:
                return False
            return self.ctx.db.run(subscribed, user_id, requester.userhost())

        return blocked.addCallback(then)

    def user_id(self, jid: JID) -> int | None:
        ids = parse_localpart(jid.user) if jid.host == self.ctx.domain and jid.user else None
        return ids[0] if ids else None

    # -- queries --------------------------------------------------------------------------

    @iq_get(NS_LAST, "query", to="host")
    def uptime(self, event: StanzaEvent) -> domish.Element:
        # §5: "The seconds attribute is how long the host has been up."
        return event.result(last_query(self.ctx.clock.seconds() - self.started))

    @iq_get(NS_LAST, "query", to="bare")
    @iq_get(NS_LAST, "query", to="self")
    async def last_logout(self, event: StanzaEvent) -> domish.Element:
        user = bare_jid(event.to)
        user_id = self.user_id(user)
        if user_id is None or not await self.may_see(user, event.sender):
            raise StanzaError("service-unavailable" if user_id is None else "forbidden")
        if self.online(user):
            return event.result(last_query(0))  # §3: an available resource: 0
        found = self.unwritten.get(user_id) or await self.ctx.db.run(read_logout, user_id)
        if found is None:
            raise StanzaError("service-unavailable")  # H53: as for no such account
        at, status = found
        return event.result(last_query(self.now() - at, status))

    @hook("iq/full")
    def idle_time(self, event: StanzaEvent) -> Any:
        """§4: a full JID's idle time, answered for the resource."""
        payload = event.stanza.firstChildElement()
        if (
            not self.config.answer_for_resources
            or event.type != "get"
            or payload is None
            or (payload.uri, payload.name) != (NS_LAST, "query")
        ):
            return None
        session = self.ctx.sessions.get(event.to)
        if session is None:
            return None  # RFC 6121 §8.5.3.2.3, by the core

        def answer(allowed: bool) -> domish.Element:
            if not allowed:
                raise StanzaError("forbidden")
            return event.result(last_query(self.ctx.clock.seconds() - self.active_at.get(session)))

        return self.may_see(bare_jid(event.to), event.sender).addCallback(answer)

    # -- status streaming (ConnectyCube) ----------------------------------------------

    @iq_set(NS_STATUS, "subscribe", to="self")
    async def subscribe(self, event: StanzaEvent) -> domish.Element:
        session, request = event.origin, event.stanza.firstChildElement()
        if session is None:
            raise StanzaError("forbidden")
        try:
            user = bare_jid(parse_jid(request.getAttribute("user_jid", "")))
        except (InvalidFormat, UnicodeError, ValueError):
            raise StanzaError("jid-malformed") from None  # RFC 6120 §8.3.3.8
        enable = request.getAttribute("enable", "true").lower()
        if enable not in ("true", "false", "1", "0"):
            raise StanzaError("bad-request", text="enable is true or false")
        ids = parse_localpart(user.user) if user.host == self.ctx.domain and user.user else None
        if ids is None or ids[1] != session.app_id:
            raise StanzaError("forbidden", text="only users of the same application")
        bare = user.userhost()
        watching: set[str] = self.watching.get(session) or set()
        if enable in ("false", "0"):
            watching.discard(bare)
            self.unwatch(session, bare)
            return event.result()
        if bare not in watching and len(watching) >= self.config.max_watched:
            raise StanzaError("policy-violation", text="watching too many users")
        if not await self.may_see(user, session.jid):
            raise StanzaError("forbidden")
        watching.add(bare)
        self.watching.set(session, watching)
        self.watchers.setdefault(bare, set()).add(session)
        return event.result()

    def notify(self, bare: str, seconds: int) -> None:
        for session in list(self.watchers.get(bare, ())):
            allowed = self.may_see(parse_jid(bare), session.jid)
            allowed.addCallback(self._push, session, bare, seconds)
            allowed.addErrback(lambda f: self.ctx.log.failure("status push failed", f))

    def _push(self, allowed: bool, session: Session, bare: str, seconds: int) -> None:
        if not allowed or session.closed:
            return
        self.push_seq += 1
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "result"  # SDK-CONTRACT §4.8: any IQ with 'from' and a <query/>
        iq["id"] = f"status-{self.push_seq}"
        iq["from"] = bare
        iq["to"] = session.jid.full()
        iq.addChild(last_query(seconds))
        session.send(iq)
