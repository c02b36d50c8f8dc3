"""pytest fixtures for plugin authors (a pytest plugin, registered as ``goatkit``).

With goatkit_asgi installed, a plugin's tests can ask for:

``goatkit_plugin``
    The plugin of the test's directory (the first directory upwards from the test file that
    holds a ``manifest.yaml`` or ``plugin.yaml``), loaded into a started :class:`Platform` with a
    temporary SQLite database, granted what its manifest asks for. ``.call(fn, args)`` runs a
    function::

        def test_hello(goatkit_plugin):
            assert goatkit_plugin.call("hello", {"name": "Ada"}) == {"message": "Hello, Ada!"}

        @pytest.mark.anyio
        async def test_hello_async(goatkit_plugin):
            assert await goatkit_plugin.call("hello", {"name": "Ada"}) == {...}

    ``.call`` returns the result in plain tests and an awaitable in async ones (the platform runs
    on an event loop of its own, in a thread, so both kinds of test can use it). Mark a test to
    choose another plugin or other settings::

        @pytest.mark.goatkit_plugin("../other-plugin", grants={}, config={"days": 7})

    ``grants`` replaces "what the manifest asks for" (``{}`` grants nothing), ``config`` gives
    ``config_get`` values, and any other keyword goes to :class:`Platform`.

``goatkit_fake_host``
    A :class:`FakeHost`. A test that asks for it gets its ``goatkit_plugin`` (WASM only) running
    on it instead of on a platform: host calls are answered from ``responses`` and recorded in
    ``calls``, so plugin logic can be tested without databases or networks::

        def test_weather(goatkit_fake_host, goatkit_plugin):
            goatkit_fake_host.responses["http_request"] = {"status": 200, "headers": {}, "body": ""}
            goatkit_plugin.call("forecast", {"city": "Oslo"})
            assert goatkit_fake_host.calls[0].function == "http_request"

``goatkit_platform_factory``
    Builds started platforms: ``goatkit_platform_factory(plugins_dir, grants=..., auto_grant=...,
    **platform_options)`` returns a :class:`PlatformHandle` (``.call(plugin, fn, args)``,
    ``.run(coroutine_function, *args)``, ``.platform``). Each gets its own state directory and
    SQLite database; all are stopped after the test.

``--goatkit-database-url URL`` runs the platforms on that database instead of a temporary SQLite
file (for example a throwaway PostgreSQL database).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from .errors import GoatKitError, HostCallError, PluginLoadError
from .packaging.manifest import MANIFEST_NAMES, Manifest, load_manifest
from .platform import Platform, PluginInfo, decode_result
from .registration import Registration, parse_registration

__all__ = [
    "FakeHost",
    "HostCall",
    "PlatformFactory",
    "PlatformHandle",
    "PluginHandle",
    "find_plugin_dir",
]

T = TypeVar("T")

_STOP_TIMEOUT = 60.0


def _in_async_context() -> bool:
    """Whether the calling thread is running async code (an asyncio or trio event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return True
    trio: Any = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


# --- platforms -----------------------------------------------------------------------------------


async def _host(platform: Platform, *, task_status: Any) -> None:
    # One task starts and stops the platform, as Platform requires.
    stop = anyio.Event()
    async with platform:
        task_status.started(stop)
        await stop.wait()


class PlatformHandle:
    """A started :class:`Platform` running on an event loop in a thread of its own.

    ``.platform`` is the platform itself (read ``.plugins`` and ``.logs`` freely; run its
    coroutines with :meth:`run` / :meth:`arun`, not on another event loop).
    """

    def __init__(self, platform: Platform, portal: anyio.from_thread.BlockingPortal) -> None:
        self.platform = platform
        self.portal = portal
        self._stop: anyio.Event | None = None
        self._task: Future[Any] | None = None

    def _start(self) -> None:
        self._task, self._stop = self.portal.start_task(_host, self.platform)

    def _close(self) -> None:
        if self._stop is None or self._task is None:
            return
        stop, self._stop = self._stop, None
        self.portal.call(stop.set)
        self._task.result(timeout=_STOP_TIMEOUT)

    @property
    def plugins(self) -> Mapping[str, PluginInfo]:
        return self.platform.plugins

    def run(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await func(*args)`` on the platform's event loop and return its result."""
        return self.portal.call(func, *args)

    async def arun(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """:meth:`run` for async tests."""
        return await anyio.to_thread.run_sync(self.portal.call, func, *args)

    def call_sync(
        self, plugin: str, function: str, args: Any = None, *, timeout: float | None = None
    ) -> Any:
        """``await platform.call(plugin, function, args)``, from a plain test."""
        return self.portal.call(_call, self.platform, plugin, function, args, timeout)

    async def acall(
        self, plugin: str, function: str, args: Any = None, *, timeout: float | None = None
    ) -> Any:
        """``await platform.call(plugin, function, args)``, from an async test."""
        return await anyio.to_thread.run_sync(
            lambda: self.call_sync(plugin, function, args, timeout=timeout)
        )

    def call(
        self, plugin: str, function: str, args: Any = None, *, timeout: float | None = None
    ) -> Any:
        """The result of the call in plain tests; an awaitable of it in async tests."""
        if _in_async_context():
            return self.acall(plugin, function, args, timeout=timeout)
        return self.call_sync(plugin, function, args, timeout=timeout)

    def log_messages(self, plugin: str) -> list[str]:
        """The messages of ``plugin``'s log, oldest first."""
        return [record.message for record in self.platform.logs.records(plugin)]


async def _call(
    platform: Platform, plugin: str, function: str, args: Any, timeout: float | None
) -> Any:
    return await platform.call(plugin, function, args, timeout=timeout)


class PlatformFactory:
    """What ``goatkit_platform_factory`` returns: call it to get a started platform."""

    def __init__(self, root: Path, *, database_url: str | None = None) -> None:
        self.root = root
        self.database_url = database_url
        self._stack = ExitStack()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._handles: list[PlatformHandle] = []
        self._count = 0

    def __call__(
        self,
        plugins_dir: str | Path | None = None,
        *,
        grants: Mapping[str, Mapping[str, Any]] | None = None,
        auto_grant: bool = False,
        **options: Any,
    ) -> PlatformHandle:
        self._count += 1
        home = self.root / f"platform-{self._count}"
        home.mkdir(parents=True, exist_ok=True)
        if plugins_dir is None:
            plugins_dir = home / "plugins"
            plugins_dir.mkdir(exist_ok=True)
        options.setdefault("state_dir", home / "state")
        options.setdefault(
            "database_url", self.database_url or f"sqlite:///{(home / 'goatkit.db').as_posix()}"
        )
        options.setdefault("hot_reload", False)
        platform = Platform(plugins_dir, grants=grants, auto_grant=auto_grant, **options)
        if self._portal is None:
            self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        handle = PlatformHandle(platform, self._portal)
        handle._start()
        self._handles.append(handle)
        return handle

    def close(self) -> None:
        """Stop every platform made here, then the event loop thread."""
        errors: list[BaseException] = []
        for handle in reversed(self._handles):
            try:
                handle._close()
            except BaseException as exc:  # stop the others anyway
                errors.append(exc)
        self._handles.clear()
        self._stack.close()
        self._portal = None
        if errors:
            raise errors[0]


# --- a fake host ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostCall:
    """One host call a plugin made to a :class:`FakeHost`."""

    function: str
    args: Any


class FakeHost:
    """A stand-in for the host API, for running a WASM plugin without a platform.

    ``responses`` maps a host function to its JSON result, or to a callable taking the call's
    arguments and returning the result (raise a :class:`~goatkit_asgi.errors.GoatKitError`
    such as ``CapabilityDenied`` to make the call fail). ``log``, ``cache_get``, ``cache_set``,
    ``cache_delete`` and ``config_get`` work out of the box (in memory; ``config`` holds the
    configuration) unless ``responses`` overrides them; any other function fails with the code
    ``not_faked``. Every call is recorded in ``calls``, every log line in ``logs``.
    """

    def __init__(
        self,
        responses: Mapping[str, Any] | None = None,
        *,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.responses: dict[str, Any] = dict(responses or {})
        self.config: dict[str, Any] = dict(config or {})
        self.cache: dict[str, bytes] = {}
        self.calls: list[HostCall] = []
        self.logs: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    # HostBridge
    def host_call(self, plugin: str, function: str, args: bytes, deadline: float) -> bytes:
        try:
            decoded = json.loads(args) if args else None
        except ValueError as exc:
            raise HostCallError(
                f"{plugin}: {function}: the arguments are not JSON ({exc})",
                plugin=plugin,
                function=function,
                code="bad_input",
            ) from exc
        with self._lock:
            self.calls.append(HostCall(function, decoded))
        if function in self.responses:
            answer = self.responses[function]
            result = answer(decoded) if callable(answer) else answer
        else:
            result = self._builtin(plugin, function, decoded)
        return json.dumps(result, separators=(",", ":")).encode()

    def log(self, plugin: str, level: str, message: str) -> None:
        with self._lock:
            self.logs.append((level, message))

    def _builtin(self, plugin: str, function: str, args: Any) -> Any:
        data = args if isinstance(args, dict) else {}
        key = str(data.get("key", ""))
        if function == "log":
            self.log(plugin, str(data.get("level", "info")), str(data.get("message", "")))
            return {"ok": True}
        if function == "cache_get":
            value = self.cache.get(key)
            if value is None:
                return {"value": None, "found": False}
            return {"value": base64.b64encode(value).decode(), "found": True}
        if function == "cache_set":
            self.cache[key] = base64.b64decode(str(data.get("value", "")))
            return {"ok": True}
        if function == "cache_delete":
            return {"ok": True, "deleted": self.cache.pop(key, None) is not None}
        if function == "config_get":
            if key in self.config:
                return {"value": self.config[key], "found": True}
            return {"value": None, "found": False}
        raise HostCallError(
            f"{plugin}: host function {function} is not faked; set "
            f"goatkit_fake_host.responses[{function!r}]",
            plugin=plugin,
            function=function,
            code="not_faked",
        )


class _FakeRunner:
    """A WASM plugin instantiated directly on a :class:`FakeHost` (no platform)."""

    def __init__(self, manifest: Manifest, host: FakeHost) -> None:
        from .runtime.wasm import WasmEngine

        self.name = manifest.name
        self.timeout = manifest.resources.call_timeout or 5.0
        self.memory = (manifest.resources.memory_mb or 16) * 1024 * 1024
        self.host = host
        self.engine = WasmEngine()
        self.engine.ticker.start()
        self._lock = threading.Lock()
        try:
            path = manifest.directory / (manifest.wasm or "plugin.wasm")
            self.module = self.engine.compile(path.read_bytes(), plugin=self.name, source=path.name)
            self.instance = self._instantiate()
            raw = self.instance.register(self.timeout)
            self.registration = parse_registration(raw, plugin=self.name)
        except BaseException:
            self.engine.close()
            raise

    def _instantiate(self) -> Any:
        return self.module.instantiate(
            self.host, memory_limit=self.memory, init_timeout=self.timeout
        )

    def call(self, function: str, args: Any, timeout: float | None) -> Any:
        raw = None if args is None else json.dumps(args, separators=(",", ":")).encode()
        with self._lock:
            if self.instance.broken:
                self.instance = self._instantiate()
            result = self.instance.call(function, raw, timeout or self.timeout)
        return decode_result(self.name, function, result)

    def close(self) -> None:
        self.engine.close()


# --- one plugin ----------------------------------------------------------------------------------


class PluginHandle:
    """What ``goatkit_plugin`` returns: one plugin, loaded and ready to call."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        platform: PlatformHandle | None = None,
        fake: _FakeRunner | None = None,
    ) -> None:
        self.manifest = manifest
        self.name = manifest.name
        self.directory = manifest.directory
        self.platform = platform
        self._fake = fake

    @property
    def info(self) -> PluginInfo | None:
        """The platform's view of the plugin (None on a fake host)."""
        return None if self.platform is None else self.platform.platform.info(self.name)

    @property
    def registration(self) -> Registration | None:
        if self._fake is not None:
            return self._fake.registration
        info = self.info
        return None if info is None else info.registration

    def call_sync(self, function: str, args: Any = None, *, timeout: float | None = None) -> Any:
        """Call ``function`` with JSON-able ``args`` and return its result (plain tests)."""
        if self._fake is not None:
            return self._fake.call(function, args, timeout)
        assert self.platform is not None
        return self.platform.call_sync(self.name, function, args, timeout=timeout)

    async def acall(self, function: str, args: Any = None, *, timeout: float | None = None) -> Any:
        """:meth:`call_sync` for async tests."""
        return await anyio.to_thread.run_sync(
            lambda: self.call_sync(function, args, timeout=timeout)
        )

    def call(self, function: str, args: Any = None, *, timeout: float | None = None) -> Any:
        """The result of the call in plain tests; an awaitable of it in async tests.

        Errors are raised as on the platform: :class:`~goatkit_asgi.errors.PluginCallError`
        (with the plugin's code) and its subclasses.
        """
        if _in_async_context():
            return self.acall(function, args, timeout=timeout)
        return self.call_sync(function, args, timeout=timeout)

    def log_messages(self) -> list[str]:
        """The messages the plugin logged, oldest first."""
        if self._fake is not None:
            return [message for _, message in self._fake.host.logs]
        assert self.platform is not None
        return self.platform.log_messages(self.name)


def find_plugin_dir(start: Path) -> Path | None:
    """The first directory from ``start`` upwards that holds a plugin manifest."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if any((directory / name).is_file() for name in MANIFEST_NAMES):
            return directory
    return None


def _plugin_dir(request: pytest.FixtureRequest, path: str | Path | None) -> Path:
    here = Path(str(request.path)).parent
    if path is not None:
        directory = (here / Path(path)).resolve()
        if not any((directory / name).is_file() for name in MANIFEST_NAMES):
            pytest.fail(f"goatkit_plugin: no plugin manifest in {directory}", pytrace=False)
        return directory
    found = find_plugin_dir(here)
    if found is None:
        pytest.fail(
            f"goatkit_plugin: no manifest.yaml or plugin.yaml in {here} or above it; put the "
            "tests inside the plugin or mark the test @pytest.mark.goatkit_plugin(path)",
            pytrace=False,
        )
    return found


def _check_built(manifest: Manifest) -> None:
    if manifest.runtime != "wasm":
        return
    module = manifest.directory / (manifest.wasm or "plugin.wasm")
    if not module.is_file():
        pytest.fail(
            f"{manifest.name}: {module.name} does not exist; build the plugin first "
            "(gk plugin build)",
            pytrace=False,
        )


def _link_into(plugins: Path, manifest: Manifest) -> None:
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / manifest.name
    try:
        link.symlink_to(manifest.directory, target_is_directory=True)
    except OSError:  # no symbolic links here: copy (without caches and VCS data)
        shutil.copytree(
            manifest.directory,
            link,
            ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "*.db"),
        )


# --- the fixtures --------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("goatkit", "goatkit_asgi plugin testing")
    group.addoption(
        "--goatkit-database-url",
        default=None,
        help="database of the platforms made by the goatkit fixtures (default: a temporary "
        "SQLite file per platform)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "goatkit_plugin(path=None, *, grants=None, config=None, **platform_options): the plugin "
        "that the goatkit_plugin fixture loads, and how",
    )


@pytest.fixture
def goatkit_platform_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformFactory]:
    """Make started platforms (see :class:`PlatformFactory`); all stop after the test."""
    factory = PlatformFactory(
        tmp_path_factory.mktemp("goatkit"),
        database_url=request.config.getoption("goatkit_database_url", None),
    )
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def goatkit_fake_host() -> FakeHost:
    """A :class:`FakeHost`; ``goatkit_plugin`` in the same test then runs on it."""
    return FakeHost()


@pytest.fixture
def goatkit_plugin(
    request: pytest.FixtureRequest,
    goatkit_platform_factory: PlatformFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PluginHandle]:
    """The plugin of the test's directory, loaded and ready to call (see the module doc)."""
    marker = request.node.get_closest_marker("goatkit_plugin")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    path = options.pop("path", None)
    if path is None and marker is not None and marker.args:
        path = marker.args[0]
    directory = _plugin_dir(request, path)
    failure: str | None = None
    try:
        manifest = load_manifest(directory)
    except GoatKitError as exc:
        failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    _check_built(manifest)
    grants = options.pop("grants", None)
    config = options.pop("config", None)
    if "goatkit_fake_host" in request.fixturenames:
        host: FakeHost = request.getfixturevalue("goatkit_fake_host")
        if manifest.runtime != "wasm":
            pytest.fail(
                f"{manifest.name}: goatkit_fake_host runs WASM plugins only; this one is "
                f"runtime {manifest.runtime}",
                pytrace=False,
            )
        if config:
            host.config.update(config)
        runner = _FakeRunner(manifest, host)
        try:
            yield PluginHandle(manifest, fake=runner)
        finally:
            runner.close()
        return
    if grants is None:
        asked = manifest.capabilities.to_dict()
        grants = {manifest.name: asked} if asked else {}
    if config:
        options.setdefault("plugin_config", {manifest.name: dict(config)})
    plugins = tmp_path_factory.mktemp("plugins")
    _link_into(plugins, manifest)
    handle = goatkit_platform_factory(plugins, grants=grants, **options)
    try:
        handle.run(handle.platform.load, manifest.name)
    except PluginLoadError as exc:
        failure = f"{manifest.name} did not load: {exc}"
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    yield PluginHandle(manifest, platform=handle)
