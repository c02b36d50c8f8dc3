"""A Starlette app extended by plugins: run with ``uvicorn examples.starlette_app:app``.

The app knows nothing about the plugins: GoatKitMiddleware serves their routes and static files,
its layout lists their menu items, and its templates call their functions with ``{% use %}``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from goatkit_asgi import GoatKitMiddleware, Platform, PluginTemplates

HERE = Path(__file__).parent

platform = Platform(
    plugins_dir=HERE,  # examples/hello-wasm is a plugin directory
    state_dir=HERE.parent / ".goatkit" / "examples",
    has_permission=lambda request, permission: True,
)
templates = PluginTemplates(platform, directory=HERE / "_templates", layout="layout.html")


async def home(request: Request) -> Response:
    return await templates.TemplateResponse(request, "home.html", {"who": "Starlette"})


app = GoatKitMiddleware(
    Starlette(routes=[Route("/", home)]), platform=platform, templates=templates
)
