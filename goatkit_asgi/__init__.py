"""goatkit_asgi: a plugin platform for Python ASGI web apps.

Plugins (WebAssembly under wasmtime, speaking GoatKit's ABI, or native processes over gRPC) add
functions, routes, menu items and template helpers to an existing app. Errors live in
:mod:`goatkit_asgi.errors`.

The public names are imported on first use, so that importing a light submodule (the Python
plugin SDK, ``goatkit_asgi.errors``) does not load the whole platform.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "GoatKitMiddleware": ".web.middleware",
    "Platform": ".platform",
    "PluginInfo": ".platform",
    "PluginState": ".platform",
    "PluginTemplates": ".web.templates",
    "PluginsExtension": ".jinja",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'goatkit_asgi' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
