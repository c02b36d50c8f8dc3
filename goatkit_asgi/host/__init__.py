"""The host function API: what plugins may ask of the host, checked against their grants."""
