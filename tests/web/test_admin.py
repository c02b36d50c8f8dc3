"""The plugin admin through Starlette's TestClient: pages, JSON API, auth, CSRF, uploads, headers."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import itsdangerous
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient

from goatkit_asgi import Platform, PluginState
from goatkit_asgi.errors import ConfigError
from goatkit_asgi.web.admin.wasm_interface import read_interface
from goatkit_asgi.web.middleware import GoatKitMiddleware
from tests.fixtures.wat import REGISTRATION, make_plugin

MakePlatform = Callable[..., Platform]

SECRET = "test-secret-key-0123456789abcdef"
TOKEN = "automation-token-0123456789"
BEARER = {"authorization": f"Bearer {TOKEN}"}
MOUNT = "/admin/plugins"
SAFE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

SINK_REGISTRATION = {
    **REGISTRATION,
    "name": "sink",
    "description": "test plugin <b>bold</b>",
    "routes": [{"method": "GET", "path": "/sink/echo", "handler": "echo", "permission": "p.x"}],
    "menu_items": [{"id": "sink", "label": "Sink <menu>", "path": "/sink/echo", "order": 1}],
    "hooks": [{"name": "after_save", "handler": "echo", "priority": 3}],
    "jobs": [{"id": "nightly", "handler": "maybe", "schedule": "0 3 * * *"}],
}


def user_auth(request: Request) -> bool | None:
    """ada may administer, eve is signed in but may not, nobody else is signed in."""
    return {"ada": True, "eve": False}.get(request.headers.get("x-user", ""))


def host_app(platform: Platform, *mounts: str, **options: Any) -> GoatKitMiddleware:
    options.setdefault("secret_key", SECRET)
    options.setdefault("token", TOKEN)
    auth = options.pop("auth", user_auth)
    admin = platform.admin_app(auth, **options)
    routes = [Mount(m, app=admin) for m in mounts or (MOUNT,)]
    return GoatKitMiddleware(Starlette(routes=routes), platform=platform)


def platform_of(client: TestClient) -> Platform:
    app = client.app
    assert isinstance(app, GoatKitMiddleware)
    return app.platform


@pytest.fixture
def plugins(plugins_dir: Path) -> Path:
    make_plugin(
        plugins_dir,
        "sink",
        manifest={
            "description": "A <script>alert(1)</script> plugin",
            "homepage": "javascript:alert(1)",
            "capabilities": {"plugins": ["helper"], "events": True},
        },
        registration=SINK_REGISTRATION,
    )
    make_plugin(plugins_dir, "helper")
    broken = plugins_dir / "broken"
    broken.mkdir()
    (broken / "manifest.yaml").write_text("name: broken\nversion: [not, a, version]\n")
    return plugins_dir


@pytest.fixture
def client(plugins: Path, make_platform: MakePlatform) -> Iterator[TestClient]:
    app = host_app(make_platform())
    with TestClient(app, headers={"x-user": "ada"}) as c:
        yield c


def in_loop(client: TestClient, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a platform coroutine function on the test client's event loop."""
    assert client.portal is not None
    return client.portal.call(fn, *args)


def token_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def page_token(client: TestClient, path: str = f"{MOUNT}/") -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return token_from(r.text)


def api_token(client: TestClient) -> str:
    body = client.get(f"{MOUNT}/api/csrf").json()
    assert body["required"] is True and body["header"] == "X-CSRF-Token"
    return str(body["token"])


def zip_plugin(tmp_path: Path, name: str, **kwargs: Any) -> bytes:
    src = make_plugin(tmp_path / "src", name, **kwargs)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f.name)
    return buf.getvalue()


def follow(client: TestClient, response: Any) -> str:
    """The page a 303 leads to (where the flash message is shown)."""
    assert response.status_code == 303, response.text
    return str(client.get(response.headers["location"]).text)


def assert_safe_headers(response: Any) -> None:
    for key, value in SAFE_HEADERS.items():
        assert response.headers.get(key) == value, (key, response.status_code)


# -- configuration ----------------------------------------------------------------------------


def test_admin_refuses_to_start_without_a_secret_or_any_access(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    with pytest.raises(ConfigError, match="secret_key is required"):
        platform.admin_app(user_auth)
    with pytest.raises(ConfigError, match="secret_key is required"):
        platform.admin_app(user_auth, secret_key="short")
    with pytest.raises(ConfigError, match="the admin has no default access"):
        platform.admin_app(None, secret_key=SECRET)
    with pytest.raises(ConfigError, match="auth must be a callable"):
        platform.admin_app("yes", secret_key=SECRET)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="token must be a string of at least 16"):
        platform.admin_app(None, secret_key=SECRET, token="abc")
    with pytest.raises(ConfigError, match="max_upload_bytes must be a positive"):
        platform.admin_app(user_auth, secret_key=SECRET, max_upload_bytes=0)
    with pytest.raises(ConfigError, match="csrf_max_age must be a positive"):
        platform.admin_app(user_auth, secret_key=SECRET, csrf_max_age=-1)
    assert isinstance(platform.admin_app(user_auth, secret_key=SECRET), Starlette)


# -- authentication and authorisation --------------------------------------------------------


def test_unauthenticated_requests_get_401_and_no_data(client: TestClient) -> None:
    anonymous = {"x-user": ""}
    page = client.get(f"{MOUNT}/", headers=anonymous)
    assert page.status_code == 401
    assert "Sign in required" in page.text and "sink" not in page.text
    api = client.get(f"{MOUNT}/api/plugins", headers=anonymous)
    assert api.status_code == 401
    assert api.json() == {
        "error": {"code": "unauthenticated", "message": "sign in to use the plugin admin"}
    }
    assert api.headers["www-authenticate"] == 'Bearer realm="goatkit-admin"'
    # the assets and every action are behind the same door
    assert client.get(f"{MOUNT}/static/admin.css", headers=anonymous).status_code == 401
    assert client.post(f"{MOUNT}/api/plugins/sink/disable", headers=anonymous).status_code == 401
    assert platform_of(client).plugins["sink"].state is not PluginState.DISABLED
    for r in (page, api):
        assert_safe_headers(r)
        assert "set-cookie" not in r.headers


def test_signed_in_but_not_allowed_gets_403(client: TestClient) -> None:
    eve = {"x-user": "eve"}
    page = client.get(f"{MOUNT}/plugins/sink", headers=eve)
    assert page.status_code == 403 and "may not use the plugin admin" in page.text
    api = client.post(f"{MOUNT}/api/plugins/sink/disable", headers=eve)
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "forbidden"
    assert platform_of(client).plugins["sink"].state is not PluginState.DISABLED


def test_pages_redirect_to_the_hosts_login_url_when_not_signed_in(
    plugins: Path, make_platform: MakePlatform
) -> None:
    app = host_app(make_platform(), login_url="/login")
    with TestClient(app, root_path="/site") as client:
        r = client.get(f"/site{MOUNT}/plugins/sink?tab=logs", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"/site/login?next=/site{MOUNT}/plugins/sink%3Ftab%3Dlogs"
        # the API never redirects: automation gets a 401 it can act on
        api = client.get(f"/site{MOUNT}/api/plugins", follow_redirects=False)
        assert api.status_code == 401


def test_async_auth_callables_are_awaited(plugins: Path, make_platform: MakePlatform) -> None:
    seen: list[str] = []

    async def auth(request: Request) -> bool | None:
        seen.append(request.url.path)
        return request.headers.get("x-user") == "ada" or None

    app = host_app(make_platform(), auth=auth)
    with TestClient(app) as client:
        assert client.get(f"{MOUNT}/api/plugins").status_code == 401
        r = client.get(f"{MOUNT}/api/plugins", headers={"x-user": "ada"})
        assert r.status_code == 200
        assert [p["name"] for p in r.json()["plugins"]] == ["broken", "helper", "sink"]
    assert seen == [f"{MOUNT}/api/plugins"] * 2


def test_bearer_token_is_checked_and_needs_no_csrf(client: TestClient) -> None:
    anonymous = {"x-user": ""}
    assert client.get(f"{MOUNT}/api/plugins", headers={**anonymous, **BEARER}).status_code == 200
    wrong = client.get(
        f"{MOUNT}/api/plugins", headers={**anonymous, "authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "the bearer token is not valid"
    # a wrong token is not rescued by a signed-in browser session either
    assert (
        client.get(f"{MOUNT}/api/plugins", headers={"authorization": "Bearer nope"}).status_code
        == 401
    )
    r = client.post(f"{MOUNT}/api/plugins/sink/disable", headers={**anonymous, **BEARER})
    assert r.status_code == 200 and r.json()["plugin"]["state"] == "disabled"
    assert "set-cookie" not in r.headers  # header-authenticated: no browser cookie


def test_token_only_admin_refuses_browsers(plugins: Path, make_platform: MakePlatform) -> None:
    app = host_app(make_platform(), auth=None)
    with TestClient(app) as client:
        page = client.get(f"{MOUNT}/")
        assert page.status_code == 401 and "accepts only a bearer token" in page.text
        assert client.get(f"{MOUNT}/api/health", headers=BEARER).status_code == 200
    app = host_app(make_platform(), token=None)
    with TestClient(app) as client:
        r = client.get(f"{MOUNT}/api/health", headers={**BEARER, "x-user": "ada"})
        assert r.status_code == 401
        assert r.json()["error"]["message"] == "token authentication is not enabled for this admin"
        assert "www-authenticate" not in r.headers


def test_a_failing_auth_callable_is_a_500_without_a_traceback(
    plugins: Path, make_platform: MakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    def auth(request: Request) -> bool:
        raise RuntimeError("session store is down")

    app = host_app(make_platform(), auth=auth)
    with TestClient(app) as client:
        api = client.get(f"{MOUNT}/api/plugins")
        page = client.get(f"{MOUNT}/")
    assert api.status_code == 500
    assert api.json() == {"error": {"code": "internal_error", "message": "authentication failed"}}
    assert page.status_code == 500 and "Traceback" not in page.text
    assert "session store is down" not in api.text + page.text
    assert "session store is down" in caplog.text  # but the operator can find it


# -- headers and cookies ---------------------------------------------------------------------


def test_every_admin_response_carries_the_safe_headers(client: TestClient) -> None:
    responses = [
        client.get(f"{MOUNT}/"),
        client.get(f"{MOUNT}/plugins/sink"),
        client.get(f"{MOUNT}/health"),
        client.get(f"{MOUNT}/static/admin.js"),
        client.get(f"{MOUNT}/api/plugins"),
        client.get(f"{MOUNT}/api/plugins/nope"),
        client.get(f"{MOUNT}/nowhere"),
        client.post(f"{MOUNT}/api/plugins/sink/disable"),  # 403: no CSRF token
        client.get(f"{MOUNT}/", headers={"x-user": "eve"}),
        client.get(f"{MOUNT}/api/plugins", headers={**BEARER, "x-user": ""}),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 404, 404, 403, 403, 200]
    for r in responses:
        assert_safe_headers(r)


def test_pages_have_no_inline_script_or_style(client: TestClient) -> None:
    for path in ("/", "/plugins/sink", "/plugins/broken", "/health", "/nowhere"):
        html = client.get(f"{MOUNT}{path}").text
        assert "<style" not in html and " style=" not in html, path
        assert re.findall(r"<script[^>]*>", html) in (
            [],
            [f'<script src="{MOUNT}/static/admin.js" defer>'],
        )
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path  # no event handler attributes


def test_browser_cookie_is_httponly_strict_and_scoped_to_the_mount(
    plugins: Path, make_platform: MakePlatform
) -> None:
    app = host_app(make_platform())
    with TestClient(app, base_url="https://testserver", headers={"x-user": "ada"}) as client:
        first = client.get(f"{MOUNT}/")
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("gk_admin_browser=")
        parts = {p.strip().lower() for p in cookie.split(";")[1:]}
        assert parts == {"httponly", f"path={MOUNT}", "samesite=strict", "secure"}
        # one browser id per browser: the next page does not set it again
        assert "set-cookie" not in client.get(f"{MOUNT}/health").headers


# -- CSRF --------------------------------------------------------------------------------------

STATE_CHANGING = [
    *(("POST", f"/plugins/sink/{a}") for a in ("enable", "disable", "load", "unload", "reload")),
    ("POST", "/plugins/sink/grant"),
    ("POST", "/plugins/sink/revoke"),
    ("POST", "/plugins/sink/uninstall"),
    ("POST", "/install"),
    *(("POST", f"/api/plugins/sink/{a}") for a in ("enable", "disable", "load", "unload")),
    ("POST", "/api/plugins/sink/reload"),
    ("POST", "/api/plugins/sink/grant"),
    ("POST", "/api/plugins/sink/revoke"),
    ("DELETE", "/api/plugins/sink"),
    ("POST", "/api/plugins"),
]


@pytest.mark.parametrize(("method", "path"), STATE_CHANGING)
def test_every_state_change_needs_a_csrf_token(
    client: TestClient, tmp_path: Path, method: str, path: str
) -> None:
    platform = platform_of(client)
    client.get(f"{MOUNT}/")  # the browser has its cookie, but sends no token
    before = {n: (i.state, i.granted) for n, i in platform.plugins.items()}
    if path.endswith("install") or path == "/api/plugins":
        kwargs: dict[str, Any] = {"files": {"package": ("up.zip", zip_plugin(tmp_path, "up"))}}
    elif path.endswith("grant"):
        kwargs = {"data": {"capabilities": '{"events": true}'}}
    else:
        kwargs = {"data": {"x": "1"}} if method == "POST" else {}
    r = client.request(method, f"{MOUNT}{path}", **kwargs)
    assert r.status_code == 403, r.text
    if path.startswith("/api/"):
        assert r.json()["error"]["code"] == "csrf_failed"
        assert "the CSRF token is missing" in r.json()["error"]["message"]
    else:
        assert "the CSRF token is missing" in r.text and "reload the admin page" in r.text
    assert {n: (i.state, i.granted) for n, i in platform.plugins.items()} == before
    assert_safe_headers(r)


def test_csrf_tokens_that_are_tampered_foreign_or_expired_are_refused(client: TestClient) -> None:
    platform = platform_of(client)
    token = page_token(client)
    url = f"{MOUNT}/api/plugins/sink/disable"

    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = client.post(url, headers={"x-csrf-token": tampered})
    assert r.status_code == 403 and "the CSRF token is not valid" in r.json()["error"]["message"]

    cookie = client.cookies["gk_admin_browser"]
    browser_id = itsdangerous.URLSafeSerializer(SECRET, salt="goatkit-admin-browser").loads(cookie)

    class LongAgo(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 3 * 3600  # older than the default 2 h

    old = itsdangerous.URLSafeTimedSerializer(SECRET, salt="goatkit-admin-csrf", signer=LongAgo)
    r = client.post(url, headers={"x-csrf-token": str(old.dumps(browser_id))})
    assert r.status_code == 403 and "the CSRF token has expired" in r.json()["error"]["message"]

    signed_elsewhere = itsdangerous.URLSafeTimedSerializer("another-secret-0123456789", salt="x")
    r = client.post(url, headers={"x-csrf-token": str(signed_elsewhere.dumps(browser_id))})
    assert r.status_code == 403

    # another browser: a fresh cookie, and the first browser's token
    client.cookies.clear()
    client.get(f"{MOUNT}/")
    r = client.post(url, headers={"x-csrf-token": token})
    assert r.status_code == 403
    assert "belongs to another browser session" in r.json()["error"]["message"]

    # no cookie at all
    client.cookies.clear()
    r = client.post(url, headers={"x-csrf-token": token})
    assert r.status_code == 403 and "browser cookie is missing" in r.json()["error"]["message"]
    html = client.post(f"{MOUNT}/plugins/sink/disable", data={"csrf_token": token})
    assert html.status_code == 403 and "browser cookie is missing" in html.text
    assert platform.plugins["sink"].state is not PluginState.DISABLED


def test_a_short_csrf_max_age_is_honoured(plugins: Path, make_platform: MakePlatform) -> None:
    app = host_app(make_platform(), csrf_max_age=1)
    with TestClient(app, headers={"x-user": "ada"}) as client:
        token = page_token(client)
        time.sleep(2.1)
        r = client.post(f"{MOUNT}/api/plugins/sink/disable", headers={"x-csrf-token": token})
        assert r.status_code == 403 and "expired" in r.json()["error"]["message"]
        fresh = page_token(client)
        r = client.post(f"{MOUNT}/api/plugins/sink/disable", headers={"x-csrf-token": fresh})
        assert r.status_code == 200


# -- actions through the pages ---------------------------------------------------------------


def test_page_actions_change_state_and_redirect_with_a_flash_message(client: TestClient) -> None:
    platform = platform_of(client)
    token = page_token(client, f"{MOUNT}/plugins/sink")

    def act(action: str, **data: str) -> str:
        r = client.post(
            f"{MOUNT}/plugins/sink/{action}",
            data={"csrf_token": token, **data},
            follow_redirects=False,
        )
        assert r.headers["location"] == f"{MOUNT}/plugins/sink", r.text
        return follow(client, r)

    html = act("disable")
    assert '<div class="flash flash-ok" role="status">sink is disabled.</div>' in html
    assert platform.plugins["sink"].state is PluginState.DISABLED
    # the flash is shown once
    assert "is disabled." not in client.get(f"{MOUNT}/plugins/sink").text

    assert "sink is enabled." in act("enable")
    assert platform.plugins["sink"].state is PluginState.DISCOVERED
    assert "sink is loaded." in act("load")
    assert platform.plugins["sink"].state is PluginState.LOADED
    assert "sink is unloaded." in act("unload")
    assert platform.plugins["sink"].state is PluginState.DISCOVERED
    assert "sink is reloaded (version 1.0.0)." in act("reload")

    html = act("grant", capabilities='{"events": true, "plugins": ["helper"]}')
    assert "sink is granted" in html
    assert platform.plugins["sink"].granted.to_dict() == {"plugins": ["helper"], "events": True}
    assert platform.plugins["sink"].pending.is_empty()
    html = act("revoke", capabilities='{"events": true}')
    assert "sink now holds {&#34;plugins&#34;: [&#34;helper&#34;]}." in html
    assert "sink now holds nothing." in act("revoke")  # no capabilities: revoke everything
    assert platform.plugins["sink"].granted.is_empty()

    # the admin's actions show in the plugin's log
    messages = [r.message for r in platform.logs.records("sink")]
    assert "admin: sink is disabled" in messages and "admin: sink now holds nothing" in messages


def test_page_action_failures_come_back_as_error_flashes(client: TestClient) -> None:
    platform = platform_of(client)
    token = page_token(client)
    r = client.post(
        f"{MOUNT}/plugins/sink/grant",
        data={"csrf_token": token, "capabilities": "{not json"},
        follow_redirects=False,
    )
    html = follow(client, r)
    assert 'class="flash flash-error"' in html and "the capabilities are not valid JSON" in html
    r = client.post(
        f"{MOUNT}/plugins/sink/grant",
        data={"csrf_token": token, "capabilities": '{"db": {"read": "tickets"}}'},
        follow_redirects=False,
    )
    assert "grant: capabilities.db.read" in follow(client, r)
    # a plugin directory cannot be uninstalled from the admin
    r = client.post(
        f"{MOUNT}/plugins/sink/uninstall", data={"csrf_token": token}, follow_redirects=False
    )
    assert "it is a plugin directory" in follow(client, r)
    assert "sink" in platform.plugins
    # an unknown plugin goes back to the list
    r = client.post(
        f"{MOUNT}/plugins/nope/disable", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.headers["location"] == f"{MOUNT}/"
    assert "no plugin named &#39;nope&#39;" in follow(client, r)
    r = client.post(f"{MOUNT}/plugins/sink/explode", data={"csrf_token": token})
    assert r.status_code == 404 and "no admin action &#39;explode&#39;" in r.text


def test_upload_through_the_page_then_review_and_grant(client: TestClient, tmp_path: Path) -> None:
    platform = platform_of(client)
    token = page_token(client)
    data = zip_plugin(
        tmp_path,
        "up",
        manifest={"capabilities": {"plugins": ["helper"]}},
        registration={**REGISTRATION, "name": "up"},
    )
    r = client.post(
        f"{MOUNT}/install",
        data={"csrf_token": token},
        files={"package": ("up-1.0.zip", data, "application/zip")},
        follow_redirects=False,
    )
    assert r.headers["location"] == f"{MOUNT}/plugins/up"
    html = follow(client, r)
    assert "Installed up from up-1.0.zip." in html and "Review what it asks for" in html
    assert "Grant what it asks" in html and "needs review" in html
    assert platform.plugins["up"].pending.to_dict() == {"plugins": ["helper"]}

    # until it is granted, its host calls are refused
    call = ["plugin_call", {"plugin": "helper", "function": "echo", "args": {"n": 1}}]
    denied = in_loop(client, platform.call, "up", "host", call)
    assert denied["failed"]["code"] == "capability_denied"

    # the review form grants what it asks
    granted = token_from(html.split('action="/admin/plugins/plugins/up/grant"', 1)[1])
    field = re.search(r'name="capabilities" value="([^"]+)"', html)
    assert field and field.group(1) == "{&#34;plugins&#34;:[&#34;helper&#34;]}"
    r = client.post(
        f"{MOUNT}/plugins/up/grant",
        data={"csrf_token": granted, "capabilities": '{"plugins":["helper"]}'},
        follow_redirects=False,
    )
    assert "up is granted {&#34;plugins&#34;: [&#34;helper&#34;]}." in follow(client, r)
    assert platform.plugins["up"].pending.is_empty()
    allowed = in_loop(client, platform.call, "up", "host", call)
    assert allowed == {"n": 1}

    # uninstall from its page
    r = client.post(
        f"{MOUNT}/plugins/up/uninstall", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.headers["location"] == f"{MOUNT}/"
    assert "up is uninstalled." in follow(client, r)
    assert "up" not in platform.plugins


def test_a_refused_upload_through_the_page_says_why(client: TestClient) -> None:
    token = page_token(client)
    r = client.post(
        f"{MOUNT}/install",
        data={"csrf_token": token},
        files={"package": ("evil.zip", b"not a zip at all", "application/zip")},
        follow_redirects=False,
    )
    assert r.headers["location"] == f"{MOUNT}/"
    html = follow(client, r)
    assert 'class="flash flash-error"' in html and "evil.zip" in html
    r = client.post(f"{MOUNT}/install", data={"csrf_token": token}, follow_redirects=False)
    assert "choose a .zip package to upload" in follow(client, r)


# -- the JSON API ----------------------------------------------------------------------------


def test_api_lists_and_describes_plugins(client: TestClient) -> None:
    plugins = client.get(f"{MOUNT}/api/plugins").json()["plugins"]
    by_name = {p["name"]: p for p in plugins}
    assert set(by_name) == {"broken", "helper", "sink"}
    assert by_name["broken"]["state"] == "failed"
    assert by_name["broken"]["error"]["code"] == "manifest_error"
    sink = by_name["sink"]
    assert sink["version"] == "1.0.0" and sink["runtime"] == "wasm" and sink["needs_review"]
    assert sink["calls"] == 0 and sink["p50_ms"] is None and sink["last_used_seconds_ago"] is None

    platform = platform_of(client)
    for _ in range(3):
        in_loop(client, platform.call, "sink", "echo", {"a": 1})
    detail = client.get(f"{MOUNT}/api/plugins/sink").json()["plugin"]
    assert detail["calls"] == 3 and detail["p50_ms"] > 0 and detail["state"] == "loaded"
    assert detail["memory_bytes"] > 0 and detail["last_used_seconds_ago"] >= 0
    assert detail["functions"] == [
        {
            "name": "echo",
            "calls": 3,
            "errors": {},
            "timeouts": 0,
            "inline_calls": detail["functions"][0]["inline_calls"],
            "p50_ms": detail["functions"][0]["p50_ms"],
            "p99_ms": detail["functions"][0]["p99_ms"],
        }
    ]
    assert detail["capabilities"] == {
        "requested": {"plugins": ["helper"], "events": True},
        "granted": {},
        "effective": {},
        "pending": {"plugins": ["helper"], "events": True},
    }
    reg = detail["registration"]
    assert reg["routes"][0]["path"] == "/sink/echo" and reg["hooks"][0]["priority"] == 3
    assert reg["jobs"][0]["id"] == "nightly" and reg["menu_items"][0]["label"] == "Sink <menu>"
    assert "source" not in detail["manifest"] and "directory" not in detail["manifest"]
    module = detail["module"]
    assert module["file"] == "plugin.wasm" and len(module["sha256"]) == 64
    assert {
        "module": "gk",
        "name": "host_call",
        "kind": "func",
        "signature": "(i32, i32, i32, i32) -> i64",
    } in module["imports"]
    assert {"name": "gk_register", "kind": "func", "signature": "() -> i64"} in module["exports"]
    assert detail["signature"] == {
        "status": "unsigned",
        "detail": "no SIGNATURE.json or plugin.wasm.sig",
        "files": [],
    }
    assert detail["jobs"] == []  # declared, but not scheduled: jobs were not granted


def test_api_actions_each_do_what_they_say(client: TestClient) -> None:
    platform = platform_of(client)
    token = api_token(client)
    headers = {"x-csrf-token": token}

    def act(action: str, **kwargs: Any) -> dict[str, Any]:
        r = client.post(f"{MOUNT}/api/plugins/sink/{action}", headers=headers, **kwargs)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert body["ok"] is True
        return body

    assert act("disable")["plugin"]["state"] == "disabled"
    assert act("enable")["plugin"]["state"] == "discovered"
    assert act("load")["plugin"]["state"] == "loaded"
    assert act("unload")["plugin"]["state"] == "discovered"
    assert act("reload")["message"] == "sink is reloaded (version 1.0.0)"
    body = act("grant", json={"events": True})
    assert body["capabilities"]["granted"] == {"events": True}
    assert body["capabilities"]["pending"] == {"plugins": ["helper"]}
    body = act("revoke", json={"events": True})
    assert body["capabilities"]["granted"] == {}
    act("grant", json={"events": True, "plugins": ["helper"]})
    assert act("revoke")["capabilities"]["granted"] == {}  # empty body: revoke everything
    assert platform.plugins["sink"].granted.is_empty()


def test_api_install_uninstall_and_capability_review(client: TestClient, tmp_path: Path) -> None:
    platform = platform_of(client)
    anonymous = {"x-user": ""}
    data = zip_plugin(tmp_path, "up", manifest={"capabilities": {"events": True}})
    r = client.post(
        f"{MOUNT}/api/plugins",
        headers={**anonymous, **BEARER},
        files={"package": ("up.zip", data, "application/zip")},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["plugin"]["name"] == "up" and body["plugin"]["package"] is True
    assert body["capabilities"] == {
        "requested": {"events": True},
        "granted": {},
        "pending": {"events": True},
    }
    event = ["publish_event", {"topic": "t", "payload": {}}]
    denied = in_loop(client, platform.call, "up", "host", event)
    assert denied["failed"]["code"] == "capability_denied"
    audit = client.get(f"{MOUNT}/api/plugins/up/audit").json()["entries"]
    assert [(a["function"], a["decision"]) for a in audit] == [("publish_event", "denied")]
    r = client.post(
        f"{MOUNT}/api/plugins/up/grant", headers={**anonymous, **BEARER}, json={"events": True}
    )
    assert r.status_code == 200
    allowed = in_loop(client, platform.call, "up", "host", event)
    assert allowed["ok"] is True

    # the raw body with ?filename= works too (an upgrade here)
    r = client.post(
        f"{MOUNT}/api/plugins?filename=up.zip",
        headers={**anonymous, **BEARER, "content-type": "application/zip"},
        content=data,
    )
    assert r.status_code == 201, r.text

    r = client.delete(f"{MOUNT}/api/plugins/up", headers={"x-csrf-token": api_token(client)})
    assert r.status_code == 200 and r.json() == {
        "ok": True,
        "message": "up is uninstalled",
        "plugin": "up",
    }
    assert "up" not in platform.plugins
    assert client.get(f"{MOUNT}/api/plugins/up", headers=BEARER).status_code == 404


def test_api_errors_are_json_with_the_right_status(client: TestClient, tmp_path: Path) -> None:
    h = {**BEARER, "x-user": ""}

    def error(r: Any, status: int) -> dict[str, Any]:
        assert r.status_code == status, r.text
        assert "Traceback" not in r.text
        body: dict[str, Any] = r.json()["error"]
        return body

    assert error(client.get(f"{MOUNT}/api/plugins/nope", headers=h), 404) == {
        "code": "not_found",
        "message": "no plugin named 'nope'",
        "plugin": "nope",
    }
    assert (
        error(client.post(f"{MOUNT}/api/plugins/nope/enable", headers=h), 404)["plugin"] == "nope"
    )
    assert error(client.post(f"{MOUNT}/api/plugins/sink/explode", headers=h), 404)["message"] == (
        "no admin action 'explode'"
    )
    assert error(client.get(f"{MOUNT}/api/nothing", headers=h), 404)["code"] == "not_found"
    assert error(client.get(f"{MOUNT}/api/plugins/sink/enable", headers=h), 405)["code"] == (
        "method_not_allowed"
    )
    # loading a disabled plugin conflicts with its state
    client.post(f"{MOUNT}/api/plugins/sink/disable", headers=h)
    body = error(client.post(f"{MOUNT}/api/plugins/sink/load", headers=h), 409)
    assert body["code"] == "disabled" and "enable it first" in body["message"]
    # a failed plugin's load error is passed on with its status
    body = error(client.post(f"{MOUNT}/api/plugins/broken/load", headers=h), 502)
    assert body["code"] == "manifest_error" and body["plugin"] == "broken"
    # uninstalling a plugin directory
    assert error(client.delete(f"{MOUNT}/api/plugins/helper", headers=h), 409)["code"] == (
        "config_error"
    )
    # bad grants
    body = error(client.post(f"{MOUNT}/api/plugins/sink/grant", headers=h, content=b"{oops"), 400)
    assert body["code"] == "bad_request" and "not valid JSON" in body["message"]
    assert error(client.post(f"{MOUNT}/api/plugins/sink/grant", headers=h, json=[1]), 400)[
        "message"
    ].startswith("grant: the capabilities must be a JSON object")
    body = error(
        client.post(f"{MOUNT}/api/plugins/sink/grant", headers=h, json={"email": "yes"}), 400
    )
    assert body["code"] == "config_error" and "capabilities.email" in body["message"]
    assert error(client.post(f"{MOUNT}/api/plugins/sink/grant", headers=h), 400)["message"] == (
        "grant: no capabilities given"
    )
    # bad packages are the uploader's mistake: 400
    body = error(
        client.post(
            f"{MOUNT}/api/plugins", headers=h, files={"package": ("x.zip", b"PK nonsense")}
        ),
        400,
    )
    assert body["code"] == "package_error"
    body = error(
        client.post(f"{MOUNT}/api/plugins", headers=h, files={"package": ("x.tar", b"data")}), 400
    )
    assert body["code"] == "package_error" and "must be a .zip file" in body["message"]
    bad_manifest = zip_plugin(tmp_path, "badman", manifest={"resources": {"memory_mb": "lots"}})
    body = error(
        client.post(f"{MOUNT}/api/plugins", headers=h, files={"package": ("b.zip", bad_manifest)}),
        400,
    )
    assert body["code"] == "manifest_error" and "memory_mb" in body["message"]
    body = error(client.post(f"{MOUNT}/api/plugins", headers=h, content=b"abc"), 400)
    assert "?filename=" in body["message"]
    body = error(client.get(f"{MOUNT}/api/plugins/sink/logs?after=soon", headers=h), 400)
    assert body["message"] == "?after= must be a number, not 'soon'"


def test_an_unexpected_failure_is_a_500_without_a_traceback(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    platform = platform_of(client)

    async def explode(name: str) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(platform, "disable", explode)
    r = client.post(f"{MOUNT}/api/plugins/sink/disable", headers=BEARER)
    assert r.status_code == 500
    assert r.json() == {
        "error": {
            "code": "internal_error",
            "message": "the admin failed; the details are in the server log",
        }
    }
    token = page_token(client)
    html = follow(
        client,
        client.post(
            f"{MOUNT}/plugins/sink/disable", data={"csrf_token": token}, follow_redirects=False
        ),
    )
    assert "disable failed; the details are in the log" in html and "disk on fire" not in html
    assert "disk on fire" in caplog.text


# -- uploads: size limit ---------------------------------------------------------------------


def test_uploads_over_the_limit_are_refused_with_413(
    plugins: Path, make_platform: MakePlatform, tmp_path: Path
) -> None:
    platform = make_platform()
    app = host_app(platform, max_upload_bytes=4096)
    h = {**BEARER, "x-user": ""}
    big = b"PK" + b"\0" * 10_000
    with TestClient(app) as client:
        # declared too large: refused before reading
        r = client.post(f"{MOUNT}/api/plugins?filename=big.zip", headers=h, content=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

        # no Content-Length: refused while reading
        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"\0" * 1000

        r = client.post(f"{MOUNT}/api/plugins?filename=big.zip", headers=h, content=chunks())
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        # multipart: the file itself is over the limit (the envelope has some room)
        r = client.post(f"{MOUNT}/api/plugins", headers=h, files={"package": ("b.zip", big[:6000])})
        assert r.status_code == 413
        assert r.json()["error"]["message"] == "b.zip: the package is larger than 4096 bytes"
        page = client.post(
            f"{MOUNT}/install", headers={"x-user": "ada"}, files={"package": ("b.zip", big * 10)}
        )
        assert page.status_code == 413 and "larger than the admin accepts" in page.text
        assert_safe_headers(page)
    assert sorted(platform.plugins) == ["broken", "helper", "sink"]


# -- logs, audit, health ---------------------------------------------------------------------


def test_logs_endpoint_tails_after_a_time(client: TestClient) -> None:
    platform = platform_of(client)
    first = client.get(f"{MOUNT}/api/plugins/sink/logs").json()
    assert first["plugin"] == "sink"
    in_loop(client, platform.call, "sink", "log", {"hello": "<world>"})
    tail = client.get(f"{MOUNT}/api/plugins/sink/logs", params={"after": first["last"]}).json()
    assert [(r["level"], r["message"]) for r in tail["records"]] == [
        ("warn", '{"hello":"<world>"}')
    ]
    assert tail["last"] == tail["records"][-1]["time"]
    again = client.get(f"{MOUNT}/api/plugins/sink/logs", params={"after": tail["last"]}).json()
    assert again["records"] == [] and again["last"] == tail["last"]
    for i in range(5):
        platform.logs.log("sink", "info", f"line {i}")
    limited = client.get(f"{MOUNT}/api/plugins/sink/logs", params={"limit": 2}).json()
    assert [r["message"] for r in limited["records"]] == ["line 3", "line 4"]
    assert client.get(f"{MOUNT}/api/plugins/nope/logs").status_code == 404
    # a plugin that has logged nothing has an empty log, not a 404
    assert client.get(f"{MOUNT}/api/plugins/helper/logs").json()["records"] == []


def test_health_counts_states_and_names_failures(client: TestClient) -> None:
    platform = platform_of(client)
    in_loop(client, platform.call, "helper", "echo", {})
    body = client.get(f"{MOUNT}/api/health").json()
    assert body["status"] == "degraded"
    assert body["plugins"] == 3
    assert body["states"] == {"discovered": 1, "loaded": 1, "failed": 1, "disabled": 0}
    assert body["memory_in_use_bytes"] == platform.memory_in_use() > 0
    assert [f["name"] for f in body["failed"]] == ["broken"]
    assert body["failed"][0]["error"]["code"] == "manifest_error"
    assert body["needs_review"] == [
        {"name": "sink", "pending": {"plugins": ["helper"], "events": True}}
    ]
    html = client.get(f"{MOUNT}/health").text
    assert "degraded" in html and 'data-state="failed">1<' in html
    assert f'<a href="{MOUNT}/plugins/broken">broken</a>' in html


# -- pages -----------------------------------------------------------------------------------


def test_list_page_shows_every_plugin_with_its_numbers(client: TestClient) -> None:
    platform = platform_of(client)
    in_loop(client, platform.call, "sink", "echo", {})
    html = client.get(f"{MOUNT}/").text
    for column in (
        "Name",
        "Version",
        "Runtime",
        "State",
        "Calls",
        "Errors",
        "p50",
        "p99",
        "Memory",
        "Last used",
    ):
        assert f">{column}</th>" in html
    row = html.split('<tr data-plugin="sink">', 1)[1].split("</tr>", 1)[0]
    assert f'<a class="plugin-name" href="{MOUNT}/plugins/sink">sink</a>' in row
    assert '<span class="state state-loaded">loaded</span>' in row
    assert '<td class="num">1</td>' in row and "needs review" in row
    assert "s ago" in row and "KiB" in row
    broken = html.split('<tr data-plugin="broken">', 1)[1].split("</tr>", 1)[0]
    assert "state-failed" in broken
    assert 'enctype="multipart/form-data"' in html and 'name="package"' in html


def test_detail_page_shows_everything_escaped(client: TestClient) -> None:
    platform = platform_of(client)
    platform.logs.log("sink", "error", "boom <img src=x onerror=alert(1)>")
    html = client.get(f"{MOUNT}/plugins/sink").text
    # escaped, never markup
    assert "<script>alert(1)</script>" not in html
    assert "A &lt;script&gt;alert(1)&lt;/script&gt; plugin" in html
    assert "<img src=x" not in html and "boom &lt;img src=x onerror=alert(1)&gt;" in html
    assert "Sink &lt;menu&gt;" in html
    assert 'href="javascript:' not in html and "javascript:alert(1)" in html  # shown, not linked
    # manifest, registration, capabilities, module, signature, logs
    assert "<code>GET /sink/echo</code> → <code>echo</code>" in html and "needs p.x" in html
    assert "<code>after_save</code> → <code>echo</code> (priority 3)" in html
    assert "<code>nightly</code> 0 3 * * * → <code>maybe</code>" in html
    assert "<code>echo()</code>" in html
    assert "<th>Call plugins</th>" in html and "<th>Publish events</th>" in html
    assert '<td class="pending">helper</td>' in html
    assert (
        "<code>gk.host_call</code>" in html
        and "<code>(i32, i32, i32, i32) -&gt; i64</code>" in html
    )
    assert "<code>gk_call</code>" in html
    assert 'signature-unsigned">unsigned<' in html
    assert f'data-url="{MOUNT}/api/plugins/sink/logs"' in html
    last = platform.logs.records("sink")[-1].time
    assert f'data-after="{last}"' in html
    assert html.count("boom &lt;img") == 2  # in the recent errors and in the log
    for action in ("disable", "load", "reload"):
        assert f'action="{MOUNT}/plugins/sink/{action}"' in html
    assert f'action="{MOUNT}/plugins/sink/uninstall"' not in html  # a directory, not a package
    assert client.get(f"{MOUNT}/plugins/nope").status_code == 404


def test_failed_plugin_page_shows_its_error(client: TestClient) -> None:
    html = client.get(f"{MOUNT}/plugins/broken").text
    assert 'class="card card-error"' in html and "manifest_error" in html
    assert "The manifest could not be read." in html


def test_signature_files_are_shown_with_the_platforms_verdict(
    plugins: Path, make_platform: MakePlatform
) -> None:
    # a GoatKit-style .sig that no trusted key verifies is never shown as valid
    (plugins / "sink" / "plugin.wasm.sig").write_text("00" * 64)
    with TestClient(host_app(make_platform()), headers=BEARER) as client:
        body = client.get(f"{MOUNT}/api/plugins/sink").json()["plugin"]["signature"]
    assert body["status"] in ("untrusted", "invalid")
    assert body["files"] == ["plugin.wasm.sig"]


# -- mounting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root_path", "mount"),
    [("", "/admin/plugins"), ("", "/ops"), ("/site", "/admin/plugins"), ("/a/b", "/x/y/z")],
)
def test_links_forms_and_redirects_follow_the_mount_and_root_path(
    plugins: Path, make_platform: MakePlatform, root_path: str, mount: str
) -> None:
    app = host_app(make_platform(), mount)
    base = root_path + mount
    with TestClient(app, root_path=root_path, headers={"x-user": "ada"}) as client:
        r = client.get(f"{base}/")
        assert r.status_code == 200
        html = r.text
        assert f'<link rel="stylesheet" href="{base}/static/admin.css">' in html
        assert f'href="{base}/plugins/sink"' in html and f'action="{base}/install"' in html
        assert f"path={base}" in r.headers["set-cookie"].lower()
        assert client.get(f"{base}/static/admin.css").status_code == 200
        detail = client.get(f"{base}/plugins/sink").text
        assert f'data-url="{base}/api/plugins/sink/logs"' in detail
        r = client.post(
            f"{base}/plugins/sink/disable",
            data={"csrf_token": token_from(html)},
            follow_redirects=False,
        )
        assert r.headers["location"] == f"{base}/plugins/sink"
        assert "sink is disabled." in client.get(r.headers["location"]).text


def test_one_admin_mounted_twice_serves_both_paths(
    plugins: Path, make_platform: MakePlatform
) -> None:
    app = host_app(make_platform(), "/one", "/two/admin")
    with TestClient(app, headers={"x-user": "ada"}) as client:
        assert 'href="/one/plugins/sink"' in client.get("/one/").text
        assert 'href="/two/admin/plugins/sink"' in client.get("/two/admin/").text


def test_plugin_names_are_quoted_in_links(plugins_dir: Path, make_platform: MakePlatform) -> None:
    broken = plugins_dir / "odd name&more"  # a failed plugin keeps its directory's name
    broken.mkdir()
    (broken / "manifest.yaml").write_text("name: [x]\n")
    with TestClient(host_app(make_platform()), headers={"x-user": "ada"}) as client:
        html = client.get(f"{MOUNT}/").text
        assert f'href="{MOUNT}/plugins/odd%20name%26more">odd name&amp;more</a>' in html
        page = client.get(f"{MOUNT}/plugins/odd%20name%26more")
        assert page.status_code == 200 and "<h1>odd name&amp;more" in page.text


def test_wasm_interface_reader_refuses_what_is_not_a_module() -> None:
    with pytest.raises(ValueError, match="not a WebAssembly module"):
        read_interface(b"PK\x03\x04")
    with pytest.raises(ValueError, match="version 1"):
        read_interface(b"\0asm\x0d\0\x01\0")
    with pytest.raises(ValueError, match="runs past the end"):
        read_interface(b"\0asm\x01\0\0\0\x01\x7f")
