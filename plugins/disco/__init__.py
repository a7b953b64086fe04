"""XEP-0030: Service Discovery (2.5rc3).

Takes ``disco#info`` and ``disco#items`` queries (``<iq type='get'>``) to the
server and to local accounts, and answers:

- to the server: identity ``server/im`` and the ``features`` and
  ``identities`` every loaded plugin declares, so no plugin calls this one to
  be advertised; items: none of its own;
- to the sender's own account (on its behalf, §3.1, §4.1): identity
  ``account/registered``; items: its available resources;
- to another account: ``service-unavailable`` for info and an empty item list,
  whether or not the account exists (§8), so nothing leaks.

Other plugins add to the server's and the account's answers at run time
through two events; every handler runs (no stop rule) and is given a
:class:`DiscoQuery`. A handler returns ``None`` when the query is not its own:

``disco-info``
    an iterable of feature strings, :class:`~xmppd.plugin.Identity` values and
    ``domish.Element`` extension forms (XEP-0128);
``disco-items``
    an iterable of ``(jid, name | None, node | None)``, ``jid`` a string.

A query for a ``node`` that no handler answers gets ``item-not-found`` (§7).
Stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppd.plugin import Identity, Plugin, StanzaError, iq_get
from xmppd.router import StanzaEvent

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"

ACCOUNT = Identity("account", "registered")


@dataclass(frozen=True)
class DiscoQuery:
    """What ``disco-info`` and ``disco-items`` handlers are given."""

    sender: JID  # who asks (a full JID)
    to: JID  # the server, or the sender's own bare JID
    dest: str  # "host" or "self"
    node: str | None


class Disco(Plugin):
    name = "disco"
    implements = ("XEP-0030 2.5rc3",)
    features = (NS_INFO, NS_ITEMS)
    identities = (Identity("server", "im", "xmppd"),)

    # -- disco#info (§3) ------------------------------------------------------

    @iq_get(NS_INFO, "query", to="host")
    def server_info(self, event: StanzaEvent) -> domish.Element:
        return self.info(event, self.ctx.identities(), self.ctx.features())

    @iq_get(NS_INFO, "query", to="self")
    def account_info(self, event: StanzaEvent) -> domish.Element:
        # §3.1: "the server itself MUST reply on behalf of the hosted account"
        return self.info(event, [ACCOUNT], [NS_INFO])

    @iq_get(NS_INFO, "query", to="bare")
    def other_account_info(self, event: StanzaEvent) -> None:
        # §8 rule 1: service-unavailable unless the requester may see the
        # account's presence; xmppd does not answer for others at all.
        raise StanzaError("service-unavailable")

    def info(
        self, event: StanzaEvent, identities: Iterable[Identity], features: Iterable[str]
    ) -> domish.Element:
        query = self.query(event)
        answers = self.ctx.events.fire_all("disco-info", query)
        if query.node is not None:
            if not answers:
                raise StanzaError("item-not-found")  # §7
            identities, features = [], []  # §3.2: a node is described by its owner
        added = [x for answer in answers for x in answer]
        identities = {*identities, *(x for x in added if isinstance(x, Identity))}
        features = {*features, *(x for x in added if isinstance(x, str))}
        result = self.result_query(NS_INFO, query.node)
        for identity in sorted(identities, key=lambda i: (i.category, i.type, i.name or "")):
            element = result.addElement("identity")
            element["category"], element["type"] = identity.category, identity.type
            if identity.name:
                element["name"] = identity.name
        for var in sorted(features):
            result.addElement("feature")["var"] = var
        for form in added:
            if isinstance(form, domish.Element):
                result.addChild(form)  # XEP-0128
        return event.result(result)

    # -- disco#items (§4) -----------------------------------------------------

    @iq_get(NS_ITEMS, "query", to="host")
    def server_items(self, event: StanzaEvent) -> domish.Element:
        return self.items(event, [])

    @iq_get(NS_ITEMS, "query", to="self")
    def account_items(self, event: StanzaEvent) -> domish.Element:
        # §4.1: "including connected or available resources as appropriate"
        resources = self.ctx.sessions.of(event.to)
        return self.items(event, [(s.jid.full(), None, None) for s in resources if s.available])

    @iq_get(NS_ITEMS, "query", to="bare")
    def other_account_items(self, event: StanzaEvent) -> domish.Element:
        # §8 rule 2: an empty result set, whether or not the account exists.
        return event.result(self.result_query(NS_ITEMS, self.query(event).node))

    def items(self, event: StanzaEvent, items: list[tuple[str, Any, Any]]) -> domish.Element:
        query = self.query(event)
        answers = self.ctx.events.fire_all("disco-items", query)
        if query.node is not None:
            if not answers:
                raise StanzaError("item-not-found")  # §7
            items = []
        result = self.result_query(NS_ITEMS, query.node)
        for jid, name, node in [*items, *(item for answer in answers for item in answer)]:
            element = result.addElement("item")
            element["jid"] = jid
            if name:
                element["name"] = name
            if node:
                element["node"] = node
        return event.result(result)

    # -- helpers --------------------------------------------------------------

    @staticmethod
    def query(event: StanzaEvent) -> DiscoQuery:
        # §4.2: the node "MUST NOT be null": an empty one means none.
        node = event.stanza.firstChildElement().getAttribute("node") or None
        return DiscoQuery(event.sender, event.to, event.dest, node)

    @staticmethod
    def result_query(namespace: str, node: str | None) -> domish.Element:
        result = domish.Element((namespace, "query"))
        if node is not None:
            result["node"] = node  # §3.2: "the response SHOULD mirror" the node
        return result
