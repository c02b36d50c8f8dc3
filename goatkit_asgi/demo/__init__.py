"""The demo: a small helpdesk app extended by plugins (``gk demo``)."""
