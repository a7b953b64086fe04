"""XEP-0352: Client State Indication (1.0.0), and Tigase's mobile optimisations v2.

Protocol. Offers ``<csi xmlns='urn:xmpp:csi:0'/>`` in the stream features of an
authenticated stream (§4.1) and takes the ``<inactive/>`` and ``<active/>`` nonzas
(§4.2; no reply). Every stream starts active (§5). COMPAT: the ConnectyCube SDK's
``markInactive()``/``markActive()`` send Tigase's
``<iq type='set'><mobile xmlns='http://tigase.org/protocol/mobile#v2' enable='true|false'/></iq>``
with no ``to``; ``enable='true'`` (or ``1``) turns Tigase's optimisations on, which
is the app going to the background: inactive. ``false`` (or ``0``) is active; the
answer is an empty result, anything else is ``bad-request``. Tigase's feature
element is offered beside CSI's.

Policy (what §3.2 leaves to the server). While a session is inactive, an outgoing
filter at ``Priority.OBSERVE`` (after privacy lists at ``FILTER``) holds back:

- presence updates (available, unavailable) from others, only the latest per
  sender full JID ("push the latest presence from each contact", §3.2);
- messages that carry only XEP-0085 chat states, also inside a carbon.

Anything else (a message with a body, a marker, an IQ, a subscription request,
the client's own presence) goes out at once, after everything held, so that a
contact's "composing" never arrives after the message it announced (RFC 6120
§10.1 keeps one sender's stanzas in order). Becoming active sends what was held,
in order, before the next stanza from the client is handled (§5.1). More than
``max_held`` held stanzas are all sent (SECURITY.md: every queue has a cap).

Stores, per session, the held stanzas (slot ``csi.state``; gone with the session:
the state "is not restored when the stream is resumed", 0.2.1). Other plugins
(push notifications) read :meth:`ClientState.is_inactive` through
``ctx.plugin("csi")``. Fires ``csi/inactive`` and ``csi/active`` (all handlers
run) with the session when its state changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from twisted.words.xish import domish

from xmppd.config import opt
from xmppd.plugin import Plugin, PluginContext, Priority, StanzaError, hook, iq_set
from xmppd.router import NS_CLIENT, StanzaEvent
from xmppd.sessions import Session

NS_CSI = "urn:xmpp:csi:0"
NS_MOBILE = "http://tigase.org/protocol/mobile#v2"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
# What may ride along a chat state without making the message worth a wake-up.
INCIDENTAL = frozenset(("urn:xmpp:hints", "urn:xmpp:delay", "urn:xmpp:sid:0"))
INCIDENTAL_CLIENT = frozenset(("thread", "extraParams"))  # RFC 6121 §5.2.5; SDK-CONTRACT §4.5


@dataclass
class Inactive:
    """An inactive session: its filter and what it holds back, oldest first."""

    keep: Callable[[domish.Element], domish.Element | None]
    held: dict[object, domish.Element] = field(default_factory=dict)


def only_chat_states(message: domish.Element) -> bool:
    """XEP-0085: a message whose payload is a chat state notification and no more."""
    for wrapper in ("sent", "received"):  # a carbon (XEP-0280 §7, §8): look inside
        carbon = next(message.elements(NS_CARBONS, wrapper), None)
        if carbon is not None:
            forwarded = next(carbon.elements(NS_FORWARD, "forwarded"), None)
            inner = forwarded and next(forwarded.elements(NS_CLIENT, "message"), None)
            return inner is not None and only_chat_states(inner)
    if message.getAttribute("type") == "error":
        return False
    states = 0
    for element in message.elements():
        if element.uri == NS_CHATSTATES:
            states += 1
        elif element.uri in INCIDENTAL or (
            element.uri == NS_CLIENT and element.name in INCIDENTAL_CLIENT
        ):
            continue
        else:
            return False  # a body, a subject, a marker, a receipt, ...
    return states > 0


class ClientState(Plugin):
    name = "csi"
    implements = ("XEP-0352 1.0.0",)  # COMPAT: and Tigase mobile#v2 (ConnectyCube SDK)

    @dataclass(frozen=True)
    class Config:
        hold_presence: bool = opt(
            True, "Hold back presence updates for an inactive client (the latest per contact)."
        )
        hold_chat_states: bool = opt(
            True, "Hold back messages carrying only chat states (XEP-0085) for an inactive client."
        )
        max_held: int = opt(
            1000, "Most stanzas held for one inactive client; one more sends them all.", min=1
        )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: ClientState.Config = ctx.config
        self.state = ctx.session_slot("state")  # an Inactive, or None when active
        self.serial = count()  # keys for held stanzas nothing replaces

    def is_inactive(self, session: Session) -> bool:
        """Whether the client said it is not being used (for push notifications)."""
        return self.state.get(session) is not None

    # -- protocol: the feature, the nonzas, the mobile IQ ------------------------

    @hook("stream-features")
    def offer(self, stream: object) -> list[domish.Element]:
        return [domish.Element((NS_CSI, "csi")), domish.Element((NS_MOBILE, "mobile"))]

    @hook(f"stanza/{NS_CSI}:inactive")
    def inactive(self, event: StanzaEvent) -> bool:
        self.become_inactive(event.origin)
        return True  # §4.2: "There is no reply from the server"

    @hook(f"stanza/{NS_CSI}:active")
    def active(self, event: StanzaEvent) -> bool:
        self.become_active(event.origin)
        return True

    @iq_set(NS_MOBILE, "mobile", to="self")
    def mobile(self, event: StanzaEvent) -> domish.Element:
        enable = event.stanza.firstChildElement().getAttribute("enable")
        if enable in ("true", "1"):
            self.become_inactive(event.origin)
        elif enable in ("false", "0"):
            self.become_active(event.origin)  # flushes before the result goes out
        else:
            raise StanzaError("bad-request", text="enable must be true or false")
        return event.result()

    def become_inactive(self, session: Session) -> None:
        if self.state.get(session) is not None:
            return
        state = Inactive(keep=lambda stanza: self.hold(session, state, stanza))
        self.state.set(session, state)
        session.add_filter(state.keep, Priority.OBSERVE)
        self.ctx.events.fire_all("csi/inactive", session)

    def become_active(self, session: Session) -> None:
        state = self.state.get(session)
        if state is None:
            return
        session.remove_filter(state.keep)
        self.state.set(session, None)
        self.flush(session, state)  # §5.1: before the client's next stanza is handled
        self.ctx.events.fire_all("csi/active", session)

    # -- policy: what an inactive client is not sent yet --------------------------

    def hold(
        self, session: Session, state: Inactive, stanza: domish.Element
    ) -> domish.Element | None:
        key = self.held_as(session, stanza)
        if key is None:
            self.flush(session, state)  # what was held first, then this one
            return stanza
        state.held.pop(key, None)  # the latest presence goes to the end of the line
        state.held[key] = stanza
        if len(state.held) > self.config.max_held:
            self.flush(session, state)
        return None

    def held_as(self, session: Session, stanza: domish.Element) -> object | None:
        """The key a held stanza is kept under (a later one replaces it), or None."""
        if stanza.name == "presence" and self.config.hold_presence:
            sender = stanza.getAttribute("from")
            if (
                stanza.getAttribute("type") in (None, "unavailable")
                and sender != session.jid.full()
            ):
                return ("presence", sender)
        if stanza.name == "message" and self.config.hold_chat_states and only_chat_states(stanza):
            return next(self.serial)
        return None

    def flush(self, session: Session, state: Inactive) -> None:
        held, state.held = state.held, {}
        if session.closed:
            return
        for stanza in held.values():
            session.stream.send(stanza)  # past the filters: they already ran (docs/plugins.md)


__all__ = ["NS_CSI", "NS_MOBILE", "ClientState"]
