"""Async-aware template rendering for host apps and plugin routes.

Starlette's ``Jinja2Templates.TemplateResponse`` renders synchronously, which cannot await plugin
calls; :class:`PluginTemplates` renders with ``render_async`` (or, for a host's synchronous
environment, in a worker thread), adds the plugin menu for the current user, and fires the
``before_render`` hook so plugins can add to the context.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import jinja2
from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..errors import GoatKitError, PluginCallError
from ..jinja import install_jinja
from ..platform import PluginWidget, current_user
from .responses import result_kind

if TYPE_CHECKING:
    from ..platform import Platform

LAYOUT = "goatkit/layout.html"
logger = logging.getLogger("goatkit.web")


@dataclass(frozen=True)
class RenderedWidget:
    """A widget with its HTML, or the error that stopped it (then ``html`` is empty)."""

    widget: PluginWidget
    html: Markup
    error: str | None = None

    @property
    def plugin(self) -> str:
        return self.widget.plugin

    @property
    def title(self) -> str:
        return self.widget.title


class PluginTemplates:
    """Templates that can call plugins (``{% use %}``) and know the plugin menu.

    ``directory`` holds the host's own templates; ``env`` may be given instead (sync or async).
    Plugin templates are reachable as ``"<plugin>/<name>"``; ``layout`` names the template that
    wraps plugin HTML (it receives ``content``, ``title``, ``plugin``, ``menu_items``, ``request``).
    The layout should have the blocks ``head`` (inside ``<head>``) and ``content`` (whose default
    is ``{{ content }}``): plugin templates extend it as ``{% extends goatkit_layout %}``.
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
        # goatkit_layout: what a plugin template extends to sit in the host's page
        # ({% extends goatkit_layout %}, filling the blocks "head" and "content").
        ctx: dict[str, Any] = {"platform": self.platform, "goatkit_layout": self.layout}
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

    async def render_widgets(
        self, request: Request | None, *, location: str | None = None
    ) -> list[RenderedWidget]:
        """The widgets ``request``'s user may see (see :meth:`Platform.widgets`), rendered.

        A handler answers ``{"html": ...}`` or ``{"template": ..., "context": ...}`` (a fragment
        from the plugin's templates, not wrapped in the layout). A widget whose plugin fails is
        returned with its ``error`` and no HTML, so one broken plugin never breaks the page.
        """
        rendered = []
        for widget in await self.platform.widgets(request, location=location):
            try:
                html = await self._widget_html(widget, request)
            except GoatKitError as exc:
                logger.warning("widget %s of %s failed: %s", widget.id, widget.plugin, exc)
                rendered.append(RenderedWidget(widget, Markup(""), exc.message))
            else:
                rendered.append(RenderedWidget(widget, html))
        return rendered

    async def _widget_html(self, widget: PluginWidget, request: Request | None) -> Markup:
        plugin, handler = widget.plugin, widget.handler
        result = await self.platform.call(plugin, handler, {"widget": widget.id})
        kind = result_kind(result)
        if kind == "html":
            return Markup(result["html"])
        if kind == "template":
            return Markup(await self.render_plugin_template(plugin, handler, result, request))
        raise PluginCallError(
            f"{plugin}: the widget handler {handler} returned {kind} content; a widget answers "
            '{"html": ...} or {"template": ..., "context": ...}',
            plugin=plugin,
            function=handler,
        )

    async def render_plugin_template(
        self, plugin: str, handler: str, result: Mapping[str, Any], request: Request | None
    ) -> str:
        """Render a ``{"template": ..., "context": ...}`` answer of ``plugin``'s ``handler``.

        The name is inside the plugin's ``templates/`` (the ``"<plugin>/"`` prefix is optional);
        the context gets ``plugin`` too.
        """
        name = str(result["template"])
        if not name.startswith(plugin + "/"):
            name = f"{plugin}/{name}"
        context = result.get("context") or {}
        if not isinstance(context, dict):
            raise PluginCallError(
                f"{plugin}: {handler} returned a template context that is not an object",
                plugin=plugin,
                function=handler,
            )
        try:
            return await self.render(name, {**context, "plugin": plugin}, request)
        except jinja2.TemplateNotFound as exc:
            raise PluginCallError(
                f"{plugin}: {handler} asked for the template {name!r}, which the plugin does not "
                "ship; add it under templates/",
                plugin=plugin,
                function=handler,
            ) from exc

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
