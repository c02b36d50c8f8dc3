"""The ``gk`` command line, driven as a plugin author uses it, on fresh temporary directories.

init -> build -> the plugin's own tests -> pack -> keygen -> sign -> verify -> inspect -> load in
a platform -> call; tampering after signing; untrusted keys; push to a running instance (started
here) with and without --watch; gk dev. Commands run in-process through ``main([...])`` where
only their output matters, and as subprocesses where processes and the network matter.

The scaffolds are built once per session (the zig builds dominate the time).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from goatkit_asgi import GoatKitMiddleware, Platform, PluginState
from goatkit_asgi.cli import ZIP_EPOCH, build_plugin, main
from goatkit_asgi.errors import GoatKitError
from goatkit_asgi.packaging.manifest import load_manifest
from goatkit_asgi.packaging.signing import SIGNATURE_FILE, key_id
from goatkit_asgi.web.admin import create_admin_app
from tests.fixtures.wat import make_plugin
from tests.web.server import serve

GK = [sys.executable, "-m", "goatkit_asgi.cli"]
TOKEN = "push-token-0123456789abcdef"
SIGNATURE_POLICY = "require_signatures" in inspect.signature(Platform.__init__).parameters


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def gk(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``gk ARGS`` in-process; returns the exit code and what it printed."""

    def run(*argv: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def pytest_plugin_args() -> list[str]:
    """How a subprocess pytest gets the goatkit fixtures: the installed entry point if there
    is one, else by naming the module."""
    for ep in importlib.metadata.entry_points(group="pytest11"):
        if ep.value == "goatkit_asgi.testing":
            return []
    return ["-p", "goatkit_asgi.testing"]


def run_plugin_tests(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_plugin_args()],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def scaffolds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``gk plugin init`` + ``gk plugin build`` of the C and Zig scaffolds, once."""
    root = tmp_path_factory.mktemp("scaffolds")
    built = {}
    for lang in ("c", "zig"):
        directory = root / f"demo-{lang}"
        assert (
            main(["plugin", "init", f"demo-{lang}", "--lang", lang, "--dir", str(directory)]) == 0
        )
        assert main(["plugin", "build", str(directory), "--quiet"]) == 0
        built[lang] = directory
    return built


def copy_plugin(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    return target


def zip_entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def rewrite_zip(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- init ----------------------------------------------------------------------------------------

LAYOUTS = {
    "c": ["manifest.yaml", "plugin.c", "build.sh", "tests/test_plugin.py", "README.md"],
    "zig": ["manifest.yaml", "plugin.zig", "build.sh", "tests/test_plugin.py", "README.md"],
    "python": ["manifest.yaml", "plugin.py", "tests/test_plugin.py", "README.md"],
}


@pytest.mark.parametrize("lang", ["c", "zig", "python"])
def test_init_writes_a_complete_plugin(
    gk: Callable[..., Result], tmp_path: Path, lang: str
) -> None:
    runtime = "grpc" if lang == "python" else "wasm"
    target = tmp_path / "my-plugin"
    result = gk(
        "plugin",
        "init",
        "my-plugin",
        "--runtime",
        runtime,
        "--lang",
        lang,
        "--dir",
        target,
        "--json",
    )
    assert result.code == 0, result.err
    data = result.json()
    assert data["runtime"] == runtime and data["lang"] == lang
    assert set(LAYOUTS[lang]) <= set(data["files"])
    assert {".gitignore", ".gkignore"} <= set(data["files"])
    manifest = load_manifest(target)
    assert (manifest.name, manifest.version, manifest.runtime) == ("my-plugin", "0.1.0", runtime)
    assert [e.name for e in manifest.exports] == ["hello", "count"]
    for rel in data["files"]:
        text = (target / rel).read_text()
        assert "{{" not in text and "}}" not in text.replace("}}}", ""), rel
    if lang != "python":
        assert (target / "build.sh").stat().st_mode & stat.S_IXUSR
    else:
        assert manifest.command == ("python", "plugin.py")
    compile((target / "tests" / "test_plugin.py").read_text(), "test_plugin.py", "exec")


def test_init_refuses_bad_names_combinations_and_non_empty_directories(
    gk: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = gk("plugin", "init", "Bad Name")
    assert bad.code == 2 and "not a valid plugin name" in bad.err
    combo = gk("plugin", "init", "x", "--runtime", "wasm", "--lang", "python")
    assert combo.code == 2 and "--lang python does not go with --runtime wasm" in combo.err
    assert gk("plugin", "init", "taken").code == 0  # into ./taken
    again = gk("plugin", "init", "taken")
    assert again.code == 2 and "not empty" in again.err and "--force" in again.err
    for result in (bad, combo, again):
        assert result.err.count("\n") == 1 and result.err.startswith("gk plugin init: ")
    assert gk("plugin", "init", "pyplug", "--lang", "python", "--json").json()["runtime"] == "grpc"


# --- build and the scaffolds' own tests ----------------------------------------------------------


@pytest.mark.parametrize("lang", ["c", "zig"])
def test_a_scaffolded_wasm_plugin_builds_and_passes_its_own_tests(
    scaffolds: dict[str, Path], tmp_path: Path, lang: str
) -> None:
    directory = copy_plugin(scaffolds[lang], tmp_path / f"demo-{lang}")
    module = directory / "plugin.wasm"
    assert module.read_bytes()[:4] == b"\0asm"
    result = run_plugin_tests(directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


FIXTURE_TESTS = """
import shutil

import pytest

from goatkit_asgi.errors import CapabilityDenied, PluginCallError


def test_a_fake_host_runs_the_plugin_without_a_platform(goatkit_fake_host, goatkit_plugin):
    assert goatkit_plugin.call("hello", {"name": "Fake"}) == {"message": "Hello, Fake!"}
    assert goatkit_plugin.info is None and goatkit_plugin.platform is None
    assert [f.name for f in goatkit_plugin.registration.functions] == ["hello", "count"]
    assert goatkit_plugin.call("count") == {"count": 1}
    assert goatkit_plugin.call("count") == {"count": 2}  # the fake cache keeps the value
    assert [c.function for c in goatkit_fake_host.calls][:2] == ["cache_get", "cache_set"]
    assert goatkit_fake_host.calls[1].args["key"] == "count"
    assert goatkit_plugin.log_messages() == ["Hello, Fake!"]


def test_a_fake_host_answers_and_refuses_as_told(goatkit_fake_host, goatkit_plugin):
    goatkit_fake_host.responses["cache_get"] = lambda args: {"value": "NDE=", "found": True}
    assert goatkit_plugin.call("count") == {"count": 42}

    def refuse(args):
        raise CapabilityDenied("no cache for you", code="capability_denied")

    goatkit_fake_host.responses["cache_get"] = refuse
    with pytest.raises(PluginCallError) as info:
        goatkit_plugin.call("count")
    assert info.value.code == "host_error"


@pytest.mark.anyio
async def test_a_fake_host_from_async_code(goatkit_fake_host, goatkit_plugin):
    assert await goatkit_plugin.call("hello", {"name": "A"}) == {"message": "Hello, A!"}


@pytest.mark.goatkit_plugin("..", call_timeout=1.5, config={"greeting": "hi"}, grants={})
def test_the_marker_reaches_the_platform(goatkit_plugin):
    settings = goatkit_plugin.platform.platform.settings
    assert settings.call_timeout == 1.5
    assert settings.plugin_config == {"demo-c": {"greeting": "hi"}}
    assert goatkit_plugin.info.state.value == "loaded"
    assert goatkit_plugin.registration.name == "demo-c"


def _plugins(tmp_path):
    plugins = tmp_path / "plugins"
    shutil.copytree(
        __import__("pathlib").Path(__file__).parent.parent,
        plugins / "demo-c",
        ignore=shutil.ignore_patterns("tests", "__pycache__"),
    )
    return plugins


def test_the_factory_makes_started_platforms(goatkit_platform_factory, tmp_path):
    plugins = _plugins(tmp_path)
    one = goatkit_platform_factory(plugins)
    two = goatkit_platform_factory(plugins, auto_grant=True)
    assert one.platform is not two.platform
    assert one.call("demo-c", "hello", {"name": "1"}) == {"message": "Hello, 1!"}
    assert two.run(two.platform.load, "demo-c").state.value == "loaded"
    assert one.log_messages("demo-c")[-1] == "Hello, 1!"
    assert set(one.plugins) == {"demo-c"}


@pytest.mark.anyio
async def test_the_factory_from_async_code(goatkit_platform_factory, tmp_path):
    handle = goatkit_platform_factory(_plugins(tmp_path))
    assert await handle.call("demo-c", "hello", {"name": "2"}) == {"message": "Hello, 2!"}
    info = await handle.arun(handle.platform.load, "demo-c")
    assert info.state.value == "loaded"
"""


def test_the_pytest_fixtures_for_plugin_authors(scaffolds: dict[str, Path], tmp_path: Path) -> None:
    directory = copy_plugin(scaffolds["c"], tmp_path / "demo-c")
    (directory / "tests" / "test_fixtures.py").write_text(FIXTURE_TESTS)
    result = run_plugin_tests(directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 passed" in result.stdout  # the scaffold's 6 and these 6


def test_a_scaffolded_grpc_plugin_serves_with_the_python_sdk(
    gk: Callable[..., Result], tmp_path: Path
) -> None:
    from goatkit_asgi.runtime.grpc import GrpcRuntime
    from goatkit_asgi.runtime.grpc_host import GrpcHost

    directory = tmp_path / "demo-py"
    assert gk("plugin", "init", "demo-py", "--runtime", "grpc", "--dir", directory).code == 0
    build = gk("plugin", "build", directory, "--json")
    assert build.code == 0 and build.json()["built"] is False  # nothing to build
    cache: dict[str, Any] = {}
    logged: list[Any] = []

    async def host_call(plugin: str, function: str, args: bytes, deadline: float) -> bytes:
        data = json.loads(args)
        if function == "log":
            logged.append(data)
            return b'{"ok":true}'
        if function == "cache_get":
            value = cache.get(data["key"])
            return json.dumps({"value": value, "found": value is not None}).encode()
        assert function == "cache_set"
        cache[data["key"]] = data["value"]
        return b'{"ok":true}'

    async def scenario() -> list[Any]:
        host = GrpcHost(host_call, lambda plugin, level, message: None)
        runtime = GrpcRuntime(load_manifest(directory), host)
        try:
            registration = json.loads(await runtime.register(10.0))
            results = [registration]
            results.append(json.loads(await runtime.call("hello", b'{"name":"Ada"}', 10.0) or b""))
            for _ in range(2):
                results.append(json.loads(await runtime.call("count", None, 10.0) or b""))
            return results
        finally:
            await runtime.close()
            await host.close()

    registration, hello, count1, count2 = anyio.run(scenario)
    assert [f["name"] for f in registration["functions"]] == ["hello", "count"]
    assert hello == {"message": "Hello, Ada!"}
    assert (count1, count2) == ({"count": 1}, {"count": 2})
    assert logged == [{"level": "info", "message": "Hello, Ada!"}]

    tests = run_plugin_tests(directory)
    if "runtime 'grpc' is not available" in tests.stdout:
        pytest.skip("the platform does not run gRPC plugins yet; the plugin's tests need it")
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_build_shows_progress_and_checks_the_module(
    tmp_path: Path, gk: Callable[..., Result]
) -> None:
    directory = make_plugin(tmp_path, "slow")
    good = (directory / "plugin.wasm").read_bytes()
    (directory / "good.wasm").write_bytes(good)
    (directory / "plugin.wasm").unlink()
    (directory / "build.sh").write_text(
        "echo compiling\nsleep 1.2\necho linking\ncp good.wasm plugin.wasm\n"
    )
    lines: list[str] = []
    echoed: list[str] = []
    result = build_plugin(directory, report=lines.append, echo=echoed.append, tick=0.4)
    assert result["built"] and result["module"] == "plugin.wasm" and result["size"] == len(good)
    assert lines[0].startswith("building slow (build.sh)")
    assert any(line.strip().startswith("still building slow...") for line in lines)
    assert echoed == ["  | compiling", "  | linking"]

    cli = gk("plugin", "build", directory)
    assert cli.code == 0 and cli.out.startswith("built slow: plugin.wasm")
    assert "  | compiling" in cli.err and "building slow" in cli.err

    (directory / "build.sh").write_text("echo 'plugin.c:3: error: oops' >&2\nexit 3\n")
    failed = gk("plugin", "build", directory, "--quiet")
    assert failed.code == 1
    assert failed.err.strip() == (
        "gk plugin build: slow: build.sh failed with exit code 3: plugin.c:3: error: oops"
    )
    (directory / "build.sh").write_text("printf 'not wasm' > plugin.wasm\n")
    broken = gk("plugin", "build", directory, "--quiet")
    assert broken.code == 1 and "not a valid WebAssembly module" in broken.err


# --- pack ----------------------------------------------------------------------------------------


def test_pack_is_reproducible_and_leaves_out_artefacts(
    scaffolds: dict[str, Path],
    tmp_path: Path,
    gk: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    directory = copy_plugin(scaffolds["c"], tmp_path / "demo-c")
    junk = [
        ".git/config",
        "__pycache__/x.cpython-311.pyc",
        "plugin.o",
        "local.db",
        ".zig-cache/h/abc",
        "signing.key",
        "old-package.zip",
        "tests/helper.py",
    ]
    for rel in junk:
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text("junk")
    first = gk("plugin", "pack", directory, "-o", tmp_path / "one.zip", "--json")
    assert first.code == 0, first.err
    for path in directory.rglob("*"):  # new timestamps and modes change nothing
        os.utime(path, (1_700_000_000, 1_700_000_000))
    os.chmod(directory / "plugin.c", 0o600)
    assert gk("plugin", "pack", directory, "-o", tmp_path / "two.zip").code == 0
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()

    data = first.json()
    assert data["files"] == ["README.md", "build.sh", "manifest.yaml", "plugin.c", "plugin.wasm"]
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == data["files"]  # sorted, no directory entries
    assert all(i.date_time == ZIP_EPOCH for i in infos)
    assert all(i.external_attr >> 16 == stat.S_IFREG | 0o644 for i in infos)
    assert data["sha256"] and data["size"] == (tmp_path / "one.zip").stat().st_size
    # default name: NAME-VERSION.zip in the current directory
    default = gk("plugin", "pack", directory, "--json")
    assert default.json()["package"] == "demo-c-0.1.0.zip"
    assert (tmp_path / "demo-c-0.1.0.zip").read_bytes() == (tmp_path / "one.zip").read_bytes()


def test_pack_refuses_private_keys_and_unbuilt_plugins(
    scaffolds: dict[str, Path], tmp_path: Path, gk: Callable[..., Result]
) -> None:
    directory = copy_plugin(scaffolds["c"], tmp_path / "demo-c")
    (directory / "notes.txt").write_text("-----BEGIN PRIVATE KEY-----\nabc\n")
    leaked = gk("plugin", "pack", directory, "-o", tmp_path / "x.zip")
    assert leaked.code == 1 and "notes.txt looks like a private key" in leaked.err
    (directory / "notes.txt").unlink()
    (directory / "plugin.wasm").unlink()
    unbuilt = gk("plugin", "pack", directory, "-o", tmp_path / "x.zip")
    assert unbuilt.code == 1 and "build the plugin first" in unbuilt.err
    assert not (tmp_path / "x.zip").exists()


# --- keys, signing, verifying, inspecting, loading, calling --------------------------------------


@pytest.fixture
def signed(
    scaffolds: dict[str, Path], tmp_path: Path, gk: Callable[..., Result]
) -> tuple[Path, dict[str, Any]]:
    """demo-c packed and signed: (package, keygen's JSON)."""
    package = tmp_path / "demo-c.zip"
    assert gk("plugin", "pack", scaffolds["c"], "-o", package).code == 0
    keys = gk("plugin", "keygen", "--out", tmp_path / "author", "--json").json()
    assert gk("plugin", "sign", package, "--key", keys["private_key_file"]).code == 0
    return package, keys


def test_keygen_writes_a_private_and_a_public_key(
    gk: Callable[..., Result], tmp_path: Path
) -> None:
    result = gk("plugin", "keygen", "--out", tmp_path / "k", "--json")
    assert result.code == 0
    data = result.json()
    private, public = Path(data["private_key_file"]), Path(data["public_key_file"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_text().strip() == data["public_key"]
    assert data["key_id"] == key_id(data["public_key"])
    again = gk("plugin", "keygen", "--out", tmp_path / "k")
    assert again.code == 1 and "exists" in again.err
    assert gk("plugin", "keygen", "--out", tmp_path / "k", "--force").code == 0


def test_init_build_test_pack_sign_verify_inspect_load_call(
    scaffolds: dict[str, Path],
    signed: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    gk: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package, keys = signed
    assert SIGNATURE_FILE in zip_entries(package)
    assert list(zip_entries(package)) == sorted(zip_entries(package))  # still reproducible

    verified = gk("plugin", "verify", package, "--key", keys["public_key_file"], "--json")
    assert verified.code == 0, verified.err
    assert verified.json()["state"] == "valid" and verified.json()["key_id"] == keys["key_id"]
    text = gk("plugin", "verify", package, "--key", keys["public_key"])
    assert text.code == 0 and text.out.startswith(f"{package}: valid")

    report = gk("plugin", "inspect", package, "--key", keys["public_key"], "--json")
    assert report.code == 0, report.err
    data = report.json()
    assert data["manifest"]["name"] == "demo-c" and data["manifest"]["version"] == "0.1.0"
    assert data["registration"]["functions"] == ["hello", "count"]
    imports = {f"{i['module']}.{i['name']}": i["type"] for i in data["module"]["imports"]}
    assert imports["gk.host_call"] == "func (i32, i32, i32, i32) -> (i64)"
    exports = {e["name"]: e["type"] for e in data["module"]["exports"]}
    assert exports["gk_call"] == "func (i32, i32, i32, i32) -> (i64)"
    assert exports["memory"].startswith("memory")
    assert data["capabilities"] == {} and data["signature"]["state"] == "valid"
    assert data["size"] == package.stat().st_size and data["problems"] == []
    human = gk("plugin", "inspect", package)
    assert "registration: functions hello, count" in human.out
    assert "signature: untrusted" in human.out  # no key given: the signer is unknown

    # load it in a platform and call it
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(package, plugins / package.name)
    options: dict[str, Any] = {}
    if SIGNATURE_POLICY:
        options = {"require_signatures": True, "trusted_keys": [keys["public_key"]]}

    async def load_and_call() -> tuple[Any, Any]:
        async with Platform(
            plugins,
            state_dir=tmp_path / "state",
            database_url=f"sqlite:///{tmp_path / 'p.db'}",
            **options,
        ) as platform:
            result = await platform.call("demo-c", "hello", {"name": "Ada"})
            return result, platform.plugins["demo-c"]

    result, info = anyio.run(load_and_call)
    assert result == {"message": "Hello, Ada!"} and info.state is PluginState.LOADED
    if SIGNATURE_POLICY:
        assert info.signature.ok

    # and with gk plugin call / list, on a local SQLite database
    monkeypatch.chdir(tmp_path)
    call = gk("plugin", "call", "demo-c", "hello", '{"name": "Bo"}', "--plugins", plugins)
    assert call.code == 0, call.err
    assert json.loads(call.out) == {"message": "Hello, Bo!"}
    assert "[demo-c] info: Hello, Bo!" in call.err
    assert (tmp_path / "local.db").is_file()
    listed = gk("plugin", "list", "--plugins", plugins, "--json")
    (row,) = listed.json()["plugins"]
    assert (row["name"], row["version"], row["functions"]) == (
        "demo-c",
        "0.1.0",
        ["count", "hello"],
    )


TAMPERING: dict[str, Callable[[dict[str, bytes]], str]] = {}


def _tamper(
    name: str,
) -> Callable[[Callable[[dict[str, bytes]], str]], Callable[[dict[str, bytes]], str]]:
    def add(fn: Callable[[dict[str, bytes]], str]) -> Callable[[dict[str, bytes]], str]:
        TAMPERING[name] = fn
        return fn

    return add


@_tamper("manifest-capabilities")
def _(entries: dict[str, bytes]) -> str:
    manifest = yaml.safe_load(entries["manifest.yaml"])
    manifest["capabilities"] = {"db": {"read": ["users"], "write": ["users"]}, "email": True}
    entries["manifest.yaml"] = yaml.safe_dump(manifest).encode()
    return "manifest.yaml changed"


@_tamper("module")
def _(entries: dict[str, bytes]) -> str:
    module = bytearray(entries["plugin.wasm"])
    module[-1] ^= 0xFF
    entries["plugin.wasm"] = bytes(module)
    return "plugin.wasm changed"


@_tamper("source")
def _(entries: dict[str, bytes]) -> str:
    entries["plugin.c"] += b"\n/* changed */\n"
    return "plugin.c changed"


@_tamper("added")
def _(entries: dict[str, bytes]) -> str:
    entries["static/extra.js"] = b"alert(1)"
    return "static/extra.js was added"


@_tamper("removed")
def _(entries: dict[str, bytes]) -> str:
    del entries["README.md"]
    return "README.md is missing"


@pytest.mark.parametrize("how", list(TAMPERING))
def test_tampering_after_signing_is_caught(
    signed: tuple[Path, dict[str, Any]], gk: Callable[..., Result], tmp_path: Path, how: str
) -> None:
    package, keys = signed
    entries = zip_entries(package)
    named = TAMPERING[how](entries)
    rewrite_zip(package, entries)
    result = gk("plugin", "verify", package, "--key", keys["public_key"], "--json")
    assert result.code == 1
    data = result.json()
    assert data["state"] == "tampered" and named in data["detail"]
    human = gk("plugin", "verify", package, "--key", keys["public_key"])
    assert human.code == 1 and human.err.count("\n") == 1
    assert human.err.startswith(f"gk plugin verify: {package}: signature tampered: ")
    if SIGNATURE_POLICY:
        plugins = tmp_path / "plugins"
        plugins.mkdir()
        shutil.copy(package, plugins)
        refused = gk(
            "plugin",
            "call",
            "demo-c",
            "hello",
            "{}",
            "--plugins",
            plugins,
            "--db",
            f"sqlite:///{tmp_path / 'x.db'}",
            "--require-signatures",
            "--trusted-key",
            keys["public_key"],
        )
        assert refused.code == 1 and named in refused.err


def test_a_package_signed_by_an_untrusted_key_is_refused(
    signed: tuple[Path, dict[str, Any]], gk: Callable[..., Result], tmp_path: Path
) -> None:
    package, keys = signed
    stranger = gk("plugin", "keygen", "--out", tmp_path / "stranger", "--json").json()
    result = gk("plugin", "verify", package, "--key", stranger["public_key"], "--json")
    assert result.code == 1 and result.json()["state"] == "untrusted"
    assert result.json()["key_id"] == keys["key_id"]
    # a package re-signed by the stranger is refused by the author's trust
    assert gk("plugin", "sign", package, "--key", stranger["private_key_file"]).code == 0
    refused = gk("plugin", "verify", package, "--key", keys["public_key"])
    assert refused.code == 1 and "not among the trusted keys" in refused.err
    if SIGNATURE_POLICY:
        plugins = tmp_path / "plugins"
        plugins.mkdir()
        shutil.copy(package, plugins)

        async def start() -> Any:
            async with Platform(
                plugins,
                state_dir=tmp_path / "state",
                database_url=f"sqlite:///{tmp_path / 'p.db'}",
                require_signatures=True,
                trusted_keys=[keys["public_key"]],
            ) as platform:
                with pytest.raises(GoatKitError) as info:
                    await platform.call("demo-c", "hello", {})
                return info.value

        error = anyio.run(start)
        assert error.code == "untrusted_key"


def test_signing_a_directory_and_goatkit_sig(
    scaffolds: dict[str, Path], tmp_path: Path, gk: Callable[..., Result]
) -> None:
    directory = copy_plugin(scaffolds["c"], tmp_path / "demo-c")
    keys = gk("plugin", "keygen", "--out", tmp_path / "k", "--json").json()
    signed = gk("plugin", "sign", directory, "--key", keys["private_key_file"], "--json")
    assert signed.code == 0
    assert "tests/test_plugin.py" in signed.json()["files"]  # every file of the directory
    assert "leave out" in signed.err  # ...including what packages leave out, and it says so
    assert gk("plugin", "verify", directory, "--key", keys["public_key"]).code == 0
    # pack of a signed directory: exactly the signed files, and no changes since
    packed = gk("plugin", "pack", directory, "-o", tmp_path / "d.zip", "--json")
    assert packed.code == 0 and SIGNATURE_FILE in packed.json()["files"]
    assert gk("plugin", "verify", tmp_path / "d.zip", "--key", keys["public_key"]).code == 0
    (directory / "plugin.c").write_text("/* edited */\n")
    stale = gk("plugin", "pack", directory, "-o", tmp_path / "e.zip")
    assert stale.code == 1 and "plugin.c changed" in stale.err and "sign it again" in stale.err

    # GoatKit's format: <module>.sig over the module only
    fresh = copy_plugin(scaffolds["c"], tmp_path / "fresh")
    goatkit = gk("plugin", "sign", fresh, "--key", keys["private_key_file"], "--goatkit")
    assert goatkit.code == 0 and (fresh / "plugin.wasm.sig").is_file()
    legacy = gk("plugin", "verify", fresh, "--key", keys["public_key"], "--json").json()
    assert legacy["state"] == "valid" and legacy["scheme"] == "goatkit-sig"


# --- call and list -------------------------------------------------------------------------------


def test_call_reports_errors_with_exit_codes(
    scaffolds: dict[str, Path],
    tmp_path: Path,
    gk: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = copy_plugin(scaffolds["c"], tmp_path / "demo-c")
    monkeypatch.chdir(directory)  # a plugin directory: --plugins is not needed
    args_file = tmp_path / "args.json"
    args_file.write_text('{"name": "File"}')
    ok = gk("plugin", "call", "demo-c", "hello", f"@{args_file}", "--json")
    assert ok.code == 0
    data = ok.json()
    assert data["ok"] and data["result"] == {"message": "Hello, File!"}
    assert data["logs"] == [{"level": "info", "message": "Hello, File!"}]
    bad_json = gk("plugin", "call", "demo-c", "hello", "{name:")
    assert bad_json.code == 2 and "not valid JSON" in bad_json.err
    unknown = gk("plugin", "call", "nope", "hello")
    assert unknown.code == 1 and "no plugin named 'nope'" in unknown.err
    missing = gk("plugin", "call", "demo-c", "missing", "{}", "--json")
    assert missing.code == 1
    assert missing.json()["ok"] is False and missing.json()["error"]["code"] == "unknown_function"
    assert missing.err.count("\n") == 1
    config = gk("plugin", "call", "demo-c", "hello", "--config", "oops")
    assert config.code == 2 and "KEY=VALUE" in config.err


def test_list_shows_states_and_versions(tmp_path: Path, gk: Callable[..., Result]) -> None:
    plugins = tmp_path / "plugins"
    make_plugin(plugins, "alpha", manifest={"version": "1.2.3"})
    broken = plugins / "broken"
    broken.mkdir()
    (broken / "manifest.yaml").write_text("name: broken\nversion: [1\n")
    result = gk("plugin", "list", "--plugins", plugins, "--json")
    assert result.code == 0
    rows = {row["name"]: row for row in result.json()["plugins"]}
    assert rows["alpha"]["version"] == "1.2.3" and rows["alpha"]["state"] == "discovered"
    assert rows["broken"]["state"] == "failed" and "invalid YAML" in rows["broken"]["error"]
    text = gk("plugin", "list", "--plugins", plugins)
    assert "alpha" in text.out and "1.2.3" in text.out and "failed" in text.out


# --- push to a running instance ------------------------------------------------------------------


@contextlib.contextmanager
def running_instance(root: Path) -> Iterator[str]:
    """A real app (host routes + the admin at /admin/plugins) served by uvicorn on loopback."""
    (root / "plugins").mkdir(parents=True, exist_ok=True)
    platform = Platform(
        root / "plugins",
        state_dir=root / "state",
        database_url=f"sqlite:///{root / 'app.db'}",
        hot_reload=False,
    )

    async def call(request: Request) -> Response:
        try:
            result = await platform.call(
                request.path_params["plugin"], request.path_params["fn"], await request.json()
            )
        except GoatKitError as exc:
            return JSONResponse({"error": exc.to_dict()}, exc.http_status)
        info = platform.plugins[request.path_params["plugin"]]
        return JSONResponse({"result": result, "version": info.manifest.version})

    admin = create_admin_app(platform, None, secret_key="s" * 32, token=TOKEN)
    app = Starlette(
        routes=[
            Route("/call/{plugin}/{fn}", call, methods=["POST"]),
            Mount("/admin/plugins", admin),
        ]
    )
    with serve(GoatKitMiddleware(app, platform=platform)) as url:
        yield url


def call_instance(url: str, fn: str = "hello", args: Any = None) -> dict[str, Any]:
    response = httpx.post(f"{url}/call/demo-c/{fn}", json=args or {"name": "Ada"}, timeout=30)
    body = response.json()
    assert isinstance(body, dict)
    return body


def edit_greeting(directory: Path, greeting: str, version: str) -> None:
    source = directory / "plugin.c"
    text = source.read_text()
    start = text.index('gk_buf_append_cstr(&message, "') + len('gk_buf_append_cstr(&message, "')
    end = text.index('"', start)
    source.write_text(text[:start] + f"{greeting}, " + text[end:])
    manifest = directory / "manifest.yaml"
    lines = [
        f"version: {version}" if line.startswith("version:") else line
        for line in manifest.read_text().splitlines()
    ]
    manifest.write_text("\n".join(lines) + "\n")


def test_push_updates_a_running_instance(
    scaffolds: dict[str, Path], tmp_path: Path, gk: Callable[..., Result]
) -> None:
    directory = copy_plugin(scaffolds["c"], tmp_path / "demo-c")
    with running_instance(tmp_path / "app") as url:
        admin = f"{url}/admin/plugins"
        first = gk("plugin", "push", directory, "--url", admin, "--token", TOKEN, "--json")
        assert first.code == 0, first.err
        assert first.json()["status"] == 201 and first.json()["version"] == "0.1.0"
        assert call_instance(url) == {"result": {"message": "Hello, Ada!"}, "version": "0.1.0"}

        edit_greeting(directory, "Howdy", "0.2.0")
        second = gk("plugin", "push", directory, "--url", admin, "--token", TOKEN)
        assert second.code == 0, second.err
        assert "building demo-c" in second.err  # the source changed: rebuilt before packing
        assert second.out.startswith(f"pushed demo-c 0.2.0 to {admin}")
        assert call_instance(url) == {"result": {"message": "Howdy, Ada!"}, "version": "0.2.0"}

        wrong = gk(
            "plugin", "push", directory, "--url", admin, "--token", "wrong-token-xxxxxxxx", "-q"
        )
        assert wrong.code == 1 and wrong.err.count("\n") == 1
        assert wrong.err.startswith("gk plugin push: ") and "answered 401" in wrong.err
        nowhere = gk(
            "plugin", "push", directory, "--url", "http://127.0.0.1:9/admin", "--token", TOKEN
        )
        assert nowhere.code == 1 and "cannot reach" in nowhere.err
        assert gk("plugin", "push", directory, "--url", admin).code == 2  # no token


def test_push_watch_rebuilds_and_pushes_on_change(
    scaffolds: dict[str, Path], tmp_path: Path
) -> None:
    directory = copy_plugin(scaffolds["c"], tmp_path / "demo-c")
    log = tmp_path / "push.log"
    with running_instance(tmp_path / "app") as url, log.open("w") as out:
        proc = subprocess.Popen(
            [
                *GK,
                "plugin",
                "push",
                str(directory),
                "--url",
                f"{url}/admin/plugins",
                "--watch",
                "--once",
            ],
            env={**os.environ, "GOATKIT_ADMIN_TOKEN": TOKEN},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while "watching" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            assert call_instance(url)["result"] == {"message": "Hello, Ada!"}
            time.sleep(0.5)
            edit_greeting(directory, "Hej", "0.3.0")
            # (touched again until seen: the watcher may still be settling)
            while proc.poll() is None:
                assert time.monotonic() < deadline + 60, log.read_text()
                time.sleep(1.0)
                if proc.poll() is None:
                    os.utime(directory / "plugin.c")
            assert proc.returncode == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert call_instance(url) == {"result": {"message": "Hej, Ada!"}, "version": "0.3.0"}
    output = log.read_text()
    assert output.count("pushed demo-c") == 2 and "building demo-c" in output


# --- gk dev --------------------------------------------------------------------------------------


@contextlib.contextmanager
def gk_dev(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    log_path = cwd / "dev.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*GK, "dev", *args, "--port", str(port), "--log-level", "warning"],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                httpx.get(url + "/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


DEV_APP = """
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from goatkit_asgi import GoatKitMiddleware, Platform

HERE = Path(__file__).parent
platform = Platform(HERE / "plugins", state_dir=HERE / "state", database_url="sqlite:///app.db")


async def names(request):
    return JSONResponse(sorted(platform.plugins))


async def pid(request):
    return JSONResponse(os.getpid())


async def call(request):
    p = request.path_params
    return JSONResponse(await platform.call(p["plugin"], p["fn"], await request.json()))


app = GoatKitMiddleware(
    Starlette(
        routes=[
            Route("/", names),
            Route("/pid", pid),
            Route("/call/{plugin}/{fn}", call, methods=["POST"]),
        ]
    ),
    platform=platform,
)
"""


def _pid_or_none(url: str) -> int | None:
    try:
        value = httpx.get(url + "/pid", timeout=2).json()
    except (httpx.TransportError, ValueError):
        return None
    return int(value)


def wait_for(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_dev_serves_the_app_with_plugin_hot_reload(
    scaffolds: dict[str, Path], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "plugins").mkdir(parents=True)
    (project / "devapp.py").write_text(DEV_APP)
    copy_plugin(scaffolds["c"], project / "plugins" / "demo-c")
    with gk_dev(project, "devapp:app") as url:
        assert httpx.get(url + "/").json() == ["demo-c"]
        server_pid = httpx.get(url + "/pid").json()
        hello = httpx.post(f"{url}/call/demo-c/hello", json={"name": "Dev"})
        assert hello.json() == {"message": "Hello, Dev!"}
        # a plugin dropped in while it runs is picked up (the app's Platform has no
        # hot_reload=True: gk dev turned it on)
        copy_plugin(scaffolds["zig"], project / "plugins" / "demo-zig")
        wait_for(lambda: "demo-zig" in httpx.get(url + "/").json())
        zig = httpx.post(f"{url}/call/demo-zig/hello", json={"name": "Zig"})
        assert zig.json() == {"message": "Hello, Zig!"}
        # swapped in by the platform, not by restarting the app (the plugin's own .py files
        # are not app code)
        assert httpx.get(url + "/pid").json() == server_pid
        # while a change to the app's code restarts it
        (project / "devapp.py").write_text(DEV_APP + "\n# edited\n")
        wait_for(lambda: _pid_or_none(url) not in (None, server_pid), 60)


def test_dev_without_an_app_is_a_host_that_takes_pushes(
    scaffolds: dict[str, Path], tmp_path: Path, gk: Callable[..., Result]
) -> None:
    project = tmp_path / "host"
    project.mkdir()
    with gk_dev(project, env={"GOATKIT_ADMIN_TOKEN": TOKEN}) as url:
        assert httpx.get(url + "/").json() == {"plugins": []}
        pushed = gk(
            "plugin", "push", scaffolds["c"], "--url", f"{url}/admin/plugins", "--token", TOKEN
        )
        assert pushed.code == 0, pushed.err
        called = httpx.post(f"{url}/_gk/call/demo-c/hello", json={"name": "Host"})
        assert called.json() == {"result": {"message": "Hello, Host!"}}
    assert (project / "plugins" / "demo-c.zip").is_file()


# --- usage ---------------------------------------------------------------------------------------


def test_usage_errors_exit_2_and_failures_exit_1(gk: Callable[..., Result], tmp_path: Path) -> None:
    assert gk().code == 2
    assert gk("plugin").code == 2
    assert gk("plugin", "frobnicate").code == 2
    assert gk("plugin", "--help").code == 0
    missing = gk("plugin", "verify", tmp_path / "missing.zip")
    assert missing.code == 1 and missing.err.count("\n") == 1
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    junk = gk("plugin", "inspect", tmp_path / "junk.zip")
    assert junk.code == 1 and "not a readable zip archive" in junk.err
    bad_key = gk("plugin", "verify", tmp_path, "--key", "ed25519:nope")
    assert bad_key.code == 2 and "not an Ed25519 public key" in bad_key.err
    # the console script works as a process too
    process = subprocess.run(
        [*GK, "plugin", "keygen", "--out", str(tmp_path / "p"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0 and json.loads(process.stdout)["key_id"]
