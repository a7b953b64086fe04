"""XEP-0280: Message Carbons (1.0.1), with the urn:xmpp:carbons:rules:0 copying rules.

Takes ``<iq type='set'><enable|disable xmlns='urn:xmpp:carbons:2'/></iq>`` to the
sender's own account (§4, §5) and remembers, per session, whether it wants copies;
the same request to another account is ``not-allowed`` (§5.1).

Copies every eligible message (§6) to the user's other carbons-enabled resources,
wrapped in XEP-0297 ``<forwarded/>`` inside ``<sent/>`` or ``<received/>``, from
the user's bare JID to the resource's full JID (§7, §8):

- ``sent``: a message a local client sends, to every enabled resource of the
  sender but the sending one (whether or not that one enabled carbons, §8);
- ``received``: a message delivered to a local account, to every enabled resource
  that does not get the original under RFC 6121 §8.5 (§7: "MUST NOT send a
  forwarded copy to the client(s) the original message stanza was addressed to").
  A message that reaches no resource goes to offline storage and is not copied.

A message with ``<private xmlns='urn:xmpp:carbons:2'/>`` or an XEP-0334 ``<no-copy/>``
hint is never copied (§9); the recipient gets it without ``<private/>``.

A client may not send carbons itself: a message from a local client with a
``<sent/>`` or ``<received/>`` child in this namespace is refused with
``not-allowed`` before anything routes or stores it (§11: clients check that a
carbon comes from their own bare JID, and CVE-2017-5589 and its siblings were
clients that did not; SECURITY.md H58).

Stores, per session, whether carbons are enabled. Fires no events.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd.plugin import Plugin, PluginContext, Priority, StanzaError, hook, iq_set
from xmppd.router import NS_CLIENT, StanzaEvent, message_recipients
from xmppd.sessions import Session
from xmppd.stanza import bare_jid, clone, first_child

NS_CARBONS = "urn:xmpp:carbons:2"
NS_CARBONS_RULES = "urn:xmpp:carbons:rules:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_CONFERENCE = "jabber:x:conference"
# §6: "payload elements typically used in IM": chat states (XEP-0085),
# delivery receipts (XEP-0184), chat markers (XEP-0333).
IM_PAYLOADS = frozenset(
    ("http://jabber.org/protocol/chatstates", "urn:xmpp:receipts", "urn:xmpp:chat-markers:0")
)


def eligible(stanza: domish.Element, outgoing: bool) -> bool:
    """§6 (urn:xmpp:carbons:rules:0): is this message copied to other resources?"""
    kind = stanza.getAttribute("type", "normal")
    if first_child(stanza, NS_CARBONS, "private") or first_child(stanza, NS_HINTS, "no-copy"):
        return False  # §9; XEP-0334 §4.3
    if kind == "groupchat":
        return False  # §6: "A message of type groupchat SHOULD NOT be carbon-copied"
    muc_user = first_child(stanza, NS_MUC_USER, "x")
    if muc_user is not None and first_child(muc_user, NS_MUC_USER, "invite"):
        return True  # §6: a mediated invitation SHOULD be copied
    if muc_user is not None and not outgoing:
        return False  # §6: a private message from a MUC occupant SHOULD NOT be copied
    if first_child(stanza, NS_CONFERENCE, "x"):
        return True  # §6: a direct invitation (XEP-0249) SHOULD be copied
    if kind == "chat":
        return True
    if kind == "normal" and first_child(stanza, NS_CLIENT, "body"):
        return True
    if any(c.uri in IM_PAYLOADS for c in stanza.elements()):
        return True
    # §6: an error answering an eligible message; messages go to bare JIDs, so
    # an error coming back from a bare JID is the bounce of one (as Prosody).
    sender = stanza.getAttribute("from", "")
    return kind == "error" and not outgoing and "/" not in sender


class Carbons(Plugin):
    name = "carbons"
    implements = ("XEP-0280 1.0.1",)
    features = (NS_CARBONS, NS_CARBONS_RULES)  # §3; rules:0: §6 is followed as written

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.enabled = ctx.session_slot("enabled", False)

    # -- enabling and disabling (§4, §5) ---------------------------------------

    @iq_set(NS_CARBONS, "enable", to="self")
    def enable(self, event: StanzaEvent) -> domish.Element:
        # §10.1: enabling twice is no error; the second one is a no-op.
        self.enabled.set(event.origin, True)
        return event.result()

    @iq_set(NS_CARBONS, "disable", to="self")
    def disable(self, event: StanzaEvent) -> domish.Element:
        self.enabled.set(event.origin, False)
        return event.result()

    @iq_set(NS_CARBONS, "enable", to="bare")
    @iq_set(NS_CARBONS, "disable", to="bare")
    def someone_elses(self, event: StanzaEvent) -> None:
        raise StanzaError("not-allowed")  # §5: "trying to disable another client's Carbons"

    # -- carbons only the server makes (§11) ------------------------------------

    @hook(
        "pre-message/bare",
        "pre-message/full",
        "pre-message/host",
        "pre-message/remote",
        priority=Priority.FILTER,
    )
    def refuse_forged(self, event: StanzaEvent) -> None:
        for name in ("sent", "received"):
            if first_child(event.stanza, NS_CARBONS, name) is not None:
                raise StanzaError("not-allowed", text="only the server sends carbons")

    # -- copies ------------------------------------------------------------------

    @hook("pre-message/bare", "pre-message/full", "pre-message/remote", priority=Priority.OBSERVE)
    def copy_sent(self, event: StanzaEvent) -> None:
        """§8: a local client sent a message; its other enabled resources see it."""
        sender = event.origin
        if sender is None:
            return None
        enabled = [s for s in self.ctx.sessions.of(sender.bare) if self.enabled.get(s)]
        if not enabled or not eligible(event.stanza, outgoing=True):
            return None  # the common case first: nobody asked for copies
        skip = {sender.jid.full()}
        if bare_jid(event.to) == sender.bare:  # to one's own account: the resources
            skip.update(s.jid.full() for s in self.originals(event))  # it reaches have it
        for session in enabled:
            if session.jid.full() not in skip:
                session.send(self.carbon("sent", event, session))
        return None

    @hook("message/bare", "message/full", priority=Priority.OBSERVE)
    def copy_received(self, event: StanzaEvent) -> None:
        """§7: a message for a local account; the resources it does not reach see it."""
        stanza = event.stanza
        private = first_child(stanza, NS_CARBONS, "private")
        if private is not None:
            stanza.children.remove(private)  # §9: "SHOULD remove the <private/> element"
            return None  # §9: never copied
        enabled = [s for s in self.ctx.sessions.of(bare_jid(event.to)) if self.enabled.get(s)]
        if not enabled or not eligible(stanza, outgoing=False):
            return None  # the common case first: nobody asked for copies
        if event.origin is not None and event.origin.bare == bare_jid(event.to):
            return None  # one's own message to oneself: copy_sent made the copies
        # By full JID: another node's sessions (xmppd.cluster) are new objects each time.
        originals = {s.jid.full() for s in self.originals(event)}
        if not originals:
            return None  # RFC 6121 §8.5.2.2: offline storage, or nowhere
        for session in enabled:
            if session.jid.full() not in originals:
                session.send(self.carbon("received", event, session))
        return None

    def originals(self, event: StanzaEvent) -> list[Session]:
        """The sessions RFC 6121 §8.5 delivers this message to (xmppd.im.delivery)."""
        if event.dest == "full":
            target = self.ctx.sessions.get(event.to)
            if target is not None:
                return [target]  # §8.5.3.1
            if event.type not in (None, "normal", "chat"):
                return []  # §8.5.3.2.1: ignored or bounced
        if event.recipients is None:
            event.recipients = message_recipients(self.ctx.router, event)
        return event.recipients  # §8.5.2.1.1, and §8.5.3.2.1: as if to the bare JID

    def carbon(self, direction: str, event: StanzaEvent, session: Session) -> domish.Element:
        """§7, §8: the XEP-0297 wrapper, from the bare JID to the resource."""
        original = clone(event.stanza)
        if not original.getAttribute("to"):
            original["to"] = event.to.full()  # RFC 6120 §10.3: no 'to' meant the account
        wrapper = domish.Element((NS_CLIENT, "message"))
        wrapper["from"] = session.bare.full()
        wrapper["to"] = session.jid.full()
        if original.getAttribute("type"):
            wrapper["type"] = original["type"]  # "SHOULD maintain the same 'type'"
        wrapped = wrapper.addElement((NS_CARBONS, direction))
        wrapped.addElement((NS_FORWARD, "forwarded")).addChild(original)
        return wrapper


__all__ = ["NS_CARBONS", "Carbons", "eligible"]
