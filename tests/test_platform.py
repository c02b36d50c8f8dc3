"""Platform: discovery, lazy loading, registration cache, calls and host calls end to end."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from goatkit_asgi import Platform, PluginState
from goatkit_asgi.errors import (
    ConfigError,
    ManifestError,
    PackageError,
    PluginCallError,
    PluginCrashed,
    PluginNotFound,
    PluginTimeout,
    RegistrationError,
)
from tests.fixtures.wat import REGISTRATION, make_plugin

pytestmark = pytest.mark.anyio

MakePlatform = Callable[..., Platform]


def instantiations(platform: Platform) -> int:
    return sum(e.instantiations for e in platform._engines.values())


async def test_discovery_lists_every_plugin_with_its_state(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "good")
    (plugins_dir / "no-manifest").mkdir()
    bad = plugins_dir / "bad-yaml"
    bad.mkdir()
    (bad / "manifest.yaml").write_text("name: [unclosed\n")
    (plugins_dir / "broken.zip").write_bytes(b"this is not a zip file")
    (plugins_dir / ".hidden").mkdir()
    async with make_platform() as platform:
        plugins = platform.plugins
        assert set(plugins) == {"good", "no-manifest", "bad-yaml", "broken"}
        assert plugins["good"].state is PluginState.DISCOVERED
        assert plugins["good"].instances == 0
        assert isinstance(plugins["no-manifest"].error, ManifestError)
        assert "no manifest.yaml or plugin.yaml" in str(plugins["no-manifest"].error)
        assert plugins["bad-yaml"].state is PluginState.FAILED
        assert isinstance(plugins["broken"].error, PackageError)
        assert "broken.zip" in str(plugins["broken"].error)
        # the broken ones never stop the others
        assert await platform.call("good", "echo", {"a": 1}) == {"a": 1}
        # a refused plugin's calls raise its error
        with pytest.raises(PackageError, match="broken.zip"):
            await platform.call("broken", "echo", {})


async def test_plugins_mapping_is_read_only(plugins_dir: Path, platform: Platform) -> None:
    with pytest.raises(TypeError):
        platform.plugins["x"] = None  # type: ignore[index]


async def test_zip_packages_install_and_run(
    plugins_dir: Path, tmp_path: Path, make_platform: MakePlatform
) -> None:
    src = make_plugin(tmp_path / "src", "zipped")
    with zipfile.ZipFile(plugins_dir / "zipped-1.0.zip", "w") as zf:
        for f in src.iterdir():
            zf.write(f, f.name)
    async with make_platform() as platform:
        info = platform.plugins["zipped"]
        assert info.source.name == "zipped-1.0.zip"
        assert info.directory is not None and plugins_dir not in info.directory.parents
        assert await platform.call("zipped", "echo", [1, 2]) == [1, 2]
    # nothing was extracted into plugins_dir itself
    assert sorted(p.name for p in plugins_dir.iterdir()) == ["zipped-1.0.zip"]


async def test_duplicate_plugin_names_fail_the_second(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "a-dup", manifest={"name": "dup"})
    make_plugin(plugins_dir, "b-dup", manifest={"name": "dup"})
    async with make_platform() as platform:
        assert platform.plugins["dup"].state is PluginState.DISCOVERED
        second = platform.plugins["b-dup"]
        assert second.state is PluginState.FAILED
        assert "another plugin named 'dup'" in str(second.error)


async def test_call_passes_json_and_distinguishes_no_args_from_empty(
    plugins_dir: Path, platform: Platform
) -> None:
    make_plugin(plugins_dir, "sink")
    await platform.stop()
    await platform.start()
    assert await platform.call("sink", "echo", {}) == {}
    assert await platform.call("sink", "echo", None) is None  # (0, 0): nothing to echo
    big = {"data": "x" * (1024 * 1024)}
    assert await platform.call("sink", "echo", big, timeout=5) == big
    assert await platform.call("sink", "empty", {}) is None


async def test_unknown_plugin_and_function(plugins_dir: Path, make_platform: MakePlatform) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        with pytest.raises(PluginNotFound, match="no plugin named 'nope'; installed: sink"):
            await platform.call("nope", "echo")
        with pytest.raises(PluginCallError, match="sink: no function 'nope'") as info:
            await platform.call("sink", "nope")
        assert info.value.code == "unknown_function"


async def test_not_started_platform_says_how_to_start(make_platform: MakePlatform) -> None:
    with pytest.raises(ConfigError, match="async with platform"):
        await make_platform().call("x", "y")


async def test_lazy_load_happens_once_for_concurrent_first_calls(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        await platform.wait_ready()
        assert platform.plugins["sink"].state is PluginState.DISCOVERED
        results = []

        async def one(i: int) -> None:
            results.append(await platform.call("sink", "echo", {"i": i}))

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        assert sorted(r["i"] for r in results) == list(range(8))
        info = platform.plugins["sink"]
        assert info.state is PluginState.LOADED
        engine = platform._engines[False]
        assert engine.compiles + engine.cache_hits == 2  # registration read + the one load
        assert 1 <= info.instances <= 4


async def test_registration_is_cached_by_module_hash(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        await platform.wait_ready()
        reg = platform.plugins["sink"].registration
        assert reg is not None and reg.name == "sink"
        assert instantiations(platform) == 1  # read once: instantiate, gk_register, release
    async with make_platform() as platform:
        # a later start knows the registration without instantiating anything
        await platform.wait_ready()
        assert platform.plugins["sink"].registration == reg
        assert instantiations(platform) == 0
        assert platform._engines == {}
        # and the first call finds the compiled module in the disk cache
        assert await platform.call("sink", "echo", {"x": 1}) == {"x": 1}
        engine = platform._engines[False]
        assert (engine.compiles, engine.cache_hits) == (0, 1)


async def test_changed_module_is_registered_again(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        await platform.wait_ready()
    make_plugin(
        plugins_dir, "sink", registration={**REGISTRATION, "name": "sink", "version": "2.0.0"}
    )
    async with make_platform() as platform:
        await platform.wait_ready()
        reg = platform.plugins["sink"].registration
        assert reg is not None and reg.version == "2.0.0"


async def test_discovering_200_plugins_instantiates_nothing(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    for i in range(200):
        make_plugin(plugins_dir, f"p{i:03d}")
    platform = make_platform()
    found = platform._discover()
    assert len(found) == 200 and all(d.error is None for d in found)
    async with platform:
        await platform.wait_ready()  # cold cache: one registration read per module version
        assert all(p.state is PluginState.DISCOVERED for p in platform.plugins.values())
        assert all(p.instances == 0 for p in platform.plugins.values())
    async with make_platform() as platform:
        await platform.wait_ready()
        assert len(platform.plugins) == 200
        assert all(p.registration is not None for p in platform.plugins.values())
        assert instantiations(platform) == 0 and platform._engines == {}


async def test_bad_registration_rejects_the_plugin(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(
        plugins_dir, "badreg", registration={"name": "badreg", "routes": [{"method": "FETCH"}]}
    )
    make_plugin(plugins_dir, "othername", registration={**REGISTRATION, "name": "something-else"})
    make_plugin(plugins_dir, "fine")
    async with make_platform() as platform:
        await platform.wait_ready()
        info = platform.plugins["badreg"]
        assert info.state is PluginState.FAILED
        assert isinstance(info.error, RegistrationError)
        assert "routes[0]" in str(info.error)
        renamed = platform.plugins["othername"]
        assert renamed.state is PluginState.DISCOVERED  # a warning: the manifest's name is used
        assert renamed.registration is not None
        assert any("something-else" in w for w in renamed.registration.warnings)
        with pytest.raises(RegistrationError):
            await platform.call("badreg", "echo", {})
        assert await platform.call("fine", "echo", {}) == {}


async def test_trap_then_next_call_works(plugins_dir: Path, make_platform: MakePlatform) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        assert await platform.call("sink", "count") == {"n": 1}
        with pytest.raises(PluginCrashed, match="sink: trap crashed"):
            await platform.call("sink", "trap")
        # a fresh instance: its state starts again
        assert await platform.call("sink", "count") == {"n": 1}
        stats = platform.plugins["sink"].stats
        assert stats["trap"]["errors"] == {"crashed": 1}


async def test_plugin_reported_error_becomes_plugin_call_error(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        with pytest.raises(PluginCallError, match="sink: echo failed: went wrong") as info:
            await platform.call("sink", "echo", {"error": "went wrong"})
        assert info.value.code == "plugin_error"
        with pytest.raises(PluginCallError, match="sink: echo failed: no such ticket") as info:
            await platform.call(
                "sink", "echo", {"error": {"code": "not_found", "message": "no such ticket"}}
            )
        assert info.value.code == "not_found"


async def test_timeouts_from_call_manifest_and_platform(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "quick", manifest={"resources": {"call_timeout": "150ms"}})
    make_plugin(plugins_dir, "sink")
    async with make_platform(call_timeout=0.3) as platform:
        for name, limit in (("quick", 0.15), ("sink", 0.3)):
            t0 = anyio.current_time()
            with pytest.raises(
                PluginTimeout, match=f"{name}: loop did not finish within its limit of {limit:g}s"
            ):
                await platform.call(name, "loop")
            assert limit <= anyio.current_time() - t0 < limit + 0.1
        with pytest.raises(PluginTimeout, match="limit of 0.1s"):
            await platform.call("sink", "loop", timeout=0.1)
        with pytest.raises(ConfigError, match="timeout=120"):
            await platform.call("sink", "echo", timeout=120)


async def test_manifest_timeout_beyond_the_platform_maximum_is_refused(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "slow", manifest={"resources": {"call_timeout": 90}})
    async with make_platform() as platform:
        with pytest.raises(
            Exception, match="90s is more than the platform's max_call_timeout of 60s"
        ):
            await platform.call("slow", "echo", {})
        assert platform.plugins["slow"].state is PluginState.FAILED


async def test_cache_host_calls_are_namespaced_per_plugin(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "alpha")
    make_plugin(plugins_dir, "beta")
    async with make_platform() as platform:
        set_args = ["cache_set", {"key": "secret", "value": "aGVsbG8=", "ttl": 60}]
        assert await platform.call("alpha", "host", set_args) == {"ok": True}
        got = await platform.call("alpha", "host", ["cache_get", {"key": "secret"}])
        assert got == {"value": "aGVsbG8=", "found": True}
        # beta asks for the same key and gets its own (empty) namespace
        other = await platform.call("beta", "host", ["cache_get", {"key": "secret"}])
        assert other == {"value": None, "found": False}


async def test_config_get_merges_manifest_defaults_and_platform_config(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink", manifest={"config": {"color": "blue", "size": 3}})
    async with make_platform(plugin_config={"sink": {"color": "green"}}) as platform:
        assert await platform.call("sink", "host", ["config_get", {"key": "color"}]) == {
            "value": "green",
            "found": True,
        }
        assert await platform.call("sink", "host", ["config_get", {"key": "size"}]) == {
            "value": 3,
            "found": True,
        }
        assert await platform.call("sink", "host", ["config_get", {"key": "x"}]) == {
            "value": None,
            "found": False,
        }


async def test_unknown_and_malformed_host_calls_set_last_error(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        out = await platform.call("sink", "host", ["no_such_function", {}])
        assert out["failed"]["code"] == "unknown_function"
        assert "unknown host function 'no_such_function'" in out["failed"]["message"]
        out = await platform.call("sink", "host", ["cache_set", "not an object"])
        assert out["failed"] == {
            "code": "bad_request",
            "message": "cache_set: arguments must be a JSON object",
        }
        out = await platform.call("sink", "host", ["cache_set", {"key": "k", "value": "***"}])
        assert out["failed"] == {
            "code": "bad_request",
            "message": 'cache_set: "value" is not valid base64',
        }


async def test_log_lines_land_in_the_plugin_log(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        await platform.call("sink", "log", "from gk.log")
        await platform.call(
            "sink", "host", ["log", {"level": "error", "message": "from host_call"}]
        )
        lines = [(r.level, r.message) for r in platform.logs.records("sink")]
        assert ("warn", '"from gk.log"') in lines  # the raw JSON args it was given
        assert ("error", "from host_call") in lines


async def test_unload_keeps_registration_and_reloads_on_use(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    async with make_platform() as platform:
        await platform.call("sink", "echo", {})
        assert platform.plugins["sink"].state is PluginState.LOADED
        await platform.unload("sink")
        info = platform.plugins["sink"]
        assert info.state is PluginState.DISCOVERED and info.instances == 0
        assert info.registration is not None
        assert await platform.call("sink", "echo", [1]) == [1]
        assert platform.plugins["sink"].state is PluginState.LOADED


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"call_timeout": 0}, "call_timeout: expected a positive number"),
        ({"call_timeout": 61}, "call_timeout: 61s is more than the maximum of 60.0s"),
        ({"memory_mb": True}, "memory_mb: expected a positive whole number"),
        ({"database_url": "mysql://x"}, "database_url: 'mysql://x' is not supported"),
        ({"grants": {"x": ["db"]}}, "grants: expected a mapping"),
        ({"max_instances": 0}, "max_instances"),
    ],
)
def test_wrong_settings_are_config_errors(
    make_platform: MakePlatform, kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(".", r"\.")):
        make_platform(**kwargs)


async def test_a_plugin_directory_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="plugins_dir: .* is not a directory"):
        Platform(tmp_path / "file")


async def test_json_results_survive_roundtrip(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "sink")
    payload = {"unicode": "grüße ✓", "nested": {"list": [1, 2.5, None, True]}}
    async with make_platform() as platform:
        assert await platform.call("sink", "echo", payload) == payload
        with pytest.raises(PluginCallError, match="cannot be sent as JSON"):
            await platform.call("sink", "echo", {"x": object()})
    assert json.dumps(payload)


async def test_plugins_that_would_share_tables_are_refused(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "hello")
    make_plugin(plugins_dir, "hello-world")  # hello_world_* would also be hello_*
    make_plugin(plugins_dir, "a_b", manifest={"name": "a_b"})
    make_plugin(plugins_dir, "a-b")  # the same prefix as a_b
    make_plugin(plugins_dir, "goatkit-plugin")  # would own goatkit_plugin_state, a platform table
    async with make_platform() as platform:
        assert platform.plugins["hello"].state is PluginState.DISCOVERED
        refused = platform.plugins["hello-world"]
        assert refused.state is PluginState.FAILED
        assert "would share database tables with the plugin 'hello'" in str(refused.error)
        assert "share database tables" in str(platform.plugins["a_b"].error)
        assert "platform's own tables" in str(platform.plugins["goatkit-plugin"].error)
