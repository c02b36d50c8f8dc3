"""Lifecycle: hot reload under load, broken versions, idle unload, the memory budget, several
workers on one database, and graceful shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from goatkit_asgi import GoatKitMiddleware, Platform, PluginState
from goatkit_asgi.errors import PluginBusy
from tests.fixtures.wat import REGISTRATION, kitchen_sink, make_plugin, wasm_bytes
from tests.web.server import serve

MakePlatform = Callable[..., Platform]


def live_registration(version: str) -> dict[str, Any]:
    return {
        **REGISTRATION,
        "name": "live",
        "version": version,
        "routes": [{"method": "GET", "path": "/live/ver", "handler": "ver"}],
    }


def write_version(plugins_dir: Path, version: str) -> None:
    """Replace the module atomically, as a deploy tool would."""
    directory = plugins_dir / "live"
    tmp = directory / ".plugin.wasm.tmp"
    tmp.write_bytes(wasm_bytes(kitchen_sink(live_registration(version))))
    tmp.replace(directory / "plugin.wasm")


def test_hot_reload_under_load_fails_no_request(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "live", registration=live_registration("1.0.0"))
    platform = make_platform(hot_reload=True)
    app = GoatKitMiddleware(Starlette(), platform=platform)
    failures: list[str] = []
    seen: list[str] = []
    stop = threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.get("/live/ver")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    seen.append(r.json()["version"])

    with serve(app) as url:
        clients = [threading.Thread(target=hammer, args=(url,)) for _ in range(8)]
        for c in clients:
            c.start()
        try:
            for n in range(2, 22):  # 20 reloads
                version = f"1.0.{n}"
                write_version(plugins_dir, version)
                deadline = time.monotonic() + 15
                while not seen or seen[-1] != version:
                    assert time.monotonic() < deadline, f"version {version} never answered"
                    time.sleep(0.01)
        finally:
            stop.set()
            for c in clients:
                c.join()
    assert failures == []
    assert len(seen) > 100
    assert seen[-1] == "1.0.21"
    assert len(set(seen)) >= 10  # responses switched version after version


@pytest.mark.anyio
async def test_a_broken_new_version_keeps_the_old_one_serving(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "live", registration=live_registration("1.0.0"))
    async with make_platform() as platform:
        assert (await platform.call("live", "ver"))["version"] == "1.0.0"
        (plugins_dir / "live" / "plugin.wasm").write_bytes(b"\x00asm broken")
        with pytest.raises(Exception, match="not a valid WebAssembly module"):
            await platform.reload("live")
        info = platform.plugins["live"]
        assert info.state is PluginState.LOADED
        assert info.error is not None and "not a valid WebAssembly module" in str(info.error)
        assert (await platform.call("live", "ver"))["version"] == "1.0.0"
        write_version(plugins_dir, "2.0.0")
        await platform.reload("live")
        assert (await platform.call("live", "ver"))["version"] == "2.0.0"
        assert platform.plugins["live"].error is None


@pytest.mark.anyio
async def test_hot_reload_discovers_added_and_forgets_removed_plugins(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "stay")
    async with make_platform(hot_reload=True) as platform:
        make_plugin(
            plugins_dir,
            "newcomer",
            registration={
                **REGISTRATION,
                "name": "newcomer",
                "routes": [{"method": "GET", "path": "/newcomer", "handler": "echo"}],
            },
        )
        with anyio.fail_after(10):
            while "newcomer" not in platform.plugins:
                await anyio.sleep(0.05)
        assert await platform.call("newcomer", "echo", [1]) == [1]
        assert any(e.plugin == "newcomer" for e in platform.route_entries())
        import shutil

        shutil.rmtree(plugins_dir / "newcomer")
        with anyio.fail_after(10):
            while "newcomer" in platform.plugins:
                await anyio.sleep(0.05)
        assert not any(e.plugin == "newcomer" for e in platform.route_entries())
        assert "stay" in platform.plugins


@pytest.mark.anyio
async def test_idle_plugins_unload_and_reload_lazily(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform(idle_timeout=0.2) as platform:
        assert await platform.call("sink", "count") == {"n": 1}
        assert platform.plugins["sink"].state is PluginState.LOADED
        with anyio.fail_after(5):
            while platform.plugins["sink"].state is PluginState.LOADED:
                await anyio.sleep(0.05)
        info = platform.plugins["sink"]
        assert info.state is PluginState.DISCOVERED and info.instances == 0
        assert info.registration is not None  # routes and menus stay known
        assert await platform.call("sink", "count") == {"n": 1}  # a fresh instance


@pytest.mark.anyio
async def test_least_recently_used_idle_plugins_are_evicted_near_the_budget(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    for name in "abcd":
        make_plugin(
            plugins_dir, name, wat=kitchen_sink({**REGISTRATION, "name": name}, initial_pages=8)
        )
    async with make_platform(memory_budget_mb=2, sync_interval=60) as platform:
        for name in ("a", "b", "c"):
            await platform.call(name, "echo", {})
        await platform.call("a", "echo", {})  # a is now more recent than b and c
        assert platform.evictions == []
        await platform.call("d", "echo", {})  # 4 x 512 KiB: over 90% of 2 MiB
        assert platform.evictions == ["b"]
        assert platform.plugins["b"].state is PluginState.DISCOVERED
        assert {n for n in "acd" if platform.plugins[n].state is PluginState.LOADED} == {
            "a",
            "c",
            "d",
        }
        assert platform.memory_in_use() <= 0.8 * 2 * 1024 * 1024


@pytest.mark.anyio
async def test_a_plugin_in_use_is_never_evicted(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    for name in "ab":
        make_plugin(
            plugins_dir, name, wat=kitchen_sink({**REGISTRATION, "name": name}, initial_pages=8)
        )
    async with make_platform(memory_budget_mb=1, sync_interval=60) as platform:
        await platform.call("a", "echo", {})
        async with anyio.create_task_group() as tg:
            tg.start_soon(platform.call, "a", "spin", 300)  # a is busy for 300 ms
            await anyio.sleep(0.05)
            await platform.call("b", "echo", {})  # over budget, but a is mid-call
            assert platform.evictions == ["b"]  # a was older, but it is in use
        assert platform.plugins["a"].stats["spin"]["errors"] == {}


@pytest.mark.anyio
async def test_two_workers_on_one_database_agree_on_enable_and_grants(
    plugins_dir: Path, make_platform: MakePlatform, tmp_path: Path
) -> None:
    make_plugin(plugins_dir, "shared", manifest={"capabilities": {"email": True}})
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    async with (
        make_platform(database_url=db, sync_interval=0.1, state_dir=tmp_path / "w1") as one,
        make_platform(database_url=db, sync_interval=0.1, state_dir=tmp_path / "w2") as two,
    ):
        await one.disable("shared")
        started = time.monotonic()
        with anyio.fail_after(2):
            while two.plugins["shared"].state is not PluginState.DISABLED:
                await anyio.sleep(0.02)
        assert time.monotonic() - started < 1.0
        await two.enable("shared")
        with anyio.fail_after(2):
            while one.plugins["shared"].state is PluginState.DISABLED:
                await anyio.sleep(0.02)
        await one.grant("shared", {"email": True})
        with anyio.fail_after(2):
            while not two.plugins["shared"].granted.email:
                await anyio.sleep(0.02)
    # and a restart keeps the state
    async with make_platform(database_url=db, state_dir=tmp_path / "w3") as three:
        assert three.plugins["shared"].granted.email
        assert three.plugins["shared"].state is PluginState.DISCOVERED


@pytest.mark.anyio
async def test_graceful_shutdown_finishes_calls_in_flight_and_leaves_nothing_running(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    platform = make_platform(shutdown_grace=5)
    results: list[Any] = []

    async def long_call() -> None:
        results.append(await platform.call("sink", "spin", 300))

    refused: list[BaseException] = []

    async def late_call() -> None:
        await anyio.sleep(0.05)  # the stop has begun by now
        try:
            await platform.call("sink", "echo", {})
        except PluginBusy as exc:
            refused.append(exc)

    async with anyio.create_task_group() as tg:
        await platform.start()  # started and stopped by one task, as the ASGI lifespan does
        await platform.call("sink", "echo", {})
        tg.start_soon(long_call)
        await anyio.sleep(0.05)
        tg.start_soon(late_call)
        await platform.stop()
    assert len(refused) == 1 and "shutting down" in str(refused[0])
    assert results == [{"ok": True}]
    ours = [t for t in threading.enumerate() if t.name.startswith("goatkit")]
    assert ours == []
