"""The gRPC runtime: a native plugin in a process of its own, or at a remote endpoint.

A :class:`GrpcRuntime` offers the same interface as the WASM pool (``call``, ``register``,
``close``, ``stats``, ``instance_count``, ``busy``, ``memory_bytes()``, ``last_used``,
``inline_functions()``), so the platform can hold either. It speaks
``proto/goatkit/v1/plugin.proto``.

**Local plugins** (manifest ``command`` or ``binary``): the process starts on the first call
(see :mod:`.grpc_process` for its environment and limits), prints its handshake line, answers a
health check and gets ``Init`` with the address of the platform's ``Host`` service and a token of
its own. Calls are concurrent on one channel; each has a gRPC deadline of its ``call_timeout``.

Supervision: when the process exits, stops answering health checks, or stops serving, calls in
flight fail with :class:`~goatkit_asgi.errors.PluginCrashed` (they do not hang), and the next call
starts a new process, after a back-off that doubles from 0.1 s to 5 s while crashes continue.
More than ``max_crashes`` crashes within ``crash_window`` seconds put the runtime in a failed
state: calls raise :class:`~goatkit_asgi.errors.PluginLoadError` saying so, nothing is restarted,
and ``on_failed`` tells the platform (which marks the plugin failed until it is loaded again).
:meth:`GrpcRuntime.close` lets calls in flight finish, sends ``Shutdown``, then SIGTERM, then
SIGKILL, and leaves no process or socket behind.

**Remote plugins** (manifest ``endpoint``, optional ``tls``): the runtime only connects. gRPC
reconnects with back-off by itself; each time the connection is back, ``Init`` is sent again
(the service may have restarted). A remote plugin is never restarted nor marked failed by
crashes: its calls fail with ``PluginCrashed`` while it is unreachable. Its ``Host`` calls reach
this platform at ``GrpcHost.address``, which must then be reachable from it (see
:mod:`.grpc_host`: the ``Host`` service listens on a unix socket unless given a TCP address).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .._proto.goatkit.v1 import plugin_pb2 as pb
from .._proto.goatkit.v1 import plugin_pb2_grpc as pb_grpc
from ..errors import GoatKitError, PluginCallError, PluginCrashed, PluginLoadError, PluginTimeout
from ..packaging.manifest import Manifest
from .grpc_host import CHANNEL_OPTIONS, GrpcHost, Session
from .grpc_process import PluginProcess, plugin_argv
from .stats import CallStats

__all__ = ["DEFAULT_MEMORY_MB", "DEFAULT_START_TIMEOUT", "GrpcRuntime", "plugin_digest"]

DEFAULT_MEMORY_MB = 1024
"""Address-space cap (RLIMIT_AS) of a plugin process whose manifest sets no ``memory_mb``.

RLIMIT_AS counts reserved address space, not resident memory: a Python plugin on the SDK (with
gRPC's threads, and ``MALLOC_ARENA_MAX=2`` set for it) reserves about 250 MB before it does any
work, and runtimes that reserve large regions up front (Node.js, the JVM) need several
gigabytes. Set ``resources.memory_mb`` accordingly.
"""

DEFAULT_START_TIMEOUT = 10.0
"""Seconds a local plugin has from start to handshake line and first healthy answer."""

_READY = grpc.ChannelConnectivity.READY


class _Connection:
    """One channel to the plugin: its process (local plugins), session and watchers."""

    def __init__(
        self, channel: Any, process: PluginProcess | None, session: Session | None
    ) -> None:
        self.channel = channel
        self.stub: Any = pb_grpc.PluginStub(channel)
        self.health: Any = health_pb2_grpc.HealthStub(channel)
        self.process = process
        self.session = session
        self.lost: str | None = None  # why the connection ended by itself; None while alive
        self.closing = False  # ended on purpose: not a crash
        self.unresponsive = False
        self.tasks: list[asyncio.Task[None]] = []


class GrpcRuntime:
    """One gRPC plugin (local process or remote endpoint), and the calls made to it."""

    def __init__(
        self,
        manifest: Manifest,
        host: GrpcHost,
        *,
        config: Mapping[str, Any] | None = None,
        memory_mb: int | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        max_crashes: int = 5,
        crash_window: float = 60.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        health_interval: float = 5.0,
        health_timeout: float = 2.0,
        shutdown_grace: float = 2.0,
        on_failed: Callable[[PluginLoadError], None] | None = None,
    ) -> None:
        if manifest.runtime != "grpc":
            raise ValueError(f"{manifest.name}: runtime is {manifest.runtime}, not grpc")
        self.manifest = manifest
        self.plugin = manifest.name
        self.host = host
        self.config = dict(manifest.config if config is None else config)
        self.memory_mb = memory_mb or manifest.resources.memory_mb or DEFAULT_MEMORY_MB
        self.start_timeout = start_timeout
        self.max_crashes = max_crashes
        self.crash_window = crash_window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.shutdown_grace = shutdown_grace
        self.on_failed = on_failed
        self.stats = CallStats()
        self.last_used = time.monotonic()
        self.busy = 0
        self.restarts = 0  # processes started after a crash
        self.failed: PluginLoadError | None = None
        self._conn: _Connection | None = None
        self._lock = asyncio.Lock()
        self._crashes: deque[float] = deque()
        self._not_before = 0.0
        self._connect_failures = 0  # remote endpoints: failed attempts in a row
        self._last_failure = ""
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._disposals: set[asyncio.Task[None]] = set()

    # -- introspection -----------------------------------------------------------------------

    @property
    def remote(self) -> bool:
        return self.manifest.endpoint is not None

    @property
    def instance_count(self) -> int:
        conn = self._conn
        return 1 if conn is not None and conn.lost is None else 0

    @property
    def pid(self) -> int | None:
        """The pid of the running plugin process (None when remote or not running)."""
        conn = self._conn
        if conn is None or conn.process is None or conn.lost is not None:
            return None
        return conn.process.pid

    def memory_bytes(self) -> int:
        """Resident memory of the plugin process (0 when remote or not running)."""
        conn = self._conn
        return conn.process.rss_bytes() if conn is not None and conn.process else 0

    def inline_functions(self) -> frozenset[str]:
        return frozenset()

    def _what(self) -> str:
        if self.remote:
            return f"the plugin service at {self.manifest.endpoint}"
        return "the plugin process"

    # -- calls -------------------------------------------------------------------------------

    async def call(self, function: str, args: bytes | None, timeout: float) -> bytes | None:
        """Run ``function`` with JSON ``args`` in the plugin; return its JSON result (or None)."""
        self.last_used = time.monotonic()
        started = time.perf_counter()
        error: str | None = None
        try:
            conn = self._conn
            if conn is None or conn.lost is not None:
                conn = await self._connection(function, timeout)
            return await self._call(conn, function, args, timeout)
        except GoatKitError as exc:
            error = exc.code
            raise
        finally:
            self.stats.record(function, time.perf_counter() - started, error, inline=False)

    async def _call(
        self, conn: _Connection, function: str, args: bytes | None, timeout: float
    ) -> bytes | None:
        session = conn.session
        assert session is not None
        scope = session.begin(time.monotonic() + timeout)
        self.busy += 1
        self._idle.clear()
        try:
            reply = await conn.stub.Call(
                pb.CallRequest(function=function, args_json=args or b"", timeout_seconds=timeout),
                timeout=timeout,
                metadata=scope.metadata,
            )
        except grpc.aio.AioRpcError as exc:
            raise await self._call_failed(conn, function, timeout, exc) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if conn.lost is None or (task is not None and task.cancelling()):
                raise
            # The channel was closed under the call because the process went away.
            raise self._crashed(conn, function) from None
        finally:
            session.end(scope)
            self.busy -= 1
            if not self.busy:
                self._idle.set()
        if reply.HasField("error"):
            code = reply.error.code or "plugin_error"
            raise PluginCallError(
                f"{self.plugin}: {function} failed: {reply.error.message or code}",
                plugin=self.plugin,
                function=function,
                code=code,
            )
        return bytes(reply.result_json) or None

    async def _call_failed(
        self, conn: _Connection, function: str, timeout: float, exc: grpc.aio.AioRpcError
    ) -> GoatKitError:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return PluginTimeout(
                f"{self.plugin}: {function} did not finish within its limit of {timeout:g}s; "
                "make it faster or raise resources.call_timeout",
                plugin=self.plugin,
                function=function,
            )
        if conn.lost is not None or (code == grpc.StatusCode.UNAVAILABLE and not self.remote):
            if conn.lost is None and conn.process is not None:
                # Usually the process died: let its exit be seen, for an exact message.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.process.wait(), 0.5)
                reason = (
                    conn.process.exit_reason()
                    if conn.process.returncode is not None
                    else f"stopped serving gRPC ({exc.details()})"
                )
                self._lose(conn, reason)
            return self._crashed(conn, function)
        if code == grpc.StatusCode.UNAVAILABLE:
            return PluginCrashed(
                f"{self.plugin}: {function} failed: {self._what()} is unavailable "
                f"({exc.details()}); the connection is retried with back-off",
                plugin=self.plugin,
                function=function,
            )
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return PluginCallError(
                f"{self.plugin}: {function}: the arguments or the result are too large "
                f"({exc.details()})",
                plugin=self.plugin,
                function=function,
                code="too_large",
            )
        return PluginCallError(
            f"{self.plugin}: {function} failed in transport: gRPC status {code.name} "
            f"({exc.details()})",
            plugin=self.plugin,
            function=function,
            code=f"grpc_{code.name.lower()}",
        )

    def _crashed(self, conn: _Connection, function: str) -> PluginCrashed:
        then = (
            "it crashed too often and is marked failed"
            if self.failed is not None
            else "it is restarted on the next call"
        )
        return PluginCrashed(
            f"{self.plugin}: {function} failed: {self._what()} {conn.lost}; {then} "
            "(see the plugin log)",
            plugin=self.plugin,
            function=function,
        )

    # -- registration ------------------------------------------------------------------------

    async def register(self, timeout: float) -> bytes:
        """The registration JSON (``Plugin.Register``). Without a live connection, one is made
        for this alone and closed again: a local process is started and stopped."""
        self._check_usable()
        conn = self._conn
        temporary = conn is None or conn.lost is not None
        if temporary:
            conn = await self._open(init=False)
        assert conn is not None
        try:
            reply = await conn.stub.Register(
                pb.RegisterRequest(host_version=self.host.host_version), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise PluginLoadError(
                f"{self.plugin}: Register failed: gRPC status {exc.code().name} "
                f"({exc.details()}); the plugin must implement goatkit.v1.Plugin/Register",
                plugin=self.plugin,
            ) from exc
        finally:
            if temporary:
                await self._dispose(conn, graceful=True)
        if not reply.registration_json:
            raise PluginLoadError(
                f"{self.plugin}: Register returned no registration JSON; return at least "
                f'{{"name": "{self.plugin}"}}',
                plugin=self.plugin,
            )
        return bytes(reply.registration_json)

    # -- connections -------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.failed is not None:
            raise self.failed
        if self._closed:
            raise PluginCallError(
                f"{self.plugin}: the plugin was unloaded; call it again to load it anew",
                plugin=self.plugin,
                code="unloaded",
            )

    async def _connection(self, function: str, timeout: float) -> _Connection:
        """The live connection, made (or remade after a crash, after the back-off) if needed."""
        async with self._lock:
            self._check_usable()
            conn = self._conn
            if conn is not None and conn.lost is None:
                return conn
            wait = self._not_before - time.monotonic()
            if wait > 0 and self.remote:
                raise PluginCrashed(
                    f"{self.plugin}: {function} was not run: {self._what()} could not be "
                    f"reached ({self._last_failure}); the next attempt is in {wait:.1f}s",
                    plugin=self.plugin,
                    function=function,
                )
            if wait > timeout:
                raise PluginCrashed(
                    f"{self.plugin}: {function} was not run: {self._what()} is being restarted "
                    f"after a crash, in {wait:.1f}s; retry then",
                    plugin=self.plugin,
                    function=function,
                )
            if wait > 0:
                await asyncio.sleep(wait)
            if self._crashes:
                self.restarts += 1
            try:
                conn = await self._open(init=True)
            except PluginLoadError as exc:
                if self.remote:  # back off before the next attempt
                    self._connect_failures += 1
                    self._last_failure = exc.message
                    delay = self.backoff_initial * 2 ** (self._connect_failures - 1)
                    self._not_before = time.monotonic() + min(self.backoff_max, delay)
                elif self._crashes:  # a restart that fails is one more crash
                    self._count_crash(f"could not be restarted: {exc.message}")
                raise
            self._connect_failures = 0
            if self._closed:
                await self._dispose(conn, graceful=True)
                self._check_usable()
            self._conn = conn
            return conn

    async def _open(self, *, init: bool) -> _Connection:
        address = await self.host.start()
        if self.remote:
            channel = self._remote_channel()
            process = None
        else:
            process = await self._start_process()
            assert process.handshake is not None
            channel = grpc.aio.insecure_channel(process.handshake.target, options=CHANNEL_OPTIONS)
        session = self.host.open_session(self.plugin) if init else None
        conn = _Connection(channel, process, session)
        try:
            await self._first_health_check(conn)
            if session is not None:
                await self._init(conn, address, self.start_timeout)
        except BaseException:
            await self._dispose(conn, graceful=False)
            raise
        if init:
            self._supervise(conn)
        return conn

    async def _start_process(self) -> PluginProcess:
        manifest = self.manifest
        argv = plugin_argv(manifest.directory, command=manifest.command, binary=manifest.binary)
        return await PluginProcess.start(
            self.plugin,
            argv,
            cwd=manifest.directory,
            workdir=self.host.new_workdir(),
            log=self.host.log,
            memory_mb=self.memory_mb,
            start_timeout=self.start_timeout,
        )

    def _remote_channel(self) -> Any:
        endpoint = self.manifest.endpoint
        tls = self.manifest.tls
        if tls is None:
            return grpc.aio.insecure_channel(endpoint, options=CHANNEL_OPTIONS)
        files = {key: self._read_tls(key, path) for key, path in tls.items()}
        credentials = grpc.ssl_channel_credentials(
            root_certificates=files.get("ca"),
            private_key=files.get("key"),
            certificate_chain=files.get("cert"),
        )
        return grpc.aio.secure_channel(endpoint, credentials, options=CHANNEL_OPTIONS)

    def _read_tls(self, key: str, path: str) -> bytes:
        try:
            return (self.manifest.directory / path).read_bytes()
        except OSError as exc:
            raise PluginLoadError(
                f"{self.plugin}: cannot read tls.{key} file {path} ({exc.strerror}); fix the "
                "manifest's tls paths",
                plugin=self.plugin,
            ) from exc

    async def _first_health_check(self, conn: _Connection) -> None:
        try:
            reply = await conn.health.Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=self.start_timeout,
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:
            if conn.process is not None and conn.process.returncode is not None:
                why = f"{conn.process.exit_reason()} right after its handshake"
            else:
                why = f"does not answer health checks ({exc.code().name}: {exc.details()})"
            raise PluginLoadError(
                f"{self.plugin}: {self._what()} {why}; it must serve grpc.health.v1.Health "
                "beside goatkit.v1.Plugin",
                plugin=self.plugin,
            ) from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise PluginLoadError(
                f"{self.plugin}: {self._what()} reports health status "
                f"{health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}, not SERVING",
                plugin=self.plugin,
            )

    async def _init(self, conn: _Connection, address: str, timeout: float) -> None:
        assert conn.session is not None
        request = pb.InitRequest(
            plugin_name=self.plugin,
            host_version=self.host.host_version,
            host_address=address,
            host_token=conn.session.token,
            config=self.host.config_json(self.config),
        )
        try:
            await conn.stub.Init(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise PluginLoadError(
                f"{self.plugin}: Init failed: gRPC status {exc.code().name} ({exc.details()})",
                plugin=self.plugin,
            ) from exc

    # -- supervision -------------------------------------------------------------------------

    def _supervise(self, conn: _Connection) -> None:
        if conn.process is not None:
            conn.tasks.append(asyncio.ensure_future(self._watch_exit(conn)))
            conn.tasks.append(asyncio.ensure_future(self._watch_health(conn)))
        else:
            conn.tasks.append(asyncio.ensure_future(self._watch_remote(conn)))

    async def _watch_exit(self, conn: _Connection) -> None:
        assert conn.process is not None
        await conn.process.wait()
        if conn.unresponsive:
            reason = f"stopped answering health checks and was killed (pid {conn.process.pid})"
        else:
            reason = conn.process.exit_reason()
        self._lose(conn, reason)

    async def _watch_health(self, conn: _Connection) -> None:
        misses = 0
        while conn.lost is None:
            await asyncio.sleep(self.health_interval)
            try:
                reply = await conn.health.Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=self.health_timeout
                )
                healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                healthy = False
            misses = 0 if healthy else misses + 1
            if misses >= 2 and conn.lost is None and not conn.closing:
                assert conn.process is not None
                self.host.log(
                    self.plugin,
                    "error",
                    f"the plugin process (pid {conn.process.pid}) failed two health checks "
                    "in a row; killing it",
                )
                conn.unresponsive = True
                conn.process.kill()
                return

    async def _watch_remote(self, conn: _Connection) -> None:
        """Re-send Init whenever the connection comes back; log when health changes."""
        channel = conn.channel
        state = channel.get_state(try_to_connect=False)
        healthy = True
        next_check = time.monotonic() + self.health_interval
        while not conn.closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    channel.wait_for_state_change(state),
                    max(0.0, next_check - time.monotonic()),
                )
            new = channel.get_state(try_to_connect=False)
            if new == _READY and state != _READY:
                try:
                    await self._init(conn, self.host.address, self.health_timeout)
                except PluginLoadError as exc:
                    self.host.log(self.plugin, "warn", f"reconnected, but {exc.message}")
                else:
                    self.host.log(self.plugin, "info", f"reconnected to {self.manifest.endpoint}")
            state = new
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.health_interval
                try:
                    reply = await conn.health.Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=self.health_timeout
                    )
                    ok = reply.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.aio.AioRpcError:
                    ok = False
                if ok != healthy:
                    healthy = ok
                    self.host.log(
                        self.plugin,
                        "info" if ok else "warn",
                        f"{self._what()} is {'healthy again' if ok else 'not healthy'}",
                    )
                state = channel.get_state(try_to_connect=False)

    def _lose(self, conn: _Connection, reason: str) -> None:
        """``conn`` ended by itself (once per connection): count a crash, clean up."""
        if conn.lost is not None:
            return
        conn.lost = reason
        if self._conn is conn:
            self._conn = None
        if conn.closing:
            return
        self.host.log(self.plugin, "error", f"{self._what()} {reason}")
        self._count_crash(reason)
        task = asyncio.ensure_future(self._dispose(conn, graceful=False))
        self._disposals.add(task)
        task.add_done_callback(self._disposals.discard)

    def _count_crash(self, reason: str) -> None:
        now = time.monotonic()
        crashes = self._crashes
        crashes.append(now)
        while crashes and crashes[0] < now - self.crash_window:
            crashes.popleft()
        if len(crashes) > self.max_crashes and self.failed is None:
            self.failed = PluginLoadError(
                f"{self.plugin}: {self._what()} crashed {len(crashes)} times within "
                f"{self.crash_window:g}s (last: {reason}) and is no longer restarted; fix the "
                "plugin, then load it again (platform.load or the admin's Load button)",
                plugin=self.plugin,
            )
            self.host.log(self.plugin, "error", self.failed.message)
            if self.on_failed is not None:
                self.on_failed(self.failed)
            return
        delay = self.backoff_initial * 2 ** (len(crashes) - 1)
        self._not_before = now + min(self.backoff_max, delay)

    async def _dispose(self, conn: _Connection, *, graceful: bool) -> None:
        """End ``conn``: Shutdown (graceful, local), stop the process, close channel and session."""
        conn.closing = True
        current = asyncio.current_task()
        for task in conn.tasks:
            if task is not current:
                task.cancel()
        try:
            if conn.process is not None:
                if graceful and conn.lost is None:
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await conn.stub.Shutdown(
                            pb.ShutdownRequest(), timeout=min(1.0, self.shutdown_grace)
                        )
                else:
                    await conn.channel.close()  # fails calls in flight now
                await conn.process.stop(self.shutdown_grace if graceful else 0)
        finally:
            await conn.channel.close()
            if conn.session is not None:
                self.host.close_session(conn.session)

    async def close(self) -> None:
        """Stop the plugin: calls in flight get up to ``shutdown_grace`` seconds to finish, then
        ``Shutdown``, SIGTERM, SIGKILL. Later calls raise ``PluginCallError`` (code
        ``unloaded``)."""
        self._closed = True
        async with self._lock:  # a connection being made finishes first (and is closed)
            conn, self._conn = self._conn, None
        if conn is not None and conn.lost is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.shutdown_grace)
            await self._dispose(conn, graceful=True)
        for task in list(self._disposals):
            with contextlib.suppress(Exception):
                await task


def plugin_digest(manifest: Manifest) -> str:
    """What the platform caches a gRPC plugin's registration under.

    It covers the manifest file, the endpoint, and for a local plugin the program and every
    argument that names a file in the plugin directory (``plugin.py``), so editing any of them
    makes the platform read the registration again. A remote service's registration is cached
    until its manifest changes: raise the manifest's ``version`` when the service's changes.
    """
    h = hashlib.sha256(b"goatkit-grpc/1\0")
    directory = manifest.directory

    def add(path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError:
            return
        h.update(f"{path.name}\0{len(data)}\0".encode())
        h.update(data)

    add(manifest.source)
    h.update(f"endpoint\0{manifest.endpoint or ''}\0".encode())
    if manifest.binary is not None:
        add(directory / manifest.binary)
    for arg in manifest.command or ():
        if arg.startswith("-") or arg.startswith("/"):
            continue
        path = directory / arg
        with contextlib.suppress(OSError, ValueError):
            if path.is_file() and path.resolve().is_relative_to(directory.resolve()):
                add(path)
    return h.hexdigest()
