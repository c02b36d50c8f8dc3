"""What the admin does, shared by its pages and its JSON API: actions, uploads, CSRF checks.

Failures become :class:`Failure` (a status, a code and a message that names the plugin); the
pages show it as a flash message or an error page, the API as ``{"error": {...}}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ...errors import ConfigError, GoatKitError, PluginDisabled, PluginLoadError, PluginNotFound
from .security import Csrf, CsrfError, browser_id_of, via_token

if TYPE_CHECKING:
    from ...platform import Platform, PluginInfo

logger = logging.getLogger("goatkit.admin")

#: Actions taken on one plugin by name (``POST …/{name}/{action}``); grant, revoke and uninstall
#: are handled beside them.
LIFECYCLE_ACTIONS = ("enable", "disable", "load", "unload", "reload")
ACTIONS = (*LIFECYCLE_ACTIONS, "grant", "revoke", "uninstall")

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class Failure(Exception):
    """An admin request that failed: answered with ``status`` and ``{"error": body}``."""

    status: int
    body: dict[str, str]

    @property
    def message(self) -> str:
        return self.body.get("message", "")

    @classmethod
    def of(cls, status: int, code: str, message: str, plugin: str | None = None) -> Failure:
        body = {"code": code, "message": message}
        if plugin is not None:
            body["plugin"] = plugin
        return cls(status, body)


def failure_from(exc: GoatKitError, action: str) -> Failure:
    """The admin's status for a platform error raised by ``action``.

    Mostly the error's own ``http_status``; but a package that does not load is the uploader's
    mistake (400), a disabled plugin is a conflict with the request (409), and a ConfigError
    from an action is a bad request (400; 409 for uninstalling a plugin directory).
    """
    status = exc.http_status if exc.http_status >= 400 else 500
    if action == "install" and isinstance(exc, PluginLoadError):
        status = 400
    elif isinstance(exc, PluginDisabled):
        status = 409
    elif isinstance(exc, ConfigError):
        status = 409 if action == "uninstall" else 400
    return Failure(status, exc.to_dict())


async def read_form(request: Request) -> FormData:
    """The request's form (parsed once; Starlette caches it), with parse errors as a 400."""
    try:
        return await request.form(max_files=1, max_fields=32)
    except HTTPException as exc:
        raise Failure.of(400, "bad_request", f"the form could not be read: {exc.detail}") from exc


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() in _FORM_TYPES


async def require_csrf(request: Request, csrf: Csrf) -> None:
    """Refuse (403) a browser-authenticated state change without a valid CSRF token."""
    if via_token(request):
        return  # header-authenticated: a cross-site page cannot send the token for us
    token = request.headers.get("x-csrf-token")
    if token is None and is_form(request):
        value = (await read_form(request)).get("csrf_token")
        token = value if isinstance(value, str) else None
    try:
        csrf.check(token, browser_id_of(request))
    except CsrfError as exc:
        raise Failure.of(403, "csrf_failed", str(exc)) from exc


def parse_capabilities(raw: Any, action: str) -> dict[str, Any] | None:
    """A capabilities object from JSON text or a decoded value; empty means "none given"."""
    if isinstance(raw, str):
        if not raw.strip():
            return None
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise Failure.of(
                400, "bad_request", f"{action}: the capabilities are not valid JSON ({exc})"
            ) from exc
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise Failure.of(
            400,
            "bad_request",
            f'{action}: the capabilities must be a JSON object like {{"db": {{"read": ["t"]}}}}',
        )
    return raw


def _require_plugin(platform: Platform, name: str) -> None:
    if platform.plugin_state(name) is None:
        raise Failure.of(404, "not_found", f"no plugin named {name!r}", name)


async def run_action(
    platform: Platform, name: str, action: str, capabilities: dict[str, Any] | None = None
) -> str:
    """Do ``action`` to plugin ``name``; return what was done, for a flash message."""
    _require_plugin(platform, name)
    try:
        if action == "enable":
            await platform.enable(name)
            done = f"{name} is enabled"
        elif action == "disable":
            await platform.disable(name)
            done = f"{name} is disabled"
        elif action == "load":
            await platform.load(name)
            done = f"{name} is loaded"
        elif action == "unload":
            await platform.unload(name)
            done = f"{name} is unloaded"
        elif action == "reload":
            info = await platform.reload(name)
            version = info.manifest.version if info.manifest else "?"
            done = f"{name} is reloaded (version {version})"
        elif action == "grant":
            if not capabilities:
                raise Failure.of(400, "bad_request", "grant: no capabilities given", name)
            left = await platform.grant(name, capabilities)
            done = f"{name} is granted {_text(left.to_dict())}"
        elif action == "revoke":
            left = await platform.revoke(name, capabilities or None)
            done = f"{name} now holds {_text(left.to_dict())}"
        elif action == "uninstall":
            await platform.uninstall(name)
            done = f"{name} is uninstalled"
        else:
            raise Failure.of(404, "not_found", f"no admin action {action!r}", name)
    except GoatKitError as exc:
        raise failure_from(exc, action) from exc
    if action != "uninstall":
        platform.logs.log(name, "info", f"admin: {done}")
    logger.info("admin: %s", done)
    return done


def _text(caps: dict[str, Any]) -> str:
    return json.dumps(caps, separators=(", ", ": ")) if caps else "nothing"


async def read_upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """The uploaded package: the multipart field ``package``, or the raw body and ``?filename=``."""
    if is_form(request):
        form = await read_form(request)
        upload = form.get("package")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise Failure.of(400, "bad_request", "choose a .zip package to upload (field package)")
        filename = upload.filename
        data = await upload.read(max_bytes + 1)
    else:
        filename = request.query_params.get("filename", "")
        if not filename:
            raise Failure.of(
                400,
                "bad_request",
                "send the package as multipart field package, or as the body with ?filename=",
            )
        data = await request.body()
    if len(data) > max_bytes:
        raise Failure.of(
            413, "too_large", f"{filename}: the package is larger than {max_bytes} bytes"
        )
    if not data:
        raise Failure.of(400, "bad_request", f"{filename}: the package is empty")
    return filename, data


async def install(platform: Platform, filename: str, data: bytes) -> PluginInfo:
    """Install an uploaded package (checked and extracted safely by the platform)."""
    try:
        info = await platform.install(filename, data)
    except GoatKitError as exc:
        raise failure_from(exc, "install") from exc
    logger.info("admin: installed %s from %s", info.name, filename)
    return info


def require_known(platform: Platform, name: str) -> PluginInfo:
    info = platform.info(name)
    if info is None:
        raise failure_from(PluginNotFound(f"no plugin named {name!r}", plugin=name), "show")
    return info
