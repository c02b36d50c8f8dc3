"""The composition root: :class:`Platform` builds the pieces and wires them together.

Discovery (manifests only) → registrations from the cache, or read once per module version in
the background → lazy load on first use (compile or load the cached compiled module, build the
instance pool) → calls → unload.
"""

from __future__ import annotations

import contextvars
import enum
import hashlib
import inspect
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread

from .errors import (
    ConfigError,
    GoatKitError,
    HostCallError,
    ManifestError,
    PackageError,
    PermissionDenied,
    PluginBusy,
    PluginCallError,
    PluginDisabled,
    PluginLoadError,
    PluginNotFound,
    PluginReportedError,
    RegistrationError,
)
from .host.api import HostAPI, HostContext, str_arg
from .host.cache import CacheBackend, MemoryCache
from .host.gated import GatedFunctions
from .host.log import PluginLogs
from .host.mail import SmtpSettings
from .host.redis_cache import RedisCache
from .host.services import HostServices
from .i18n import TranslationCache, Translations, format_text, negotiate_locale
from .packaging.archive import ArchiveLimits
from .packaging.discovery import Discovered, discover, discover_one, is_candidate
from .packaging.manifest import Capabilities, Manifest
from .packaging.signing import SignatureStatus
from .registration import MenuItem, Registration, Route, parse_registration
from .runtime.grpc import GrpcRuntime, plugin_digest
from .runtime.grpc_host import GrpcHost
from .runtime.pool import WasmPool
from .runtime.stats import CallStats
from .runtime.wasm import WasmEngine
from .settings import DEFAULT_DATABASE_URL, Settings, build_settings
from .specs import table_conflict
from .store import InstallRecord, JobRow

if TYPE_CHECKING:
    import jinja2
    from starlette.types import ASGIApp

logger = logging.getLogger("goatkit")

__all__ = ["HookResult", "Platform", "PluginInfo", "PluginMenuItem", "PluginState", "RouteEntry"]


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
    requested: Capabilities = field(default_factory=Capabilities)  # what the manifest asks
    granted: Capabilities = field(default_factory=Capabilities)  # what an administrator granted
    effective: Capabilities = field(default_factory=Capabilities)  # what it may do now
    pending: Capabilities = field(default_factory=Capabilities)  # asked, not granted: waits
    signature: SignatureStatus | None = None  # unsigned / valid / tampered / untrusted / invalid


@dataclass(frozen=True)
class RouteEntry:
    """One plugin route, as the middleware serves it."""

    plugin: str
    route: Route


@dataclass(frozen=True)
class PluginMenuItem:
    """A menu item of a plugin, filtered for one user, with its URL under ``root_path``."""

    plugin: str
    id: str
    label: str
    url: str
    icon: str = ""
    location: str = ""
    parent: str = ""
    order: int = 0
    children: tuple[PluginMenuItem, ...] = ()


@dataclass(frozen=True)
class PluginWidget:
    """A dashboard widget of a plugin that one user may see; its HTML comes from ``handler``."""

    plugin: str
    id: str
    title: str
    handler: str
    location: str = ""
    size: str = ""
    order: int = 0
    refresh_sec: int = 0


@dataclass(frozen=True)
class HookResult:
    """What one plugin returned from a hook, or the error it failed with."""

    plugin: str
    value: Any
    error: GoatKitError | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def refusal(self) -> str | None:
        """The plugin's message when it refused (answered ``{"error": ...}``), else ``None``.

        A failure of the call itself (a timeout, a crash, a missing grant) is not a refusal:
        the host decides what those mean, usually to log them and go on.
        """
        if isinstance(self.error, PluginReportedError):
            return self.error.detail
        return None


#: The signed-in user of the request being served (set by the middleware), for the audit log.
current_user: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "goatkit_user", default=None
)
#: How many plugin_call hops led to the call being made.
current_call_depth: contextvars.ContextVar[int] = contextvars.ContextVar(
    "goatkit_call_depth", default=0
)

#: The Accept-Language of the request being served (set by the middleware), so host calls made
#: while serving it (``translate``) answer in the user's language.
current_accept_language: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "goatkit_accept_language", default=None
)

_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PARAM = re.compile(r"\{[^{}]*\}")
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass
class _Plugin:
    """The platform's mutable record of one plugin."""

    found: Discovered
    state: PluginState
    error: GoatKitError | None = None
    registration: Registration | None = None
    digest: str | None = None
    pool: WasmPool | GrpcRuntime | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    # Kept on the plugin, not on its instance pool: they survive unload, idle unload and reload.
    stats: CallStats = field(default_factory=CallStats)

    _known: tuple[Registration | None, frozenset[str]] | None = None

    @property
    def name(self) -> str:
        return self.found.name

    def known_functions(self) -> frozenset[str]:
        """Names the plugin declares (registration, manifest exports); cached per registration."""
        cached = self._known
        if cached is not None and cached[0] is self.registration:
            return cached[1]
        known: set[str] = set()
        if self.registration is not None:
            known |= self.registration.callable_names()
        if self.manifest is not None:
            known |= {spec.name for spec in self.manifest.exports}
        names = frozenset(known)
        self._known = (self.registration, names)
        return names

    @property
    def manifest(self) -> Manifest | None:
        return self.found.manifest


class _Bridge:
    """The runtimes' view of the host: host calls and logs (see runtime.base.HostBridge)."""

    def __init__(
        self, host: HostAPI, logs: PluginLogs, caps: Callable[[str], Capabilities]
    ) -> None:
        self._host = host
        self._logs = logs
        self._caps = caps

    def _context(self, plugin: str, deadline: float) -> HostContext:
        # Context variables (user, call depth) come from the task that made the plugin call:
        # anyio copies them into the worker thread, and the gRPC Host service into its handler.
        return HostContext(
            plugin,
            deadline,
            caps=self._caps(plugin),
            user=current_user.get(),
            depth=current_call_depth.get(),
        )

    def host_call(self, plugin: str, function: str, args: bytes, deadline: float) -> bytes:
        """A WASM plugin's host call, in the worker thread running the plugin."""
        ctx = self._context(plugin, deadline)

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

    async def host_call_async(
        self, plugin: str, function: str, args: bytes, deadline: float
    ) -> bytes:
        """A gRPC plugin's host call (the Host service enforces the deadline)."""
        return await self._host.call_async(self._context(plugin, deadline), function, args)

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
        has_permission: Callable[[Any, str], Any] | None = None,
        static_prefix: str = "/plugins",
        debug: bool = False,
        smtp: SmtpSettings | Mapping[str, Any] | None = None,
        cache_url: str | None = None,
        job_poll: float = 1.0,
        idle_timeout: float | None = None,
        hot_reload: bool | None = None,
        sync_interval: float = 1.0,
        shutdown_grace: float = 10.0,
        require_signatures: bool = False,
        trusted_keys: Sequence[str] = (),
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
            has_permission=has_permission,
            static_prefix=static_prefix,
            debug=debug,
            smtp=smtp,
            idle_timeout=idle_timeout,
            hot_reload=hot_reload,
            sync_interval=sync_interval,
            shutdown_grace=shutdown_grace,
            require_signatures=require_signatures,
            trusted_keys=trusted_keys,
        )
        self.logs = PluginLogs()
        self.cache: CacheBackend = RedisCache(cache_url) if cache_url is not None else MemoryCache()
        self.host = HostAPI(cache=self.cache, logs=self.logs, config=self._plugin_config)
        self._translations = TranslationCache(self._translation_source)
        self.host.sync_functions["translate"] = self._host_translate
        self.services = HostServices(
            database_url=self.settings.database_url,
            grants=self.settings.grants,
            auto_grant=self.settings.auto_grant,
            smtp=self.settings.smtp,
            run_job=self._run_job,
            job_poll=job_poll,
        )
        self.events = self.services.events
        self._gated = GatedFunctions(
            self.host,
            audit=self.services.audit,
            http=self.services.http,
            mailer=self.services.mailer,
            store=self.services.store,
            call_plugin=self._call_from_plugin,
            publish=self.events.publish,
        )
        self._bridge = _Bridge(self.host, self.logs, self._capabilities)
        # Serves Host.Call to gRPC plugins; starts with the first one that loads.
        self._grpc_host = GrpcHost(self._bridge.host_call_async, self.logs.log)
        self._plugins: dict[str, _Plugin] = {}
        self._engines: dict[bool, WasmEngine] = {}
        self._limiter: anyio.CapacityLimiter | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._ready = anyio.Event()
        self._started = False
        self.routes_version = 0  # bumped whenever the set of plugin routes may have changed
        self._route_listeners: list[Callable[[], None]] = []
        self._stopping = False
        self._in_flight = 0
        self._idle_calls = anyio.Event()
        self._state_version = 0
        self.evictions: list[str] = []  # plugins unloaded for the memory budget, in order

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
        """Discover plugins (manifests only), read cached registrations, start upkeep.

        ``start`` and ``stop`` must be called from the same task (``async with platform:`` and
        the ASGI lifespan both do): the platform's background tasks live in a task group that
        ``start`` opens and ``stop`` closes.
        """
        if self._started:
            return
        self._limiter = anyio.CapacityLimiter(self.settings.worker_threads)
        self._ready = anyio.Event()
        if isinstance(self.cache, RedisCache):
            await anyio.to_thread.run_sync(self.cache.ping)  # a wrong cache_url fails the start
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
        try:
            await self.services.start(self._task_group)
        except BaseException:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._task_group = None
            raise
        self._gated.db = self.services.db
        self._started = True
        for name in await self.services.store.disabled_plugins():
            record = self._plugins.get(name)
            if record is not None and record.state is not PluginState.FAILED:
                record.state = PluginState.DISABLED
        # New module versions are registered now, so routes and menus are known before the
        # first request; later starts find them in the cache and instantiate nothing.
        await self._register_pending(pending)
        self._refuse_route_collisions()
        await self._sync_jobs(*self._plugins.values())
        self._state_version = await self.services.store.state_version()
        self._stopping = False
        self._task_group.start_soon(self._maintain)
        if self.settings.hot_reload:
            self._task_group.start_soon(self._watch)

    async def stop(self) -> None:
        """Stop gracefully: refuse new calls, let calls in flight finish (up to
        ``shutdown_grace`` seconds), stop jobs and watchers, release every instance."""
        if not self._started:
            return
        self._stopping = True
        with anyio.move_on_after(self.settings.shutdown_grace):
            while self._in_flight:
                self._idle_calls = anyio.Event()
                await self._idle_calls.wait()
        if self._in_flight:
            logger.warning("stopping with %d plugin calls still running", self._in_flight)
        self._started = False
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(None, None, None)
        self._task_group = None
        await self.services.stop()
        for record in self._plugins.values():
            if record.pool is not None:
                await record.pool.close()
                record.pool = None
                if record.state is PluginState.LOADED:
                    record.state = PluginState.DISCOVERED
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
        await self._grpc_host.close()

    async def wait_ready(self) -> None:
        """Wait until every discovered plugin's registration is known (routes, menus).

        ``start()`` already waits for this; the method is for code that runs beside a start.
        """
        await self._ready.wait()

    def _discover(self) -> list[Discovered]:
        packages = self.settings.state_dir / "packages"
        return discover(
            self.settings.plugins_dir,
            packages,
            limits=self.settings.archive_limits,
            trusted_keys=self.settings.trusted_keys,
            require_signatures=self.settings.require_signatures,
        )

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
            if record.state is PluginState.FAILED:
                continue
            manifest = record.manifest
            if manifest is not None and manifest.runtime == "grpc":
                # Keyed by the manifest and the program's files (runtime.grpc.plugin_digest).
                record.digest = plugin_digest(manifest)
            else:
                path = self._module_path(record)
                if path is None:
                    continue
                try:
                    record.digest = _file_digest(path)
                except OSError as exc:
                    self._fail(
                        record,
                        PluginLoadError(
                            f"{record.name}: cannot read {path.name} ({exc.strerror}); the "
                            "manifest's wasm: must name the module file inside the plugin "
                            "directory",
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

    async def _ensure_registration(self, record: _Plugin, pool: WasmPool | GrpcRuntime) -> None:
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

    async def _build_pool(self, record: _Plugin) -> WasmPool | GrpcRuntime:
        manifest = record.manifest
        assert manifest is not None and self._limiter is not None
        limit = self.settings.max_call_timeout
        if manifest.resources.call_timeout is not None and manifest.resources.call_timeout > limit:
            raise PluginLoadError(
                f"{record.name}: resources.call_timeout of {manifest.resources.call_timeout:g}s is "
                f"more than the platform's max_call_timeout of {limit:g}s; lower it",
                plugin=record.name,
            )
        if manifest.runtime == "grpc":
            return self._grpc_runtime(record, manifest)
        path = self._module_path(record)
        if path is None:
            raise PluginLoadError(
                f"{record.name}: runtime {manifest.runtime!r} is not available in this version; "
                "use runtime: wasm or grpc",
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
        pool = WasmPool(
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
        pool.stats = record.stats
        return pool

    def _grpc_runtime(self, record: _Plugin, manifest: Manifest) -> GrpcRuntime:
        record.digest = plugin_digest(manifest)
        runtime = GrpcRuntime(manifest, self._grpc_host, config=self._plugin_config(record.name))
        runtime.stats = record.stats
        name = record.name

        def failed(error: PluginLoadError) -> None:
            # Crashed too often: failed (platform.plugins, admin) until loaded again.
            current = self._plugins.get(name)
            if current is not None and current.pool is runtime:
                current.pool = None
                self._fail(current, error)

        runtime.on_failed = failed
        return runtime

    async def _loaded(self, name: str) -> tuple[_Plugin, WasmPool | GrpcRuntime]:
        if self._stopping:
            raise PluginBusy(
                f"{name}: the platform is shutting down and takes no new calls", plugin=name
            )
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

    async def _track(self, work: Awaitable[bytes | None]) -> bytes | None:
        """Count calls in flight, so a graceful stop can wait for them."""
        self._in_flight += 1
        try:
            return await work
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle_calls.set()
            if self.settings.memory_budget_mb is not None:
                await self._enforce_budget()

    async def load(self, name: str) -> PluginInfo:
        """Load ``name`` now (it would otherwise load on first use). A failed plugin is retried."""
        record = self._plugins.get(name)
        if record is not None and record.state is PluginState.FAILED and record.found.manifest:
            record.state, record.error = PluginState.DISCOVERED, None
        await self._loaded(name)
        return self.plugins[name]

    async def enable(self, name: str) -> None:
        """Turn ``name`` back on after :meth:`disable`; it loads again on first use.

        Stored in the platform database: other workers follow within ``sync_interval``.
        """
        record = self._record(name)
        await self.services.store.set_enabled(name, True)
        await self._set_disabled(record, False)
        await self._changed()

    async def disable(self, name: str) -> None:
        """Turn ``name`` off: its instances are released, its routes answer 404, its menu items
        disappear and its template functions render their fallback. Stored like :meth:`enable`."""
        record = self._record(name)
        await self.services.store.set_enabled(name, False)
        await self._set_disabled(record, True)
        await self._changed()

    async def _set_disabled(self, record: _Plugin, disabled: bool) -> None:
        async with record.lock:
            if disabled:
                if record.pool is not None:
                    await record.pool.close()
                    record.pool = None
                if record.state is not PluginState.FAILED:
                    record.state = PluginState.DISABLED
            elif record.state is PluginState.DISABLED:
                record.state = PluginState.DISCOVERED
        self._routes_changed()

    def _record(self, name: str) -> _Plugin:
        record = self._plugins.get(name)
        if record is None:
            raise PluginNotFound(f"no plugin named {name!r}", plugin=name)
        return record

    async def reload(self, name: str) -> PluginInfo:
        """Load the plugin's current files as a new version beside the running one, then swap.

        New calls go to the new version; calls in flight finish on the old one, whose instances
        are then released. If the new version fails (manifest, module, registration), the old
        one keeps serving and the error is raised (and shown in ``plugins[name].error``).
        """
        record = self._record(name)
        found = await anyio.to_thread.run_sync(self._discover_source, record.found.source)
        if found is None:
            raise PluginNotFound(f"{name}: its files are gone; uninstall it", plugin=name)
        await self._swap(record, found)
        return self.plugins[name]

    def _discover_source(self, source: Path) -> Discovered | None:
        return discover_one(
            source,
            self.settings.state_dir / "packages",
            limits=self.settings.archive_limits,
            trusted_keys=self.settings.trusted_keys,
            require_signatures=self.settings.require_signatures,
        )

    async def _swap(self, record: _Plugin, found: Discovered) -> None:
        name = record.name
        if found.error is not None:
            record.error = found.error
            if record.state is not PluginState.LOADED:
                record.state = PluginState.FAILED
            self.logs.log(name, "error", f"new version refused: {found.error.message}")
            raise found.error
        if found.name != name:
            error = ManifestError(
                f"{found.source.name}: the manifest now names the plugin {found.name!r}, not "
                f"{name!r}; a plugin cannot be renamed in place: uninstall and install it",
                plugin=name,
            )
            record.error = error
            raise error
        candidate = _Plugin(found, PluginState.DISCOVERED)
        try:
            pool = await self._build_pool(candidate)
            await self._ensure_registration(candidate, pool)
        except GoatKitError as exc:
            record.error = exc
            if record.state is not PluginState.LOADED:
                record.state = PluginState.FAILED
            self.logs.log(name, "error", f"new version refused, the old one serves: {exc.message}")
            raise
        async with record.lock:
            old = record.pool
            record.found = found
            record.registration = candidate.registration
            record.digest = candidate.digest
            record.error = None
            record._known = None
            if record.state is PluginState.DISABLED:
                record.pool = None
                await pool.close()
            else:
                pool.stats = record.stats  # the plugin's statistics go on across versions
                record.pool = pool
                record.state = PluginState.LOADED
        if old is not None:
            await old.close()  # calls holding its instances finish, then the instances go
        self.logs.log(
            name, "info", f"reloaded: version {found.manifest.version if found.manifest else '?'}"
        )
        self._refuse_route_collisions()
        await self._sync_jobs(record)

    async def install(self, filename: str, data: bytes) -> PluginInfo:
        """Install (or upgrade) a ``.zip`` package: checked like any package, then put in place.

        The package is extracted and validated first (safe extraction, manifest, module,
        registration); only then is it written into ``plugins_dir`` (atomically). A new plugin
        gets no grants: what its manifest asks for shows as ``pending`` for review.
        """
        stem = Path(filename).name
        if not stem.endswith(".zip") or not _SAFE_FILENAME.match(stem):
            raise PackageError(
                f"{filename!r}: a package must be a .zip file with a plain name "
                "(letters, digits, . _ -)",
                plugin=Path(filename).stem,
            )
        if len(data) > self.settings.archive_limits.max_total_size:
            raise PackageError(f"{stem}: the package is too large", plugin=Path(stem).stem)
        incoming = self.settings.state_dir / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        staged = incoming / stem
        target = self.settings.plugins_dir / stem
        await anyio.to_thread.run_sync(staged.write_bytes, data)
        try:
            found = await anyio.to_thread.run_sync(self._discover_source, staged)
            assert found is not None
            if found.error is not None:
                raise found.error
            existing = self._plugins.get(found.name)
            conflict = table_conflict(found.name, self._usable_names())
            if conflict is not None:
                raise PackageError(f"{stem}: {conflict}", plugin=found.name)
            if existing is not None and existing.found.package is None:
                raise PackageError(
                    f"{stem}: a plugin named {found.name!r} is installed as a directory "
                    f"({existing.found.source.name}); remove that directory first",
                    plugin=found.name,
                )
            # Check the module and registration before anything is put in place.
            candidate = _Plugin(found, PluginState.DISCOVERED)
            pool = await self._build_pool(candidate)
            await self._ensure_registration(candidate, pool)
            await pool.close()
            self.settings.plugins_dir.mkdir(parents=True, exist_ok=True)
            await anyio.to_thread.run_sync(os.replace, staged, target)
        finally:
            staged.unlink(missing_ok=True)
        found = await anyio.to_thread.run_sync(self._discover_source, target)
        assert found is not None
        if existing is not None:
            old_source = existing.found.source
            await self._swap(existing, found)
            if old_source != target and old_source.suffix == ".zip":
                old_source.unlink(missing_ok=True)
        else:
            record = _Plugin(found, PluginState.DISCOVERED, registration=candidate.registration)
            record.digest = candidate.digest
            self._plugins[found.name] = record
            self._refuse_route_collisions()
            await self._sync_jobs(record)
        self.logs.log(found.name, "info", f"installed from {stem}")
        await self.services.store.record_install(
            found.name,
            stem,
            hashlib.sha256(data).hexdigest(),
            found.manifest.version if found.manifest else "",
        )
        await self._changed()
        return self.plugins[found.name]

    async def uninstall(self, name: str) -> None:
        """Remove an installed package: its instances, routes, jobs, grants and file."""
        record = self._record(name)
        package = record.found.package
        if package is None:
            raise ConfigError(
                f"{name}: it is a plugin directory ({record.found.source.name}), not a package; "
                "remove it from plugins_dir yourself",
                plugin=name,
            )
        async with record.lock:
            if record.pool is not None:
                await record.pool.close()
                record.pool = None
            del self._plugins[name]
        package.unlink(missing_ok=True)
        await self.services.revoke(name, None)
        await self.services.store.delete_jobs(name)
        await self.services.store.forget_install(name)
        self.logs.log(name, "info", "uninstalled")
        self._routes_changed()
        await self._changed()

    async def unload(self, name: str) -> None:
        """Release ``name``'s instances; its registration stays known and it reloads on use."""
        record = self._record(name)
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
        if args is None:
            raw = None
        else:
            try:
                raw = _ENCODE(args).encode()
            except (TypeError, ValueError) as exc:
                raise PluginCallError(
                    f"{name}: {function}: the arguments cannot be sent as JSON ({exc})",
                    plugin=name,
                    function=function,
                ) from exc
        result = await self.call_json(name, function, raw, timeout=timeout)
        return decode_result(name, function, result)

    async def call_json(
        self, name: str, function: str, args: bytes | None, *, timeout: float | None = None
    ) -> bytes | None:
        """Like :meth:`call`, with the arguments and the result as raw JSON bytes.

        The result is passed on as the plugin produced it (a plugin-reported ``{"error"}`` is not
        turned into an exception here); the middleware uses this to relay JSON without decoding it.
        """
        record, pool = await self._loaded(name)
        known = record.known_functions()
        if known and function not in known:
            raise PluginCallError(
                f"{record.name}: no function {function!r}; it has {', '.join(sorted(known))}",
                plugin=record.name,
                function=function,
                code="unknown_function",
            )
        return await self._track(pool.call(function, args, self._timeout_for(record, timeout)))

    # -- capabilities, jobs, calls between plugins -------------------------------------------

    def _requested(self, name: str) -> Capabilities:
        record = self._plugins.get(name)
        if record is None or record.manifest is None:
            return Capabilities()
        return record.manifest.capabilities

    def _capabilities(self, name: str) -> Capabilities:
        """What ``name`` may do now: what it asked for, cut down to what it was granted."""
        return self.services.effective(name, self._requested(name))

    async def grant(
        self, name: str, capabilities: Capabilities | Mapping[str, Any]
    ) -> Capabilities:
        """Grant ``name`` more capabilities (added to what it has); persisted.

        ``capabilities`` has the manifest's shape: ``{"db": {"read": ["tickets"]}, "email": true}``.
        A grant beyond what the plugin's manifest asks for gives nothing more.
        """
        self._record(name)
        granted = await self.services.grant(name, _as_capabilities(capabilities))
        await self._sync_jobs(self._record(name))
        await self._changed()
        return granted

    async def revoke(
        self, name: str, capabilities: Capabilities | Mapping[str, Any] | None = None
    ) -> Capabilities:
        """Take back part of ``name``'s grant, or all of it with no ``capabilities``; persisted."""
        self._record(name)
        caps = None if capabilities is None else _as_capabilities(capabilities)
        left = await self.services.revoke(name, caps)
        await self._sync_jobs(self._record(name))
        await self._changed()
        return left

    # -- lifecycle: idle unload, memory budget, other workers, hot reload -------------------

    async def _maintain(self) -> None:
        """Background upkeep: idle unload, the memory budget, changes made by other workers."""
        interval = self.settings.sync_interval
        if self.settings.idle_timeout is not None:
            interval = min(interval, max(0.05, self.settings.idle_timeout / 4))
        while True:
            await anyio.sleep(interval)
            try:
                await self._unload_idle()
                await self._enforce_budget()
                await self._follow_other_workers()
            except Exception:  # upkeep must never stop; the next round tries again
                logger.exception("plugin upkeep failed; retrying")

    async def _unload_idle(self) -> None:
        limit = self.settings.idle_timeout
        if limit is None:
            return
        now = time.monotonic()
        for record in list(self._plugins.values()):
            pool = record.pool
            if pool is not None and pool.busy == 0 and now - pool.last_used >= limit:
                await self.unload(record.name)
                self.logs.log(record.name, "info", f"unloaded after {limit:g}s unused")

    async def _enforce_budget(self) -> None:
        """Near the memory budget, unload the least recently used idle plugins first."""
        budget_mb = self.settings.memory_budget_mb
        if budget_mb is None:
            return
        budget = budget_mb * 1024 * 1024
        if self.memory_in_use() <= 0.9 * budget:
            return
        loaded = [r for r in self._plugins.values() if r.pool is not None]
        for record in sorted(loaded, key=lambda r: r.pool.last_used if r.pool else 0.0):
            if self.memory_in_use() <= 0.8 * budget:
                break
            pool = record.pool
            if pool is None or pool.busy:
                continue  # never mid-call
            await self.unload(record.name)
            self.evictions.append(record.name)
            self.logs.log(
                record.name, "info", f"unloaded: the memory budget of {budget_mb} MiB is near"
            )

    async def _changed(self) -> None:
        """Tell other workers that shared state changed (grants, enabled, packages)."""
        self._state_version = await self.services.store.bump_state_version()

    async def _follow_other_workers(self) -> None:
        version = await self.services.store.state_version()
        if version == self._state_version:
            return
        self._state_version = version
        await self._apply_changes(self._unaccounted_entries())  # packages added or removed
        await self.services.reload_grants()
        disabled = await self.services.store.disabled_plugins()
        for record in list(self._plugins.values()):
            if record.name in disabled and record.state is not PluginState.DISABLED:
                await self._set_disabled(record, True)
            elif record.name not in disabled and record.state is PluginState.DISABLED:
                await self._set_disabled(record, False)
        await self._sync_jobs(*self._plugins.values())

    async def _watch(self) -> None:
        """Hot reload: follow changes in ``plugins_dir`` (debounced by watchfiles)."""
        import watchfiles

        root = self.settings.plugins_dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        async for changes in watchfiles.awatch(
            root, debounce=300, step=50, recursive=True, rust_timeout=1000, yield_on_timeout=True
        ):
            entries = {
                root / Path(path).relative_to(root).parts[0]
                for _, path in changes
                if Path(path) != root
            }
            if not changes:
                # A quiet second: reconcile, in case events were missed (for example changes
                # made while the watch was being set up).
                entries = self._unaccounted_entries()
            await self._apply_changes(entries)

    def _unaccounted_entries(self) -> set[Path]:
        """Entries of ``plugins_dir`` without a plugin, and plugins whose files are gone."""
        root = self.settings.plugins_dir
        known = {r.found.source.resolve() for r in self._plugins.values()}
        present = (
            {e.resolve() for e in root.iterdir() if is_candidate(e)} if root.is_dir() else set()
        )
        gone = {r.found.source for r in self._plugins.values() if not r.found.source.exists()}
        return (present - known) | gone

    async def _apply_changes(self, entries: set[Path]) -> None:
        for entry in sorted(entries):
            try:
                await self._apply_change(entry)
            except GoatKitError as exc:
                logger.warning("reload of %s: %s", entry.name, exc.message)
            except Exception:
                logger.exception("reload of %s failed", entry.name)

    async def _apply_change(self, entry: Path) -> None:
        """One changed entry of ``plugins_dir``: a new, changed or removed plugin."""
        owner = next(
            (r for r in self._plugins.values() if r.found.source.resolve() == entry.resolve()),
            None,
        )
        if not entry.exists():
            if owner is not None:
                async with owner.lock:
                    if owner.pool is not None:
                        await owner.pool.close()
                    self._plugins.pop(owner.name, None)
                self.logs.log(owner.name, "info", "removed: its files are gone")
                self._routes_changed()
            return
        found = await anyio.to_thread.run_sync(self._discover_source, entry)
        if found is None:
            return
        if owner is not None:
            if owner.state is PluginState.FAILED and owner.pool is None:
                # a plugin that never worked: start again from discovery
                self._plugins.pop(owner.name, None)
                owner = None
            elif found.manifest is not None and owner.found.manifest is not None:
                if self._same_files(owner, found):
                    return
                await self._swap(owner, found)
                return
        if owner is None and (found.name not in self._plugins):
            conflict = table_conflict(found.name, self._usable_names())
            if conflict is not None and found.error is None:
                error = ManifestError(f"{entry.name}: {conflict}", plugin=found.name)
                found = Discovered(found.name, found.source, found.directory, None, error)
            record = _Plugin(
                found,
                PluginState.FAILED if found.error else PluginState.DISCOVERED,
                error=found.error,
            )
            self._plugins[found.name] = record
            if found.error is None:
                await self._read_registration_safely(record)
                self._refuse_route_collisions()
                await self._sync_jobs(record)
            self.logs.log(found.name, "info", f"discovered {entry.name}")

    def _same_files(self, record: _Plugin, found: Discovered) -> bool:
        if found.manifest is not None and found.manifest.runtime == "grpc":
            return plugin_digest(found.manifest) == record.digest
        path = self._module_path(_Plugin(found, PluginState.DISCOVERED))
        try:
            digest = _file_digest(path) if path is not None else None
        except OSError:
            return False
        return (
            digest == record.digest
            and found.manifest == record.found.manifest
            and found.signature == record.found.signature
        )

    async def _sync_jobs(self, *records: _Plugin) -> None:
        await self.services.sync_registration_jobs(
            {
                r.name: (r.registration.jobs, self._capabilities(r.name).jobs)
                for r in records
                if r.registration is not None and r.state is not PluginState.FAILED
            }
        )

    async def _run_job(self, job: JobRow, now: float) -> Any:
        """Run one scheduled tick (called by the scheduler, which holds the lease)."""
        if not self._capabilities(job.plugin).jobs:
            raise PermissionDenied(
                f"{job.plugin}: job {job.job_id} did not run: the plugin lost its jobs grant",
                plugin=job.plugin,
            )
        args = None if job.args is None else _ENCODE(job.args).encode()
        raw = await self.call_json(job.plugin, job.callback, args)
        result = decode_result(job.plugin, job.callback, raw)
        self.logs.log(job.plugin, "info", f"job {job.job_id} ran ({job.callback})")
        return result

    async def installs(self) -> list[InstallRecord]:
        """Packages installed through :meth:`install` (file, digest, version, when)."""
        return await self.services.store.installs()

    async def jobs(self, name: str | None = None) -> list[JobRow]:
        """Scheduled jobs (of ``name``, or all): schedule, next and last run, last error."""
        return await self.services.store.jobs(name)

    async def _call_from_plugin(
        self, ctx: HostContext, target: str, function: str, args: bytes | None
    ) -> bytes | None:
        token = current_call_depth.set(ctx.depth + 1)
        try:
            timeout = max(0.001, min(ctx.remaining(), self.settings.max_call_timeout))
            return await self.call_json(target, function, args, timeout=timeout)
        finally:
            current_call_depth.reset(token)

    # -- web-facing: routes, menus, permissions, hooks ---------------------------------------

    def on_routes_changed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever plugin routes (or their plugins' states) change."""
        self._route_listeners.append(listener)

    def _routes_changed(self) -> None:
        self.routes_version += 1
        for listener in self._route_listeners:
            listener()

    def route_entries(self) -> list[RouteEntry]:
        """Every plugin route, including those of disabled plugins (they answer 404)."""
        entries = []
        for record in self._plugins.values():
            reg = record.registration
            if reg is None or record.state is PluginState.FAILED:
                continue
            for route in reg.routes:
                entries.append(RouteEntry(record.name, route))
        return entries

    def plugin_state(self, name: str) -> PluginState | None:
        """The state of ``name`` (cheap; no snapshot), or None when there is no such plugin."""
        record = self._plugins.get(name)
        return None if record is None else record.state

    def static_directory(self, name: str) -> Path | None:
        """The ``static/`` directory of a usable plugin, or None."""
        record = self._plugins.get(name)
        if record is None or record.state in (PluginState.FAILED, PluginState.DISABLED):
            return None
        directory = record.found.directory
        return None if directory is None else directory / "static"

    def _refuse_route_collisions(self) -> None:
        """Two plugins may not serve the same method and path: the later one (by name) fails."""
        owners: dict[tuple[str, str], str] = {}
        for record in sorted(self._plugins.values(), key=lambda r: r.name):
            reg = record.registration
            if reg is None or record.state is PluginState.FAILED:
                continue
            mine: list[tuple[str, str]] = []
            clash: tuple[int, str, str] | None = None
            for i, route in enumerate(reg.routes):
                shape = _PARAM.sub("{}", route.path)
                methods = ("*",) if route.method == "*" else (route.method, "*")
                for method in methods:
                    other = owners.get((method, shape))
                    if method == "*":
                        other = other or next(
                            (o for (m, p), o in owners.items() if p == shape), None
                        )
                    if other is not None and other != record.name:
                        clash = (i, other, f"{route.method} {route.path}")
                        break
                if clash:
                    break
                mine.append((route.method, shape))
            if clash is not None:
                index, other, what = clash
                self._fail(
                    record,
                    RegistrationError(
                        f"{record.name}: gk_register: routes[{index}]: {what} is already served "
                        f"by plugin {other!r}; change the path or remove one of the plugins",
                        plugin=record.name,
                    ),
                )
                continue
            for key in mine:
                owners[key] = record.name
        self._routes_changed()

    async def allowed(self, request: Any, permission: str | None) -> bool:
        """Whether the host's ``has_permission(request, permission)`` allows it (None: always)."""
        if not permission:
            return True
        check = self.settings.has_permission
        if check is None:
            return False  # a permission the host cannot check is never granted
        result = check(request, permission)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    def menu_items(
        self, request: Any = None, *, location: str | None = None
    ) -> list[PluginMenuItem]:
        """Menu items of every usable plugin that ``request``'s user may see, in display order.

        Items with a ``permission`` are shown only when ``has_permission(request, permission)``
        allows (a synchronous ``has_permission`` is needed here; without one such items are
        hidden). Paths are made absolute under the request's ``root_path``.
        """
        root = ""
        if request is not None:
            root = str(getattr(request, "scope", {}).get("root_path", "")).rstrip("/")
        items: list[PluginMenuItem] = []
        for record in self._plugins.values():
            reg = record.registration
            if reg is None or record.state in (PluginState.FAILED, PluginState.DISABLED):
                continue
            for item in reg.menu_items:
                converted = self._menu_item(record.name, item, request, root, location)
                if converted is not None:
                    items.append(converted)
        items.sort(key=lambda m: (m.location, m.order, m.label.lower()))
        return items

    def _menu_item(
        self, plugin: str, item: MenuItem, request: Any, root: str, location: str | None
    ) -> PluginMenuItem | None:
        if location is not None and item.location != location:
            return None
        if item.permission:
            check = self.settings.has_permission
            allowed = check(request, item.permission) if check is not None else False
            if inspect.isawaitable(allowed):
                allowed.close()  # type: ignore[attr-defined]
                raise ConfigError("menu_items() needs a synchronous has_permission; yours is async")
            if not allowed:
                return None
        children = tuple(
            c
            for c in (
                self._menu_item(plugin, child, request, root, None) for child in item.children
            )
            if c is not None
        )
        url = item.path if item.path.startswith(("http://", "https://")) else root + item.path
        return PluginMenuItem(
            plugin=plugin,
            id=item.id,
            label=item.label,
            url=url,
            icon=item.icon,
            location=item.location,
            parent=item.parent,
            order=item.order,
            children=children,
        )

    async def widgets(
        self, request: Any = None, *, location: str | None = None
    ) -> list[PluginWidget]:
        """Widgets of every usable plugin that ``request``'s user may see, in display order.

        ``location`` keeps only the widgets registered for it (e.g. ``"dashboard"``). The HTML
        is the handler's answer: :meth:`PluginTemplates.render_widgets` renders them.
        """
        widgets: list[PluginWidget] = []
        for record in self._plugins.values():
            reg = record.registration
            if reg is None or record.state in (PluginState.FAILED, PluginState.DISABLED):
                continue
            for widget in reg.widgets:
                if location is not None and widget.location != location:
                    continue
                if not await self.allowed(request, widget.permission):
                    continue
                widgets.append(
                    PluginWidget(
                        plugin=record.name,
                        id=widget.id,
                        title=widget.title,
                        handler=widget.handler,
                        location=widget.location,
                        size=widget.size,
                        order=widget.order,
                        refresh_sec=widget.refresh_sec if widget.refreshable else 0,
                    )
                )
        widgets.sort(key=lambda w: (w.order, w.title.lower(), w.plugin))
        return widgets

    async def fire_hook(self, hook: str, payload: Any = None) -> list[HookResult]:
        """Call every usable plugin that registered ``hook``, in a defined order.

        Order: the hook's ``priority`` (lower first), then the plugin name. One plugin's failure
        is logged and recorded in its :class:`HookResult`; it never stops the others. Plugins
        that are not loaded yet are loaded.
        """
        targets: list[tuple[int, str, str]] = []
        for record in self._plugins.values():
            reg = record.registration
            if reg is None or record.state in (PluginState.FAILED, PluginState.DISABLED):
                continue
            for h in reg.hooks:
                if h.name == hook:
                    targets.append((h.priority, record.name, h.handler))
        results: list[HookResult] = []
        for _priority, name, handler in sorted(targets):
            try:
                value = await self.call(name, handler, payload if payload is not None else {})
            except PluginReportedError as exc:
                # The plugin's own answer (a hook refusing a change): its normal behaviour.
                self.logs.log(name, "info", f"hook {hook} refused: {exc.detail}")
                results.append(HookResult(name, None, exc))
            except GoatKitError as exc:
                self.logs.log(name, "error", f"hook {hook} failed: {exc.message}")
                results.append(HookResult(name, None, exc))
            else:
                results.append(HookResult(name, value, None))
        return results

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
            stats=record.stats.snapshot(),
            totals=record.stats.totals(),
            requested=self._requested(record.name),
            granted=self.services.granted(record.name),
            effective=self._capabilities(record.name),
            pending=self.services.pending(record.name, self._requested(record.name)),
            signature=record.found.signature,
        )

    def info(self, name: str) -> PluginInfo | None:
        """A snapshot of one plugin (cheaper than ``plugins[name]``), or None."""
        record = self._plugins.get(name)
        return None if record is None else self._info(record)

    def _usable_names(self) -> list[str]:
        return [n for n, r in self._plugins.items() if r.found.manifest is not None]

    def plugin_names(self) -> list[str]:
        """The names of every discovered plugin, sorted."""
        return sorted(self._plugins)

    def install_jinja(
        self,
        env: jinja2.Environment,
        *,
        debug: bool = False,
        strict: bool = False,
        fallback: str = "",
    ) -> None:
        """Add ``{% use %}``, plugin templates and translations to ``env`` (see ``jinja.py``)."""
        from .jinja import install_jinja  # imported here: goatkit_asgi.jinja imports this module

        install_jinja(self, env, debug=debug, strict=strict, fallback=fallback)

    def admin_app(
        self,
        auth: Callable[[Any], Any] | None,
        *,
        secret_key: str | None = None,
        **options: Any,
    ) -> ASGIApp:
        """The plugin admin (pages and JSON API) to mount: ``Mount("/admin/plugins", app)``.

        ``auth(request)`` returns True (allowed), False (403) or None (not signed in: 401, or a
        redirect to ``login_url``); it may be async. ``secret_key`` (required) signs the CSRF
        tokens. Options: ``token`` (``Authorization: Bearer`` for automation), ``login_url``,
        ``max_upload_bytes`` (20 MiB), ``csrf_max_age`` (2 h), ``title``. See docs/admin.md.
        """
        from .web.admin import create_admin_app  # imported here: web/ depends on this module

        return create_admin_app(self, auth, secret_key=secret_key, **options)

    def translations(self, plugin: str) -> Translations | None:
        """``plugin``'s translations (its ``i18n/*.yaml`` over its registration's ``i18n``)."""
        return self._translations.get(plugin)

    def translate(self, plugin: str, key: str, locale: str | None = None, **params: Any) -> str:
        """Translate ``key`` with ``plugin``'s texts (``de-AT`` → ``de`` → ``en`` → the key).

        Without ``locale``, the language of the request being served is used (if any).
        """
        translations = self.translations(plugin)
        if translations is None:
            return format_text(key, params)
        if locale is None:
            header = current_accept_language.get()
            locale = negotiate_locale(header, translations.languages) if header else None
        return translations.gettext(key, locale, **params)

    def _translation_source(self, plugin: str) -> tuple[Path | None, object, Any] | None:
        record = self._plugins.get(plugin)
        if record is None:
            return None
        reg = record.registration
        return record.found.directory, record.digest, reg.i18n if reg is not None else None

    def _host_translate(self, ctx: HostContext, args: dict[str, Any]) -> dict[str, Any]:
        """``translate {"key", "locale"?, "args"?}`` → ``{"value"}`` (GoatKit's shape)."""
        key = str_arg(ctx, "translate", args, "key", limit=512)
        locale = args.get("locale") or args.get("lang")
        params = args.get("args") or {}
        if not isinstance(params, dict):
            params = {str(i): v for i, v in enumerate(params)} if isinstance(params, list) else {}
        return {"value": self.translate(ctx.plugin, key, str(locale) if locale else None, **params)}

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


def _as_capabilities(value: Capabilities | Mapping[str, Any]) -> Capabilities:
    if isinstance(value, Capabilities):
        return value

    def fail(message: str) -> Exception:
        return ConfigError(f"grant: {message}")

    return Capabilities.from_dict(dict(value), "capabilities", fail)


def _check_usable(record: _Plugin) -> None:
    if record.state is PluginState.DISABLED:
        raise PluginDisabled(
            f"{record.name}: the plugin is disabled; enable it first", plugin=record.name
        )
    if record.state is PluginState.FAILED:
        assert record.error is not None
        raise record.error


def decode_result(plugin: str, function: str, raw: bytes | None) -> Any:
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
        raise PluginReportedError(
            f"{plugin}: {function} failed: {message}",
            detail=str(message),
            plugin=plugin,
            function=function,
            code=code,
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
