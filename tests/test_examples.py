"""The committed example plugins, run through the platform as a user would."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from goatkit_asgi import Platform, PluginState
from goatkit_asgi.errors import PluginCallError, PluginCrashed

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello-wasm"
COMPAT = ROOT / "tests" / "fixtures" / "goatkit-compat"

MakePlatform = Callable[..., Platform]


@pytest.fixture
def hello_dir(plugins_dir: Path) -> Path:
    return Path(shutil.copytree(HELLO, plugins_dir / "hello-wasm"))


async def test_hello_greets_logs_and_registers(
    hello_dir: Path, make_platform: MakePlatform
) -> None:
    async with make_platform() as platform:
        info = platform.plugins["hello-wasm"]
        assert info.registration is not None
        assert [r.path for r in info.registration.routes] == ["/hello/{name}"]
        assert await platform.call("hello-wasm", "hello", {"name": "Ada"}) == {
            "message": "Hello, Ada!"
        }
        assert await platform.call("hello-wasm", "hello", {}) == {"message": "Hello, World!"}
        assert ("info", "greeting Ada") in [
            (r.level, r.message) for r in platform.logs.records("hello-wasm")
        ]


async def test_hello_echo_with_empty_and_large_args(
    hello_dir: Path, make_platform: MakePlatform
) -> None:
    async with make_platform() as platform:
        assert await platform.call("hello-wasm", "echo", {}) == {}
        assert await platform.call("hello-wasm", "echo") is None
        big = {"blob": "y" * (1024 * 1024)}
        assert await platform.call("hello-wasm", "echo", big) == big
        out = await platform.call("hello-wasm", "big", {"n": 1_000_000})
        assert out == {"data": "x" * 1_000_000}


async def test_hello_host_calls(hello_dir: Path, make_platform: MakePlatform) -> None:
    async with make_platform(plugin_config={"hello-wasm": {"greeting": "Moin"}}) as platform:
        out = await platform.call("hello-wasm", "cache_roundtrip", {"key": "k", "value": "grüße"})
        assert out == {"value": "grüße", "found": True}
        assert await platform.call("hello-wasm", "config", {"key": "greeting"}) == {
            "value": "Moin",
            "found": True,
        }
        failed = await platform.call("hello-wasm", "host_fail", {})
        assert failed["failed"] is True
        assert failed["last_error"]["code"] == "unknown_function"
        assert "no_such_fn" in failed["last_error"]["message"]


async def test_hello_errors_traps_and_recovery(
    hello_dir: Path, make_platform: MakePlatform
) -> None:
    async with make_platform() as platform:
        with pytest.raises(
            PluginCallError, match="hello-wasm: fail failed: something was wrong"
        ) as info:
            await platform.call("hello-wasm", "fail", {})
        assert info.value.code == "bad_input"
        with pytest.raises(PluginCrashed, match="hello-wasm: trap crashed"):
            await platform.call("hello-wasm", "trap", {})
        assert await platform.call("hello-wasm", "hello", {"name": "again"}) == {
            "message": "Hello, again!"
        }


async def test_hello_stdout_goes_to_the_log(hello_dir: Path, make_platform: MakePlatform) -> None:
    async with make_platform() as platform:
        assert await platform.call("hello-wasm", "stdout", {}) == {"ok": True}
        assert "[stdout] to stdout" in [r.message for r in platform.logs.records("hello-wasm")]


async def test_hello_after_save_hook(hello_dir: Path, make_platform: MakePlatform) -> None:
    async with make_platform() as platform:
        results = await platform.fire_hook("after_save", {"entity": "ticket", "id": 42})
        assert [(r.plugin, r.value) for r in results] == [("hello-wasm", {"seen": "ticket"})]


async def test_goatkit_plugin_runs_unmodified(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    """A module built the way GoatKit's Go host expects (WASI command, _start exiting with 0,
    only gk.host_call and gk.log imported, plugin.yaml, GoatKit-shaped registration)."""
    shutil.copytree(COMPAT, plugins_dir / "goatkit-compat")
    async with make_platform() as platform:
        info = platform.plugins["goatkit-compat"]
        assert info.state is PluginState.DISCOVERED and info.manifest is not None
        assert info.manifest.source.name == "plugin.yaml"
        reg = info.registration
        assert reg is not None
        assert reg.routes[0].middleware == ("auth",)
        assert reg.widgets[0].refreshable is True
        assert reg.jobs[0].timeout == 300.0
        assert reg.i18n is not None and reg.i18n.translations["de"]["hello"] == "Hallo"
        # no args at all: GoatKit passes (0, 0), the plugin greets the World
        assert await platform.call("goatkit-compat", "hello") == {"message": "Hello, World!"}
        assert await platform.call("goatkit-compat", "hello", {"name": "Go"}) == {
            "message": "Hello, Go!"
        }
        # its db_query host call reads no table, so it needs no grant
        assert await platform.call("goatkit-compat", "db_stats") == {
            "rows": [{"one": 1}],
            "ok": True,
        }
        assert "compat hello called" in [r.message for r in platform.logs.records("goatkit-compat")]
