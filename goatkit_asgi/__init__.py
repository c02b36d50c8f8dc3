"""goatkit_asgi: a plugin platform for Python ASGI web apps.

Plugins (WebAssembly under wasmtime, speaking GoatKit's ABI) add functions, routes, menu items and
template helpers to an existing app. Errors live in :mod:`goatkit_asgi.errors`.
"""

from .platform import Platform, PluginInfo, PluginState

__all__ = ["Platform", "PluginInfo", "PluginState"]
__version__ = "0.1.0"
