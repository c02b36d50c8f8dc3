"""WebAssembly plugins under wasmtime, speaking GoatKit's ABI (DESIGN §4).

Pieces, from the engine down:

- :class:`WasmEngine`: one wasmtime ``Engine`` (epoch interruption on, fuel optional), the
  ``Linker`` that provides WASI and the ``gk`` imports, the epoch ticker thread, and the on-disk
  cache of compiled modules.
- :class:`WasmModule`: one compiled plugin module with its exports checked against the ABI.
- :class:`WasmInstance`: one Store + Instance; runs ``gk_register`` and ``gk_call``.

Calls into the guest go through :class:`_RawCaller`, which calls ``wasmtime_func_call_unchecked``
with pre-built argument buffers (about 1 µs a call) instead of ``Func.__call__`` (which re-reads
the function type and converts every value in Python, 17-120 µs). The export signatures are
checked once when the module is compiled, which is what makes the unchecked call sound. Where
the installed wasmtime does not have the private symbols this needs, :class:`_PublicCaller` uses
the public API instead.

Host functions (``gk.host_call``, ``gk.log``, ``gk.last_error``) are defined once on the engine's
linker; they find the instance they serve through a thread-local set around every guest entry
(an instance runs in one thread at a time). They never raise into wasmtime: wasmtime-py carries
exceptions from host functions through one process-wide global, which mixes them up between
threads. Failures return 0 and are reported through ``gk.last_error``.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import wasmtime

from ..errors import (
    GoatKitError,
    PluginCallError,
    PluginCrashed,
    PluginLoadError,
    PluginMemoryExceeded,
    PluginTimeout,
)
from .base import HostBridge, level_name

logger = logging.getLogger("goatkit.runtime.wasm")

WASMTIME_VERSION = version("wasmtime")

WASM_PAGE = 65536
MASK64 = (1 << 64) - 1
#: Results larger than this are refused rather than copied into the host.
MAX_RESULT_BYTES = 64 * 1024 * 1024
#: Host-call arguments larger than this are refused.
MAX_HOST_ARGS_BYTES = 16 * 1024 * 1024

ALLOWED_IMPORT_MODULES = ("gk", "wasi_snapshot_preview1")
GK_IMPORTS = {
    "host_call": "(i32 fn_ptr, i32 fn_len, i32 args_ptr, i32 args_len) -> i64",
    "log": "(i32 level, i32 ptr, i32 len) -> ()",
    "last_error": "() -> i64",
}

_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()
# name -> (params, results); optional exports marked in REQUIRED_EXPORTS
EXPORT_SIGNATURES: dict[str, tuple[list[wasmtime.ValType], list[wasmtime.ValType]]] = {
    "gk_malloc": ([_I32], [_I32]),
    "gk_free": ([_I32], []),
    "gk_register": ([], [_I64]),
    "gk_call": ([_I32, _I32, _I32, _I32], [_I64]),
    "_initialize": ([], []),
    "_start": ([], []),
}
REQUIRED_EXPORTS = ("gk_malloc", "gk_register", "gk_call")


def _signed64(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def pack(ptr: int, length: int) -> int:
    """Pack a pointer and a length the way GoatKit does, as a signed i64 for wasmtime."""
    return _signed64((ptr << 32) | length)


# --------------------------------------------------------------------------------------------
# Calling guest functions


class _PublicCaller:
    """Calls exports through wasmtime-py's public API. Slow, but needs nothing private."""

    fast = False

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func) -> None:
        self._store = store
        self._func = func

    def __call__(self, *args: int) -> int:
        result = self._func(self._store, *args)
        return 0 if result is None else int(result)

    call1 = call4 = __call__


def _address(cfunc: Any) -> int:
    address = ctypes.cast(cfunc, ctypes.c_void_p).value
    if not address:  # pragma: no cover
        raise TypeError("no address")
    return address


_raw_call: Any = None
_raw_memory_data: Any = None
_raw_memory_size: Any = None
_raw_set_deadline: Any = None
try:  # the private symbols of wasmtime-py that the fast path needs
    from wasmtime import _bindings as _wb

    _raw_call = ctypes.CFUNCTYPE(
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
    )(_address(_wb._wasmtime_func_call_unchecked))
    _raw_memory_data = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
        _address(_wb._wasmtime_memory_data)
    )
    _raw_memory_size = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)(
        _address(_wb._wasmtime_memory_data_size)
    )
    _raw_set_deadline = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)(
        _address(_wb._wasmtime_context_set_epoch_deadline)
    )
    _VAL_RAW = _wb.wasmtime_val_raw
    _TRAP_PTR = ctypes.POINTER(_wb.wasm_trap_t)
    _ERROR_PTR = ctypes.POINTER(_wb.wasmtime_error_t)
    FAST_PATH_AVAILABLE = True
except (ImportError, AttributeError, TypeError):  # pragma: no cover - depends on wasmtime build
    FAST_PATH_AVAILABLE = False


class _RawCaller:
    """Calls one export with ``wasmtime_func_call_unchecked`` and pre-built buffers.

    Sound only because the export's signature was checked against :data:`EXPORT_SIGNATURES`
    when the module was compiled, and because the buffers hold four slots, the most any ABI
    export takes or returns.
    """

    fast = True
    __slots__ = ("_ctx", "_func", "_func_addr", "_raw", "_raw_addr", "_trap", "_trap_addr")

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func) -> None:
        self._ctx = ctypes.cast(store._context(), ctypes.c_void_p).value
        self._func = func  # keeps the wasmtime_func_t alive
        self._func_addr = ctypes.addressof(func._func)
        self._raw = (_VAL_RAW * 4)()
        self._raw_addr = ctypes.addressof(self._raw)
        self._trap = _TRAP_PTR()
        self._trap_addr = ctypes.addressof(self._trap)

    def _invoke(self) -> int:
        error = _raw_call(self._ctx, self._func_addr, self._raw_addr, 4, self._trap_addr)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, _ERROR_PTR))
        if self._trap:
            trap = wasmtime.Trap._from_ptr(self._trap)
            self._trap = _TRAP_PTR()
            self._trap_addr = ctypes.addressof(self._trap)
            raise trap
        return int(self._raw[0].i64)

    def __call__(self, *args: int) -> int:
        raw = self._raw
        for i, arg in enumerate(args):
            raw[i].i32 = arg
        return self._invoke()

    # Fixed-arity variants for the hot path (no argument tuple to walk).
    def call1(self, a: int) -> int:
        self._raw[0].i32 = a
        return self._invoke()

    def call4(self, a: int, b: int, c: int, d: int) -> int:
        raw = self._raw
        raw[0].i32 = a
        raw[1].i32 = b
        raw[2].i32 = c
        raw[3].i32 = d
        return self._invoke()


# --------------------------------------------------------------------------------------------
# Engine, linker, ticker and module cache


class EpochTicker:
    """Advances the engine's epoch every ``tick`` seconds, so deadlines can interrupt guests.

    It ticks only while a deadline may be pending: once the latest deadline handed out has
    passed, it sleeps until the next one is asked for (:meth:`ticks_for`), so an idle platform
    costs no wake-ups and requests that never reach a plugin do not compete with it for the GIL.
    Waking re-bases the clock, so the epoch never owes the ticks it slept through.
    """

    def __init__(self, engine: wasmtime.Engine, tick: float) -> None:
        self.tick = tick
        self._engine = engine
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self._done = 0
        self._base: dict[float, int] = {}
        self._busy_until = 0.0  # monotonic time of the latest deadline handed out
        self._sleeping = False

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._wake.clear()
            self._start = time.monotonic()
            self._done = 0
            self._sleeping = False
            self._thread = threading.Thread(
                target=self._run, name="goatkit-epoch-ticker", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def sleeping(self) -> bool:
        """Whether the ticker waits for the next deadline (no deadline is pending)."""
        return self._sleeping

    def _run(self) -> None:
        # The epoch follows the clock, not the number of wake-ups: on a loaded machine a sleep
        # overshoots, and counting wake-ups would make every deadline drift late.
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            due = int((now - self._start) / self.tick)
            for _ in range(due - self._done):
                self._engine.increment_epoch()
            self._done = max(self._done, due)
            if now > self._busy_until:
                self._idle()

    def _idle(self) -> None:
        # Sleep unless a deadline arrives meanwhile. ticks_for writes _busy_until and then reads
        # _sleeping; this writes _sleeping and then reads _busy_until: one of the two sees the
        # other's write, so a new deadline either keeps the ticker awake or wakes it.
        # stop() sets _stop before _wake: a wake-up this clear() swallows is seen as _stop.
        self._wake.clear()
        self._sleeping = True
        if self._stop.is_set() or time.monotonic() <= self._busy_until:
            self._sleeping = False
            return
        self._wake.wait()
        self._sleeping = False

    def _wake_up(self, now: float) -> None:
        with self._lock:
            if self._sleeping and not self._wake.is_set():
                # Nothing waited on the epoch while the ticker slept: start counting again from
                # here, so no backlog of slept-through ticks is added to the new deadline.
                self._start = now - self._done * self.tick
                self._wake.set()

    def backlog(self, now: float | None = None) -> int:
        """Ticks the clock has passed that the epoch has not caught up with yet."""
        if self._thread is None:
            return 0
        now = time.monotonic() if now is None else now
        return max(0, int((now - self._start) / self.tick) - self._done)

    def ticks_for(self, seconds: float, now: float | None = None) -> int:
        """Epoch ticks that cover ``seconds``: the deadline fires no earlier than that.

        The ticks the epoch still owes the clock are added: they arrive in a burst when the
        ticker catches up and must not count against this deadline. Asking for a deadline keeps
        the ticker awake until it has passed (and wakes a sleeping ticker).
        """
        now = time.monotonic() if now is None else now
        # The deadline's epoch comes up to two ticks after ``seconds`` (the +1 below and the
        # rounding of the start); the ticker keeps going a tick beyond that.
        end = now + seconds + 3 * self.tick
        if end > self._busy_until:
            self._busy_until = end
        if self._sleeping:
            self._wake_up(now)
        base = self._base.get(seconds)
        if base is None:
            base = self._base[seconds] = max(1, math.ceil(seconds / self.tick) + 1)
        return base + self.backlog(now)


_current = threading.local()


def _current_instance() -> WasmInstance | None:
    return getattr(_current, "instance", None)


class WasmEngine:
    """A wasmtime engine with GoatKit's imports, an epoch ticker and a compiled-module cache."""

    def __init__(
        self, *, cache_dir: Path | None = None, fuel: bool = False, tick: float = 0.002
    ) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.consume_fuel = fuel
        self.fuel = fuel
        self.engine = wasmtime.Engine(config)
        self.cache_dir = cache_dir
        self.ticker = EpochTicker(self.engine, tick)
        self.compiles = 0
        self.cache_hits = 0
        self.instantiations = 0
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.linker.define_func(
            "gk", "host_call", wasmtime.FuncType([_I32] * 4, [_I64]), _host_call, access_caller=True
        )
        self.linker.define_func(
            "gk", "log", wasmtime.FuncType([_I32] * 3, []), _host_log, access_caller=True
        )
        self.linker.define_func(
            "gk", "last_error", wasmtime.FuncType([], [_I64]), _host_last_error, access_caller=True
        )

    @property
    def config_key(self) -> str:
        """What, besides the module's bytes, decides the compiled code."""
        return f"wasmtime-{WASMTIME_VERSION};epoch=1;fuel={int(self.fuel)}"

    def compile(self, wasm: bytes, *, plugin: str, source: str) -> WasmModule:
        """Compile ``wasm`` (or load it from the cache) and check it against the ABI."""
        digest = hashlib.sha256(wasm).hexdigest()
        module = self._load_cached(digest)
        if module is None:
            try:
                module = wasmtime.Module(self.engine, wasm)
            except wasmtime.WasmtimeError as exc:
                raise PluginLoadError(
                    f"{plugin}: {source} is not a valid WebAssembly module ({_first_line(exc)}); "
                    "rebuild the plugin for wasm32-wasi",
                    plugin=plugin,
                ) from exc
            self.compiles += 1
            self._store_cached(digest, module)
        else:
            self.cache_hits += 1
        return WasmModule(self, module, plugin=plugin, source=source, digest=digest)

    def _cache_path(self, digest: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(f"{self.config_key};{digest}".encode()).hexdigest()[:32]
        return self.cache_dir / f"{key}.cwasm"

    def _load_cached(self, digest: str) -> wasmtime.Module | None:
        path = self._cache_path(digest)
        if path is None or not path.is_file():
            return None
        try:
            return wasmtime.Module.deserialize_file(self.engine, str(path))
        except wasmtime.WasmtimeError:
            # A stale or damaged cache entry is rebuilt, never trusted.
            logger.warning("discarding unusable compiled-module cache entry %s", path.name)
            path.unlink(missing_ok=True)
            return None

    def _store_cached(self, digest: str, module: wasmtime.Module) -> None:
        path = self._cache_path(digest)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
            with os.fdopen(fd, "wb") as f:
                f.write(module.serialize())
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("could not write the compiled-module cache (%s); continuing", exc)

    def close(self) -> None:
        self.ticker.stop()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _trap_reason(exc: BaseException) -> str:
    """The cause of a trap without wasmtime's backtrace ("wasm trap: integer divide by zero")."""
    text = str(exc).strip()
    if "Caused by:" in text:
        lines = [ln.strip() for ln in text.split("Caused by:", 1)[1].splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return _first_line(exc)


# --------------------------------------------------------------------------------------------
# Modules


@dataclass
class WasmModule:
    """A compiled plugin module whose imports and exports were checked against the ABI."""

    engine: WasmEngine
    module: wasmtime.Module
    plugin: str
    source: str
    digest: str
    imports: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    initial_memory_bytes: int = 0

    def __post_init__(self) -> None:
        for imp in self.module.imports:
            name = f"{imp.module}.{imp.name}"
            self.imports.append(name)
            if imp.module not in ALLOWED_IMPORT_MODULES or (
                imp.module == "gk" and imp.name not in GK_IMPORTS
            ):
                raise PluginLoadError(
                    f"{self.plugin}: {self.source} imports {name}, which the host does not "
                    f"provide; plugins may import only gk.{{{', '.join(GK_IMPORTS)}}} and WASI "
                    "(wasi_snapshot_preview1)",
                    plugin=self.plugin,
                )
        memory_found = False
        for exp in self.module.exports:
            self.exports.append(exp.name)
            ty = exp.type
            if exp.name == "memory" and isinstance(ty, wasmtime.MemoryType):
                memory_found = True
                self.initial_memory_bytes = ty.limits.min * WASM_PAGE
            expected = EXPORT_SIGNATURES.get(exp.name)
            if expected is None:
                continue
            if not isinstance(ty, wasmtime.FuncType) or (
                list(ty.params) != expected[0] or list(ty.results) != expected[1]
            ):
                raise PluginLoadError(
                    f"{self.plugin}: export {exp.name} of {self.source} has the wrong signature "
                    f"({_describe_type(ty)}); the GoatKit ABI expects "
                    f"{_describe_sig(*expected)}",
                    plugin=self.plugin,
                )
        missing = [name for name in REQUIRED_EXPORTS if name not in self.exports]
        if not memory_found:
            missing.insert(0, "memory")
        if missing:
            raise PluginLoadError(
                f"{self.plugin}: {self.source} does not export {', '.join(missing)}; a GoatKit "
                "WASM plugin must export memory, gk_malloc, gk_register and gk_call",
                plugin=self.plugin,
            )
        self._pre = self.engine.linker.instantiate_pre(self.module)

    def instantiate(
        self,
        bridge: HostBridge,
        *,
        memory_limit: int | None,
        init_timeout: float,
        fast: bool = True,
        fuel: int | None = None,
    ) -> WasmInstance:
        return WasmInstance(
            self, bridge, memory_limit=memory_limit, init_timeout=init_timeout, fast=fast, fuel=fuel
        )


def _describe_sig(params: list[wasmtime.ValType], results: list[wasmtime.ValType]) -> str:
    return f"({', '.join(map(str, params))}) -> ({', '.join(map(str, results))})"


def _describe_type(ty: object) -> str:
    if isinstance(ty, wasmtime.FuncType):
        return _describe_sig(list(ty.params), list(ty.results))
    return type(ty).__name__


# --------------------------------------------------------------------------------------------
# Instances


class InlineAbort(Exception):
    """An inline call tried to do something only a worker-thread call may do (a host call)."""


@dataclass
class CallRecord:
    """What one guest call did, for the pool's policy and the statistics."""

    host_calls: int = 0
    aborted: bool = False
    seconds: float = 0.0  # time inside the guest, measured where it ran


class WasmInstance:
    """One Store + Instance of a plugin module. Used by one call at a time."""

    def __init__(
        self,
        module: WasmModule,
        bridge: HostBridge,
        *,
        memory_limit: int | None,
        init_timeout: float,
        fast: bool = True,
        fuel: int | None = None,
    ) -> None:
        self.module = module
        self.plugin = module.plugin
        self.bridge = bridge
        self.memory_limit = memory_limit
        self.broken = False
        self.last_memory = 0  # linear memory after the last call (kept by the pool)
        self.inline = False
        self.deadline = 0.0
        self.record = CallRecord()
        self.last_error: bytes | None = None
        self._out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        engine = module.engine
        if memory_limit is not None and module.initial_memory_bytes > memory_limit:
            raise PluginLoadError(
                f"{self.plugin}: {module.source} needs {module.initial_memory_bytes // WASM_PAGE} "
                f"pages ({module.initial_memory_bytes / 2**20:.1f} MiB) of memory at start, more "
                f"than its cap of {memory_limit / 2**20:.1f} MiB; raise resources.memory_mb or "
                "build the plugin with a smaller initial memory",
                plugin=self.plugin,
            )
        store = wasmtime.Store(engine.engine)
        make = _RawCaller if (fast and FAST_PATH_AVAILABLE) else _PublicCaller
        self.fast = make is _RawCaller
        self._ctx = ctypes.cast(store._context(), ctypes.c_void_p).value
        self.memory: wasmtime.Memory | None = None
        self._mem_addr = 0
        if memory_limit is not None:
            store.set_limits(memory_size=memory_limit, instances=1, tables=4, memories=1)
        wasi = wasmtime.WasiConfig()
        wasi.stdout_custom = self._stdout
        wasi.stderr_custom = self._stderr
        store.set_wasi(wasi)
        # Fuel is per call: refilled before every entry, so the budget never carries over.
        self.fuel = (fuel or 2**62) if engine.fuel else None
        self.store = store
        self._set_deadline(init_timeout)
        prev = _current_instance()
        _current.instance = self
        try:
            instance = module._pre.instantiate(store)
            engine.instantiations += 1
            exports = instance.exports(store)
            memory = exports["memory"]
            assert isinstance(memory, wasmtime.Memory)  # checked when the module was compiled
            self.memory = memory
            self._mem_addr = ctypes.addressof(memory._memory)

            def caller(name: str) -> Any:
                func = exports.get(name)
                return make(store, func) if isinstance(func, wasmtime.Func) else None

            self._malloc = caller("gk_malloc")
            self._free = caller("gk_free")
            self._register = caller("gk_register")
            self._call = caller("gk_call")
            init = caller("_initialize") or caller("_start")
            if init is not None:
                try:
                    init()
                except wasmtime.ExitTrap as exc:
                    if exc.code != 0:
                        raise PluginLoadError(
                            f"{self.plugin}: {module.source} exited with code {exc.code} while "
                            "starting (_start); check the plugin's log",
                            plugin=self.plugin,
                        ) from exc
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self.flush_output()
            error = self._translate(exc, "_initialize", init_timeout)
            raise PluginLoadError(
                f"{self.plugin}: could not start {module.source}: {error.message}",
                plugin=self.plugin,
            ) from exc
        finally:
            _current.instance = prev
        self.flush_output()

    # -- memory ------------------------------------------------------------------------------

    def memory_size(self) -> int:
        """Bytes of linear memory this instance has now."""
        return self._base_and_size()[1]

    def _base_and_size(self) -> tuple[int, int]:
        if self.memory is None:
            return 0, 0
        if self.fast:
            return (
                int(_raw_memory_data(self._ctx, self._mem_addr) or 0),
                int(_raw_memory_size(self._ctx, self._mem_addr)),
            )
        return (
            ctypes.addressof(self.memory.data_ptr(self.store).contents),
            int(self.memory.data_len(self.store)),
        )

    def read(self, ptr: int, length: int) -> bytes | None:
        """Copy ``length`` bytes at ``ptr`` out of guest memory; None when out of bounds."""
        base, size = self._base_and_size()
        if ptr < 0 or length < 0 or ptr + length > size:
            return None
        return ctypes.string_at(base + ptr, length)

    def write(self, data: bytes) -> int:
        """Copy ``data`` into a fresh ``gk_malloc`` block; returns the pointer or 0."""
        assert self._malloc is not None
        ptr = int(self._malloc.call1(len(data))) & 0xFFFFFFFF
        if ptr == 0:
            return 0
        base, size = self._base_and_size()
        if ptr + len(data) > size:
            return 0
        ctypes.memmove(base + ptr, data, len(data))
        return ptr

    # -- calls -------------------------------------------------------------------------------

    def _set_deadline(self, seconds: float) -> None:
        now = time.monotonic()
        ticks = self.module.engine.ticker.ticks_for(seconds, now)
        if self.fast:
            _raw_set_deadline(self._ctx, ticks)
        else:
            self.store.set_epoch_deadline(ticks)
        if self.fuel is not None:
            self.store.set_fuel(self.fuel)
        self.deadline = now + seconds

    def register(self, timeout: float) -> bytes:
        """Run ``gk_register`` and return the registration JSON (never freed, per the ABI)."""
        assert self._register is not None
        packed = self._enter(self._register, (), "gk_register", timeout) & MASK64
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        data = self.read(ptr, length) if packed else None
        if data is None:
            raise PluginCallError(
                f"{self.plugin}: gk_register returned "
                f"{'a result outside its memory' if packed else 'nothing'} instead of the "
                "registration JSON; fix the plugin's gk_register",
                plugin=self.plugin,
                function="gk_register",
            )
        return data

    def call(
        self, function: str, args: bytes | None, timeout: float, *, inline: bool = False
    ) -> bytes | None:
        """Call ``function`` through ``gk_call`` with JSON ``args``; return the JSON result.

        ``args`` is None for "no arguments at all" (the guest sees ptr=0, len=0). Returns None
        when the guest returns 0 (an empty result). Raises a PluginCallError subclass; after any
        error other than :class:`PluginCallError` reported by the plugin itself, the instance is
        marked ``broken`` and must be discarded.
        """
        assert self._call is not None
        name = function.encode()
        block = name + args if args else name
        record = self.record  # reset in place: one call at a time uses an instance
        record.host_calls = 0
        record.aborted = False
        self.inline = inline
        self.last_error = None
        prev = _current_instance()
        _current.instance = self
        try:
            self._set_deadline(timeout)
            ptr = self.write(block)
            if ptr == 0:
                self.broken = True
                raise PluginMemoryExceeded(
                    f"{self.plugin}: could not allocate {len(block)} bytes for the arguments of "
                    f"{function} (gk_malloc returned 0); raise resources.memory_mb or send less",
                    plugin=self.plugin,
                    function=function,
                )
            n = len(name)
            started = time.perf_counter()
            if args:
                packed = self._call.call4(ptr, n, ptr + n, len(args))
            else:
                packed = self._call.call4(ptr, n, 0, 0)
            self.record.seconds = time.perf_counter() - started
            packed &= MASK64
            result: bytes | None = None
            if packed:
                rptr, rlen = packed >> 32, packed & 0xFFFFFFFF
                if rlen > MAX_RESULT_BYTES:
                    self.broken = True
                    raise PluginCallError(
                        f"{self.plugin}: {function} returned {rlen} bytes, more than the "
                        f"{MAX_RESULT_BYTES} bytes a result may have",
                        plugin=self.plugin,
                        function=function,
                    )
                result = self.read(rptr, rlen)
                if result is None:
                    self.broken = True
                    raise PluginCrashed(
                        f"{self.plugin}: {function} returned a result outside its memory "
                        f"(ptr={rptr}, len={rlen}); the plugin is broken",
                        plugin=self.plugin,
                        function=function,
                    )
                if self._free is not None and not ptr <= rptr < ptr + len(block):
                    self._free.call1(rptr)
            if self._free is not None:
                self._free.call1(ptr)
            return result
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self.broken = True
            raise self._translate(exc, function, timeout) from exc
        finally:
            _current.instance = prev
            self.inline = False
            if self.record.aborted:
                # The call runs again elsewhere: what it printed here must not be logged twice.
                for buf in self._out.values():
                    buf.clear()
            else:
                self.flush_output()

    def _enter(
        self, func: Callable[..., int], args: tuple[int, ...], what: str, timeout: float
    ) -> int:
        prev = _current_instance()
        _current.instance = self
        try:
            self._set_deadline(timeout)
            return func(*args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self.broken = True
            raise self._translate(exc, what, timeout) from exc
        finally:
            _current.instance = prev
            self.flush_output()

    def _translate(self, exc: Exception, function: str, timeout: float) -> PluginCallError:
        """Turn a wasmtime trap into our error, naming the plugin, the function and the cause."""
        where = f"{self.plugin}: {function}"
        code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
        if self.record.aborted:
            return _InlineAborted(where, plugin=self.plugin, function=function)
        if isinstance(exc, wasmtime.ExitTrap):
            return PluginCrashed(
                f"{where} called exit({exc.code}); a plugin function must return, not exit",
                plugin=self.plugin,
                function=function,
            )
        if code == wasmtime.TrapCode.INTERRUPT:
            return PluginTimeout(
                f"{where} did not finish within its limit of {timeout:g}s and was stopped; make "
                "it faster or raise resources.call_timeout",
                plugin=self.plugin,
                function=function,
            )
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return PluginTimeout(
                f"{where} used up its fuel budget and was stopped; make it cheaper or raise "
                "resources.fuel",
                plugin=self.plugin,
                function=function,
                code="out_of_fuel",
            )
        if self._near_memory_cap():
            return PluginMemoryExceeded(
                f"{where} failed at its memory cap of {self.memory_limit_mib} MiB "
                f"({_trap_reason(exc)}); raise resources.memory_mb or use less memory",
                plugin=self.plugin,
                function=function,
            )
        kind = code.name.lower().replace("_", " ") if code is not None else "error"
        return PluginCrashed(
            f"{where} crashed ({kind}: {_trap_reason(exc)}); the instance was discarded and "
            "the next call gets a fresh one",
            plugin=self.plugin,
            function=function,
        )

    @property
    def memory_limit_mib(self) -> str:
        return f"{(self.memory_limit or 0) / 2**20:g}"

    def _near_memory_cap(self) -> bool:
        if self.memory_limit is None:
            return False
        try:
            return self.memory_size() + WASM_PAGE > self.memory_limit
        except wasmtime.WasmtimeError:  # pragma: no cover
            return False

    # -- host side ---------------------------------------------------------------------------

    def _stdout(self, data: bytes) -> None:
        self._collect("stdout", data)

    def _stderr(self, data: bytes) -> None:
        self._collect("stderr", data)

    def _collect(self, stream: str, data: bytes) -> None:
        buf = self._out[stream]
        if len(buf) < 1 << 20:  # a guest printing in a loop must not exhaust host memory
            buf += data

    def flush_output(self) -> None:
        """Send complete WASI stdout/stderr lines to the plugin's log."""
        for stream, level in (("stdout", "info"), ("stderr", "warn")):
            buf = self._out[stream]
            if buf:
                text = buf.decode("utf-8", "replace")
                buf.clear()
                for line in text.splitlines():
                    if line.strip():
                        self.bridge.log(self.plugin, level, f"[{stream}] {line}")

    def fail(self, code: str, message: str) -> int:
        """Record the last error for ``gk.last_error`` and return 0 (the ABI's failure value)."""
        self.last_error = json.dumps({"code": code, "message": message}).encode()
        return 0

    def abort_inline(self, caller: wasmtime.Caller) -> int:
        """Stop an inline call: it wants a host call, which must run from a worker thread.

        Nothing of the host call is performed. The deadline is set to "now", so the guest
        traps at its next epoch check; the instance is discarded either way and the call is
        run again from the start on a fresh instance in a worker thread.
        """
        self.record.aborted = True
        # Inline calls run only on the fast path, so the private bindings are there.
        _wb.wasmtime_context_set_epoch_deadline(caller._context(), 0)
        return 0


class _InlineAborted(PluginCallError):
    """Internal: an inline call stopped before it did anything visible; run it in a thread."""

    code = "inline_aborted"

    def __init__(self, where: str, *, plugin: str, function: str) -> None:
        super().__init__(
            f"{where} needs a worker thread (it makes host calls)", plugin=plugin, function=function
        )


def _host_call(
    caller: wasmtime.Caller, fn_ptr: int, fn_len: int, args_ptr: int, args_len: int
) -> int:
    inst = _current_instance()
    if inst is None:
        return 0
    try:
        if inst.inline:
            return inst.abort_inline(caller)
        inst.record.host_calls += 1
        name_bytes = inst.read(fn_ptr, fn_len)
        if name_bytes is None or not name_bytes:
            return inst.fail("bad_request", "host_call: function name is outside guest memory")
        name = name_bytes.decode("utf-8", "replace")
        if args_len > MAX_HOST_ARGS_BYTES:
            return inst.fail(
                "bad_request", f"{name}: arguments larger than {MAX_HOST_ARGS_BYTES} bytes"
            )
        args = inst.read(args_ptr, args_len) if args_len else b""
        if args is None:
            return inst.fail("bad_request", f"{name}: arguments are outside guest memory")
        try:
            result = inst.bridge.host_call(inst.plugin, name, args, inst.deadline)
        except GoatKitError as exc:
            return inst.fail(exc.code, exc.message)
        ptr = inst.write(result) if result else 0
        if ptr == 0:
            return inst.fail(
                "memory_exceeded", f"{name}: could not allocate {len(result)} bytes for the result"
            )
        return pack(ptr, len(result))
    except BaseException as exc:
        logger.exception("host_call failed inside %s", inst.plugin)
        return inst.fail("internal_error", f"host error: {type(exc).__name__}")


def _host_log(caller: wasmtime.Caller, level: int, ptr: int, length: int) -> None:
    inst = _current_instance()
    if inst is None:
        return
    try:
        if inst.inline:
            inst.abort_inline(caller)
            return
        inst.record.host_calls += 1
        data = inst.read(ptr, min(length, 64 * 1024))
        if data is not None:
            inst.bridge.log(inst.plugin, level_name(level), data.decode("utf-8", "replace"))
    except BaseException:
        logger.exception("gk.log failed inside %s", inst.plugin)


def _host_last_error(caller: wasmtime.Caller) -> int:
    inst = _current_instance()
    if inst is None or inst.last_error is None:
        return 0
    try:
        data = inst.last_error
        ptr = inst.write(data)
        return pack(ptr, len(data)) if ptr else 0
    except BaseException:
        logger.exception("gk.last_error failed inside %s", inst.plugin)
        return 0
