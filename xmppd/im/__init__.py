"""RFC 6121: roster, subscriptions, presence and delivery rules."""
