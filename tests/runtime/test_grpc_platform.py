"""gRPC plugins through the platform: lazy load, registration cache, platform.call, routes,
hooks, {% use %}, grants, the failed state and a clean stop."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from jinja2 import Environment
from starlette.applications import Starlette

from goatkit_asgi import GoatKitMiddleware, Platform, PluginState
from goatkit_asgi.errors import PluginCallError, PluginCrashed, PluginLoadError
from tests.fixtures.grpc_plugins import HELLO_GRPC, TESTPLUG, alive, copy_plugin, wait_gone

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not hasattr(Platform, "_grpc_runtime"),
        reason="the platform does not select the gRPC runtime yet (manifest runtime: grpc)",
    ),
]

MakePlatform = Callable[..., Platform]
HELLO_WASM = Path(__file__).parents[2] / "examples" / "hello-wasm"


async def test_lazy_load_registration_cache_and_platform_call(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    copy_plugin(TESTPLUG, plugins_dir)
    async with make_platform() as platform:
        info = platform.plugins["testplug"]
        # the registration was read at start (process started and stopped again) ...
        assert info.registration is not None
        assert [r.path for r in info.registration.routes] == ["/testplug/{name}"]
        assert info.state is PluginState.DISCOVERED and info.instances == 0
        # ... and the first call starts the process
        assert await platform.call("testplug", "echo", {"a": [1, 2]}) == {"a": [1, 2]}
        info = platform.plugins["testplug"]
        assert info.state is PluginState.LOADED and info.instances == 1
        assert info.memory_bytes > 0 and info.stats["echo"]["calls"] == 1
        pid = (await platform.call("testplug", "whoami"))["pid"]
        assert (await platform.call("testplug", "whoami"))["config"] == {
            "greeting": "Hello",
            "days": 7,
        }
        with pytest.raises(PluginCallError, match="testplug: fail failed: something was wrong"):
            await platform.call("testplug", "fail")
        assert alive(pid)
    assert await wait_gone(pid)
    # a second start reads the registration from the cache: nothing is started at all
    async with make_platform() as platform:
        assert platform.plugins["testplug"].registration is not None
        assert not platform._grpc_host.started


async def test_routes_hooks_and_templates_of_the_example(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    shutil.copytree(
        HELLO_GRPC, plugins_dir / "hello-grpc", ignore=shutil.ignore_patterns("__pycache__")
    )
    async with make_platform() as platform:
        app = GoatKitMiddleware(Starlette(), platform=platform)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = await client.get("/grpc-hello/Ada", headers={"accept": "text/html"})
            second = await client.get("/grpc-hello/Ada", headers={"accept": "text/html"})
        assert first.status_code == 200
        assert "<p>Hello, Ada! (visit 1)</p>" in first.text
        assert "<p>Hello, Ada! (visit 2)</p>" in second.text

        env = Environment(enable_async=True)
        platform.install_jinja(env)
        template = env.from_string('{% use "hello-grpc" as hg %}{{ hg.hello("Grace").message }}')
        assert await template.render_async() == "Hello, Grace!"

        results = await platform.fire_hook("after_save", {"entity": "ticket", "id": 42})
        assert [(r.plugin, r.value) for r in results] == [("hello-grpc", {"seen": "ticket"})]
        messages = [r.message for r in platform.logs.records("hello-grpc")]
        assert "greeting Grace" in messages and "saved ticket" in messages
        assert [m.label for m in platform.menu_items()] == ["Hello (gRPC)"]


async def test_host_calls_follow_grants(plugins_dir: Path, make_platform: MakePlatform) -> None:
    copy_plugin(TESTPLUG, plugins_dir, capabilities={"plugins": ["hello-wasm"]})
    shutil.copytree(HELLO_WASM, plugins_dir / "hello-wasm")
    call = {"plugin": "hello-wasm", "function": "hello", "args": {"name": "Ada"}}
    async with make_platform() as platform:
        denied = await platform.call("testplug", "host", {"method": "plugin_call", "args": call})
        assert denied["failed"]["type"] == "CapabilityDenied"
        assert denied["failed"]["code"] == "capability_denied"
        assert "calling 'hello-wasm' is not granted" in denied["failed"]["message"]
        await platform.grant("testplug", {"plugins": ["hello-wasm"]})
        allowed = await platform.call("testplug", "host", {"method": "plugin_call", "args": call})
        assert allowed == {"result": {"message": "Hello, Ada!"}}
        # the plugin's own cache namespace needs no grant
        stored = await platform.call(
            "testplug", "ahost", {"method": "cache_set", "args": {"key": "k", "value": "dg=="}}
        )
        assert stored == {"result": {"ok": True}}


async def test_reload_swaps_processes_and_calls_in_flight_finish_on_the_old_one(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    directory = copy_plugin(TESTPLUG, plugins_dir)
    async with make_platform() as platform:
        old = (await platform.call("testplug", "whoami"))["pid"]
        source = (directory / "plugin.py").read_text()
        (directory / "plugin.py").write_text(
            source.replace(
                'if __name__ == "__main__":',
                "@plugin.function\ndef added() -> str:\n    return 'new'\n\n\n"
                'if __name__ == "__main__":',
            )
        )
        results: list[Any] = []

        async def slow() -> None:
            results.append(await platform.call("testplug", "asleep", {"seconds": 0.5}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            await anyio.sleep(0.1)
            await platform.reload("testplug")
            assert await platform.call("testplug", "added") == "new"
        assert results == [{"slept": True}]
        assert (await platform.call("testplug", "whoami"))["pid"] != old
        assert await wait_gone(old)


async def test_too_many_crashes_show_as_failed_until_loaded_again(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    copy_plugin(TESTPLUG, plugins_dir)
    async with make_platform() as platform:
        for _ in range(6):  # more than 5 crashes within 60 s
            with pytest.raises(PluginCrashed):
                await platform.call("testplug", "crash", {"code": 1})
        info = platform.plugins["testplug"]
        assert info.state is PluginState.FAILED and info.instances == 0
        assert info.error is not None
        assert "crashed 6 times within 60s" in info.error.message
        with pytest.raises(PluginLoadError, match="crashed 6 times within 60s"):
            await platform.call("testplug", "echo", {})
        await platform.load("testplug")
        assert await platform.call("testplug", "echo", {"back": True}) == {"back": True}
        assert platform.plugins["testplug"].state is PluginState.LOADED


async def test_stop_leaves_no_process_and_no_socket(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    copy_plugin(TESTPLUG, plugins_dir)
    shutil.copytree(
        HELLO_GRPC, plugins_dir / "hello-grpc", ignore=shutil.ignore_patterns("__pycache__")
    )
    async with make_platform() as platform:
        info: dict[str, Any] = await platform.call("testplug", "whoami")
        child = (await platform.call("testplug", "spawn_child"))["pid"]
        assert await platform.call("hello-grpc", "hello", {"name": "Ada"}) == {
            "message": "Hello, Ada!"
        }
        root = platform._grpc_host.root
        assert root is not None and (root / "host.sock").is_socket()
        assert len([p for p in root.iterdir() if p.is_dir()]) == 2  # one private dir each
    assert not alive(info["pid"])
    assert await wait_gone(child)
    assert not root.exists()
