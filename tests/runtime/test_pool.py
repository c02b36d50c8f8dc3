"""The instance pool: queueing, parallelism, isolation between plugins, the inline fast path."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from goatkit_asgi import Platform, PluginState
from goatkit_asgi.errors import PluginBusy, PluginTimeout
from tests.fixtures.wat import make_plugin

pytestmark = pytest.mark.anyio

MakePlatform = Callable[..., Platform]


async def test_infinite_loop_stops_while_another_plugin_keeps_answering(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "looper")
    make_plugin(plugins_dir, "other")
    async with make_platform(call_timeout=0.5) as platform:
        await platform.load("looper")
        await platform.call("other", "echo", {})
        latencies: list[float] = []
        elapsed: list[float] = []

        async def loop() -> None:
            t0 = time.monotonic()
            with pytest.raises(
                PluginTimeout, match="looper: loop did not finish within its limit of 0.5s"
            ):
                await platform.call("looper", "loop")
            elapsed.append(time.monotonic() - t0)

        async def answer() -> None:
            await anyio.sleep(0.05)
            while not elapsed:
                t0 = time.monotonic()
                assert await platform.call("other", "echo", {"ping": 1}) == {"ping": 1}
                latencies.append(time.monotonic() - t0)
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(loop)
            tg.start_soon(answer)
        assert 0.5 <= elapsed[0] < 0.6
        assert len(latencies) >= 5
        assert max(latencies) < 0.1
        # the looping instance was discarded; the plugin answers normally afterwards
        assert await platform.call("looper", "echo", [1]) == [1]


async def test_calls_on_two_instances_really_overlap(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "spinner", manifest={"resources": {"max_instances": 2}})
    async with make_platform() as platform:
        # create both instances first, so instantiation is not timed
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(platform.call, "spinner", "spin", 50)
        t0 = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(platform.call, "spinner", "spin", 200)
        elapsed = time.monotonic() - t0
        assert 0.2 <= elapsed < 0.33, f"two 200 ms calls took {elapsed:.3f}s"
        assert platform.plugins["spinner"].instances == 2


async def test_full_queue_is_refused_with_plugin_busy(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "single", manifest={"resources": {"max_instances": 1}})
    async with make_platform(max_queue=1) as platform:
        await platform.load("single")
        results: list[object] = []

        async def slow() -> None:
            results.append(await platform.call("single", "spin", 300))

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)  # runs
            await anyio.sleep(0.05)
            tg.start_soon(slow)  # waits in the queue
            await anyio.sleep(0.05)
            with pytest.raises(
                PluginBusy, match="single: all 1 instances are busy and 1 calls are already waiting"
            ) as info:
                await platform.call("single", "echo", {})
            assert info.value.http_status == 503
        assert results == [{"ok": True}, {"ok": True}]


async def test_quick_pure_functions_go_inline(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        for i in range(5):
            assert await platform.call("sink", "echo", {"i": i}) == {"i": i}
        stats = platform.plugins["sink"].stats["echo"]
        assert stats["calls"] == 5
        assert stats["inline_calls"] >= 3  # the first runs in a thread, later ones inline


async def test_functions_that_make_host_calls_never_run_twice(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        # pure at first: becomes an inline candidate
        for _ in range(3):
            assert await platform.call("sink", "maybe") == {"ok": True}
        assert "maybe" in platform._plugins["sink"].pool.inline_functions()  # type: ignore[union-attr]
        # now it logs (a host call): the inline attempt is refused before the log happens,
        # the call runs again in a thread, and the line is logged exactly once per call
        for i in range(3):
            assert await platform.call("sink", "maybe", f"line {i}") == {"ok": True}
        lines = [r.message for r in platform.logs.records("sink")]
        assert lines == ['"line 0"', '"line 1"', '"line 2"']
        assert "maybe" not in platform._plugins["sink"].pool.inline_functions()  # type: ignore[union-attr]


async def test_a_call_that_outgrows_the_inline_budget_still_succeeds(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform(call_timeout=1.0) as platform:
        for _ in range(3):
            assert await platform.call("sink", "spin", 0) == {"ok": True}
        assert "spin" in platform._plugins["sink"].pool.inline_functions()  # type: ignore[union-attr]
        # 50 ms is far beyond the inline budget but well within call_timeout: must not fail
        assert await platform.call("sink", "spin", 50) == {"ok": True}
        assert "spin" not in platform._plugins["sink"].pool.inline_functions()  # type: ignore[union-attr]
        assert platform.plugins["sink"].stats["spin"]["errors"] == {}


async def test_public_api_fallback_path_runs_everything(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform(inline_calls=False) as platform:
        for _ in range(3):
            assert await platform.call("sink", "echo", {"a": 1}) == {"a": 1}
        pool = platform._plugins["sink"].pool
        assert pool is not None and not pool.fast
        assert all(not inst.fast for inst in pool._instances)
        assert platform.plugins["sink"].stats["echo"]["inline_calls"] == 0
        out = await platform.call("sink", "host", ["cache_get", {"key": "k"}])
        assert out == {"value": None, "found": False}
        with pytest.raises(PluginTimeout):
            await platform.call("sink", "loop", timeout=0.2)


async def test_memory_in_use_is_tracked(plugins_dir: Path, make_platform: MakePlatform) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        assert platform.memory_in_use() == 0
        await platform.call("sink", "echo", {})
        info = platform.plugins["sink"]
        assert info.state is PluginState.LOADED
        assert info.memory_bytes >= 2 * 65536
        assert platform.memory_in_use() == info.memory_bytes
        await platform.unload("sink")
        assert platform.memory_in_use() == 0


async def test_latency_and_error_statistics(plugins_dir: Path, make_platform: MakePlatform) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        for _ in range(4):
            await platform.call("sink", "echo", {})
        with pytest.raises(PluginTimeout):
            await platform.call("sink", "loop", timeout=0.05)
        info = platform.plugins["sink"]
        assert info.stats["echo"]["calls"] == 4
        assert info.stats["loop"]["timeouts"] == 1
        assert info.totals["calls"] == 5 and info.totals["errors"] == 1
        p50 = info.totals["p50"]
        assert isinstance(p50, float) and 0 < p50 < 0.1


@pytest.mark.parametrize(
    ("function", "error"),
    [
        ("loop", "timeout"),
        ("trap", "crashed"),
        ("oob", "crashed"),
        ("deep", "crashed"),
        ("grow", "memory_exceeded"),
    ],
)
async def test_plugin_answers_normally_after_each_kind_of_failure(
    plugins_dir: Path, make_platform: MakePlatform, function: str, error: str
) -> None:
    make_plugin(plugins_dir, "sink", manifest={"resources": {"memory_mb": 2, "max_instances": 1}})
    async with make_platform(call_timeout=0.2) as platform:
        assert await platform.call("sink", "count") == {"n": 1}
        with pytest.raises(Exception) as info:
            await platform.call("sink", function)
        assert getattr(info.value, "code", None) == error
        assert f"sink: {function}" in str(info.value)
        # the failed instance was replaced: fresh state, normal answers
        assert await platform.call("sink", "count") == {"n": 1}
        assert await platform.call("sink", "echo", {"after": function}) == {"after": function}
        pool = platform._plugins["sink"].pool
        assert pool is not None and pool.discarded == 1 and pool.instance_count == 1


async def test_statistics_survive_unload_and_reload(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        for _ in range(3):
            await platform.call("sink", "echo", {})
        await platform.unload("sink")
        assert platform.plugins["sink"].stats["echo"]["calls"] == 3  # the admin still sees them
        await platform.call("sink", "echo", {})
        await platform.reload("sink")
        await platform.call("sink", "echo", {})
        assert platform.plugins["sink"].totals["calls"] == 5
