"""``GoatKitMiddleware``: plugins' routes and static files in front of any ASGI app.

Pure ASGI (not ``BaseHTTPMiddleware``). For each HTTP request it checks the static prefix and a
table of plugin routes (indexed by first path segment, so a request no plugin claims costs a dict
lookup) and otherwise passes the request to the app untouched, with the platform in
``scope["state"]["goatkit"]`` (``request.state.goatkit``). It also drives the platform's start and
stop from the ASGI lifespan, whether or not the wrapped app handles lifespan itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import compile_path
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    GoatKitError,
    PermissionDenied,
    PluginCallError,
    PluginDisabled,
    PluginNotFound,
)
from ..platform import PluginState, current_accept_language, current_user, decode_result
from .responses import error_response, internal_error_response, raw_response, result_kind
from .templates import PluginTemplates

if TYPE_CHECKING:
    import re

    from starlette.convertors import Convertor

    from ..platform import Platform, RouteEntry

logger = logging.getLogger("goatkit.web")

#: Request bodies larger than this are refused (413) before they reach a plugin.
MAX_BODY_BYTES = 1024 * 1024
# Methods a page of another site may send to plugin routes (they must not change anything).
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


_LIFESPAN_ENDS = frozenset(
    {"lifespan.shutdown.complete", "lifespan.startup.failed", "lifespan.shutdown.failed"}
)


@dataclass(frozen=True)
class _CompiledRoute:
    entry: RouteEntry
    regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]


class _RouteTable:
    """Plugin routes indexed by their first path segment."""

    def __init__(self, entries: list[RouteEntry], version: int) -> None:
        self.version = version
        self.by_segment: dict[str, list[_CompiledRoute]] = {}
        self.anywhere: list[_CompiledRoute] = []  # routes whose first segment is a parameter
        for entry in entries:
            regex, _fmt, convertors = compile_path(entry.route.path)
            compiled = _CompiledRoute(entry, regex, convertors)
            first = entry.route.path.split("/", 2)[1]
            if "{" in first:
                self.anywhere.append(compiled)
            else:
                self.by_segment.setdefault(first, []).append(compiled)

    def match(self, method: str, path: str) -> tuple[RouteEntry, dict[str, Any]] | None:
        group = self.by_segment.get(path[1:].split("/", 1)[0])
        if group is None and not self.anywhere:
            return None  # the common case for requests no plugin claims: one dict lookup
        for candidates in (group, self.anywhere):
            for compiled in candidates or ():
                route = compiled.entry.route
                if route.method not in ("*", method) and not (
                    method == "HEAD" and route.method == "GET"
                ):
                    continue
                m = compiled.regex.match(path)
                if m is not None:
                    params = {
                        key: compiled.convertors[key].convert(value)
                        for key, value in m.groupdict().items()
                    }
                    return compiled.entry, params
        return None


class GoatKitMiddleware:
    """Serve plugin routes and static files; pass everything else to ``app``.

    ``templates`` renders ``{"template": ...}`` results and wraps ``{"html": ...}`` results in
    the host layout; by default a :class:`PluginTemplates` with the built-in layout.

    A plugin route called with POST, PUT, PATCH or DELETE from a page of another site is refused
    (403) before the plugin runs, so a plugin's forms cannot be submitted by a hostile page in a
    signed-in user's browser (cross-site request forgery). Browsers say where a request comes
    from (``Sec-Fetch-Site``, ``Origin``); a request that says nothing (a script, ``curl``) is
    not a browser's and passes. ``trusted_origins`` (``"https://app.example.com"``) lists other
    sites whose pages may post to plugin routes.
    """

    def __init__(
        self,
        app: ASGIApp,
        platform: Platform,
        *,
        templates: PluginTemplates | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        trusted_origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.platform = platform
        self.templates = templates
        self.max_body_bytes = max_body_bytes
        self.trusted_origins = frozenset(o.rstrip("/").lower() for o in trusted_origins)
        self._static_prefix = platform.settings.static_prefix + "/"
        self._static_apps: dict[str, StaticFiles] = {}
        self._table = _RouteTable([], -1)
        self._claims: tuple[str, ...] = (self._static_prefix,)
        # Servers that support lifespan state copy it into every request's scope["state"]:
        # then the platform is put there once, at startup, instead of on every request.
        self._platform_in_lifespan_state = False
        self._rebuild()
        platform.on_routes_changed(self._rebuild)

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # (A coroutine function: servers and test clients tell ASGI 3 apps by that.)
        if scope["type"] == "http":
            # The prefixes plugins could claim (rebuilt when plugin routes change), checked in
            # one C-level startswith: a request no plugin claims costs that, nothing more.
            if scope["path"].startswith(self._claims):
                await self._dispatch(scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if not self._platform_in_lifespan_state:
            if "state" in scope:
                scope["state"]["goatkit"] = self.platform
            else:
                scope["state"] = {"goatkit": self.platform}
        await self.app(scope, receive, send)

    def _rebuild(self) -> None:
        version = self.platform.routes_version
        table = _RouteTable(self.platform.route_entries(), version)
        prefixes = [self._static_prefix, *(f"/{segment}" for segment in table.by_segment)]
        if table.anywhere:
            prefixes.append("/")  # a route starts with a parameter: every path is a candidate
        # "/stats" also catches "/statsx": such paths fall through to the app after the table.
        self._table = table
        self._claims = tuple(prefixes)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a static file or a plugin route, or pass the request on after all."""
        path: str = scope["path"]
        if path.startswith(self._static_prefix):
            name, _, rest = path[len(self._static_prefix) :].partition("/")
            if rest.startswith("static/") or rest == "static":
                await self._static(scope, receive, send, name, rest[len("static") :])
                return
        hit = self._table.match(scope["method"], path)
        if hit is not None:
            await self._serve(scope, receive, send, *hit)
            return
        scope.setdefault("state", {})["goatkit"] = self.platform
        await self.app(scope, receive, send)

    # -- lifespan ----------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the platform before the app's startup, stop it after the app's shutdown.

        If the wrapped app does not speak lifespan (it raises, or returns without answering),
        the middleware answers the server itself.
        """
        platform = self.platform
        seen = {"startup": False, "started": False, "stopped": False}
        state = scope.get("state")
        if isinstance(state, dict):
            state["goatkit"] = platform
            self._platform_in_lifespan_state = True

        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                seen["startup"] = True
                await platform.start()
            return message

        async def wrapped_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                seen["started"] = True
            elif message["type"] in _LIFESPAN_ENDS:
                await platform.stop()
                seen["stopped"] = True
            await send(message)

        try:
            await self.app(scope, wrapped_receive, wrapped_send)
        except BaseException:
            if seen["started"]:
                await platform.stop()
                raise
            logger.debug("the wrapped app does not handle lifespan; the middleware does")
        if seen["started"] or seen["stopped"]:
            if not seen["stopped"]:
                await platform.stop()
            return
        # The app ignored lifespan: answer the server ourselves.
        try:
            if not seen["startup"]:
                await receive()  # lifespan.startup
                await platform.start()
        except GoatKitError as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await platform.stop()
        await send({"type": "lifespan.shutdown.complete"})

    # -- static files ------------------------------------------------------------------------

    async def _static(
        self, scope: Scope, receive: Receive, send: Send, name: str, rest: str
    ) -> None:
        directory = self.platform.static_directory(name)
        if directory is None:
            request = Request(scope)
            exc = PluginNotFound(f"no plugin named {name!r} serves static files", plugin=name)
            await error_response(request, exc)(scope, receive, send)
            return
        app = self._static_apps.get(str(directory))
        if app is None:
            app = self._static_apps[str(directory)] = StaticFiles(
                directory=directory, check_dir=False
            )
        # StaticFiles serves the part of the path below root_path; the part above is ours.
        root = scope.get("root_path", "") + self._static_prefix + name + "/static"
        sub_scope = dict(scope, root_path=root, path=root + (rest or "/"))
        try:
            await app(sub_scope, receive, send)
        except HTTPException as exc:  # StaticFiles raises its 404/405 for the app to answer
            response = PlainTextResponse(
                exc.detail, status_code=exc.status_code, headers=exc.headers
            )
            await response(scope, receive, send)

    # -- plugin routes -----------------------------------------------------------------------

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, entry: RouteEntry, params: dict[str, Any]
    ) -> None:
        request = Request(scope, receive)
        plugin, route = entry.plugin, entry.route
        try:
            response = await self._respond(request, entry, params)
        except GoatKitError as exc:
            response = error_response(request, exc)
        except Exception:
            logger.exception("%s: %s %s failed in the platform", plugin, route.method, route.path)
            response = internal_error_response(request, plugin)
        await response(scope, receive, send)

    async def _respond(
        self, request: Request, entry: RouteEntry, params: dict[str, Any]
    ) -> Response:
        plugin, route = entry.plugin, entry.route
        platform = self.platform
        state = platform.plugin_state(plugin)
        if state is None:
            raise PluginNotFound(f"no plugin named {plugin!r}", plugin=plugin)
        if state is PluginState.DISABLED:
            raise PluginDisabled(f"{plugin}: the plugin is disabled", plugin=plugin)
        if request.method not in _SAFE_METHODS:
            foreign = self._foreign_origin(request)
            if foreign is not None:
                raise PermissionDenied(
                    f"{plugin}: {route.method} {route.path} was sent by a page of another site "
                    f"({foreign}) and is refused (cross-site request forgery); submit it from "
                    "this site, or list that site in the middleware's trusted_origins",
                    plugin=plugin,
                    code="cross_site",
                )
        if not await platform.allowed(request, route.permission):
            raise PermissionDenied(
                f"{plugin}: {route.method} {route.path} needs the permission "
                f"{route.permission!r}, which you do not have",
                plugin=plugin,
            )
        args = await self._request_args(request, params)
        if isinstance(args, Response):
            return args
        lang_token = current_accept_language.set(args.get("_accept_language"))
        user_token = current_user.set(args.get("_user_id"))
        try:
            raw = await platform.call_json(plugin, route.handler, _ENCODE(args).encode())
        finally:
            current_user.reset(user_token)
            current_accept_language.reset(lang_token)
        if raw is None:
            return Response(status_code=204)
        result = decode_result(plugin, route.handler, raw)
        if result_kind(result) == "json":
            # The plugin's bytes are valid JSON already: relay them instead of encoding again.
            return Response(raw, media_type="application/json")
        return await self._to_response(request, plugin, route.handler, result)

    def _foreign_origin(self, request: Request) -> str | None:
        """The other site a browser says this request comes from, or None if it is this one."""
        headers = request.headers
        origin = headers.get("origin", "").rstrip("/").lower()
        if origin and origin in self.trusted_origins:
            return None
        fetch_site = headers.get("sec-fetch-site", "").lower()
        if fetch_site and fetch_site not in ("same-origin", "none"):
            return origin or fetch_site
        if not origin:
            return None
        if origin == "null":  # a sandboxed frame, a file: page or a redirect across sites
            return "an opaque origin"
        host = headers.get("host", "").lower()
        if host and origin.partition("://")[2] == host:
            return None  # the scheme may differ behind a TLS-terminating proxy
        return origin

    async def _request_args(
        self, request: Request, params: dict[str, Any]
    ) -> dict[str, Any] | Response:
        """GoatKit's flat request object: query, then body fields, then path params, then ``_*``."""
        scope = request.scope
        query = scope.get("query_string", b"").decode("latin-1")
        args: dict[str, Any] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in args:
                prev = args[key]
                args[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                args[key] = value
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            body = await self._read_body(request)
            if body is None:
                return JSONResponse(
                    {
                        "error": {
                            "code": "too_large",
                            "message": f"request body over {self.max_body_bytes} bytes",
                        }
                    },
                    status_code=413,
                )
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if body and ctype == "application/json":
                try:
                    data = json.loads(body)
                except ValueError:
                    return JSONResponse(
                        {
                            "error": {
                                "code": "bad_request",
                                "message": "the JSON body is not valid JSON",
                            }
                        },
                        status_code=400,
                    )
                if isinstance(data, dict):
                    args.update(data)
                else:
                    args["_body"] = data
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.form(max_files=0)
                for key, field in form.multi_items():
                    if isinstance(field, str):  # files are not passed to plugins
                        args[key] = field
            elif body:
                args["_body"] = body.decode("utf-8", "replace")
        args.update(params)
        args["_method"] = scope["method"]
        args["_path"] = scope["path"]
        args["_query"] = query
        user = scope.get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            args["_user_id"] = str(getattr(user, "identity", ""))
            args["_user_name"] = str(getattr(user, "display_name", ""))
        for name, value in scope["headers"]:
            if name == b"accept-language":
                args["_accept_language"] = value.decode("latin-1")[:200]
                break
        return args

    async def _read_body(self, request: Request) -> bytes | None:
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        body = b"".join(chunks)
        request._body = body  # so request.form() can parse it again
        return body

    def _templates(self) -> PluginTemplates:
        if self.templates is None:
            self.templates = PluginTemplates(self.platform)
        return self.templates

    async def _to_response(
        self, request: Request, plugin: str, handler: str, result: Any
    ) -> Response:
        kind = result_kind(result)
        if kind == "empty":
            return Response(status_code=204)
        if kind == "json":
            return JSONResponse(result)
        if kind == "raw":
            return raw_response(result, plugin, handler)
        status = result.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise PluginCallError(
                f"{plugin}: {handler} returned status {status!r}", plugin=plugin, function=handler
            )
        if kind == "html":
            content = result["html"]
            if result.get("raw"):
                return HTMLResponse(content, status_code=status)
            page = await self._templates().render_layout(
                request, content, title=str(result.get("title", "")), plugin=plugin
            )
            return HTMLResponse(page, status_code=status)
        # template: a name inside the plugin's templates/ (a "<plugin>/" prefix is optional)
        body = await self._templates().render_plugin_template(plugin, handler, result, request)
        return HTMLResponse(body, status_code=status)
