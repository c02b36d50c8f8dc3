"""Web integration: the ASGI middleware, plugin routes and static files, templates."""
