"""The admin's HTML pages: the plugin list, a plugin's detail, health; forms post back here.

Every form carries the CSRF token; a successful post redirects (303) to the page to look at
next, with a flash message. Templates are autoescaped, and no page has inline script or style.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from ...packaging.manifest import Capabilities
from ...platform import PluginInfo, PluginState
from . import actions
from .actions import Failure
from .context import AdminContext
from .inspection import inspect_module, signature_report
from .serialize import function_rows, health, plain, plugin_summary

logger = logging.getLogger("goatkit.admin")

Endpoint = Callable[[Request], Awaitable[Response]]

#: Log lines shown on the detail page before the live tail takes over.
LOG_LINES = 100


@dataclass(frozen=True)
class CapabilityRow:
    label: str
    requested: str
    granted: str
    pending: str


_CAPABILITY_KINDS: tuple[tuple[str, Callable[[Capabilities], Any]], ...] = (
    ("Read tables", lambda c: c.db_read),
    ("Write tables", lambda c: c.db_write),
    ("HTTP hosts", lambda c: c.http_hosts),
    ("Send email", lambda c: c.email),
    ("Scheduled jobs", lambda c: c.jobs),
    ("Call plugins", lambda c: c.plugins),
    ("Publish events", lambda c: c.events),
)


@dataclass(frozen=True)
class Button:
    action: str
    label: str
    style: str = ""
    confirm: str | None = None


def buttons(info: PluginInfo) -> list[Button]:
    """The actions that make sense for the plugin's state."""
    state = info.state
    out = []
    if state is PluginState.DISABLED:
        out.append(Button("enable", "Enable", "primary"))
    else:
        out.append(Button("disable", "Disable"))
    if state in (PluginState.DISCOVERED, PluginState.FAILED) and info.manifest is not None:
        out.append(Button("load", "Load"))
    if state is PluginState.LOADED:
        out.append(Button("unload", "Unload"))
    if info.manifest is not None:
        out.append(Button("reload", "Reload"))
    if info.source.suffix == ".zip":
        out.append(
            Button(
                "uninstall",
                "Uninstall",
                "danger",
                f"Uninstall {info.name}? Its package, grants and jobs are removed.",
            )
        )
    return out


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    return ", ".join(value)


def capability_rows(
    requested: Capabilities, granted: Capabilities, pending: Capabilities
) -> list[CapabilityRow]:
    rows = []
    for label, get in _CAPABILITY_KINDS:
        cells = [_cell(get(c)) for c in (requested, granted, pending)]
        if any(cells):
            rows.append(CapabilityRow(label, *cells))
    return rows


class Pages:
    """The HTML endpoints."""

    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx

    def guarded(self, endpoint: Endpoint) -> Endpoint:
        """Show a :class:`Failure` as an error page; a bug as a 500 page without its traceback."""

        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Failure as failure:
                return self.ctx.render_error(
                    request, failure.status, failure.body["code"], failure.message
                )
            except Exception:
                logger.exception("admin page %s failed", request.url.path)
                return self.ctx.render_error(
                    request, 500, "internal_error", "the admin failed; the details are in the log"
                )
            finally:
                await request.close()  # uploaded files spooled to disk

        return run

    async def plugin_list(self, request: Request) -> Response:
        platform = self.ctx.platform
        rows = [plugin_summary(info) for info in platform.plugins.values()]
        rows.sort(key=lambda r: r["name"])
        return self.ctx.render(
            request, "list.html", title="Plugins", plugins=rows, health=health(platform)
        )

    async def detail(self, request: Request) -> Response:
        platform = self.ctx.platform
        name = request.path_params["name"]
        info = actions.require_known(platform, name)
        module = await inspect_module(info, self.ctx.modules)
        signature = await signature_report(info)
        logs = platform.logs.records(name)
        errors = [r for r in logs if r.level == "error"][-20:]
        audit = platform.services.recent_audit(name)[-30:]
        return self.ctx.render(
            request,
            "detail.html",
            title=name,
            info=info,
            plugin=plugin_summary(info),
            manifest=info.manifest,
            registration=info.registration,
            capabilities=capability_rows(info.requested, info.granted, info.pending),
            requested=info.requested.to_dict(),
            granted=info.granted.to_dict(),
            pending=info.pending.to_dict(),
            module=module,
            signature=signature,
            jobs=await platform.jobs(name),
            logs=logs[-LOG_LINES:],
            last_log_time=logs[-1].time if logs else 0,
            errors=errors,
            audit=audit,
            denied=[a for a in audit if a.decision != "allowed"],
            functions=function_rows(info),
            buttons=buttons(info),
            manifest_config=plain(info.manifest.config) if info.manifest else {},
        )

    async def health(self, request: Request) -> Response:
        return self.ctx.render(
            request, "health.html", title="Health", health=health(self.ctx.platform)
        )

    async def install(self, request: Request) -> Response:
        try:
            await actions.require_csrf(request, self.ctx.csrf)
        except Failure as failure:
            return self.ctx.render_error(request, failure.status, "csrf_failed", failure.message)
        try:
            filename, data = await actions.read_upload(request, self.ctx.max_upload_bytes)
            info = await actions.install(self.ctx.platform, filename, data)
        except Failure as failure:
            return self.ctx.redirect(request, "/", failure.message, kind="error")
        message = f"Installed {info.name} from {filename}."
        if not info.pending.is_empty():
            message += " Review what it asks for and grant it: until then its host calls fail."
        return self.ctx.redirect(request, f"/plugins/{_quote(info.name)}", message)

    async def action(self, request: Request) -> Response:
        name = request.path_params["name"]
        action = request.path_params["action"]
        if action not in actions.ACTIONS:
            return self.ctx.render_error(
                request, 404, "not_found", f"no admin action {action!r}; use one of the buttons"
            )
        try:
            await actions.require_csrf(request, self.ctx.csrf)
        except Failure as failure:
            return self.ctx.render_error(request, failure.status, "csrf_failed", failure.message)
        back = f"/plugins/{_quote(name)}"
        try:
            capabilities = None
            if action in ("grant", "revoke"):
                form = await actions.read_form(request)
                capabilities = actions.parse_capabilities(
                    str(form.get("capabilities", "") or ""), action
                )
            done = await actions.run_action(self.ctx.platform, name, action, capabilities)
        except Failure as failure:
            if failure.status == 404:
                return self.ctx.redirect(request, "/", failure.message, kind="error")
            return self.ctx.redirect(request, back, failure.message, kind="error")
        except Exception:
            logger.exception("admin action %s on %s failed", action, name)
            return self.ctx.redirect(
                request, back, f"{action} failed; the details are in the log", kind="error"
            )
        return self.ctx.redirect(request, "/" if action == "uninstall" else back, f"{done}.")


def _quote(name: str) -> str:
    return quote(name, safe="")
