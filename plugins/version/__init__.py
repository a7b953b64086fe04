"""XEP-0092: Software Version (1.1).

Takes ``<iq type='get'><query xmlns='jabber:iq:version'/></iq>`` to the server
and answers with the software's name and version (§2). The operating system is
left out unless ``hide_os`` is turned off: revealing it "may open the user or
system to attacks", so an administrator must be able to hide it (§5); xmppd
hides it by default. Stores nothing.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from twisted.words.xish import domish

import xmppd
from xmppd.config import opt
from xmppd.plugin import Plugin, PluginContext, iq_get
from xmppd.router import StanzaEvent

NS_VERSION = "jabber:iq:version"


class SoftwareVersion(Plugin):
    name = "version"
    implements = ("XEP-0092 1.1",)
    features = (NS_VERSION,)

    @dataclass(frozen=True)
    class Config:
        name: str = opt("xmppd", "Software name in XEP-0092 answers.")
        version: str = opt(xmppd.__version__, "Software version in XEP-0092 answers.")
        hide_os: bool = opt(True, "Leave the operating system out of the answer (XEP-0092 §5).")

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.config: SoftwareVersion.Config = ctx.config
        self.os = None if self.config.hide_os else f"{platform.system()} {platform.release()}"

    @iq_get(NS_VERSION, "query", to="host")
    def server_version(self, event: StanzaEvent) -> domish.Element:
        query = domish.Element((NS_VERSION, "query"))
        query.addElement("name", content=self.config.name)  # §2: REQUIRED
        query.addElement("version", content=self.config.version)  # §2: REQUIRED
        if self.os is not None:
            query.addElement("os", content=self.os)  # §2: OPTIONAL; §5
        return event.result(query)
