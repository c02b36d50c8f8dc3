"""Build the admin sub-app: ``Mount("/admin/plugins", platform.admin_app(auth=...))``.

Routes below the mount point (pages, then the JSON API; docs/admin.md has the details):

    GET  /                              plugin list, upload form
    POST /install                       upload a package (multipart field "package")
    GET  /plugins/{name}                a plugin's detail
    POST /plugins/{name}/{action}       enable, disable, load, unload, reload, grant, revoke,
                                        uninstall
    GET  /health                        health summary
    GET  /static/...                    the admin's CSS and JavaScript
    GET  /api/plugins                   POST /api/plugins (upload)
    GET  /api/plugins/{name}            DELETE /api/plugins/{name} (uninstall)
    POST /api/plugins/{name}/{action}   enable, disable, load, unload, reload, grant, revoke
    GET  /api/plugins/{name}/logs       ?after=<time>&limit=
    GET  /api/plugins/{name}/audit
    GET  /api/health, GET /api/csrf
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ...errors import ConfigError
from .api import Api
from .context import PACKAGE, AdminContext
from .pages import Pages
from .security import AdminGuard, AuthCallable, Csrf, error_json, is_api

if TYPE_CHECKING:
    from ...platform import Platform

__all__ = ["DEFAULT_CSRF_MAX_AGE", "DEFAULT_MAX_UPLOAD_BYTES", "create_admin_app"]

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_CSRF_MAX_AGE = 2 * 60 * 60
#: Room for the multipart envelope around an upload of the largest allowed size.
MULTIPART_OVERHEAD = 64 * 1024
MIN_SECRET_LENGTH = 16


def _check_options(
    auth: object,
    secret_key: object,
    token: object,
    login_url: object,
    max_upload_bytes: object,
    csrf_max_age: object,
) -> None:
    if not isinstance(secret_key, str) or len(secret_key) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"admin_app: secret_key is required (a string of at least {MIN_SECRET_LENGTH} "
            "characters, such as secrets.token_urlsafe(32), kept the same across workers and "
            "restarts); it signs the admin's CSRF tokens and cookies"
        )
    if auth is not None and not callable(auth):
        raise ConfigError(
            "admin_app: auth must be a callable taking the request and returning True "
            "(allowed), False (forbidden) or None (not signed in)"
        )
    if token is not None and (not isinstance(token, str) or len(token) < MIN_SECRET_LENGTH):
        raise ConfigError(
            f"admin_app: token must be a string of at least {MIN_SECRET_LENGTH} characters"
        )
    if auth is None and token is None:
        raise ConfigError(
            "admin_app: give auth= (a callable that checks the request) and/or token= "
            "(for automation): the admin has no default access"
        )
    if login_url is not None and not isinstance(login_url, str):
        raise ConfigError("admin_app: login_url must be a URL or a path such as '/login'")
    if (
        isinstance(max_upload_bytes, bool)
        or not isinstance(max_upload_bytes, int)
        or max_upload_bytes <= 0
    ):
        raise ConfigError(
            f"admin_app: max_upload_bytes must be a positive number of bytes, not "
            f"{max_upload_bytes!r}"
        )
    if (
        isinstance(csrf_max_age, bool)
        or not isinstance(csrf_max_age, int | float)
        or csrf_max_age <= 0
    ):
        raise ConfigError(
            f"admin_app: csrf_max_age must be a positive number of seconds, not {csrf_max_age!r}"
        )


def create_admin_app(
    platform: Platform,
    auth: AuthCallable | None,
    *,
    secret_key: str | None,
    token: str | None = None,
    login_url: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    csrf_max_age: float = DEFAULT_CSRF_MAX_AGE,
    title: str = "Plugin admin",
) -> Starlette:
    """The admin app for ``platform``; see :meth:`goatkit_asgi.Platform.admin_app`.

    ``auth(request)`` decides who may use it (``None``: not signed in, so 401 or a redirect to
    ``login_url``; false: 403; true: allowed); ``token`` lets automation in with
    ``Authorization: Bearer <token>``. ``secret_key`` signs the CSRF tokens (valid for
    ``csrf_max_age`` seconds) and the admin's cookies. Uploads larger than ``max_upload_bytes``
    are refused with 413.
    """
    _check_options(auth, secret_key, token, login_url, max_upload_bytes, csrf_max_age)
    assert isinstance(secret_key, str)
    csrf = Csrf(secret_key, max(1, round(csrf_max_age)))
    ctx = AdminContext(
        platform,
        csrf=csrf,
        secret_key=secret_key,
        max_upload_bytes=max_upload_bytes,
        title=title,
    )
    pages = Pages(ctx)
    api = Api(ctx)
    page, call = pages.guarded, api.guarded
    routes: list[BaseRoute] = [
        Route("/", page(pages.plugin_list), methods=["GET"], name="list"),
        Route("/install", page(pages.install), methods=["POST"], name="install"),
        Route("/health", page(pages.health), methods=["GET"], name="health"),
        Route("/plugins/{name}", page(pages.detail), methods=["GET"], name="detail"),
        Route("/plugins/{name}/{action}", page(pages.action), methods=["POST"], name="action"),
        Route("/api/health", call(api.health), methods=["GET"]),
        Route("/api/csrf", call(api.csrf), methods=["GET"]),
        Route("/api/plugins", call(api.plugin_list), methods=["GET"]),
        Route("/api/plugins", call(api.install), methods=["POST"]),
        Route("/api/plugins/{name}", call(api.plugin), methods=["GET"]),
        Route("/api/plugins/{name}", call(api.uninstall), methods=["DELETE"]),
        Route("/api/plugins/{name}/logs", call(api.logs), methods=["GET"]),
        Route("/api/plugins/{name}/audit", call(api.audit), methods=["GET"]),
        Route("/api/plugins/{name}/{action}", call(api.action), methods=["POST"]),
        Mount("/static", app=StaticFiles(packages=[(PACKAGE, "static")]), name="static"),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if is_api(request.scope):
            response: Response = error_json(code, str(exc.detail), exc.status_code)
        else:
            response = ctx.render_error(request, exc.status_code, code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                AdminGuard,
                auth=auth,
                token=token,
                login_url=login_url,
                csrf=csrf,
                max_body=max_upload_bytes + MULTIPART_OVERHEAD,
                render_error=ctx.render_error,
            )
        ],
        exception_handlers={HTTPException: http_error},
    )
