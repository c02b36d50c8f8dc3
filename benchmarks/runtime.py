"""Benchmarks of the WASM runtime and the platform (DESIGN §8), each with its baseline.

- echo, in-thread: our instance call vs the Extism Python SDK, same ~115-byte JSON payload
- echo, awaited: ``await platform.call()`` vs ``await anyio.to_thread.run_sync(extism.call)``
- scaling: throughput of 2 concurrent CPU-bound calls vs 1 (two cores)
- first use: first call of a discovered plugin, module cache warm and cold
- startup: start with 200 discovered plugins, registrations cached
- memory: bytes per idle instance (process RSS and linear memory)
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import wasmtime
import yaml

from goatkit_asgi import Platform
from goatkit_asgi.runtime.wasm import WasmEngine

HERE = Path(__file__).parent
PLUGINS = HERE / "plugins"
ECHO_DIR = PLUGINS / "echo"
ECHO_WASM = ECHO_DIR / "echo.wasm"
EXTISM_WAT = PLUGINS / "extism_echo.wat"
SPIN_WAT = PLUGINS / "spin.wat"

#: The payload both echo plugins get: a small JSON object of about 115 bytes.
PAYLOAD_OBJ = {
    "ticket": 4242,
    "queue": "support",
    "subject": "Printer on fire",
    "tags": ["hardware", "urgent"],
    "customer": "ACME Corp",
    "ok": True,
}
PAYLOAD = json.dumps(PAYLOAD_OBJ, separators=(",", ":")).encode()


@dataclass
class Row:
    key: str
    what: str
    ours: str
    baseline: str
    result: str
    target: str
    ok: bool | None


def _platform(plugins: Path, state: Path) -> Platform:
    """A platform whose database lives in its state directory (not in the current one)."""
    return Platform(plugins, state_dir=state, database_url=f"sqlite:///{state / 'goatkit.db'}")


def _median_per_call(fn: Callable[[], object], calls: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t0) / calls)
    return statistics.median(samples)


async def _amedian_per_call(fn: Callable[[], Awaitable[object]], calls: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            await fn()
        samples.append((time.perf_counter() - t0) / calls)
    return statistics.median(samples)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


class _NoHost:
    def host_call(self, plugin: str, function: str, args: bytes, deadline: float) -> bytes:
        return b"null"

    def log(self, plugin: str, level: str, message: str) -> None:
        pass


def _extism_plugin() -> object:
    import extism

    wasm = bytes(wasmtime.wat2wasm(EXTISM_WAT.read_text()))
    return extism.Plugin(wasm, wasi=False)


def bench_echo_in_thread(calls: int, rounds: int) -> Row:
    engine = WasmEngine()
    engine.ticker.start()
    try:
        module = engine.compile(ECHO_WASM.read_bytes(), plugin="echo", source="plugin.wasm")
        inst = module.instantiate(_NoHost(), memory_limit=16 << 20, init_timeout=5.0)
        assert inst.call("echo", PAYLOAD, 5.0) == PAYLOAD
        plugin = _extism_plugin()
        assert bytes(plugin.call("echo", PAYLOAD)) == PAYLOAD  # type: ignore[attr-defined]
        ours = _median_per_call(lambda: inst.call("echo", PAYLOAD, 5.0), calls, rounds)
        base = _median_per_call(lambda: plugin.call("echo", PAYLOAD), calls, rounds)  # type: ignore[attr-defined]
    finally:
        engine.close()
    ratio = ours / base
    return Row(
        "echo-thread",
        f"WASM JSON echo, in-thread ({len(PAYLOAD)} B)",
        _us(ours),
        f"Extism {_us(base)}",
        f"{ratio:.2f}×",
        "≤ 0.60×",
        ratio <= 0.6,
    )


async def bench_echo_awaited(calls: int, rounds: int) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        shutil.copytree(ECHO_DIR, plugins / "echo")
        async with _platform(plugins, Path(tmp) / "state") as platform:
            for _ in range(10):
                assert await platform.call("echo", "echo", PAYLOAD_OBJ) == PAYLOAD_OBJ
            plugin = _extism_plugin()
            limiter = anyio.CapacityLimiter(4)

            async def extism_call() -> object:
                return await anyio.to_thread.run_sync(plugin.call, "echo", PAYLOAD, limiter=limiter)  # type: ignore[attr-defined]

            ours = await _amedian_per_call(
                lambda: platform.call("echo", "echo", PAYLOAD_OBJ), calls, rounds
            )
            base = await _amedian_per_call(extism_call, calls, rounds)
    ratio = ours / base
    return Row(
        "echo-await",
        "await platform.call() end to end",
        _us(ours),
        f"Extism via to_thread {_us(base)}",
        f"{ratio:.2f}×",
        "≤ 0.30×",
        ratio <= 0.3,
    )


def _spin_plugin(root: Path, name: str = "spin") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "manifest.yaml").write_text(
        yaml.safe_dump({"name": name, "resources": {"max_instances": 2}})
    )
    (d / "plugin.wasm").write_bytes(bytes(wasmtime.wat2wasm(SPIN_WAT.read_text())))
    return d


async def bench_scaling(rounds: int) -> Row:
    iterations = 20_000_000
    with tempfile.TemporaryDirectory() as tmp:
        _spin_plugin(Path(tmp) / "plugins")
        async with _platform(Path(tmp) / "plugins", Path(tmp) / "state") as platform:
            async with anyio.create_task_group() as tg:  # create both instances
                for _ in range(2):
                    tg.start_soon(platform.call, "spin", "spin", {"n": 1000})
            one, two = [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                await platform.call("spin", "spin", {"n": iterations})
                one.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(2):
                        tg.start_soon(platform.call, "spin", "spin", {"n": iterations})
                two.append(time.perf_counter() - t0)
    t1, t2 = statistics.median(one), statistics.median(two)
    scaling = (2 / t2) / (1 / t1)
    return Row(
        "scaling",
        "throughput, 2 concurrent CPU-bound calls vs 1",
        f"2 calls {_ms(t2)}",
        f"1 call {_ms(t1)}",
        f"{scaling:.2f}×",
        "≈ 2× (2 cores)",
        scaling >= 1.6,
    )


async def bench_first_use(rounds: int) -> list[Row]:
    warm, cold = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            plugins = Path(tmp) / "plugins"
            shutil.copytree(ECHO_DIR, plugins / "echo")
            state = Path(tmp) / "state"
            # cold: a module never seen; start compiles and registers it, the call instantiates
            platform = _platform(plugins, state)
            t0 = time.perf_counter()
            await platform.start()
            await platform.call("echo", "echo", PAYLOAD_OBJ)
            cold.append(time.perf_counter() - t0)
            await platform.stop()
            async with _platform(plugins, state) as platform:
                t0 = time.perf_counter()
                await platform.call("echo", "echo", PAYLOAD_OBJ)
                warm.append(time.perf_counter() - t0)
    w, c = statistics.median(warm), statistics.median(cold)
    return [
        Row(
            "first-use-warm",
            "first call of a discovered plugin, cache warm",
            _ms(w),
            "—",
            _ms(w),
            "< 5 ms",
            w < 0.005,
        ),
        Row(
            "first-use-cold",
            "start + first call of a new module (compile, register)",
            _ms(c),
            "—",
            _ms(c),
            "(no target)",
            None,
        ),
    ]


async def bench_startup(rounds: int) -> Row:
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        for i in range(200):
            shutil.copytree(ECHO_DIR, plugins / f"p{i:03d}")
            manifest = yaml.safe_load((plugins / f"p{i:03d}" / "manifest.yaml").read_text())
            manifest["name"] = f"p{i:03d}"
            (plugins / f"p{i:03d}" / "manifest.yaml").write_text(yaml.safe_dump(manifest))
        state = Path(tmp) / "state"
        # The module is the same for all 200, so one registration read warms the cache.
        async with _platform(plugins, state) as platform:
            await platform.wait_ready()
        for _ in range(rounds):
            platform = _platform(plugins, state)
            t0 = time.perf_counter()
            await platform.start()
            await platform.wait_ready()
            samples.append(time.perf_counter() - t0)
            instantiated = sum(e.instantiations for e in platform._engines.values())
            await platform.stop()
            assert instantiated == 0 and len(platform.plugins) == 200
    t = statistics.median(samples)
    return Row(
        "startup-200",
        "start with 200 discovered plugins (nothing instantiated)",
        _ms(t),
        "—",
        _ms(t),
        "< 300 ms",
        t < 0.3,
    )


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def bench_memory() -> Row:
    engine = WasmEngine()
    engine.ticker.start()
    try:
        module = engine.compile(ECHO_WASM.read_bytes(), plugin="echo", source="plugin.wasm")
        keep = [
            module.instantiate(_NoHost(), memory_limit=16 << 20, init_timeout=5.0) for _ in range(5)
        ]
        for inst in keep:
            inst.call("echo", PAYLOAD, 5.0)
        n = 100
        before = _rss()
        more = [
            module.instantiate(_NoHost(), memory_limit=16 << 20, init_timeout=5.0) for _ in range(n)
        ]
        for inst in more:
            inst.call("echo", PAYLOAD, 5.0)
        per_instance = (_rss() - before) / n
        linear = more[0].memory_size()
    finally:
        engine.close()
    return Row(
        "memory",
        "memory per idle instance (echo plugin)",
        f"{per_instance / 1024:.0f} KiB RSS",
        f"linear memory {linear / 1024:.0f} KiB",
        f"{per_instance / 1024:.0f} KiB",
        "(reported)",
        None,
    )


def run(*, quick: bool = False, only: str | None = None) -> list[Row]:
    calls, rounds = (500, 5) if quick else (5000, 15)

    def wanted(key: str) -> bool:
        return only is None or only in key

    rows: list[Row] = []
    if wanted("echo-thread"):
        rows.append(bench_echo_in_thread(calls, rounds))
    if wanted("echo-await"):
        rows.append(anyio.run(bench_echo_awaited, calls // 2, rounds))
    if wanted("scaling"):
        rows.append(anyio.run(bench_scaling, 3 if quick else 7))
    if wanted("first-use"):
        rows.extend(anyio.run(bench_first_use, 3 if quick else 9))
    if wanted("startup"):
        rows.append(anyio.run(bench_startup, 3 if quick else 7))
    if wanted("memory"):
        rows.append(bench_memory())
    if wanted("grpc-call"):
        from . import grpc as grpc_bench

        rows.extend(grpc_bench.run(quick=quick))
    if wanted("passthrough") or wanted("plugin-route"):
        from . import web

        rows.extend(r for r in web.run(quick=quick) if wanted(r.key))
    return rows


def format_table(rows: list[Row]) -> str:
    head = ("benchmark", "what", "ours", "baseline (same run)", "result", "target", "")
    body = [
        (
            r.key,
            r.what,
            r.ours,
            r.baseline,
            r.result,
            r.target,
            "ok" if r.ok else ("MISSED" if r.ok is False else ""),
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])
