"""Makes ``twistd xmppd`` exist (this folder has no ``__init__.py``)."""

from twisted.application.service import ServiceMaker

xmppd = ServiceMaker(
    "xmppd",
    "xmppd.tap",
    "An XMPP chat server (RFC 6120/6121) with plugins per XEP",
    "xmppd",
)
