"""The WASM runtime at the instance level: the ABI, traps, limits and both call paths."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import wasmtime

from goatkit_asgi.errors import (
    HostCallError,
    PluginCallError,
    PluginCrashed,
    PluginLoadError,
    PluginMemoryExceeded,
    PluginTimeout,
)
from goatkit_asgi.runtime import wasm as wasm_mod
from goatkit_asgi.runtime.wasm import WasmEngine, WasmInstance, WasmModule
from tests.fixtures.wat import kitchen_sink, wasm_bytes

MiB = 1024 * 1024


class FakeBridge:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        self.logs: list[tuple[str, str, str]] = []
        self.deadlines: list[float] = []

    def host_call(self, plugin: str, function: str, args: bytes, deadline: float) -> bytes:
        self.calls.append((plugin, function, args))
        self.deadlines.append(deadline)
        if function == "boom":
            raise HostCallError("boom: refused", plugin=plugin, function=function, code="nope")
        if function == "crash":
            raise RuntimeError("a bug in a host function")
        return json.dumps({"got": json.loads(args) if args else None}).encode()

    def log(self, plugin: str, level: str, message: str) -> None:
        self.logs.append((plugin, level, message))


@pytest.fixture(scope="module")
def engine() -> WasmEngine:
    eng = WasmEngine()
    eng.ticker.start()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def module(engine: WasmEngine) -> WasmModule:
    return engine.compile(wasm_bytes(kitchen_sink()), plugin="sink", source="plugin.wasm")


@pytest.fixture(params=[True, False], ids=["fast", "public-api"])
def fast(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def instance(
    module: WasmModule, bridge: FakeBridge | None = None, *, fast: bool = True, memory_mb: int = 4
) -> WasmInstance:
    return module.instantiate(
        bridge or FakeBridge(), memory_limit=memory_mb * MiB, init_timeout=1.0, fast=fast
    )


def test_fast_path_is_available_with_the_pinned_wasmtime() -> None:
    assert wasm_mod.FAST_PATH_AVAILABLE


def test_register_returns_the_registration_json(module: WasmModule, fast: bool) -> None:
    data = json.loads(instance(module, fast=fast).register(1.0))
    assert data["name"] == "sink"
    assert {f["name"] for f in data["functions"]} >= {"echo", "loop"}


def test_echo_roundtrips_empty_small_and_large_args(module: WasmModule, fast: bool) -> None:
    inst = instance(module, fast=fast, memory_mb=8)
    assert inst.fast is fast
    assert inst.call("echo", b"{}", 1.0) == b"{}"
    assert inst.call("echo", b'{"a":[1,2,3]}', 1.0) == b'{"a":[1,2,3]}'
    big = json.dumps({"data": "x" * (1024 * 1024)}).encode()
    assert inst.call("echo", big, 2.0) == big
    # no args at all: the guest sees (0, 0) and echoes an empty block, i.e. returns (0, 0)
    assert inst.call("echo", None, 1.0) is None


def test_empty_result_is_none(module: WasmModule) -> None:
    assert instance(module).call("empty", b"{}", 1.0) is None


def test_instance_state_persists_between_calls(module: WasmModule) -> None:
    inst = instance(module)
    assert inst.call("count", None, 1.0) == b'{"n":1}'
    assert inst.call("count", None, 1.0) == b'{"n":2}'


def test_host_call_success_passes_name_args_and_deadline(module: WasmModule, fast: bool) -> None:
    bridge = FakeBridge()
    inst = instance(module, bridge, fast=fast)
    before = time.monotonic()
    out = inst.call("host", b'["cache_get",{"key":"k"}]', 2.0)
    assert json.loads(out) == {"got": {"key": "k"}}
    assert bridge.calls == [("sink", "cache_get", b'{"key":"k"}')]
    # the host call is given the time left of the plugin call as its deadline
    assert before + 1.5 < bridge.deadlines[0] <= time.monotonic() + 2.0
    assert inst.record.host_calls == 1


def test_host_call_failure_returns_zero_and_sets_last_error(module: WasmModule, fast: bool) -> None:
    inst = instance(module, fast=fast)
    out = json.loads(inst.call("host", b'["boom",{}]', 1.0))
    assert out == {"failed": {"code": "nope", "message": "boom: refused"}}
    assert not inst.broken


def test_host_function_bug_never_raises_into_wasmtime(module: WasmModule) -> None:
    inst = instance(module)
    out = json.loads(inst.call("host", b'["crash",{}]', 1.0))
    assert out["failed"]["code"] == "internal_error"
    assert "RuntimeError" in out["failed"]["message"]
    # the process-wide wasmtime exception slot stays empty
    from wasmtime import _func

    assert _func.LAST_EXCEPTION is None
    assert inst.call("echo", b"{}", 1.0) == b"{}"


def test_gk_log_reaches_the_bridge(module: WasmModule) -> None:
    bridge = FakeBridge()
    assert instance(module, bridge).call("log", b"hello log", 1.0) == b'{"ok":true}'
    assert bridge.logs == [("sink", "warn", "hello log")]


@pytest.mark.parametrize(
    ("function", "error", "words"),
    [
        ("trap", PluginCrashed, "unreachable"),
        ("oob", PluginCrashed, "out of bounds"),
        ("deep", PluginCrashed, "stack overflow"),
        ("grow", PluginMemoryExceeded, "memory cap of 4 MiB"),
    ],
)
def test_traps_become_errors_naming_plugin_and_function(
    module: WasmModule, fast: bool, function: str, error: type[Exception], words: str
) -> None:
    inst = instance(module, fast=fast)
    with pytest.raises(error) as info:
        inst.call(function, None, 1.0)
    assert isinstance(info.value, PluginCallError)
    assert info.value.plugin == "sink" and info.value.function == function
    assert f"sink: {function}" in str(info.value)
    assert words in str(info.value)
    assert inst.broken


def test_infinite_loop_stops_at_its_deadline(module: WasmModule, fast: bool) -> None:
    inst = instance(module, fast=fast)
    t0 = time.monotonic()
    with pytest.raises(PluginTimeout) as info:
        inst.call("loop", None, 0.2)
    elapsed = time.monotonic() - t0
    assert 0.2 <= elapsed < 0.3
    assert "0.2s" in str(info.value) and "sink: loop" in str(info.value)


def test_the_ticker_sleeps_when_no_deadline_is_pending_and_a_loop_still_stops(
    module: WasmModule, fast: bool
) -> None:
    ticker = module.engine.ticker
    inst = instance(module, fast=fast)
    assert inst.call("echo", b"{}", 0.05) == b"{}"
    deadline = time.monotonic() + 2.0
    while not ticker.sleeping:  # the call's deadline passes, then nothing is pending
        assert time.monotonic() < deadline, "the ticker never went to sleep"
        time.sleep(0.01)
    time.sleep(0.3)  # asleep: the ticks of this pause are not owed to the next deadline
    assert ticker.sleeping and ticker.backlog() > 0
    t0 = time.monotonic()
    with pytest.raises(PluginTimeout):
        inst.call("loop", None, 0.2)  # the deadline wakes the ticker, which stops the loop
    assert 0.2 <= time.monotonic() - t0 < 0.3
    assert ticker.backlog() <= 2


def test_the_ticker_stops_promptly_asleep_or_awake() -> None:
    eng = WasmEngine()
    try:
        for i in range(200):  # stop() lands at every point of the ticker's loop
            eng.ticker.start()
            eng.ticker.ticks_for(0.001 * (i % 3))
            time.sleep(0.0005 * (i % 7))
            t0 = time.monotonic()
            eng.ticker.stop()
            assert time.monotonic() - t0 < 0.5 and not eng.ticker.running
    finally:
        eng.close()


def test_a_stop_that_lands_as_the_ticker_goes_to_sleep_is_not_lost() -> None:
    eng = WasmEngine()
    ticker = eng.ticker

    class StopJustBeforeClear(threading.Event):
        def clear(self) -> None:  # stop() runs between the ticker's last check and its clear()
            ticker._stop.set()
            self.set()
            super().clear()

    ticker.start()
    ticker._wake = StopJustBeforeClear()  # nothing is pending: the next tick goes to sleep
    thread = ticker._thread
    assert thread is not None
    thread.join(timeout=2.0)
    alive = thread.is_alive()
    ticker._wake.set()
    ticker.stop()
    eng.close()
    assert not alive, "the ticker slept through stop()"


def test_a_deadline_that_lands_as_the_ticker_goes_to_sleep_keeps_it_ticking() -> None:
    eng = WasmEngine()
    ticker = eng.ticker
    armed = [True]

    class DeadlineJustBeforeClear(threading.Event):
        def clear(self) -> None:  # a call asks for a deadline just as the ticker turns idle
            if armed[0]:
                armed[0] = False
                ticker.ticks_for(1.0)
            super().clear()

    ticker.start()
    ticker._wake = DeadlineJustBeforeClear()
    try:
        deadline = time.monotonic() + 2.0
        while armed[0]:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(0.2)
        assert not ticker.sleeping  # the deadline (1 s) is pending: still ticking
        assert ticker.backlog() <= 2
    finally:
        ticker.stop()
        eng.close()


def test_memory_growth_is_refused_at_the_cap(module: WasmModule) -> None:
    inst = instance(module, memory_mb=2)
    with pytest.raises(PluginMemoryExceeded):
        inst.call("grow", None, 1.0)
    assert inst.memory_size() <= 2 * MiB


def test_module_whose_initial_memory_exceeds_the_cap_fails_to_load(engine: WasmEngine) -> None:
    big = engine.compile(
        wasm_bytes(kitchen_sink(initial_pages=80)), plugin="big", source="plugin.wasm"
    )
    with pytest.raises(PluginLoadError, match=r"big: plugin.wasm needs 80 pages .* cap of 4.0 MiB"):
        instance(big, memory_mb=4)


def test_args_too_large_for_the_cap_raise_memory_exceeded(module: WasmModule) -> None:
    inst = instance(module, memory_mb=2)
    with pytest.raises(PluginMemoryExceeded, match="could not allocate"):
        inst.call("echo", b"x" * (3 * MiB), 1.0)


def test_inline_call_refuses_host_calls_without_making_them(module: WasmModule) -> None:
    bridge = FakeBridge()
    inst = instance(module, bridge)
    with pytest.raises(PluginCallError) as info:
        inst.call("host", b'["cache_set",{"key":"k"}]', 1.0, inline=True)
    assert info.value.code == "inline_aborted"
    assert bridge.calls == []
    assert inst.record.aborted and inst.broken


def test_inline_call_refuses_gk_log_too(module: WasmModule) -> None:
    bridge = FakeBridge()
    inst = instance(module, bridge)
    with pytest.raises(PluginCallError, match="needs a worker thread"):
        inst.call("log", b"x", 1.0, inline=True)
    assert bridge.logs == []


def test_imports_outside_the_abi_are_refused(engine: WasmEngine) -> None:
    wat = '(module (import "env" "evil" (func)) (memory (export "memory") 1))'
    with pytest.raises(PluginLoadError, match=r"imports env.evil, which the host does not provide"):
        engine.compile(wasm_bytes(wat), plugin="evil", source="plugin.wasm")


def test_missing_exports_are_named(engine: WasmEngine) -> None:
    wat = '(module (memory (export "memory") 1) (func (export "gk_call") (param i32 i32 i32 i32) (result i64) i64.const 0))'
    with pytest.raises(PluginLoadError, match="does not export gk_malloc, gk_register"):
        engine.compile(wasm_bytes(wat), plugin="thin", source="plugin.wasm")


def test_wrong_export_signature_is_refused(engine: WasmEngine) -> None:
    wat = """(module (memory (export "memory") 1)
      (func (export "gk_malloc") (param i64) (result i64) i64.const 0)
      (func (export "gk_register") (result i64) i64.const 0)
      (func (export "gk_call") (param i32 i32 i32 i32) (result i64) i64.const 0))"""
    with pytest.raises(PluginLoadError, match=r"export gk_malloc .* has the wrong signature"):
        engine.compile(wasm_bytes(wat), plugin="sig", source="plugin.wasm")


def test_garbage_is_not_a_module(engine: WasmEngine) -> None:
    with pytest.raises(
        PluginLoadError, match="junk: plugin.wasm is not a valid WebAssembly module"
    ):
        engine.compile(b"\x00asm garbage", plugin="junk", source="plugin.wasm")


def test_trapping_initializer_fails_the_load(engine: WasmEngine) -> None:
    wat = kitchen_sink().replace(
        '(func (export "gk_free")',
        '(func (export "_initialize") unreachable) (func (export "gk_free")',
    )
    mod = engine.compile(wasm_bytes(wat), plugin="init", source="plugin.wasm")
    with pytest.raises(PluginLoadError, match="init: could not start plugin.wasm"):
        instance(mod)


def test_compiled_modules_are_cached_on_disk(tmp_path: Path) -> None:
    wasm = wasm_bytes(kitchen_sink())
    first = WasmEngine(cache_dir=tmp_path)
    first.compile(wasm, plugin="sink", source="plugin.wasm")
    assert (first.compiles, first.cache_hits) == (1, 0)
    assert len(list(tmp_path.glob("*.cwasm"))) == 1
    second = WasmEngine(cache_dir=tmp_path)
    mod = second.compile(wasm, plugin="sink", source="plugin.wasm")
    assert (second.compiles, second.cache_hits) == (0, 1)
    second.ticker.start()
    try:
        assert instance(mod).call("echo", b"[1]", 1.0) == b"[1]"
    finally:
        second.close()
    # an engine with another configuration (fuel) does not reuse that entry
    fuel = WasmEngine(cache_dir=tmp_path, fuel=True)
    fuel.compile(wasm, plugin="sink", source="plugin.wasm")
    assert (fuel.compiles, fuel.cache_hits) == (1, 0)


def test_damaged_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    wasm = wasm_bytes(kitchen_sink())
    WasmEngine(cache_dir=tmp_path).compile(wasm, plugin="sink", source="plugin.wasm")
    (entry,) = tmp_path.glob("*.cwasm")
    entry.write_bytes(b"not a compiled module")
    eng = WasmEngine(cache_dir=tmp_path)
    eng.compile(wasm, plugin="sink", source="plugin.wasm")
    assert (eng.compiles, eng.cache_hits) == (1, 0)


def test_fuel_budget_stops_a_loop_deterministically(tmp_path: Path) -> None:
    eng = WasmEngine(fuel=True)
    eng.ticker.start()
    try:
        mod = eng.compile(wasm_bytes(kitchen_sink()), plugin="sink", source="plugin.wasm")
        inst = mod.instantiate(FakeBridge(), memory_limit=4 * MiB, init_timeout=1.0, fuel=100_000)
        assert inst.call("echo", b"{}", 1.0) == b"{}"
        t0 = time.monotonic()
        with pytest.raises(PluginTimeout, match="fuel budget") as info:
            inst.call("loop", None, 5.0)
        assert info.value.code == "out_of_fuel"
        assert time.monotonic() - t0 < 1.0
    finally:
        eng.close()


def test_wasi_stdout_goes_to_the_plugin_log(engine: WasmEngine) -> None:
    wat = """(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "from the guest\\n")
      (func (export "gk_malloc") (param i32) (result i32) i32.const 4096)
      (func (export "gk_register") (result i64) i64.const 0)
      (func (export "gk_call") (param i32 i32 i32 i32) (result i64)
        (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 15))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
        i64.const 0))"""
    bridge = FakeBridge()
    mod = engine.compile(wasm_bytes(wat), plugin="printer", source="plugin.wasm")
    assert instance(mod, bridge).call("x", None, 1.0) is None
    assert bridge.logs == [
        ("printer", "info", "[stdout] from the guest"),
        ("printer", "warn", "[stderr] from the guest"),
    ]


def test_trap_reason_is_readable(module: WasmModule) -> None:
    inst = instance(module)
    with pytest.raises(PluginCrashed) as info:
        inst.call("trap", None, 1.0)
    assert "wasm `unreachable` instruction executed" in str(info.value)
    assert "backtrace" not in str(info.value)
    assert isinstance(info.value.__cause__, wasmtime.Trap)
