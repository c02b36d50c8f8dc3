"""The C plugins built with the SDK: sources, committed modules and the ABI they expose.

Modules are committed next to their C source: the first-party plugins (``plugins/*``), the
example plugins (``examples/hello-wasm``, ``examples/desk-digest``), the GoatKit compatibility
fixture (``tests/fixtures/goatkit-compat``) and the benchmark echo (``benchmarks/plugins/echo``). Their builds are reproducible, so the tests
rebuild each one with its own ``build.sh`` and require the very same bytes: a source edited
without rebuilding (or the reverse) fails here. The Extism baseline of the benchmarks is WAT and
is checked by running it under the ``extism`` package.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

ROOT = Path(__file__).resolve().parent.parent
ZIG_VERSION = "0.17.1"  # the pinned ziglang of the dev extras; other versions emit other bytes

WASI = "wasi_snapshot_preview1"
ABI_EXPORTS = {
    "memory": "memory",
    "gk_malloc": "(i32) -> (i32)",
    "gk_free": "(i32) -> ()",
    "gk_register": "() -> (i64)",
    "gk_call": "(i32, i32, i32, i32) -> (i64)",
}
GK_IMPORTS = {
    "host_call": "(i32, i32, i32, i32) -> (i64)",
    "log": "(i32, i32, i32) -> ()",
    "last_error": "() -> (i64)",
}


GK_ALL = ("host_call", "log", "last_error")


@dataclass(frozen=True)
class CPlugin:
    name: str
    directory: Path
    module: str
    entry: str  # "_initialize" (reactor) or "_start" (command)
    gk_imports: tuple[str, ...]

    @property
    def wasm(self) -> Path:
        return self.directory / self.module


PLUGINS = [
    CPlugin(
        "hello-wasm",
        ROOT / "examples" / "hello-wasm",
        "plugin.wasm",
        "_initialize",
        ("host_call", "log", "last_error"),
    ),
    # GoatKit's host has no last_error: a plugin written for it must not import it.
    CPlugin(
        "goatkit-compat",
        ROOT / "tests" / "fixtures" / "goatkit-compat",
        "plugin.wasm",
        "_start",
        ("host_call", "log"),
    ),
    CPlugin("echo", ROOT / "benchmarks" / "plugins" / "echo", "echo.wasm", "_initialize", ()),
    CPlugin(
        "desk-digest",
        ROOT / "examples" / "desk-digest",
        "plugin.wasm",
        "_initialize",
        ("host_call", "log", "last_error"),
    ),
    *(
        CPlugin(name, ROOT / "plugins" / name, "plugin.wasm", "_initialize", GK_ALL)
        for name in ("stats", "faq", "calendar", "process")
    ),
]


def _zig_skip_reason() -> str | None:
    if importlib.util.find_spec("ziglang") is None:
        return f"ziglang is not installed (pip install ziglang=={ZIG_VERSION}, in the dev extras)"
    version = importlib.metadata.version("ziglang")
    if version != ZIG_VERSION:
        return f"ziglang {version} is installed; the committed modules come from {ZIG_VERSION}"
    return None


def _signature(ty: object) -> str:
    if isinstance(ty, wasmtime.FuncType):
        params = ", ".join(str(p) for p in ty.params)
        results = ", ".join(str(r) for r in ty.results)
        return f"({params}) -> ({results})"
    if isinstance(ty, wasmtime.MemoryType):
        return "memory"
    return type(ty).__name__


def _module(plugin: CPlugin) -> wasmtime.Module:
    return wasmtime.Module(wasmtime.Engine(), plugin.wasm.read_bytes())


def _build(plugin: CPlugin, out: Path) -> None:
    proc = subprocess.run(
        ["sh", str(plugin.directory / "build.sh"), str(out)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,  # a cold zig cache compiles wasi-libc first
        check=False,
    )
    assert proc.returncode == 0, f"build.sh failed:\n{proc.stdout}{proc.stderr}"
    # The scripts compile with -Wall -Wextra: the SDK and the examples stay warning-free.
    assert proc.stderr == "", proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_committed_module_is_built_from_its_source(plugin: CPlugin, tmp_path: Path) -> None:
    reason = _zig_skip_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "out" / "built.wasm"
    out.parent.mkdir()
    _build(plugin, out)
    rebuild = f"rebuild it with {(plugin.directory / 'build.sh').relative_to(ROOT)}"
    assert out.read_bytes() == plugin.wasm.read_bytes(), (
        f"{plugin.wasm.relative_to(ROOT)} does not match its source: {rebuild}"
    )


@pytest.mark.slow
def test_build_script_writes_a_relative_output_path_from_the_callers_directory(
    tmp_path: Path,
) -> None:
    reason = _zig_skip_reason()
    if reason:
        pytest.skip(reason)
    plugin = PLUGINS[2]  # the smallest module
    proc = subprocess.run(
        ["sh", str(plugin.directory / "build.sh"), "relative.wasm"],
        cwd=tmp_path,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "relative.wasm").read_bytes() == plugin.wasm.read_bytes()


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_module_exports_the_abi(plugin: CPlugin) -> None:
    exports = {e.name: _signature(e.type) for e in _module(plugin).exports}
    assert exports == {**ABI_EXPORTS, plugin.entry: "() -> ()"}


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_module_imports_only_gk_and_wasi(plugin: CPlugin) -> None:
    imports = [(i.module, i.name, _signature(i.type)) for i in _module(plugin).imports]
    gk = {name: sig for module, name, sig in imports if module == "gk"}
    assert gk == {name: GK_IMPORTS[name] for name in plugin.gk_imports}
    others = {module for module, _, _ in imports if module != "gk"}
    assert others <= {WASI}


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_registration_names_the_plugin(plugin: CPlugin) -> None:
    # Instantiate with host functions that fail every call: registering needs none of them.
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    linker.define_func("gk", "host_call", wasmtime.FuncType([i32] * 4, [i64]), lambda *_: 0)
    linker.define_func("gk", "log", wasmtime.FuncType([i32] * 3, []), lambda *_: None)
    linker.define_func("gk", "last_error", wasmtime.FuncType([], [i64]), lambda: 0)
    exports = linker.instantiate(store, wasmtime.Module(engine, plugin.wasm.read_bytes())).exports(
        store
    )
    try:
        exports[plugin.entry](store)
    except wasmtime.ExitTrap as exc:  # a command's _start may end in proc_exit(0)
        assert exc.code == 0
    packed = exports["gk_register"](store) & (2**64 - 1)
    ptr, length = packed >> 32, packed & 0xFFFFFFFF
    registration = json.loads(exports["memory"].read(store, ptr, ptr + length))
    assert registration["name"] == plugin.name


# --- the Extism baseline -----------------------------------------------------------------------

EXTISM_WAT = ROOT / "benchmarks" / "plugins" / "extism_echo.wat"
# The benchmark payload's size; the other sizes cover the word loop's edges and its byte tail.
PAYLOAD_115 = json.dumps(
    {"id": 42, "user": "ada", "tags": ["alpha", "beta", "gamma"], "text": "x" * 51},
    separators=(",", ":"),
).encode()


@pytest.mark.skipif(
    importlib.util.find_spec("extism") is None,
    reason="the extism package is not installed (in the dev extras)",
)
@pytest.mark.parametrize("size", [115, 0, 1, 7, 8, 9, 16, 4099])
def test_extism_echo_returns_its_input(size: int) -> None:
    import extism

    assert len(PAYLOAD_115) == 115
    payload = PAYLOAD_115 if size == 115 else bytes((i * 7 + 3) % 256 for i in range(size))
    # wat2wasm gives a bytearray; Extism's FFI takes bytes only.
    wasm = bytes(wasmtime.wat2wasm(EXTISM_WAT.read_text()))
    plugin = extism.Plugin(wasm, wasi=False)
    assert plugin.call("echo", payload) == payload
