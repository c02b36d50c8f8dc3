"""What the admin's pages and API share: the platform, CSRF, templates, flash messages, links.

Links are built from ``scope["root_path"]`` (the mount point, under any server ``root_path``),
so the admin works wherever it is mounted. Templates and assets ship inside this package.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from .inspection import ModuleCache
from .security import Csrf, browser_id_of

if TYPE_CHECKING:
    from ...platform import Platform

PACKAGE = "goatkit_asgi.web.admin"
FLASH_COOKIE = "gk_admin_flash"
FLASH_MAX_AGE = 300
_FLASH_LIMIT = 600  # characters of a flash message kept (a cookie is small)

_TITLES = {
    400: "Bad request",
    401: "Sign in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
}


def _bytes(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"  # pragma: no cover


def _ms(value: object) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value:.3g} ms" if value < 1000 else f"{value / 1000:.3g} s"


def _ago(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "never"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _clock(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "—"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%S")


def _datetime(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return "—"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _json(value: Any) -> str:
    # Plain text (escaped by autoescape), unlike Jinja's tojson, so it fits in an attribute.
    return json.dumps(value, separators=(",", ":"))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def _url_part(value: object) -> str:
    return quote(str(value), safe="")


def _safe_url(value: object) -> str | None:
    text = str(value or "")
    return text if text.startswith(("https://", "http://")) else None


class AdminContext:
    """Shared by every admin request of one admin app."""

    def __init__(
        self,
        platform: Platform,
        *,
        csrf: Csrf,
        secret_key: str,
        max_upload_bytes: int,
        title: str,
    ) -> None:
        self.platform = platform
        self.csrf = csrf
        self.max_upload_bytes = max_upload_bytes
        self.title = title
        self.modules = ModuleCache()
        self._flash = URLSafeTimedSerializer(secret_key, salt="goatkit-admin-flash")
        env = jinja2.Environment(
            loader=jinja2.PackageLoader(PACKAGE, "templates"),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            bytes=_bytes,
            ms=_ms,
            ago=_ago,
            clock=_clock,
            datetime=_datetime,
            json=_json,
            pretty=_pretty,
            q=_url_part,
            safe_url=_safe_url,
        )
        self.env = env

    # -- links -------------------------------------------------------------------------------

    @staticmethod
    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def url(self, request: Request, path: str) -> str:
        return self.root(request) + path

    def plugin_url(self, request: Request, name: str) -> str:
        return self.url(request, f"/plugins/{_url_part(name)}")

    # -- pages -------------------------------------------------------------------------------

    def render(
        self, request: Request, template: str, *, status: int = 200, **values: Any
    ) -> HTMLResponse:
        flash = self._read_flash(request)
        browser_id = browser_id_of(request)
        html = self.env.get_template(template).render(
            request=request,
            root=self.root(request),
            app_title=self.title,
            csrf_token=self.csrf.token(browser_id) if browser_id else "",
            flash=flash,
            max_upload_bytes=self.max_upload_bytes,
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=self.root(request) or "/")
        return response

    def render_error(self, request: Request, status: int, code: str, message: str) -> HTMLResponse:
        html = self.env.get_template("error.html").render(
            request=request,
            root=self.root(request),
            app_title=self.title,
            csrf_token="",
            flash=None,
            status=status,
            heading=_TITLES.get(status, "Error"),
            code=code,
            message=message,
        )
        return HTMLResponse(html, status_code=status)

    def redirect(
        self, request: Request, path: str, message: str | None = None, *, kind: str = "ok"
    ) -> RedirectResponse:
        """303 to ``path`` (inside the admin) with a flash message for the next page."""
        response = RedirectResponse(self.url(request, path), status_code=303)
        if message is not None:
            value = self._flash.dumps({"kind": kind, "message": message[:_FLASH_LIMIT]})
            response.set_cookie(
                FLASH_COOKIE,
                str(value),
                max_age=FLASH_MAX_AGE,
                path=self.root(request) or "/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    def _read_flash(self, request: Request) -> dict[str, str] | None:
        raw = request.cookies.get(FLASH_COOKIE)
        if not raw:
            return None
        try:
            value = self._flash.loads(raw, max_age=FLASH_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(value, dict):
            return None
        kind = value.get("kind")
        return {
            "kind": kind if kind in ("ok", "error") else "ok",
            "message": str(value.get("message", "")),
        }
