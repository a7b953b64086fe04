"""xmppd: a self-hosted XMPP chat server on Twisted.

The core (this package) implements RFC 6120 (streams, TLS, SASL, binding) and
RFC 6121 (roster, presence, delivery) and nothing of any XEP; every XEP is a
plugin under ``plugins/``, loaded through :mod:`xmppd.registry`.
"""

__version__ = "0.1.0.dev0"
