"""XEP-0202: Entity Time (2.0).

Takes ``<iq type='get'><time xmlns='urn:xmpp:time'/></iq>`` to the server and
answers with the server's clock (§2): ``<tzo>`` is always ``+00:00``, since a
server's local offset tells a client nothing useful and may leak where it
stands (§6); ``<utc>`` is an XEP-0082 dateTime with seconds. Reads the time
from ``ctx.clock``, so tests set it. Stores nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.words.xish import domish

from xmppd.plugin import Plugin, iq_get
from xmppd.router import StanzaEvent

NS_TIME = "urn:xmpp:time"


class EntityTime(Plugin):
    name = "time"
    implements = ("XEP-0202 2.0",)
    features = (NS_TIME,)

    @iq_get(NS_TIME, "time", to="host")
    def server_time(self, event: StanzaEvent) -> domish.Element:
        now = datetime.fromtimestamp(self.ctx.clock.seconds(), UTC)
        time = domish.Element((NS_TIME, "time"))
        time.addElement("tzo", content="+00:00")  # XEP-0082 §2: TZD
        time.addElement("utc", content=now.strftime("%Y-%m-%dT%H:%M:%SZ"))  # XEP-0082 §3.2
        return event.result(time)
