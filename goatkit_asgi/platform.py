"""The composition root: :class:`Platform` builds the pieces and wires them together.

Discovery (manifests only) → registrations from the cache, or read once per module version in
the background → lazy load on first use (compile or load the cached compiled module, build the
instance pool) → calls → unload.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from .errors import (
    ConfigError,
    GoatKitError,
    HostCallError,
    PluginCallError,
    PluginDisabled,
    PluginLoadError,
    PluginNotFound,
    RegistrationError,
)
from .host.api import HostAPI, HostContext
from .host.cache import MemoryCache
from .host.log import PluginLogs
from .packaging.archive import ArchiveLimits
from .packaging.discovery import Discovered, discover
from .packaging.manifest import Manifest
from .registration import Registration, parse_registration
from .runtime.pool import WasmPool
from .runtime.wasm import WasmEngine
from .settings import DEFAULT_DATABASE_URL, Settings, build_settings

logger = logging.getLogger("goatkit")

__all__ = ["Platform", "PluginInfo", "PluginState"]


class PluginState(enum.StrEnum):
    """Where a plugin is in its lifecycle."""

    DISCOVERED = "discovered"  # manifest read; no instances
    LOADED = "loaded"  # module compiled, instance pool ready
    FAILED = "failed"  # refused or broken: see PluginInfo.error
    DISABLED = "disabled"  # turned off by an administrator


@dataclass(frozen=True)
class PluginInfo:
    """A read-only snapshot of one plugin, as listed in ``platform.plugins``."""

    name: str
    state: PluginState
    manifest: Manifest | None
    registration: Registration | None
    error: GoatKitError | None
    source: Path
    directory: Path | None
    module_digest: str | None
    instances: int
    memory_bytes: int
    last_used: float | None
    stats: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    totals: Mapping[str, object] = field(default_factory=dict)


@dataclass
class _Plugin:
    """The platform's mutable record of one plugin."""

    found: Discovered
    state: PluginState
    error: GoatKitError | None = None
    registration: Registration | None = None
    digest: str | None = None
    pool: WasmPool | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    @property
    def name(self) -> str:
        return self.found.name

    @property
    def manifest(self) -> Manifest | None:
        return self.found.manifest


class _Bridge:
    """The runtimes' view of the host: host calls and logs (see runtime.base.HostBridge)."""

    def __init__(self, host: HostAPI, logs: PluginLogs) -> None:
        self._host = host
        self._logs = logs

    def host_call(self, plugin: str, function: str, args: bytes, deadline: float) -> bytes:
        ctx = HostContext(plugin, deadline)

        def run_async(fn: Callable[[], Awaitable[Any]]) -> Any:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HostCallError(
                    f"{plugin}: {function}: the call's time ran out before the host call",
                    plugin=plugin,
                    function=function,
                    code="timeout",
                )
            return anyio.from_thread.run(_with_timeout, fn, remaining, plugin, function)

        return self._host.call_sync(ctx, function, args, run_async)

    def log(self, plugin: str, level: str, message: str) -> None:
        self._logs.log(plugin, level, message)


async def _with_timeout(
    fn: Callable[[], Awaitable[Any]], seconds: float, plugin: str, function: str
) -> Any:
    try:
        with anyio.fail_after(seconds):
            return await fn()
    except TimeoutError as exc:
        raise HostCallError(
            f"{plugin}: {function} did not finish within the {seconds:.3f}s left of the call",
            plugin=plugin,
            function=function,
            code="timeout",
        ) from exc


class Platform:
    """Discovers, loads and runs plugins; the one object a host app holds.

    ``async with platform:`` starts and stops it (``GoatKitMiddleware`` does this from the ASGI
    lifespan). See DESIGN §2 for the contract.
    """

    def __init__(
        self,
        plugins_dir: str | os.PathLike[str] = "plugins",
        *,
        state_dir: str | os.PathLike[str] | None = None,
        database_url: str = DEFAULT_DATABASE_URL,
        call_timeout: float = 5.0,
        max_call_timeout: float = 60.0,
        memory_mb: int = 16,
        memory_budget_mb: int | None = None,
        max_instances: int = 4,
        max_queue: int = 64,
        worker_threads: int = 16,
        grants: Mapping[str, Mapping[str, Any]] | None = None,
        auto_grant: bool = False,
        plugin_config: Mapping[str, Mapping[str, Any]] | None = None,
        archive_limits: ArchiveLimits | None = None,
        inline_calls: bool = True,
    ) -> None:
        self.settings: Settings = build_settings(
            plugins_dir=plugins_dir,
            state_dir=state_dir,
            database_url=database_url,
            call_timeout=call_timeout,
            max_call_timeout=max_call_timeout,
            memory_mb=memory_mb,
            memory_budget_mb=memory_budget_mb,
            max_instances=max_instances,
            max_queue=max_queue,
            worker_threads=worker_threads,
            grants=grants,
            auto_grant=auto_grant,
            plugin_config=plugin_config,
            archive_limits=archive_limits,
            inline_calls=inline_calls,
        )
        self.logs = PluginLogs()
        self.cache = MemoryCache()
        self.host = HostAPI(cache=self.cache, logs=self.logs, config=self._plugin_config)
        self._bridge = _Bridge(self.host, self.logs)
        self._plugins: dict[str, _Plugin] = {}
        self._engines: dict[bool, WasmEngine] = {}
        self._limiter: anyio.CapacityLimiter | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._ready = anyio.Event()
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Platform:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Discover plugins (manifests only) and read cached registrations."""
        if self._started:
            return
        self._limiter = anyio.CapacityLimiter(self.settings.worker_threads)
        self._ready = anyio.Event()
        found = await anyio.to_thread.run_sync(self._discover, limiter=self._limiter)
        self._plugins = {}
        for item in found:
            state = PluginState.FAILED if item.error else PluginState.DISCOVERED
            self._plugins[item.name] = _Plugin(item, state, error=item.error)
        pending = await anyio.to_thread.run_sync(
            self._read_cached_registrations, limiter=self._limiter
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._started = True
        if pending:
            self._task_group.start_soon(self._register_pending, pending)
        else:
            self._ready.set()

    async def stop(self) -> None:
        """Release every instance and stop background work."""
        if not self._started:
            return
        self._started = False
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)
        self._task_group = None
        for record in self._plugins.values():
            if record.pool is not None:
                await record.pool.close()
                record.pool = None
                if record.state is PluginState.LOADED:
                    record.state = PluginState.DISCOVERED
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()

    async def wait_ready(self) -> None:
        """Wait until every discovered plugin's registration is known (routes, menus)."""
        await self._ready.wait()

    def _discover(self) -> list[Discovered]:
        packages = self.settings.state_dir / "packages"
        return discover(self.settings.plugins_dir, packages, limits=self.settings.archive_limits)

    # -- registrations -----------------------------------------------------------------------

    def _registration_path(self, digest: str) -> Path:
        return self.settings.state_dir / "cache" / "registrations" / f"{digest}.json"

    def _module_path(self, record: _Plugin) -> Path | None:
        manifest = record.manifest
        if manifest is None or manifest.runtime != "wasm" or record.found.directory is None:
            return None
        return record.found.directory / (manifest.wasm or "plugin.wasm")

    def _read_cached_registrations(self) -> list[_Plugin]:
        """Fill registrations from the cache; return the plugins whose module is new to us."""
        pending = []
        for record in self._plugins.values():
            path = self._module_path(record)
            if path is None or record.state is PluginState.FAILED:
                continue
            try:
                record.digest = _file_digest(path)
            except OSError as exc:
                self._fail(
                    record,
                    PluginLoadError(
                        f"{record.name}: cannot read {path.name} ({exc.strerror}); the manifest's "
                        "wasm: must name the module file inside the plugin directory",
                        plugin=record.name,
                    ),
                )
                continue
            cached = self._registration_path(record.digest)
            try:
                raw = cached.read_bytes()
            except OSError:
                pending.append(record)
                continue
            try:
                record.registration = self._parse_registration(record, raw)
            except RegistrationError as exc:
                self._fail(record, exc)
        return pending

    async def _register_pending(self, pending: list[_Plugin]) -> None:
        try:
            async with anyio.create_task_group() as tg:
                for record in pending:
                    tg.start_soon(self._read_registration_safely, record)
        finally:
            self._ready.set()

    async def _read_registration_safely(self, record: _Plugin) -> None:
        async with record.lock:
            if record.registration is not None or record.state is PluginState.FAILED:
                return
            try:
                pool = await self._build_pool(record)
                await self._ensure_registration(record, pool)
            except GoatKitError as exc:
                self._fail(record, exc)

    def _parse_registration(self, record: _Plugin, raw: bytes) -> Registration:
        # A name that differs from the manifest's is a warning: the manifest's name is used.
        return parse_registration(raw, plugin=record.name)

    async def _ensure_registration(self, record: _Plugin, pool: WasmPool) -> None:
        if record.registration is not None:
            return
        raw = await pool.register(self._timeout_for(record, None))
        record.registration = self._parse_registration(record, raw)
        assert record.digest is not None
        await anyio.to_thread.run_sync(_write_atomic, self._registration_path(record.digest), raw)

    def _fail(self, record: _Plugin, error: GoatKitError) -> None:
        record.state = PluginState.FAILED
        record.error = error
        self.logs.log(record.name, "error", error.message)

    # -- loading -----------------------------------------------------------------------------

    def _engine(self, fuel: bool) -> WasmEngine:
        engine = self._engines.get(fuel)
        if engine is None:
            engine = WasmEngine(cache_dir=self.settings.state_dir / "cache" / "modules", fuel=fuel)
            engine.ticker.start()
            self._engines[fuel] = engine
        return engine

    def _timeout_for(self, record: _Plugin, timeout: float | None) -> float:
        limit = self.settings.max_call_timeout
        if timeout is not None:
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, int | float)
                or not 0 < timeout <= limit
            ):
                raise ConfigError(
                    f"{record.name}: timeout={timeout!r} must be a number of seconds in "
                    f"(0, {limit}]",
                    plugin=record.name,
                )
            return float(timeout)
        manifest = record.manifest
        if manifest is not None and manifest.resources.call_timeout is not None:
            return min(manifest.resources.call_timeout, limit)
        return self.settings.call_timeout

    async def _build_pool(self, record: _Plugin) -> WasmPool:
        manifest = record.manifest
        assert manifest is not None and self._limiter is not None
        path = self._module_path(record)
        if path is None:
            raise PluginLoadError(
                f"{record.name}: runtime {manifest.runtime!r} is not available in this version; "
                "use runtime: wasm",
                plugin=record.name,
            )
        limit = self.settings.max_call_timeout
        if manifest.resources.call_timeout is not None and manifest.resources.call_timeout > limit:
            raise PluginLoadError(
                f"{record.name}: resources.call_timeout of {manifest.resources.call_timeout:g}s is "
                f"more than the platform's max_call_timeout of {limit:g}s; lower it",
                plugin=record.name,
            )
        engine = self._engine(bool(manifest.resources.fuel))

        def compile_module() -> Any:
            try:
                wasm = path.read_bytes()
            except OSError as exc:
                raise PluginLoadError(
                    f"{record.name}: cannot read {path.name} ({exc.strerror}); build the plugin "
                    "or fix the manifest's wasm: path",
                    plugin=record.name,
                ) from exc
            record.digest = hashlib.sha256(wasm).hexdigest()
            return engine.compile(wasm, plugin=record.name, source=path.name)

        module = await anyio.to_thread.run_sync(compile_module, limiter=self._limiter)
        memory_mb = manifest.resources.memory_mb or self.settings.memory_mb
        return WasmPool(
            module,
            self._bridge,
            limiter=self._limiter,
            max_instances=manifest.resources.max_instances or self.settings.max_instances,
            max_queue=self.settings.max_queue,
            memory_limit=memory_mb * 1024 * 1024,
            init_timeout=self._timeout_for(record, None),
            fast=self.settings.inline_calls,
            fuel=manifest.resources.fuel,
        )

    async def _loaded(self, name: str) -> tuple[_Plugin, WasmPool]:
        if not self._started:
            raise ConfigError(
                "the platform is not started; use `async with platform:` or wrap the app in "
                "GoatKitMiddleware, which starts it from the ASGI lifespan"
            )
        record = self._plugins.get(name)
        if record is None:
            raise PluginNotFound(
                f"no plugin named {name!r}; installed: "
                f"{', '.join(sorted(self._plugins)) or 'none'}",
                plugin=name,
            )
        pool = record.pool
        if pool is not None:
            return record, pool
        _check_usable(record)
        async with record.lock:
            if record.pool is None:
                _check_usable(record)  # another task may have failed it while we waited
                try:
                    pool = await self._build_pool(record)
                    await self._ensure_registration(record, pool)
                except GoatKitError as exc:
                    self._fail(record, exc)
                    raise
                record.pool = pool
                record.state = PluginState.LOADED
            return record, record.pool

    async def load(self, name: str) -> PluginInfo:
        """Load ``name`` now (it would otherwise load on first use). A failed plugin is retried."""
        record = self._plugins.get(name)
        if record is not None and record.state is PluginState.FAILED and record.found.manifest:
            record.state, record.error = PluginState.DISCOVERED, None
        await self._loaded(name)
        return self.plugins[name]

    async def unload(self, name: str) -> None:
        """Release ``name``'s instances; its registration stays known and it reloads on use."""
        record = self._plugins.get(name)
        if record is None:
            raise PluginNotFound(f"no plugin named {name!r}", plugin=name)
        async with record.lock:
            if record.pool is not None:
                await record.pool.close()
                record.pool = None
            if record.state is PluginState.LOADED:
                record.state = PluginState.DISCOVERED

    # -- calls -------------------------------------------------------------------------------

    async def call(
        self,
        name: str,
        function: str,
        args: Any = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Call ``function`` of plugin ``name`` with JSON-able ``args``; return its JSON result.

        ``args=None`` passes no arguments at all; ``{}`` passes an empty object. The plugin is
        loaded on first use.
        """
        record, pool = await self._loaded(name)
        if args is None:
            raw = None
        else:
            try:
                raw = json.dumps(args, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:
                raise PluginCallError(
                    f"{name}: {function}: the arguments cannot be sent as JSON ({exc})",
                    plugin=name,
                    function=function,
                ) from exc
        self._check_function(record, function)
        result = await pool.call(function, raw, self._timeout_for(record, timeout))
        return _decode_result(name, function, result)

    def _check_function(self, record: _Plugin, function: str) -> None:
        known: set[str] = set()
        if record.registration is not None:
            known |= record.registration.callable_names()
        if record.manifest is not None:
            known |= {spec.name for spec in record.manifest.exports}
        if known and function not in known:
            raise PluginCallError(
                f"{record.name}: no function {function!r}; it has {', '.join(sorted(known))}",
                plugin=record.name,
                function=function,
                code="unknown_function",
            )

    # -- introspection -----------------------------------------------------------------------

    @property
    def plugins(self) -> Mapping[str, PluginInfo]:
        """Every discovered plugin by name (failed ones under their file name), read-only."""
        return MappingProxyType({name: self._info(r) for name, r in self._plugins.items()})

    def _info(self, record: _Plugin) -> PluginInfo:
        pool = record.pool
        return PluginInfo(
            name=record.name,
            state=record.state,
            manifest=record.manifest,
            registration=record.registration,
            error=record.error,
            source=record.found.source,
            directory=record.found.directory,
            module_digest=record.digest,
            instances=pool.instance_count if pool else 0,
            memory_bytes=pool.memory_bytes() if pool else 0,
            last_used=pool.last_used if pool else None,
            stats=pool.stats.snapshot() if pool else {},
            totals=pool.stats.totals() if pool else {},
        )

    def memory_in_use(self) -> int:
        """Linear memory held by every loaded instance, in bytes (for ``memory_budget_mb``)."""
        return sum(r.pool.memory_bytes() for r in self._plugins.values() if r.pool is not None)

    def _plugin_config(self, plugin: str) -> Mapping[str, Any]:
        record = self._plugins.get(plugin)
        merged: dict[str, Any] = {}
        if record is not None and record.manifest is not None:
            merged.update(record.manifest.config)
        merged.update(self.settings.plugin_config.get(plugin, {}))
        return merged


def _check_usable(record: _Plugin) -> None:
    if record.state is PluginState.DISABLED:
        raise PluginDisabled(
            f"{record.name}: the plugin is disabled; enable it first", plugin=record.name
        )
    if record.state is PluginState.FAILED:
        assert record.error is not None
        raise record.error


def _decode_result(plugin: str, function: str, raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PluginCallError(
            f"{plugin}: {function} returned something that is not JSON ({exc}); fix the plugin",
            plugin=plugin,
            function=function,
        ) from exc
    if isinstance(value, dict) and len(value) == 1 and "error" in value:
        # A plugin reports a failed call as {"error": "..."} or {"error": {"code", "message"}}.
        err = value["error"]
        code, message = "plugin_error", err
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = err.get("message", err)
        raise PluginCallError(
            f"{plugin}: {function} failed: {message}", plugin=plugin, function=function, code=code
        )
    return value


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("could not write the registration cache %s (%s)", path.name, exc)
