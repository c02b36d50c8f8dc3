"""Benchmarks of the middleware, each against the same app without it (DESIGN §8).

Requests are driven straight through the ASGI interface (no sockets, no HTTP client), the way a
server does it: lifespan first (with lifespan state, copied into every request), then requests.
What is measured is the app stack itself; a server and the network would add the same cost to
both sides.

- pass-through: a request no plugin claims, app with vs without GoatKitMiddleware (≥ 0.97×)
- plugin route: a plugin route returning JSON vs an equivalent native Starlette route (≥ 0.7×)
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import wasmtime
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from goatkit_asgi.web.middleware import GoatKitMiddleware

from .runtime import PLUGINS, Row, _platform

WEBECHO_WAT = PLUGINS / "webecho.wat"


def _scope(path: str, query: bytes = b"", state: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"bench"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": dict(state or {}),  # like uvicorn: a copy of the lifespan state
    }


class _Served:
    """An app as a server runs it: lifespan started (with lifespan state), then requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._to_app: list[dict[str, Any]] = [
            {"type": "lifespan.startup"},
            {"type": "lifespan.shutdown"},
        ]
        self._task_done = anyio.Event()
        self._started = anyio.Event()
        self._shutdown = anyio.Event()

    async def _run(self) -> None:
        async def receive() -> dict[str, Any]:
            message = self._to_app.pop(0)
            if message["type"] == "lifespan.shutdown":
                await self._shutdown.wait()
            return message

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                self._started.set()
            elif message["type"] == "lifespan.startup.failed":
                raise RuntimeError(message.get("message"))

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        await self.app(scope, receive, send)
        self._task_done.set()

    async def __aenter__(self) -> _Served:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        await self._started.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._shutdown.set()
        await self._task_done.wait()
        await self._tg.__aexit__(None, None, None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["state"] = dict(self.state)
        await self.app(scope, receive, send)


async def _requests_per_second(app: ASGIApp, path: str, query: bytes, count: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    t0 = time.perf_counter()
    for _ in range(count):
        await app(_scope(path, query), receive, send)
    elapsed = time.perf_counter() - t0
    assert set(status) == {200}, f"{path}: unexpected statuses {set(status)}"
    return count / elapsed


async def _compare(
    a: ASGIApp, a_path: str, b: ASGIApp, b_path: str, query: bytes, count: int, rounds: int
) -> tuple[float, float]:
    """Alternate the two apps round by round, so drift in the machine hits both alike."""
    ra, rb = [], []
    for _ in range(rounds):
        ra.append(await _requests_per_second(a, a_path, query, count))
        rb.append(await _requests_per_second(b, b_path, query, count))
    return statistics.median(ra), statistics.median(rb)


class _NoopMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def _native_app() -> Starlette:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    async def echo(request: Request) -> Response:
        # what the plugin route sends back: the flat request object
        args: dict[str, Any] = dict(request.query_params)
        args.update(
            {"_method": request.method, "_path": request.url.path, "_query": request.url.query}
        )
        return JSONResponse(args)

    return Starlette(routes=[Route("/hello", hello), Route("/bench/echo", echo)])


async def _bench(count: int, rounds: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins" / "webecho"
        plugins.mkdir(parents=True)
        (plugins / "manifest.yaml").write_text(yaml.safe_dump({"name": "webecho"}))
        (plugins / "plugin.wasm").write_bytes(bytes(wasmtime.wat2wasm(WEBECHO_WAT.read_text())))
        platform = _platform(plugins.parent, Path(tmp) / "state")
        async with (
            _Served(_native_app()) as native,
            _Served(GoatKitMiddleware(_native_app(), platform=platform)) as wrapped,
            _Served(_NoopMiddleware(_native_app())) as noop,
        ):
            query = b"ticket=42&queue=support"
            for _ in range(20):  # load the plugin and let its function go inline
                await _requests_per_second(wrapped, "/bench/echo", query, 1)
            base, ours = await _compare(native, "/hello", wrapped, "/hello", b"", count, rounds)
            pass_ratio = ours / base
            # The floor: a pure-ASGI middleware that does nothing but await the app.
            floor_base, floor = await _compare(native, "/hello", noop, "/hello", b"", count, rounds)
            floor_ratio = floor / floor_base
            native_rps, plugin_rps = await _compare(
                native, "/bench/echo", wrapped, "/bench/echo", query, count, rounds
            )
            route_ratio = plugin_rps / native_rps
    return [
        Row(
            "passthrough",
            "request no plugin claims (throughput)",
            f"{ours:,.0f} req/s",
            f"no middleware {base:,.0f} req/s",
            f"{pass_ratio:.3f}×",
            "≥ 0.97×",
            pass_ratio >= 0.97,
        ),
        Row(
            "passthrough-floor",
            "  reference: a middleware that does nothing",
            f"{floor:,.0f} req/s",
            f"no middleware {floor_base:,.0f} req/s",
            f"{floor_ratio:.3f}×",
            "(the floor of any middleware)",
            None,
        ),
        Row(
            "plugin-route",
            "plugin route returning JSON (throughput)",
            f"{plugin_rps:,.0f} req/s",
            f"native route {native_rps:,.0f} req/s",
            f"{route_ratio:.2f}×",
            "≥ 0.70×",
            route_ratio >= 0.7,
        ),
    ]


def run(*, quick: bool = False) -> list[Row]:
    count, rounds = (500, 5) if quick else (3000, 11)
    return anyio.run(_bench, count, rounds)
