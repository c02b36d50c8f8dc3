"""goatkit_asgi: a plugin platform for Python ASGI web apps.

Plugins (WebAssembly under wasmtime, speaking GoatKit's ABI) add functions, routes, menu items and
template helpers to an existing app. Errors live in :mod:`goatkit_asgi.errors`.
"""

from .jinja import PluginsExtension
from .platform import Platform, PluginInfo, PluginState
from .web.middleware import GoatKitMiddleware
from .web.templates import PluginTemplates

__all__ = [
    "GoatKitMiddleware",
    "Platform",
    "PluginInfo",
    "PluginState",
    "PluginTemplates",
    "PluginsExtension",
]
__version__ = "0.1.0"
