"""RFC 6120 client-to-server streams: parsing, TLS, SASL, binding."""
