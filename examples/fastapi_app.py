"""A FastAPI app extended by plugins: run with ``uvicorn examples.fastapi_app:app``.

API routes stay FastAPI's; plugin routes (``/hello/{name}``), static files and the plugin menu
come from GoatKitMiddleware. ``platform.call`` is how Python code calls a plugin function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from goatkit_asgi import GoatKitMiddleware, Platform, PluginTemplates

HERE = Path(__file__).parent

platform = Platform(
    plugins_dir=HERE,
    state_dir=HERE.parent / ".goatkit" / "examples",
    has_permission=lambda request, permission: True,
)
templates = PluginTemplates(platform, directory=HERE / "_templates", layout="layout.html")

api = FastAPI(title="Helpdesk API")


@api.get("/api/greeting/{name}")
async def greeting(name: str) -> dict[str, Any]:
    result: dict[str, Any] = await platform.call("hello-wasm", "hello", {"name": name})
    return result


@api.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return await templates.TemplateResponse(request, "home.html", {"who": "FastAPI"})


app = GoatKitMiddleware(api, platform=platform, templates=templates)
