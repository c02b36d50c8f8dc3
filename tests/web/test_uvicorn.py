"""The middleware behind a real uvicorn server on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from goatkit_asgi import Platform
from goatkit_asgi.web.middleware import GoatKitMiddleware
from tests.web.server import raw_get, serve

MakePlatform = Callable[..., Platform]


def test_fastapi_app_behind_uvicorn(site: Path, make_platform: MakePlatform) -> None:
    api = FastAPI()

    @api.get("/api/items/{item_id}")
    def item(item_id: int) -> dict[str, Any]:
        return {"item": item_id}

    platform = make_platform()
    with serve(GoatKitMiddleware(api, platform=platform)) as url:
        assert platform._started  # uvicorn's lifespan started it
        with httpx.Client(base_url=url) as client:
            assert client.get("/api/items/3").json() == {"item": 3}
            body = client.get("/site/items/5?x=y").json()
            assert body["item_id"] == 5 and body["x"] == "y"
            r = client.get("/site/trap")
            assert r.status_code == 502 and r.json()["error"]["plugin"] == "site"
            css = client.get("/plugins/site/static/site.css")
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            again = client.get(
                "/plugins/site/static/site.css", headers={"if-none-match": css.headers["etag"]}
            )
            assert again.status_code == 304
    assert not platform._started  # and its shutdown stopped it


@pytest.mark.parametrize(
    "raw_path",
    [
        "/plugins/site/static/../secret.txt",
        "/plugins/site/static/%2e%2e/secret.txt",
        "/plugins/site/static/%2E%2E%2Fsecret.txt",
        "/plugins/site/static/..%2Fsecret.txt",
        "/plugins/site/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/plugins/site/static//etc/passwd",
        "/plugins/site/static/%2Fetc%2Fpasswd",
        "/plugins/site/static/..\\secret.txt",
    ],
)
def test_static_traversal_over_the_wire_is_refused(
    site: Path, make_platform: MakePlatform, raw_path: str
) -> None:
    with serve(GoatKitMiddleware(FastAPI(), platform=make_platform())) as url:
        status, body = raw_get(url, raw_path)
        ok_status, ok_body = raw_get(url, "/plugins/site/static/site.css")
    assert ok_status == 200 and b"teal" in ok_body  # the same server does serve files
    assert status in (400, 404)
    assert b"not for the web" not in body and b"root:" not in body
