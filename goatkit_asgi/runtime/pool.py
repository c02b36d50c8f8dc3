"""The instance pool of one loaded WASM plugin, and the policy that keeps calls fast.

Each loaded plugin version has up to ``max_instances`` instances. A call takes a free instance
(or waits for one, in a bounded queue) and runs on it in one of two ways:

- **In a worker thread** (``anyio.to_thread.run_sync`` with the platform's ``CapacityLimiter``),
  under the call's full deadline. Host calls are made from that thread and reach the event loop
  through ``anyio.from_thread``. This is how every function is first called.
- **Inline on the event loop**, under a tight deadline (``inline_budget``). A thread hand-off costs
  50-90 µs here, several times a short guest call, so a function that has been seen to finish
  quickly *without any host call* is run inline from then on. If an inline run attempts a host
  call, the attempt is refused before anything happens, the instance is thrown away and the call
  runs again from the start in a worker thread; the same happens when the inline budget runs out
  before the call's own limit. The function then stays on the thread path.

Two invariants follow: a call that has made a host call is never executed twice (inline runs
never get to make one), and a call that finishes within its ``call_timeout`` never fails because
of the inline attempt (the re-run gets the full limit).

After any trap the instance is discarded and later calls get a fresh one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from ..errors import PluginBusy, PluginCallError, PluginTimeout
from .base import HostBridge
from .stats import CallStats
from .wasm import FAST_PATH_AVAILABLE, WasmInstance, WasmModule, _InlineAborted

#: Inline attempts of one function that may run out of the inline budget before it stays on
#: the thread path for good.
MAX_INLINE_MISSES = 3


class WasmPool:
    """Instances of one plugin module, and the calls that run on them."""

    def __init__(
        self,
        module: WasmModule,
        bridge: HostBridge,
        *,
        limiter: anyio.CapacityLimiter,
        max_instances: int = 4,
        max_queue: int = 64,
        memory_limit: int | None = None,
        init_timeout: float = 5.0,
        inline_budget: float = 0.004,
        inline_threshold: float = 0.001,
        fast: bool = True,
        fuel: int | None = None,
        on_memory_change: Callable[[], None] | None = None,
    ) -> None:
        self.module = module
        self.plugin = module.plugin
        self.bridge = bridge
        self.limiter = limiter
        self.max_instances = max_instances
        self.max_queue = max_queue
        self.memory_limit = memory_limit
        self.init_timeout = init_timeout
        self.inline_budget = inline_budget
        self.inline_threshold = inline_threshold
        self.fast = fast and FAST_PATH_AVAILABLE
        self.fuel = fuel
        self.stats = CallStats()
        self.discarded = 0
        self.last_used = time.monotonic()
        self._idle: list[WasmInstance] = []
        self._instances: set[WasmInstance] = set()
        self._slots = anyio.Semaphore(max_instances)
        self._waiting = 0
        self._inline_ok: set[str] = set()
        self._thread_only: set[str] = set()  # functions seen making host calls, or too slow
        self._inline_misses: dict[str, int] = {}
        self._closed = False
        self._on_memory_change = on_memory_change

    # -- introspection -----------------------------------------------------------------------

    @property
    def instance_count(self) -> int:
        return len(self._instances)

    @property
    def busy(self) -> int:
        return len(self._instances) - len(self._idle)

    def memory_bytes(self) -> int:
        """Linear memory held by this pool's instances (busy ones as of their last call)."""
        return sum(inst.last_memory for inst in list(self._instances))

    def inline_functions(self) -> frozenset[str]:
        return frozenset(self._inline_ok)

    # -- instances ---------------------------------------------------------------------------

    async def _take(self) -> WasmInstance:
        """Called with a slot held: an idle instance, or a new one."""
        if self._idle:
            return self._idle.pop()
        inst = await anyio.to_thread.run_sync(self._new_instance, limiter=self.limiter)
        inst.last_memory = inst.memory_size()
        self._instances.add(inst)
        return inst

    def _new_instance(self) -> WasmInstance:
        return self.module.instantiate(
            self.bridge,
            memory_limit=self.memory_limit,
            init_timeout=self.init_timeout,
            fast=self.fast,
            fuel=self.fuel,
        )

    def _give_back(self, inst: WasmInstance) -> None:
        inst.last_memory = inst.memory_size()  # read here: no guest code runs on it now
        if inst.broken or self._closed:
            self._instances.discard(inst)
            self.discarded += 1
        else:
            self._idle.append(inst)
        if self._on_memory_change is not None:
            self._on_memory_change()

    async def _acquire_slot(self) -> None:
        try:
            self._slots.acquire_nowait()
            return
        except anyio.WouldBlock:
            pass
        if self._waiting >= self.max_queue:
            raise PluginBusy(
                f"{self.plugin}: all {self.max_instances} instances are busy and "
                f"{self._waiting} calls are already waiting; retry later or raise "
                "resources.max_instances",
                plugin=self.plugin,
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1

    # -- calls -------------------------------------------------------------------------------

    async def register(self, timeout: float) -> bytes:
        """Read the registration JSON: instantiate, call ``gk_register``, release."""

        def run() -> bytes:
            inst = self._new_instance()
            return inst.register(timeout)

        return await anyio.to_thread.run_sync(run, limiter=self.limiter)

    async def call(self, function: str, args: bytes | None, timeout: float) -> bytes | None:
        """Run ``function`` with JSON ``args`` on a free instance; return the JSON result."""
        self.last_used = time.monotonic()
        started = time.perf_counter()
        error: str | None = None
        inline = False
        await self._acquire_slot()
        try:
            # Fast path: a known-pure, known-quick function on an idle instance, run right here.
            if function in self._inline_ok and self._idle:
                inst = self._idle.pop()
                try:
                    result = inst.call(
                        function, args, min(timeout, self.inline_budget), inline=True
                    )
                    inline = True
                    self._give_back(inst)
                    return result
                except _InlineAborted:
                    self._demote(function, inst, forever=True)
                except PluginTimeout:
                    if timeout <= self.inline_budget:
                        self._give_back(inst)
                        raise
                    # Too slow this time (or the process was descheduled): back to threads,
                    # and after a few such misses, for good.
                    misses = self._inline_misses[function] = (
                        self._inline_misses.get(function, 0) + 1
                    )
                    self._demote(function, inst, forever=misses >= MAX_INLINE_MISSES)
                except PluginCallError:
                    self._give_back(inst)
                    raise
            return await self._call_in_thread(function, args, timeout)
        except PluginCallError as exc:
            error = exc.code
            raise
        finally:
            self._slots.release()
            self.stats.record(function, time.perf_counter() - started, error, inline=inline)

    def _demote(self, function: str, inst: WasmInstance, *, forever: bool) -> None:
        """An inline attempt did not fit: throw its instance away and use a thread."""
        inst.broken = True
        self._give_back(inst)
        self._inline_ok.discard(function)
        if forever:
            self._thread_only.add(function)

    async def _call_in_thread(
        self, function: str, args: bytes | None, timeout: float
    ) -> bytes | None:
        inst = await self._take()
        try:
            result: bytes | None = await anyio.to_thread.run_sync(
                _run_call, inst, function, args, timeout, limiter=self.limiter
            )
            if (
                self.fast
                and inst.record.host_calls == 0
                and function not in self._thread_only
                and inst.record.seconds < self.inline_threshold
            ):
                self._inline_ok.add(function)
            elif inst.record.host_calls:
                self._thread_only.add(function)
                self._inline_ok.discard(function)
            return result
        finally:
            self._give_back(inst)

    async def close(self) -> None:
        """Release every instance; calls in flight keep theirs until they finish."""
        self._closed = True
        self._idle.clear()
        self._instances.clear()


def _run_call(inst: WasmInstance, function: str, args: bytes | None, timeout: float) -> Any:
    return inst.call(function, args, timeout)
