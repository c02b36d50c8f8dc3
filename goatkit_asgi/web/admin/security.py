"""The admin's guard: who may come in, which requests may change state, what every answer says.

:class:`AdminGuard` is pure ASGI middleware in front of the admin's routes. For each request it

- sets the safe headers (Content-Security-Policy, ``nosniff``, no framing, no caching) on every
  answer, errors included;
- authenticates: ``Authorization: Bearer <token>`` when a token is configured (compared in
  constant time), otherwise the host's ``auth(request)``: ``None`` is "not signed in" (401, or a
  redirect to ``login_url`` for pages), false is 403, true is allowed;
- gives a browser-authenticated client a random browser id in a signed, HttpOnly,
  ``SameSite=Strict`` cookie, to which its CSRF tokens are bound;
- refuses request bodies over the upload limit (413), by ``Content-Length`` and while reading.

CSRF tokens (:class:`Csrf`) are checked by the state-changing endpoints themselves, because a
form's token is in its body; requests authenticated by the bearer token carry no cookies and
need none.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Literal
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("goatkit.admin")

#: What the host gives the admin to decide who may use it: ``None`` means "not signed in",
#: a false value "signed in but not allowed", a true value "allowed". May be a coroutine function.
AuthCallable = Callable[[Request], "bool | Awaitable[bool | None] | None"]

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

BROWSER_COOKIE = "gk_admin_browser"
SCOPE_KEY = "goatkit.admin"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class AdminAuth:
    """How the current request was let in (kept in ``scope["goatkit.admin"]``)."""

    via: Literal["token", "session"]
    browser_id: str | None = None
    new_browser_id: bool = False


class CsrfError(Exception):
    """A state-changing request without a valid CSRF token; the message says what to do."""


class Csrf:
    """Signed, expiring tokens bound to a per-browser random id."""

    def __init__(self, secret_key: str, max_age: int) -> None:
        self.max_age = max_age
        self._tokens = URLSafeTimedSerializer(secret_key, salt="goatkit-admin-csrf")
        self._browsers = URLSafeSerializer(secret_key, salt="goatkit-admin-browser")

    def new_browser_id(self) -> str:
        return secrets.token_urlsafe(24)

    def browser_cookie(self, browser_id: str) -> str:
        return self._browsers.dumps(browser_id)

    def browser_id(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            value = self._browsers.loads(cookie)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    def token(self, browser_id: str) -> str:
        return str(self._tokens.dumps(browser_id))

    def check(self, token: str | None, browser_id: str | None) -> None:
        """Raise :class:`CsrfError` unless ``token`` is valid, unexpired and for ``browser_id``."""
        again = "reload the admin page and try again"
        if not token:
            raise CsrfError(
                "the CSRF token is missing: send the csrf_token form field or the X-CSRF-Token "
                f"header; {again}"
            )
        if browser_id is None:
            raise CsrfError(f"the admin's browser cookie is missing; {again}")
        try:
            bound = self._tokens.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise CsrfError(f"the CSRF token has expired; {again}") from None
        except BadSignature:
            raise CsrfError(f"the CSRF token is not valid; {again}") from None
        if not isinstance(bound, str) or not hmac.compare_digest(bound, browser_id):
            raise CsrfError(f"the CSRF token belongs to another browser session; {again}")


def relative_path(scope: Scope) -> str:
    """The request path inside the admin (below its mount point)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_api(scope: Scope) -> bool:
    rel = relative_path(scope)
    return rel == "/api" or rel.startswith("/api/")


def error_json(code: str, message: str, status: int, plugin: str | None = None) -> JSONResponse:
    body: dict[str, str] = {"code": code, "message": message}
    if plugin is not None:
        body["plugin"] = plugin
    return JSONResponse({"error": body}, status_code=status)


class _BodyTooLarge(Exception):
    pass


class AdminGuard:
    """Authentication, safe headers and the body limit for the admin (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: AuthCallable | None,
        token: str | None,
        login_url: str | None,
        csrf: Csrf,
        max_body: int,
        render_error: Callable[[Request, int, str, str], Response],
    ) -> None:
        self.app = app
        self.auth = auth
        self.token = token.encode() if token else None
        self.login_url = login_url
        self.csrf = csrf
        self.max_body = max_body
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        cookie_header: list[tuple[bytes, bytes]] = []

        async def send_safely(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
                for raw_key, raw_value in cookie_header:
                    headers.append(raw_key.decode("latin-1"), raw_value.decode("latin-1"))
            await send(message)

        request = Request(scope)  # no receive: authentication looks at headers only
        try:
            outcome = await self._authenticate(request)
        except Exception:  # a failing host callable must not leak a traceback
            logger.exception("the admin's auth callable failed")
            response = self._error(request, 500, "internal_error", "authentication failed")
            await response(scope, receive, send_safely)
            return
        if isinstance(outcome, Response):
            await outcome(scope, receive, send_safely)
            return
        scope[SCOPE_KEY] = outcome
        if outcome.new_browser_id and outcome.browser_id is not None:
            cookie_header.append((b"set-cookie", self._browser_cookie(scope, outcome, https)))

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            response = self._too_large(request)
            await response(scope, receive, send_safely)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_safely(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._too_large(request)(scope, receive, send_safely)

    async def _authenticate(self, request: Request) -> AdminAuth | Response:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            if self.token is None:
                return self._unauthenticated(
                    request, "token authentication is not enabled for this admin", bearer=True
                )
            if hmac.compare_digest(credentials.strip().encode(), self.token):
                return AdminAuth("token")
            return self._unauthenticated(request, "the bearer token is not valid", bearer=True)
        if self.auth is None:
            return self._unauthenticated(
                request, "this admin accepts only a bearer token (Authorization: Bearer ...)"
            )
        result = self.auth(request)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return self._unauthenticated(request, "sign in to use the plugin admin")
        if not result:
            return self._error(
                request, 403, "forbidden", "you are signed in but may not use the plugin admin"
            )
        browser_id = self.csrf.browser_id(request.cookies.get(BROWSER_COOKIE))
        if browser_id is None and request.method not in UNSAFE_METHODS:
            return AdminAuth("session", self.csrf.new_browser_id(), new_browser_id=True)
        # A state change without the cookie keeps browser_id None: its CSRF check fails.
        return AdminAuth("session", browser_id)

    def _unauthenticated(self, request: Request, message: str, *, bearer: bool = False) -> Response:
        if self.login_url and not bearer and not is_api(request.scope):
            scope = request.scope
            here = scope.get("root_path", "") + relative_path(scope)
            if request.url.query:
                here += "?" + request.url.query
            login = self.login_url
            if login.startswith("/"):
                login = scope.get("app_root_path", "") + login
            separator = "&" if "?" in login else "?"
            return RedirectResponse(f"{login}{separator}next={quote(here)}", status_code=303)
        response = self._error(request, 401, "unauthenticated", message)
        if self.token is not None:
            response.headers["www-authenticate"] = 'Bearer realm="goatkit-admin"'
        return response

    def _error(self, request: Request, status: int, code: str, message: str) -> Response:
        if is_api(request.scope):
            return error_json(code, message, status)
        return self.render_error(request, status, code, message)

    def _too_large(self, request: Request) -> Response:
        limit = self.max_body
        return self._error(
            request,
            413,
            "too_large",
            f"the request body is larger than the admin accepts ({limit} bytes)",
        )

    def _browser_cookie(self, scope: Scope, auth: AdminAuth, https: bool) -> bytes:
        assert auth.browser_id is not None
        cookie: SimpleCookie = SimpleCookie()
        cookie[BROWSER_COOKIE] = self.csrf.browser_cookie(auth.browser_id)
        morsel = cookie[BROWSER_COOKIE]
        morsel["path"] = scope.get("root_path", "") or "/"
        morsel["httponly"] = True
        morsel["samesite"] = "Strict"
        if https:
            morsel["secure"] = True
        return morsel.OutputString().encode("latin-1")


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def browser_id_of(request: Request) -> str | None:
    auth: Any = request.scope.get(SCOPE_KEY)
    return auth.browser_id if isinstance(auth, AdminAuth) else None


def via_token(request: Request) -> bool:
    auth: Any = request.scope.get(SCOPE_KEY)
    return isinstance(auth, AdminAuth) and auth.via == "token"
