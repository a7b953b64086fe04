"""XEP plugins: one package per feature, named for what it does; the XEP number
is metadata (`implements`)."""
