"""Installing, upgrading and uninstalling packages at run time (what the admin's upload uses)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from goatkit_asgi import Platform, PluginState
from goatkit_asgi.errors import ConfigError, PackageError
from tests.fixtures.wat import REGISTRATION, make_plugin

pytestmark = pytest.mark.anyio

MakePlatform = Callable[..., Platform]


def package(
    tmp_path: Path, name: str, version: str, caps: dict[str, object] | None = None
) -> bytes:
    src = make_plugin(
        tmp_path / f"src-{version}",
        name,
        manifest={"version": version, "capabilities": caps or {"email": True}},
        registration={
            **REGISTRATION,
            "name": name,
            "version": version,
            "routes": [{"method": "GET", "path": f"/{name}/ver", "handler": "ver"}],
        },
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f.name)
    return buf.getvalue()


async def test_install_upgrade_uninstall(
    plugins_dir: Path, make_platform: MakePlatform, tmp_path: Path
) -> None:
    async with make_platform() as platform:
        info = await platform.install("greeter-1.0.0.zip", package(tmp_path, "greeter", "1.0.0"))
        assert info.state is PluginState.DISCOVERED and info.granted.is_empty()
        assert info.pending.email  # waits for an administrator's review
        assert (plugins_dir / "greeter-1.0.0.zip").is_file()
        assert (await platform.call("greeter", "ver"))["version"] == "1.0.0"
        assert any(e.route.path == "/greeter/ver" for e in platform.route_entries())
        (record,) = await platform.installs()
        assert (record.plugin, record.filename, record.version) == (
            "greeter",
            "greeter-1.0.0.zip",
            "1.0.0",
        )
        # upgrade: the new version replaces the old package and answers from now on
        await platform.install("greeter-2.0.0.zip", package(tmp_path, "greeter", "2.0.0"))
        assert (await platform.call("greeter", "ver"))["version"] == "2.0.0"
        assert sorted(p.name for p in plugins_dir.iterdir()) == ["greeter-2.0.0.zip"]
        await platform.uninstall("greeter")
        assert "greeter" not in platform.plugins
        assert list(plugins_dir.iterdir()) == []
        assert not any(e.plugin == "greeter" for e in platform.route_entries())
        assert await platform.installs() == []


async def test_refused_packages_change_nothing(
    plugins_dir: Path, make_platform: MakePlatform, tmp_path: Path
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.yaml", "name: evil\n")
        zf.writestr("../escape.txt", "x")
    async with make_platform() as platform:
        with pytest.raises(PackageError, match=r"\.\."):
            await platform.install("evil.zip", buf.getvalue())
        with pytest.raises(PackageError, match="plain name"):
            await platform.install("C:\\temp\\x.zip", package(tmp_path, "x", "1.0.0"))
        with pytest.raises(PackageError, match="must be a .zip"):
            await platform.install("x.tar", b"whatever")
        broken = package(tmp_path, "broken", "1.0.0").replace(b"\x00asm", b"\x00BAD", 1)
        with pytest.raises(Exception, match="not a valid WebAssembly module|package"):
            await platform.install("broken.zip", broken)
        assert list(plugins_dir.iterdir()) == []
        assert platform.plugins == {}
        # a name with directories in it keeps only its last part: nothing lands outside
        await platform.install("../../x.zip", package(tmp_path, "x", "1.0.0"))
        assert [p.name for p in plugins_dir.iterdir()] == ["x.zip"]
        assert not (plugins_dir.parent.parent / "x.zip").exists()


async def test_directory_plugins_are_not_uninstalled(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "local")
    async with make_platform() as platform:
        with pytest.raises(ConfigError, match="plugin directory"):
            await platform.uninstall("local")
        assert (plugins_dir / "local").is_dir()


async def test_a_package_installed_by_one_worker_reaches_the_other(
    plugins_dir: Path, make_platform: MakePlatform, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    async with (
        make_platform(database_url=db, sync_interval=0.1, state_dir=tmp_path / "w1") as one,
        make_platform(database_url=db, sync_interval=0.1, state_dir=tmp_path / "w2") as two,
    ):
        await one.install("shared-1.0.0.zip", package(tmp_path, "shared", "1.0.0"))
        with anyio.fail_after(5):
            while "shared" not in two.plugins:
                await anyio.sleep(0.05)
        assert (await two.call("shared", "ver"))["version"] == "1.0.0"
        await one.uninstall("shared")
        with anyio.fail_after(5):
            while "shared" in two.plugins:
                await anyio.sleep(0.05)
