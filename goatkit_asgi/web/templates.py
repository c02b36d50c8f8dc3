"""Async-aware template rendering for host apps and plugin routes.

Starlette's ``Jinja2Templates.TemplateResponse`` renders synchronously, which cannot await plugin
calls; :class:`PluginTemplates` renders with ``render_async`` (or, for a host's synchronous
environment, in a worker thread), adds the plugin menu for the current user, and fires the
``before_render`` hook so plugins can add to the context.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import jinja2
from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..jinja import install_jinja
from ..platform import current_user

if TYPE_CHECKING:
    from ..platform import Platform

LAYOUT = "goatkit/layout.html"


class PluginTemplates:
    """Templates that can call plugins (``{% use %}``) and know the plugin menu.

    ``directory`` holds the host's own templates; ``env`` may be given instead (sync or async).
    Plugin templates are reachable as ``"<plugin>/<name>"``; ``layout`` names the template that
    wraps plugin HTML (it receives ``content``, ``title``, ``plugin``, ``menu_items``, ``request``).
    """

    def __init__(
        self,
        platform: Platform,
        directory: str | os.PathLike[str] | None = None,
        *,
        env: jinja2.Environment | None = None,
        layout: str = LAYOUT,
    ) -> None:
        self.platform = platform
        self.layout = layout
        if env is None:
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(directory) if directory is not None else None,
                autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                enable_async=True,
            )
        package = jinja2.PackageLoader("goatkit_asgi.web", "templates")
        env.loader = jinja2.ChoiceLoader([env.loader, package]) if env.loader else package
        install_jinja(platform, env, debug=platform.settings.debug)
        self.env = env

    def context(self, request: Request | None, context: Mapping[str, Any] | None) -> dict[str, Any]:
        ctx: dict[str, Any] = {"platform": self.platform}
        if request is not None:
            ctx["request"] = request
            ctx["menu_items"] = self.platform.menu_items(request)
        else:
            ctx["menu_items"] = self.platform.menu_items()
        ctx.update(context or {})
        return ctx

    async def render(
        self, name: str, context: Mapping[str, Any] | None = None, request: Request | None = None
    ) -> str:
        """Render ``name``; plugins that registered ``before_render`` may add context keys."""
        ctx = self.context(request, context)
        results = await self.platform.fire_hook(
            "before_render",
            {"template": name, "path": request.url.path if request is not None else None},
        )
        for result in results:
            if result.ok and isinstance(result.value, dict):
                for key, value in result.value.items():
                    ctx.setdefault(key, value)  # plugins add; they never replace the host's
        template = self.env.get_template(name)
        user = request.scope.get("user") if request is not None else None
        token = current_user.set(
            str(getattr(user, "identity", "")) or None
            if getattr(user, "is_authenticated", False)
            else None
        )
        try:
            if self.env.is_async:
                return await template.render_async(ctx)
            return await anyio.to_thread.run_sync(template.render, ctx)
        finally:
            current_user.reset(token)

    async def render_layout(
        self, request: Request, content: str, *, title: str = "", plugin: str = ""
    ) -> str:
        return await self.render(
            self.layout,
            {"content": Markup(content), "title": title, "plugin": plugin},
            request,
        )

    async def TemplateResponse(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> HTMLResponse:
        """Like Starlette's, but awaitable: ``return await templates.TemplateResponse(...)``."""
        body = await self.render(name, context, request)
        return HTMLResponse(body, status_code=status_code, headers=headers, background=background)
