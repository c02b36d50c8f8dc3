"""hello-grpc: an example plugin in Python, run by goatkit_asgi as a separate process over gRPC.

It declares a template function (``hello``), a route (``GET /grpc-hello/{name}``), a menu item and
a hook, and uses host functions: ``log`` and the plugin's own cache.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from goatkit_asgi.sdk.python import Plugin

plugin = Plugin(
    "hello-grpc",
    version="1.0.0",
    description="Example Python plugin over gRPC: a template function, a route and host calls.",
    author="goatkit_asgi contributors",
    license="Apache-2.0",
    menu_items=[{"label": "Hello (gRPC)", "path": "/grpc-hello/World", "icon": "wave"}],
)


@plugin.function(args=["name"], returns="object")
def hello(name: str = "World", **request: Any) -> dict[str, str]:
    """Returns {"message": "Hello, <name>!"} and logs the greeting through the host."""
    plugin.host.call("log", {"level": "info", "message": f"greeting {name}"})
    return {"message": f"Hello, {name}!"}


@plugin.route("GET", "/grpc-hello/{name}")
def hello_page(name: str = "World", **request: Any) -> dict[str, str]:
    """The page for one name, with a visit counter kept in the plugin's cache."""
    key = f"visits:{name}"
    found = plugin.host.call("cache_get", {"key": key})
    visits = int(base64.b64decode(found["value"])) + 1 if found["found"] else 1
    value = base64.b64encode(str(visits).encode()).decode()
    plugin.host.call("cache_set", {"key": key, "value": value, "ttl": 0})
    return {"html": f"<p>Hello, {html.escape(name)}! (visit {visits})</p>"}


@plugin.hook("after_save")
async def after_save(payload: Any) -> dict[str, Any]:
    """Notes which entity was saved."""
    entity = payload.get("entity") if isinstance(payload, dict) else None
    await plugin.host.acall("log", {"message": f"saved {entity}"})
    return {"seen": entity}


if __name__ == "__main__":
    plugin.serve()
