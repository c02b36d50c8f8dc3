"""The host function API: one table of functions that WASM ``gk.host_call`` and gRPC ``Host.Call``
both reach, with GoatKit's JSON shapes (DESIGN §4).

A host function takes the calling plugin and its decoded JSON arguments and returns a JSON-able
value; it raises :class:`~goatkit_asgi.errors.HostCallError` (bad arguments, backend failure) or
:class:`~goatkit_asgi.errors.CapabilityDenied`. Functions are sync (cheap, thread-safe: run in the
calling worker thread) or async (run on the event loop).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import GoatKitError, HostCallError
from ..packaging.manifest import Capabilities
from .cache import CacheBackend
from .log import PluginLogs

MAX_CACHE_KEY = 512
MAX_CACHE_VALUE = 1024 * 1024


@dataclass(frozen=True)
class HostContext:
    """Who is calling, what it may do, for whom and until when."""

    plugin: str
    deadline: float
    caps: Capabilities = field(default_factory=Capabilities)
    user: str | None = None  # the signed-in user of the request being served, if any
    depth: int = 0  # how many plugin_call hops led here

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())


SyncHostFunction = Callable[[HostContext, dict[str, Any]], Any]
AsyncHostFunction = Callable[[HostContext, dict[str, Any]], Awaitable[Any]]


def _bad(ctx: HostContext, function: str, message: str) -> HostCallError:
    return HostCallError(
        f"{function}: {message}", plugin=ctx.plugin, function=function, code="bad_request"
    )


def str_arg(
    ctx: HostContext, function: str, args: dict[str, Any], key: str, *, limit: int = 1 << 16
) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise _bad(ctx, function, f'"{key}" must be a non-empty string')
    if len(value) > limit:
        raise _bad(ctx, function, f'"{key}" is longer than {limit} characters')
    return value


class HostAPI:
    """The table of host functions and their dispatch."""

    def __init__(
        self,
        *,
        cache: CacheBackend,
        logs: PluginLogs,
        config: Callable[[str], Mapping[str, Any]],
    ) -> None:
        self.cache = cache
        self.logs = logs
        self._config = config
        self.sync_functions: dict[str, SyncHostFunction] = {
            "log": self.log,
            "cache_get": self.cache_get,
            "cache_set": self.cache_set,
            "cache_delete": self.cache_delete,
            "config_get": self.config_get,
        }
        self.async_functions: dict[str, AsyncHostFunction] = {}

    def names(self) -> list[str]:
        return sorted({*self.sync_functions, *self.async_functions})

    # -- dispatch ----------------------------------------------------------------------------

    def decode(self, ctx: HostContext, function: str, raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            args = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad(ctx, function, f"arguments are not valid JSON ({exc})") from exc
        if not isinstance(args, dict):
            raise _bad(ctx, function, "arguments must be a JSON object")
        return args

    def unknown(self, ctx: HostContext, function: str) -> HostCallError:
        return HostCallError(
            f"{ctx.plugin}: unknown host function {function!r}; "
            f"available: {', '.join(self.names())}",
            plugin=ctx.plugin,
            function=function,
            code="unknown_function",
        )

    def call_sync(
        self,
        ctx: HostContext,
        function: str,
        raw: bytes,
        run_async: Callable[[Callable[[], Awaitable[Any]]], Any],
    ) -> bytes:
        """Run a host function from a worker thread; ``run_async`` reaches the event loop."""
        sync, afn, args = self._resolve(ctx, function, raw)
        result = sync(ctx, args) if sync is not None else run_async(lambda: afn(ctx, args))
        return _encode(result)

    async def call_async(self, ctx: HostContext, function: str, raw: bytes) -> bytes:
        """Run a host function from the event loop (the gRPC Host service)."""
        sync, afn, args = self._resolve(ctx, function, raw)
        result = sync(ctx, args) if sync is not None else await afn(ctx, args)
        return _encode(result)

    def _resolve(
        self, ctx: HostContext, function: str, raw: bytes
    ) -> tuple[SyncHostFunction | None, AsyncHostFunction, dict[str, Any]]:
        """The function (sync, else async) and its decoded arguments; unknown names refused."""
        sync = self.sync_functions.get(function)
        afn = self.async_functions.get(function)
        if sync is None and afn is None:
            raise self.unknown(ctx, function)
        return sync, afn or _never, self.decode(ctx, function, raw)

    # -- always-allowed functions -----------------------------------------------------------

    def log(self, ctx: HostContext, args: dict[str, Any]) -> dict[str, Any]:
        message = args.get("message")
        if not isinstance(message, str):
            raise _bad(ctx, "log", '"message" must be a string')
        level = args.get("level", "info")
        if isinstance(level, int) and not isinstance(level, bool):
            level = ("debug", "info", "warn", "error")[level] if 0 <= level <= 3 else "info"
        if not isinstance(level, str):
            raise _bad(ctx, "log", '"level" must be one of debug, info, warn, error')
        fields = args.get("fields")
        if fields is not None and not isinstance(fields, dict):
            raise _bad(ctx, "log", '"fields" must be an object')
        self.logs.log(ctx.plugin, level, message[: 64 * 1024], fields)
        return {"ok": True}

    def cache_get(self, ctx: HostContext, args: dict[str, Any]) -> dict[str, Any]:
        key = str_arg(ctx, "cache_get", args, "key", limit=MAX_CACHE_KEY)
        value = self.cache.get(ctx.plugin, key)
        if value is None:
            return {"value": None, "found": False}
        return {"value": base64.b64encode(value).decode(), "found": True}

    def cache_set(self, ctx: HostContext, args: dict[str, Any]) -> dict[str, Any]:
        key = str_arg(ctx, "cache_set", args, "key", limit=MAX_CACHE_KEY)
        raw = args.get("value")
        if not isinstance(raw, str):
            raise _bad(ctx, "cache_set", '"value" must be a base64 string')
        try:
            value = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad(ctx, "cache_set", '"value" is not valid base64') from exc
        if len(value) > MAX_CACHE_VALUE:
            raise _bad(ctx, "cache_set", f'"value" is larger than {MAX_CACHE_VALUE} bytes')
        ttl = args.get("ttl", 0)
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0:
            raise _bad(ctx, "cache_set", '"ttl" must be a number of seconds >= 0 (0: no expiry)')
        self.cache.set(ctx.plugin, key, value, float(ttl) or None)
        return {"ok": True}

    def cache_delete(self, ctx: HostContext, args: dict[str, Any]) -> dict[str, Any]:
        key = str_arg(ctx, "cache_delete", args, "key", limit=MAX_CACHE_KEY)
        return {"ok": True, "deleted": self.cache.delete(ctx.plugin, key)}

    def config_get(self, ctx: HostContext, args: dict[str, Any]) -> dict[str, Any]:
        key = str_arg(ctx, "config_get", args, "key", limit=256)
        config = self._config(ctx.plugin)
        if key in config:
            return {"value": config[key], "found": True}
        return {"value": None, "found": False}


def _encode(result: Any) -> bytes:
    return json.dumps(result, separators=(",", ":")).encode()


async def _never(ctx: HostContext, args: dict[str, Any]) -> Any:  # pragma: no cover
    raise AssertionError("a sync host function is called directly")


def error_result(exc: GoatKitError) -> bytes:
    """The ``gk.last_error`` JSON for an error."""
    return json.dumps({"code": exc.code, "message": exc.message}).encode()
