"""The admin's JSON API, under the same mount as its pages (``…/api/…``; see docs/admin.md).

Every answer is JSON; an error is ``{"error": {"code", "message", "plugin"?}}`` with its status,
never a traceback. Browser-authenticated state changes need the ``X-CSRF-Token`` header (from
``GET …/api/csrf``); bearer-token requests do not.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import actions
from .actions import Failure
from .context import AdminContext
from .inspection import inspect_module, signature_report
from .security import browser_id_of, via_token
from .serialize import audit_entry, health, log_record, plugin_detail, plugin_summary

logger = logging.getLogger("goatkit.admin")

Endpoint = Callable[[Request], Awaitable[Response]]

#: Most log lines or audit entries one request returns.
MAX_RECORDS = 500


class Api:
    """The JSON endpoints."""

    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx

    def guarded(self, endpoint: Endpoint) -> Endpoint:
        """Answer a :class:`Failure` as its JSON error; a bug as a 500 without a traceback."""

        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Failure as failure:
                return JSONResponse({"error": failure.body}, status_code=failure.status)
            except Exception:
                logger.exception("admin API %s %s failed", request.method, request.url.path)
                return JSONResponse(
                    {
                        "error": {
                            "code": "internal_error",
                            "message": "the admin failed; the details are in the server log",
                        }
                    },
                    status_code=500,
                )
            finally:
                await request.close()  # uploaded files spooled to disk

        return run

    # -- reading -----------------------------------------------------------------------------

    async def plugin_list(self, request: Request) -> Response:
        rows = [plugin_summary(info) for info in self.ctx.platform.plugins.values()]
        rows.sort(key=lambda r: r["name"])
        return JSONResponse({"plugins": rows})

    async def plugin(self, request: Request) -> Response:
        platform = self.ctx.platform
        name = request.path_params["name"]
        info = actions.require_known(platform, name)
        errors = [r for r in platform.logs.records(name) if r.level == "error"][-20:]
        body = plugin_detail(
            info,
            module=await inspect_module(info, self.ctx.modules),
            signature=await signature_report(info),
            jobs=await platform.jobs(name),
            errors=errors,
        )
        return JSONResponse({"plugin": body})

    async def logs(self, request: Request) -> Response:
        platform = self.ctx.platform
        name = request.path_params["name"]
        records = platform.logs.records(name)
        if platform.plugin_state(name) is None and not records:
            raise Failure.of(404, "not_found", f"no plugin named {name!r}", name)
        after = _number(request, "after", 0.0)
        limit = int(_number(request, "limit", 200, maximum=MAX_RECORDS))
        fresh = [r for r in records if r.time > after][-limit:] if limit else []
        last = fresh[-1].time if fresh else max(after, 0.0)
        return JSONResponse(
            {"plugin": name, "records": [log_record(r) for r in fresh], "last": last}
        )

    async def audit(self, request: Request) -> Response:
        platform = self.ctx.platform
        name = request.path_params["name"]
        actions.require_known(platform, name)
        limit = int(_number(request, "limit", 100, maximum=MAX_RECORDS))
        entries = platform.services.recent_audit(name)[-limit:] if limit else []
        return JSONResponse({"plugin": name, "entries": [audit_entry(e) for e in entries]})

    async def health(self, request: Request) -> Response:
        return JSONResponse(health(self.ctx.platform))

    async def csrf(self, request: Request) -> Response:
        if via_token(request):
            return JSONResponse({"token": None, "required": False})
        browser_id = browser_id_of(request)
        assert browser_id is not None
        return JSONResponse(
            {
                "token": self.ctx.csrf.token(browser_id),
                "required": True,
                "header": "X-CSRF-Token",
                "field": "csrf_token",
                "max_age": self.ctx.csrf.max_age,
            }
        )

    # -- changing ----------------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        name = request.path_params["name"]
        action = request.path_params["action"]
        if action not in actions.ACTIONS or action == "uninstall":
            raise Failure.of(404, "not_found", f"no admin action {action!r}", name)
        await actions.require_csrf(request, self.ctx.csrf)
        capabilities = None
        if action in ("grant", "revoke"):
            capabilities = actions.parse_capabilities(await _json_body(request, action), action)
        done = await actions.run_action(self.ctx.platform, name, action, capabilities)
        info = actions.require_known(self.ctx.platform, name)
        return JSONResponse(
            {
                "ok": True,
                "message": done,
                "plugin": plugin_summary(info),
                "capabilities": {
                    "requested": info.requested.to_dict(),
                    "granted": info.granted.to_dict(),
                    "pending": info.pending.to_dict(),
                },
            }
        )

    async def uninstall(self, request: Request) -> Response:
        name = request.path_params["name"]
        await actions.require_csrf(request, self.ctx.csrf)
        done = await actions.run_action(self.ctx.platform, name, "uninstall")
        return JSONResponse({"ok": True, "message": done, "plugin": name})

    async def install(self, request: Request) -> Response:
        await actions.require_csrf(request, self.ctx.csrf)
        filename, data = await actions.read_upload(request, self.ctx.max_upload_bytes)
        info = await actions.install(self.ctx.platform, filename, data)
        return JSONResponse(
            {
                "ok": True,
                "message": f"installed {info.name} from {filename}",
                "plugin": plugin_summary(info),
                "capabilities": {
                    "requested": info.requested.to_dict(),
                    "granted": info.granted.to_dict(),
                    "pending": info.pending.to_dict(),
                },
            },
            status_code=201,
        )


def _number(request: Request, key: str, default: float, *, maximum: float | None = None) -> float:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Failure.of(400, "bad_request", f"?{key}= must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise Failure.of(400, "bad_request", f"?{key}= must be a number of at least 0")
    return min(value, maximum) if maximum is not None else value


async def _json_body(request: Request, action: str) -> Any:
    """The JSON body (``None`` when empty); a form's ``capabilities`` field is accepted too."""
    if actions.is_form(request):
        return str((await actions.read_form(request)).get("capabilities", "") or "")
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        message = f"{action}: the body is not valid JSON ({exc})"
        raise Failure.of(400, "bad_request", message) from exc
