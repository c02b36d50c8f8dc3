"""The Python SDK for gRPC plugins: declarations, argument mapping, and the server it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from goatkit_asgi._proto.goatkit.v1 import plugin_pb2 as pb
from goatkit_asgi._proto.goatkit.v1 import plugin_pb2_grpc as pb_grpc
from goatkit_asgi.errors import PluginCallError
from goatkit_asgi.registration import parse_registration
from goatkit_asgi.sdk.python import Plugin
from tests.fixtures.grpc_plugins import HELLO_GRPC, TESTPLUG, Server

pytestmark = pytest.mark.anyio


def _example() -> Plugin:
    plugin = Plugin("demo", version="1.2.0", menu_items=[{"label": "Demo", "path": "/demo"}])

    @plugin.function(args=["name"], description="Greets.")
    def hello(name: str = "World", **request: Any) -> dict[str, str]:
        return {"message": f"Hello, {name}!"}

    @plugin.function
    async def add(a: int, b: int = 0) -> int:
        """Adds two numbers.

        More text that is not the summary."""
        return a + b

    @plugin.route("POST", "/demo/{id}", permission="demo.edit")
    def save(id: str, **request: Any) -> dict[str, str]:
        return {"saved": id}

    @plugin.hook("after_save", priority=5)
    def seen(payload: Any) -> Any:
        return payload

    return plugin


def test_declarations_make_a_valid_registration() -> None:
    doc = _example().registration()
    assert doc == {
        "name": "demo",
        "version": "1.2.0",
        "menu_items": [{"label": "Demo", "path": "/demo"}],
        "functions": [
            {"name": "hello", "args": ["name"], "returns": "json", "description": "Greets."},
            {
                "name": "add",
                "args": ["a", "b"],
                "returns": "json",
                "description": "Adds two numbers.",
            },
        ],
        "routes": [
            {
                "method": "POST",
                "path": "/demo/{id}",
                "handler": "save",
                "description": "",
                "permission": "demo.edit",
            }
        ],
        "hooks": [{"name": "after_save", "handler": "seen", "priority": 5}],
    }
    registration = parse_registration(json.dumps(doc).encode(), plugin="demo")
    assert registration.callable_names() == {"hello", "add", "save", "seen"}
    assert registration.hooks[0].priority == 5


def test_a_name_or_hook_declared_twice_is_refused() -> None:
    plugin = _example()
    with pytest.raises(ValueError, match="demo: a handler named 'hello' is already declared"):
        plugin.function(name="hello")(lambda: None)
    with pytest.raises(ValueError, match="demo: hook 'after_save' already has a handler"):
        plugin.hook("after_save", name="other")(lambda payload: None)


@pytest.mark.parametrize(
    ("handler", "args", "expected"),
    [
        ("hello", {"name": "Ada", "_method": "GET"}, {"message": "Hello, Ada!"}),  # **request
        ("hello", None, {"message": "Hello, World!"}),
        ("add", {"a": 2, "b": 3, "ignored": True}, 5),  # undeclared keys left out
        ("add", {"a": 2}, 2),
        ("seen", {"entity": "ticket"}, {"entity": "ticket"}),  # hooks get the payload
        ("seen", [1, 2], [1, 2]),
    ],
)
async def test_arguments_map_to_handlers(handler: str, args: Any, expected: Any) -> None:
    plugin = _example()
    import concurrent.futures

    plugin._executor = concurrent.futures.ThreadPoolExecutor(1)
    try:
        assert await plugin._run(handler, args) == expected
    finally:
        plugin._executor.shutdown()


async def test_missing_arguments_are_a_bad_input_error() -> None:
    plugin = _example()
    with pytest.raises(PluginCallError, match="add: missing a required argument: 'a'") as info:
        await plugin._run("add", {"b": 1})
    assert info.value.code == "bad_input"


def test_started_by_hand_without_the_cookie_it_explains_itself() -> None:
    done = subprocess.run(
        [sys.executable, str(HELLO_GRPC / "plugin.py")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=HELLO_GRPC,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "The platform starts it by itself" in done.stderr
    assert "--listen" in done.stderr


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server(cwd=TESTPLUG)
    yield running
    running.stop()


async def test_the_server_answers_health_register_hook_and_shutdown(server: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = pb_grpc.PluginStub(channel)
        registration = await stub.Register(pb.RegisterRequest(host_version="9.9.9"), timeout=5)
        assert json.loads(registration.registration_json)["name"] == "testplug"
        hooked = await stub.Hook(
            pb.HookRequest(hook="after_save", payload_json=b'{"entity": "ticket"}'), timeout=5
        )
        assert json.loads(hooked.result_json) == {"seen": "ticket"}
        assert not hooked.HasField("error")
        unknown = await stub.Hook(pb.HookRequest(hook="before_delete"), timeout=5)
        assert unknown.error.code == "unknown_hook"
        assert unknown.error.message == "testplug has no handler for hook 'before_delete'"
        # a host call before any Init has nowhere to go
        early = await stub.Call(
            pb.CallRequest(function="ahost", args_json=b'{"method": "log"}'), timeout=5
        )
        assert early.error.code == "not_initialised"
        bad = await stub.Call(pb.CallRequest(function="echo", args_json=b"{nope"), timeout=5)
        assert bad.error.code == "bad_input"
        assert bad.error.message.startswith("echo: the arguments are not JSON")
        await stub.Shutdown(pb.ShutdownRequest(), timeout=5)
    assert server.proc.wait(timeout=5) == 0
