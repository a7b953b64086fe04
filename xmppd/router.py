"""The stanza router: addressing becomes event names; handlers decide.

A stanza from a client session is stamped with the session's full JID (RFC 6120
§8.1.2.1: a wrong client ``from`` is rewritten), classified by its ``to`` and
dispatched as Prosody-style events:

- ``pre-{kind}/{dest}``: from a local client, before routing (filters, copies);
- ``iq-{get|set}/{dest}/{ns}:{name}``: an IQ request to the server (``host``),
  the sender's own account (``self``) or another local account (``bare``);
- ``{kind}/{dest}``: to be handled for its destination; the core's RFC 6121 §8
  delivery (:mod:`xmppd.im.delivery`) sits at ``Priority.DELIVER``.

``kind`` is message, presence or iq; ``dest`` is ``full``, ``bare``, ``host``
or ``self``. Handlers run highest priority first; the first that returns a
value stops (:mod:`xmppd.events`). A returned ``<iq/>`` element is the reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from xmppd.errors import StanzaError
from xmppd.events import EventBus
from xmppd.sessions import Session, SessionDirectory
from xmppd.stanza import bare_jid, parse_jid

NS_CLIENT = "jabber:client"
STANZA_KINDS = frozenset(("message", "presence", "iq"))
IQ_TYPES = frozenset(("get", "set", "result", "error"))
PRESENCE_TYPES = frozenset(
    (
        None,
        "unavailable",
        "subscribe",
        "subscribed",
        "unsubscribe",
        "unsubscribed",
        "probe",
        "error",
    )
)

log = Logger()


class StanzaEvent:
    """What a handler receives: the stanza and its classified addressing."""

    __slots__ = ("name", "stanza", "origin", "sender", "to", "kind", "dest", "recipients")

    def __init__(
        self,
        stanza: domish.Element,
        origin: Session | None,
        sender: JID,
        to: JID,
        kind: str,
        dest: str,
    ) -> None:
        self.name = ""
        self.stanza = stanza
        self.origin = origin  # the local client session it came from, if any
        self.sender = sender
        self.to = to
        self.kind = kind
        self.dest = dest
        self.recipients: list[Any] | None = None  # set by delivery for messages

    @property
    def type(self) -> str | None:
        return self.stanza.getAttribute("type")

    def result(self, payload: domish.Element | None = None) -> domish.Element:
        """The ``<iq type='result'/>`` answering this request (RFC 6120 §8.2.3)."""
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "result"
        iq["id"] = self.stanza.getAttribute("id", "")
        iq["from"] = self.to.full()
        iq["to"] = self.sender.full()
        if payload is not None:
            iq.addChild(payload)
        return iq


def available_resources(router: Router, bare: JID) -> list[Any]:
    return [s for s in router.sessions.of(bare) if s.available]


def message_recipients(router: Router, event: StanzaEvent) -> list[Any]:
    """RFC 6121 §8.5.2.1.1: the sessions a message to a bare JID goes to.

    chat/normal: the available resources with the highest non-negative
    priority (all of them on a tie); headline: every non-negative one.
    """
    candidates = [s for s in available_resources(router, event.to) if s.priority >= 0]
    if not candidates or event.type == "headline":
        return candidates
    top = max(s.priority for s in candidates)
    return [s for s in candidates if s.priority == top]


class Router:
    """Routes stanzas from sessions and from the server itself."""

    def __init__(
        self,
        domain: str,
        sessions: SessionDirectory,
        events: EventBus,
        clock: Any,
        account_exists: Callable[[JID], Any],
    ) -> None:
        self.domain = domain
        self.host = JID(domain)
        self.sessions = sessions
        self.events = events
        self.clock = clock
        self.account_exists = account_exists  # bare JID -> bool | Deferred[bool]
        self._pending_iqs: dict[tuple[str, str], Deferred] = {}
        self._iq_seq = 0

    # -- from clients -------------------------------------------------------

    def receive(self, session: Session, stanza: domish.Element) -> None:
        """A stanza from a bound client session (in order, RFC 6120 §10.1)."""
        session.process_in_order(stanza, lambda s: self._from_client(session, s))

    def _from_client(self, session: Session, stanza: domish.Element) -> Any:
        kind = stanza.name
        stanza["from"] = session.jid.full()  # RFC 6120 §8.1.2.1: the server stamps from
        try:
            to = self._address(stanza, session)
            self._check(kind, stanza)
        except StanzaError as e:
            self._bounce(stanza, e, session)
            return None
        dest = self._classify(kind, to, session.bare, stanza)
        event = StanzaEvent(stanza, session, session.jid, to, kind, dest)
        result = self._fire(f"pre-{kind}/{dest}", event)
        if isinstance(result, Deferred):
            return result.addCallbacks(
                self._after_pre, self._finish, callbackArgs=(event,), errbackArgs=(event,)
            )
        return self._after_pre(result, event)

    def _after_pre(self, result: Any, event: StanzaEvent) -> Any:
        if result is not None:
            return self._finish(result, event)
        return self._dispatch(event)

    def _address(self, stanza: domish.Element, session: Session) -> JID:
        raw = stanza.getAttribute("to")
        if raw is None:
            # RFC 6120 §10.3: no 'to' means the sender's account.
            return session.bare
        try:
            if len(raw) > 3071:
                raise InvalidFormat("too long")
            to = parse_jid(raw)
        except (InvalidFormat, UnicodeError, ValueError) as e:
            raise StanzaError("jid-malformed", text=str(e)) from None  # RFC 6120 §8.3.3.8
        return to

    def _check(self, kind: str, stanza: domish.Element) -> None:
        kind_type = stanza.getAttribute("type")
        if kind == "iq":
            # RFC 6120 §8.2.3: id and type are required; get/set carry one payload.
            if not stanza.getAttribute("id") or kind_type not in IQ_TYPES:
                raise StanzaError("bad-request", text="iq needs an id and a valid type")
            if kind_type in ("get", "set"):
                children = [c for c in stanza.elements()]
                if len(children) != 1:
                    raise StanzaError("bad-request", text="iq get/set needs exactly one child")
        elif kind == "presence" and kind_type not in PRESENCE_TYPES:
            raise StanzaError("bad-request", text="unknown presence type")  # RFC 6121 §4.7.1

    def _classify(self, kind: str, to: JID, own_bare: JID, stanza: domish.Element) -> str:
        if to.host != self.domain:
            return "remote"
        if to.user is None:
            return "host"
        if to.resource is not None:
            return "full"
        if to == own_bare and (
            kind == "iq" or (kind == "presence" and "to" not in stanza.attributes)
        ):
            return "self"
        return "bare"

    def nonza(self, session: Session, element: domish.Element) -> None:
        """A top-level element that is not a stanza (XEP-0198, XEP-0352...):
        fired as ``stanza/{ns}:{name}``; dropped when no plugin takes it."""
        event = StanzaEvent(element, session, session.jid, session.bare, "nonza", "self")
        session.process_in_order(
            element, lambda e: self._finish(self._fire(f"stanza/{e.uri}:{e.name}", event), event)
        )

    # -- from the server ----------------------------------------------------

    def deliver(self, stanza: domish.Element) -> Any:
        """Route a stanza the server (or a plugin) generated; ``from`` must be set."""
        kind = stanza.name
        sender = parse_jid(stanza["from"]) if stanza.getAttribute("from") else self.host
        to = parse_jid(stanza["to"]) if stanza.getAttribute("to") else bare_jid(sender)
        dest = self._classify(kind, to, bare_jid(sender), stanza)
        if dest == "self":
            dest = "bare"
        return self._dispatch(StanzaEvent(stanza, None, sender, to, kind, dest))

    def send_iq(self, session: Session, iq: domish.Element, timeout: float = 30.0) -> Deferred:
        """Send an IQ request from the server to a client; fire with its reply."""
        self._iq_seq += 1
        iq["id"] = iq.getAttribute("id") or f"xmppd-{self._iq_seq}"
        iq["from"] = self.domain
        iq["to"] = session.jid.full()
        key = (session.jid.full(), iq["id"])
        d: Deferred = Deferred(lambda _: self._pending_iqs.pop(key, None))
        self._pending_iqs[key] = d
        d.addTimeout(timeout, self.clock)
        d.addBoth(self._forget_iq, key)
        session.send(iq)
        return d

    def _forget_iq(self, result: Any, key: tuple[str, str]) -> Any:
        self._pending_iqs.pop(key, None)
        return result

    def iq_reply_received(self, event: StanzaEvent) -> bool:
        """A client answered an IQ of :meth:`send_iq`."""
        key = (event.sender.full(), event.stanza.getAttribute("id", ""))
        d = self._pending_iqs.pop(key, None)
        if d is None:
            return False
        d.callback(event.stanza)
        return True

    # -- dispatch -----------------------------------------------------------

    def _dispatch(self, event: StanzaEvent) -> Any:
        kind, dest = event.kind, event.dest
        if kind == "message" and dest == "bare":
            # Known before any handler runs, so observers (carbons) can skip them.
            event.recipients = message_recipients(self, event)
        if kind == "iq" and dest in ("host", "self", "bare") and event.type in ("get", "set"):
            payload = next(event.stanza.elements(), None)
            if payload is not None:
                specific = f"iq-{event.type}/{dest}/{payload.uri}:{payload.name}"
                if self.events.has(specific):
                    result = self._fire(specific, event)
                    if isinstance(result, Deferred):
                        return result.addCallbacks(
                            self._after_specific,
                            self._finish,
                            callbackArgs=(event,),
                            errbackArgs=(event,),
                        )
                    if result is not None:
                        return self._finish(result, event)
        return self._finish(self._fire(f"{kind}/{dest}", event), event)

    def _after_specific(self, result: Any, event: StanzaEvent) -> Any:
        if result is not None:
            return self._finish(result, event)
        return self._finish(self._fire(f"{event.kind}/{event.dest}", event), event)

    def _fire(self, name: str, event: StanzaEvent) -> Any:
        event.name = name
        try:
            return self.events.fire(name, event)
        except Exception:
            return Failure()

    def _finish(self, result: Any, event: StanzaEvent) -> Any:
        if isinstance(result, Deferred):
            return result.addCallbacks(
                self._finish, self._finish, callbackArgs=(event,), errbackArgs=(event,)
            )
        if isinstance(result, Failure):
            if result.check(StanzaError):
                self._bounce(event.stanza, result.value, event.origin)
            else:
                log.failure("handler of {name} failed", result, name=event.name)
                if event.kind == "iq" and event.type in ("get", "set"):
                    self._bounce(event.stanza, StanzaError("internal-server-error"), event.origin)
            return None
        if isinstance(result, domish.Element):
            self._reply(result, event)
        return None

    def _reply(self, reply: domish.Element, event: StanzaEvent) -> None:
        if event.origin is not None and reply.getAttribute("to") == event.origin.jid.full():
            event.origin.send(reply)
        else:
            self.deliver(reply)

    def _bounce(self, stanza: domish.Element, error: StanzaError, origin: Session | None) -> None:
        """Answer ``stanza`` with ``error`` (RFC 6120 §8.3), never an error with an error."""
        if stanza.getAttribute("type") in ("error", "result"):
            return
        reply = error.toResponse(stanza)
        if not reply.getAttribute("from"):
            reply["from"] = self.domain
        if origin is not None and reply.getAttribute("to") in (None, origin.jid.full()):
            reply["to"] = origin.jid.full()
            origin.send(reply)
        else:
            self.deliver(reply)

    def bounce(self, event: StanzaEvent, condition: str, text: str | None = None) -> None:
        """Answer the event's stanza with a stanza error of ``condition``."""
        self._bounce(event.stanza, StanzaError(condition, text=text), event.origin)
