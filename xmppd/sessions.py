"""Bound resources (RFC 6120 §7) and the directory that finds them.

A :class:`Session` is one bound resource on this node. The
:class:`SessionDirectory` answers "which resources does this account have?"
for the router; it keeps this node's sessions and asks the cluster fan-out
(:mod:`xmppd.cluster`) for resources on other nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

if TYPE_CHECKING:
    from xmppd.cluster import FanOut


OutgoingFilter = Callable[[domish.Element], "domish.Element | None"]


class Stream(Protocol):
    """What a session needs from its transport (c2s TCP now; WebSocket, BOSH later)."""

    peer_address: str

    def send(self, element: domish.Element) -> None: ...

    def close_with_error(self, condition: str, text: str | None = None) -> None: ...


class Session:
    """One bound resource of an account."""

    __slots__ = (
        "jid",
        "bare",
        "user_id",
        "app_id",
        "stream",
        "available",
        "priority",
        "presence",
        "interested",
        "directed",
        "slots",
        "filters",
        "_inbox",
        "_busy",
        "closed",
        "last_received",
        "__weakref__",
    )

    def __init__(self, jid: JID, stream: Stream, user_id: int | None, app_id: int | None) -> None:
        self.jid = jid
        self.bare = jid.userhostJID()
        self.user_id = user_id
        self.app_id = app_id
        self.stream = stream
        self.available = False  # sent initial presence (RFC 6121 §4.2)
        self.priority = 0
        self.presence: domish.Element | None = None  # last broadcast presence
        self.interested = False  # requested the roster (RFC 6121 §2.1.6)
        self.directed: set[str] = set()  # full JIDs sent directed presence (§4.6)
        self.slots: dict[str, Any] = {}  # plugin state (xmppd.plugin.SessionSlot)
        self.filters: list[tuple[int, OutgoingFilter]] = []  # highest priority first
        self._inbox: list[domish.Element] = []
        self._busy = False
        self.closed = False
        self.last_received = 0.0  # clock time of the last bytes from the client

    def __repr__(self) -> str:
        return f"<Session {self.jid.full()}>"

    @property
    def peer_address(self) -> str:
        return self.stream.peer_address

    def send(self, element: domish.Element) -> None:
        """Send a stanza to this client through its outgoing filters."""
        if self.closed:
            return
        for _, keep in self.filters:
            element = keep(element)
            if element is None:
                return
        self.stream.send(element)

    def add_filter(self, keep: OutgoingFilter, priority: int = 0) -> None:
        """Run ``keep(stanza)`` on every stanza sent to this client; it returns
        the stanza to send (the same or another) or ``None`` to hold it back.
        Higher priorities run first (privacy lists before client state)."""
        self.filters.append((priority, keep))
        self.filters.sort(key=lambda entry: -entry[0])

    def remove_filter(self, keep: OutgoingFilter) -> None:
        self.filters = [entry for entry in self.filters if entry[1] != keep]

    def close(self, condition: str, text: str | None = None) -> None:
        """End the stream with a stream error (RFC 6120 §4.9)."""
        if not self.closed:
            self.stream.close_with_error(condition, text)

    def process_in_order(
        self, stanza: domish.Element, process: Callable[[domish.Element], Any]
    ) -> None:
        """RFC 6120 §10.1: a session's stanzas are handled one after another,
        even when a handler waits on the database."""
        if self._busy:
            self._inbox.append(stanza)
            return
        self._busy = True
        while True:
            result = process(stanza)
            if hasattr(result, "addBoth"):
                result.addBoth(self._resume, process)
                return
            if not self._inbox:
                self._busy = False
                return
            stanza = self._inbox.pop(0)

    def _resume(self, _: Any, process: Callable[[domish.Element], Any]) -> None:
        if self._inbox and not self.closed:
            stanza = self._inbox.pop(0)
            self._busy = False
            self.process_in_order(stanza, process)
        else:
            self._inbox.clear()
            self._busy = False


class SessionDirectory:
    """Every bound resource, by bare JID: this node's, and other nodes' via the fan-out."""

    def __init__(self, fanout: FanOut) -> None:
        self._by_bare: dict[str, dict[str, Session]] = {}
        self.fanout = fanout

    def add(self, session: Session) -> Session | None:
        """Register ``session``; return the session it replaces (same full JID)."""
        resources = self._by_bare.setdefault(session.bare.userhost(), {})
        old = resources.get(session.jid.resource)
        resources[session.jid.resource] = session
        self.fanout.publish(session)
        return old

    def remove(self, session: Session) -> None:
        bare = session.bare.userhost()
        resources = self._by_bare.get(bare)
        if resources and resources.get(session.jid.resource) is session:
            del resources[session.jid.resource]
            if not resources:
                del self._by_bare[bare]
            self.fanout.withdraw(session)

    def of(self, bare: JID | str) -> list[Session]:
        """All resources of an account, on every node."""
        key = bare if isinstance(bare, str) else bare.userhost()
        local = self._by_bare.get(key)
        found = list(local.values()) if local else []
        remote = self.fanout.remote_sessions(key)
        return found + remote if remote else found

    def get(self, full: JID) -> Session | None:
        local = self._by_bare.get(full.userhost())
        if local is not None:
            session = local.get(full.resource)
            if session is not None:
                return session
        for session in self.fanout.remote_sessions(full.userhost()):
            if session.jid.resource == full.resource:
                return session
        return None

    def count(self, bare: JID | str) -> int:
        key = bare if isinstance(bare, str) else bare.userhost()
        return len(self._by_bare.get(key, ()))

    def local(self) -> Iterator[Session]:
        for resources in list(self._by_bare.values()):
            yield from list(resources.values())

    def __len__(self) -> int:
        return sum(len(r) for r in self._by_bare.values())
