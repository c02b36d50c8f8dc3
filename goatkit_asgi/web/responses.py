"""HTTP answers for plugin routes: results to responses, errors to clean error pages.

A route handler returns one of (DESIGN §4):

- ``{"html": "...", "title"?: "...", "raw"?: bool, "status"?: int}``: HTML, wrapped in the host
  layout unless ``raw`` is true;
- ``{"template": "name.html", "context": {...}, "status"?: int}``: one of the plugin's templates;
- ``{"status": 201, "headers": {...}, "body": "text"}`` (or ``"body_base64"``): a raw response;
- anything else: sent as ``application/json``; ``null`` (no result) is ``204 No Content``.

Errors become 404/403/502/503/504 with a JSON or HTML body (by the request's ``Accept``) that
names the plugin: never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..errors import GoatKitError, PluginCallError

logger = logging.getLogger("goatkit.web")

#: Response headers a plugin may not set: the host owns cookies, framing and security policy.
FORBIDDEN_HEADERS = frozenset(
    {
        "set-cookie",
        "content-length",
        "transfer-encoding",
        "connection",
        "strict-transport-security",
        "content-security-policy",
    }
)


def wants_json(request: Request) -> bool:
    """JSON unless the client prefers HTML (browsers send ``text/html`` first)."""
    accept = request.headers.get("accept", "")
    if "text/html" not in accept:
        return True
    json_at = accept.find("application/json")
    return json_at != -1 and json_at < accept.find("text/html")


def error_response(request: Request, exc: GoatKitError) -> Response:
    """The error page or JSON body for ``exc``: its status, code and message, nothing more."""
    status = exc.http_status if exc.http_status >= 400 else 500
    if wants_json(request):
        return JSONResponse({"error": exc.to_dict()}, status_code=status)
    title = {403: "Forbidden", 404: "Not found", 503: "Busy", 504: "Timed out"}.get(
        status, "Plugin error"
    )
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{status} {title}</title></head><body>"
        f"<h1>{status} {title}</h1><p>{html.escape(exc.message)}</p>"
        f"<p><small>code: {html.escape(exc.code)}"
        + (f" · plugin: {html.escape(exc.plugin)}" if exc.plugin else "")
        + "</small></p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def internal_error_response(request: Request, plugin: str) -> Response:
    """For a bug on our side: logged with its traceback, answered without it."""
    exc = GoatKitError(
        f"{plugin}: the request failed inside the platform; the details are in the server log",
        plugin=plugin,
        code="internal_error",
    )
    return error_response(request, exc)


def _status(value: Any, default: int, plugin: str, handler: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise PluginCallError(
            f"{plugin}: {handler} returned status {value!r}; a status must be 100-599",
            plugin=plugin,
            function=handler,
        )
    return value


def _headers(value: Any, plugin: str, handler: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise PluginCallError(
            f"{plugin}: {handler} returned headers that are not an object of strings",
            plugin=plugin,
            function=handler,
        )
    out = {}
    for key, val in value.items():
        if key.lower() in FORBIDDEN_HEADERS:
            logger.warning("%s: %s tried to set the %s header; dropped", plugin, handler, key)
            continue
        if any(c in key + val for c in "\r\n\0"):
            raise PluginCallError(
                f"{plugin}: {handler} returned a header with a line break in it",
                plugin=plugin,
                function=handler,
            )
        out[key] = val
    return out


def raw_response(result: dict[str, Any], plugin: str, handler: str) -> Response:
    """``{"status", "headers", "body" | "body_base64"}`` to a Response."""
    status = _status(result.get("status"), 200, plugin, handler)
    headers = _headers(result.get("headers"), plugin, handler)
    if "body_base64" in result:
        try:
            body = base64.b64decode(str(result["body_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PluginCallError(
                f"{plugin}: {handler} returned body_base64 that is not base64",
                plugin=plugin,
                function=handler,
            ) from exc
    else:
        text = result.get("body", "")
        body = (text if isinstance(text, str) else json.dumps(text)).encode()
    media_type = None if any(k.lower() == "content-type" for k in headers) else "text/plain"
    return Response(body, status_code=status, headers=headers, media_type=media_type)


def result_kind(result: Any) -> str:
    """Which of the route result forms ``result`` is: html, template, raw, empty or json."""
    if result is None:
        return "empty"
    if isinstance(result, dict):
        if isinstance(result.get("html"), str):
            return "html"
        if isinstance(result.get("template"), str):
            return "template"
        if isinstance(result.get("status"), int) and ("body" in result or "body_base64" in result):
            return "raw"
    return "json"


__all__ = [
    "error_response",
    "internal_error_response",
    "raw_response",
    "result_kind",
    "wants_json",
]
