"""Helpers shared by XEP plugins (data forms, forwarding, delay...)."""
