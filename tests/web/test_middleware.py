"""GoatKitMiddleware through Starlette's TestClient: routes, results, errors, static, lifespan."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from goatkit_asgi import Platform, PluginState
from goatkit_asgi.web.middleware import GoatKitMiddleware

MakePlatform = Callable[..., Platform]


def has_permission(request: Request, permission: str) -> bool:
    return permission in request.headers.get("x-perms", "").split(",")


def fastapi_app(events: list[str]) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("app-started")  # the host's own lifespan still runs
        yield
        events.append("app-stopped")

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/health")
    def health(request: Request) -> dict[str, Any]:
        platform = request.state.goatkit
        return {"ok": True, "platform": type(platform).__name__}

    return app


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def client(site: Path, make_platform: MakePlatform, events: list[str]) -> Iterator[TestClient]:
    platform = make_platform(has_permission=has_permission)
    app = GoatKitMiddleware(fastapi_app(events), platform=platform)
    with TestClient(app) as c:
        yield c


def platform_of(client: TestClient) -> Platform:
    app = client.app
    assert isinstance(app, GoatKitMiddleware)
    return app.platform


# -- pass-through and lifespan --------------------------------------------------------------


def test_requests_no_plugin_claims_pass_through_untouched(
    client: TestClient, events: list[str]
) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "platform": "Platform"}
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/site").status_code == 404  # not a plugin route: the app's own 404
    assert events == ["app-started"]
    assert platform_of(client)._started


def test_lifespan_when_the_app_does_not_handle_it(site: Path, make_platform: MakePlatform) -> None:
    async def bare_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("this app only speaks http")
        await PlainTextResponse("bare")(scope, receive, send)

    platform = make_platform()
    with TestClient(GoatKitMiddleware(bare_app, platform=platform)) as c:
        assert platform._started
        assert c.get("/anything").text == "bare"
        assert c.get("/site/echo").json()["_path"] == "/site/echo"
    assert not platform._started


def test_usable_as_starlette_middleware_entry(site: Path, make_platform: MakePlatform) -> None:
    from starlette.middleware import Middleware

    platform = make_platform()
    app = Starlette(
        routes=[Route("/", lambda r: PlainTextResponse("home"))],
        middleware=[Middleware(GoatKitMiddleware, platform=platform)],
    )
    with TestClient(app) as c:
        assert c.get("/").text == "home"
        assert c.get("/site/items/7").json()["item_id"] == 7
    assert not platform._started


def test_websockets_pass_through(site: Path, make_platform: MakePlatform) -> None:
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello " + type(websocket.state.goatkit).__name__)
        await websocket.close()

    app = GoatKitMiddleware(Starlette(routes=[WebSocketRoute("/ws", ws)]), platform=make_platform())
    with TestClient(app) as c, c.websocket_connect("/ws") as socket:
        assert socket.receive_text() == "hello Platform"


# -- route results -----------------------------------------------------------------------------


def test_json_result_gets_goatkit_flat_request_object(client: TestClient) -> None:
    r = client.get("/site/echo?q=1&tag=a&tag=b", headers={"accept-language": "de"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["q"] == "1" and body["tag"] == ["a", "b"]
    assert body["_method"] == "GET" and body["_path"] == "/site/echo"
    assert body["_query"] == "q=1&tag=a&tag=b"
    assert body["_accept_language"] == "de"


def test_path_params_are_converted(client: TestClient) -> None:
    assert client.get("/site/items/42").json()["item_id"] == 42
    assert client.get("/site/items/nope").status_code == 404  # no route matches: the app's 404


def test_json_and_form_bodies_become_fields(client: TestClient) -> None:
    body = client.post("/site/echo?from=query", json={"title": "Hi", "from": "body"}).json()
    assert body["title"] == "Hi" and body["from"] == "body" and body["_method"] == "POST"
    form = client.post("/site/echo", data={"a": "1", "b": "2"}).json()
    assert form["a"] == "1" and form["b"] == "2"
    text = client.post(
        "/site/echo", content=b"plain words", headers={"content-type": "text/plain"}
    ).json()
    assert text["_body"] == "plain words"


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site", "origin": "https://sub.testserver"},
        {"origin": "http://testserver.evil.example"},
    ],
)
def test_a_page_of_another_site_cannot_post_to_plugin_routes(
    client: TestClient, headers: dict[str, str]
) -> None:
    r = client.post("/site/echo", json={"x": 1}, headers=headers)
    assert r.status_code == 403, headers
    error = r.json()["error"]
    assert error["code"] == "cross_site"
    assert "another site" in error["message"] and "trusted_origins" in error["message"]
    # reading is not refused: a link from another site still opens the page
    assert client.get("/site/echo", headers=headers).status_code == 200
    assert platform_of(client).logs.records("site") == []  # the plugin never ran


def test_same_site_and_non_browser_posts_pass_and_trusted_origins_too(
    site: Path, make_platform: MakePlatform
) -> None:
    same = [
        {},  # not a browser: no Origin, no Sec-Fetch-Site
        {"origin": "http://testserver"},
        {"origin": "https://testserver"},  # TLS ended at a proxy
        {"sec-fetch-site": "same-origin", "origin": "http://testserver"},
        {"sec-fetch-site": "none"},  # typed into the address bar
    ]
    platform = make_platform()
    app = GoatKitMiddleware(
        Starlette(), platform=platform, trusted_origins=["https://app.example/"]
    )
    with TestClient(app) as client:
        for headers in same:
            assert client.post("/site/echo", json={}, headers=headers).status_code == 200, headers
        trusted = {"origin": "https://APP.example", "sec-fetch-site": "cross-site"}
        assert client.post("/site/echo", json={}, headers=trusted).status_code == 200
        other = {"origin": "https://other.example"}
        assert client.post("/site/echo", json={}, headers=other).status_code == 403


def test_bad_and_oversized_bodies_are_refused(client: TestClient) -> None:
    r = client.post("/site/echo", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    r = client.post(
        "/site/echo", content=b"x" * (1024 * 1024 + 1), headers={"content-type": "text/plain"}
    )
    assert r.status_code == 413


def test_html_result_is_wrapped_in_the_layout_with_the_menu(client: TestClient) -> None:
    r = client.post("/site/echo", json={"html": "<b>Hello</b>", "title": "Greeting"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<b>Hello</b>" in r.text
    assert "<title>Greeting</title>" in r.text
    assert 'href="/site/echo"' in r.text  # the plugin menu, filtered for this user
    assert "Secret" not in r.text
    r = client.post("/site/echo", json={"html": "<b>Hello</b>"}, headers={"x-perms": "site.secret"})
    assert "Secret" in r.text


def test_raw_html_result_is_sent_as_is(client: TestClient) -> None:
    r = client.post("/site/echo", json={"html": "<b>raw</b>", "raw": True, "status": 202})
    assert r.status_code == 202 and r.text == "<b>raw</b>"


def test_template_result_renders_the_plugins_template(client: TestClient) -> None:
    r = client.post(
        "/site/echo", json={"template": "page.html", "context": {"title": "T", "who": "<script>"}}
    )
    assert r.status_code == 200
    assert "<h1>T</h1>" in r.text
    assert "&lt;script&gt;" in r.text  # autoescaped
    assert "<i>site</i>" in r.text
    r = client.post("/site/echo", json={"template": "missing.html"})
    assert r.status_code == 502
    assert "does not ship" in r.json()["error"]["message"]


def test_plugin_template_extends_the_host_layout_and_links_its_static_files(
    client: TestClient,
) -> None:
    r = client.post("/site/echo", json={"template": "full.html", "context": {"title": "Full"}})
    assert r.status_code == 200
    assert '<nav class="goatkit-menu">' in r.text  # the host layout, with the plugin menu
    assert "<main><h1>Full</h1></main>" in r.text
    assert '<link rel=stylesheet href="/plugins/site/static/site.css">' in r.text
    assert client.get("/plugins/site/static/site.css").status_code == 200


def test_goatkit_static_outside_a_plugin_template_needs_the_plugin(
    site: Path, make_platform: MakePlatform
) -> None:
    from jinja2 import DictLoader, Environment, TemplateRuntimeError

    from goatkit_asgi.web.templates import PluginTemplates

    platform = make_platform(static_prefix="/ext")
    env = Environment(
        loader=DictLoader(
            {
                "host.html": "{{ goatkit_static('a b.css', plugin='site') }}",
                "bad.html": "{{ goatkit_static('a.css') }}",
            }
        ),
        enable_async=True,
    )
    templates = PluginTemplates(platform, env=env)
    assert client_render(templates, "host.html") == "/ext/site/static/a%20b.css"
    with pytest.raises(TemplateRuntimeError, match="outside a plugin template"):
        client_render(templates, "bad.html")


def client_render(templates: Any, name: str) -> str:
    import anyio

    async def render() -> str:
        return str(await templates.render(name, {}, None))

    return anyio.run(render)


def test_widgets_follow_location_and_permission_and_a_broken_one_reports_its_error(
    client: TestClient,
) -> None:
    from goatkit_asgi.web.templates import PluginTemplates

    platform = platform_of(client)
    templates = PluginTemplates(platform)

    def request(perms: str) -> Request:
        headers = [(b"x-perms", perms.encode())]
        return Request({"type": "http", "headers": headers, "path": "/", "root_path": ""})

    portal = client.portal
    assert portal is not None
    seen = portal.call(platform.widgets, request(""))
    assert [(w.id, w.location) for w in seen] == [("broken", "dashboard"), ("side", "sidebar")]
    seen = portal.call(lambda: platform.widgets(request("site.secret"), location="dashboard"))
    assert [w.id for w in seen] == ["broken", "hidden"]
    rendered = portal.call(lambda: templates.render_widgets(request(""), location="dashboard"))
    (broken,) = rendered
    assert broken.plugin == "site" and broken.title == "Broken" and broken.html == ""
    assert broken.error is not None and "a widget answers" in broken.error


def test_raw_response_result(client: TestClient) -> None:
    r = client.post(
        "/site/echo",
        json={
            "status": 201,
            "headers": {"X-Made": "yes", "Set-Cookie": "session=stolen"},
            "body": "made",
        },
    )
    assert r.status_code == 201 and r.text == "made"
    assert r.headers["x-made"] == "yes"
    assert "set-cookie" not in r.headers  # the host owns cookies
    r = client.post(
        "/site/echo",
        json={
            "status": 200,
            "body_base64": "AAEC",
            "headers": {"Content-Type": "application/octet-stream"},
        },
    )
    assert r.content == b"\x00\x01\x02"
    r = client.post(
        "/site/echo",
        json={"status": 200, "body": "x", "headers": {"X-Evil": "a\r\nSet-Cookie: x=1"}},
    )
    assert r.status_code == 502


def test_empty_result_is_204(client: TestClient) -> None:
    assert client.get("/site/empty").status_code == 204


# -- errors -----------------------------------------------------------------------------------


def test_permission_is_checked_with_the_hosts_callable(client: TestClient) -> None:
    r = client.get("/site/secret")
    assert r.status_code == 403
    assert r.json()["error"] == {
        "code": "forbidden",
        "message": "site: GET /site/secret needs the permission 'site.secret', which you do not have",
        "plugin": "site",
    }
    assert client.get("/site/secret", headers={"x-perms": "site.secret"}).status_code == 200


def test_trap_is_502_and_timeout_is_504_never_a_traceback(client: TestClient) -> None:
    r = client.get("/site/trap", headers={"accept": "application/json"})
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "crashed" and err["plugin"] == "site" and err["function"] == "trap"
    r = client.get("/site/loop", headers={"accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 504 and r.headers["content-type"].startswith("text/html")
    assert "site: loop did not finish within its limit of 0.3s" in r.text
    assert "Traceback" not in r.text and "File " not in r.text
    assert client.get("/site/echo").status_code == 200  # and it still answers


def test_disabled_plugin_answers_404_and_leaves_the_menu(client: TestClient) -> None:
    platform = platform_of(client)
    client.portal.call(platform.disable, "site")  # type: ignore[union-attr]
    assert platform.plugins["site"].state is PluginState.DISABLED
    r = client.get("/site/echo")
    assert r.status_code == 404 and r.json()["error"]["code"] == "disabled"
    assert client.get("/plugins/site/static/site.css").status_code == 404
    assert platform.menu_items() == []
    client.portal.call(platform.enable, "site")  # type: ignore[union-attr]
    assert client.get("/site/echo").status_code == 200


# -- static files -----------------------------------------------------------------------------


def test_static_files_with_types_etag_and_304(client: TestClient) -> None:
    r = client.get("/plugins/site/static/site.css")
    assert r.status_code == 200 and r.text == "body { color: teal; }\n"
    assert r.headers["content-type"].startswith("text/css")
    assert client.get("/plugins/site/static/app.js").headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    assert (
        client.get("/plugins/site/static/site.css", headers={"if-none-match": etag}).status_code
        == 304
    )
    assert (
        client.get(
            "/plugins/site/static/site.css", headers={"if-modified-since": modified}
        ).status_code
        == 304
    )
    assert client.get("/plugins/site/static/nope.css").status_code == 404
    assert client.get("/plugins/ghost/static/site.css").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/plugins/site/static/../secret.txt",
        "/plugins/site/static/%2e%2e/secret.txt",
        "/plugins/site/static/%2E%2E%2Fsecret.txt",
        "/plugins/site/static/..%2fsecret.txt",
        "/plugins/site/static//etc/passwd",
        "/plugins/site/static/%2fetc%2fpasswd",
        "/plugins/site/static/....//secret.txt",
        "/plugins/site/static/%00",
    ],
)
def test_static_path_traversal_is_refused(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert "not for the web" not in r.text and "root:" not in r.text


# -- menus -----------------------------------------------------------------------------------


def test_menu_items_follow_permissions_and_root_path(
    site: Path, make_platform: MakePlatform
) -> None:
    platform = make_platform(has_permission=has_permission)
    seen: dict[str, Any] = {}

    async def page(request: Request) -> PlainTextResponse:
        seen["items"] = request.state.goatkit.menu_items(request)
        return PlainTextResponse("ok")

    app = GoatKitMiddleware(Starlette(routes=[Route("/page", page)]), platform=platform)
    with TestClient(app, root_path="/helpdesk") as c:
        c.get("/page")
        assert [(m.label, m.url) for m in seen["items"]] == [("Site", "/helpdesk/site/echo")]
        c.get("/page", headers={"x-perms": "site.secret"})
        assert [m.label for m in seen["items"]] == ["Site", "Secret"]


def test_before_render_hook_adds_to_the_context(client: TestClient) -> None:
    # the site plugin's before_render handler echoes its payload: the template sees "path"
    r = client.post("/site/echo", json={"template": "page.html", "context": {"title": "x"}})
    assert r.status_code == 200
    results = client.portal.call(platform_of(client).fire_hook, "before_render", {"template": "t"})  # type: ignore[union-attr]
    assert [(x.plugin, x.value) for x in results] == [("site", {"template": "t"})]


def test_error_bodies_are_json_or_html_by_accept(client: TestClient) -> None:
    r = client.get("/site/trap", headers={"accept": "text/html"})
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>502 Plugin error</h1>" in r.text and "site: trap crashed" in r.text
    r = client.get("/site/trap")
    assert json.loads(r.text)["error"]["plugin"] == "site"
