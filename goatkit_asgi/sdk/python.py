"""Write a goatkit gRPC plugin in Python in a few lines.

::

    from goatkit_asgi.sdk.python import Plugin

    plugin = Plugin("hello-grpc", version="1.0.0")

    @plugin.function(args=["name"])
    def hello(name: str = "World", **request):
        return {"message": f"Hello, {name}!"}

    @plugin.route("GET", "/grpc-hello/{name}")
    def hello_page(name: str, **request):
        plugin.host.call("log", {"message": f"page for {name}"})
        return {"html": f"<p>Hi {name}</p>"}

    @plugin.hook("after_save")
    def seen(payload):
        return {"seen": payload.get("entity")}

    if __name__ == "__main__":
        plugin.serve()

Functions, route handlers and hook handlers may be plain or ``async`` functions. Functions and
route handlers get the call's JSON object as keyword arguments (keys they do not declare are left
out unless they take ``**kwargs``); hook handlers get the payload as one argument. They return
anything ``json.dumps`` accepts. Raise
:class:`~goatkit_asgi.errors.PluginCallError` ``(message, code="bad_input")`` to fail a call with
a code; any other exception fails it with the code ``plugin_error`` (its traceback goes to the
plugin log). A ``MemoryError`` ends the process: the platform restarts it.

Host functions: ``plugin.host.call(name, args)`` in plain handlers (they run in worker threads)
and ``await plugin.host.acall(name, args)`` in async ones. A refused call raises
:class:`~goatkit_asgi.errors.CapabilityDenied`, any other failure
:class:`~goatkit_asgi.errors.HostCallError`; uncaught, either fails the plugin call with the
host's code and message.

:meth:`Plugin.serve` does the rest: started by the platform (the ``GOATKIT_PLUGIN`` cookie is set)
it serves on a unix socket in its private temp directory and prints the handshake line; started
by hand with ``--listen HOST:PORT`` (optionally ``--tls-cert``, ``--tls-key``,
``--tls-client-ca``) it is a remote plugin service for ``endpoint:`` manifests. Print nothing on
stdout before ``serve()``: the first line is the handshake. Afterwards stdout and stderr go to
the plugin log.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextvars
import functools
import hashlib
import inspect
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2_grpc

from .._proto.goatkit.v1 import plugin_pb2 as pb
from .._proto.goatkit.v1 import plugin_pb2_grpc as pb_grpc
from ..errors import CapabilityDenied, GoatKitError, HostCallError, PluginCallError
from ..runtime.grpc_handshake import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, Handshake
from ..runtime.grpc_host import CALL_METADATA, CHANNEL_OPTIONS, TOKEN_METADATA

__all__ = ["CapabilityDenied", "Host", "HostCallError", "Plugin", "PluginCallError"]

F = TypeVar("F", bound=Callable[..., Any])

#: A host call made outside any plugin call waits at most this long.
HOST_CALL_TIMEOUT = 10.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_MAX_SESSIONS = 256  # hosts remembered by a remote plugin (each Init adds one)
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass
class _Session:
    """One host that sent Init: where its Host service is and the token it gave."""

    address: str
    token: str
    metadata: tuple[tuple[str, str], ...] = ()
    _sync_stub: Any = None
    _aio_stub: Any = None
    _channels: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sync_stub(self) -> Any:
        with self._lock:
            if self._sync_stub is None:
                channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
                self._channels.append(channel)
                self._sync_stub = pb_grpc.HostStub(channel)
            return self._sync_stub

    def aio_stub(self) -> Any:
        if self._aio_stub is None:
            channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
            self._channels.append(channel)
            self._aio_stub = pb_grpc.HostStub(channel)
        return self._aio_stub

    async def close(self) -> None:
        for channel in self._channels:
            result = channel.close()
            if inspect.isawaitable(result):
                await result
        self._channels.clear()


@dataclass(frozen=True)
class _Scope:
    """The plugin call being served: which host, and until when."""

    session: _Session | None
    call_metadata: str | None
    deadline: float


_current: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "goatkit_plugin_call", default=None
)


class Host:
    """The host's functions, as seen from inside a plugin (see the module docstring)."""

    def __init__(self, plugin: Plugin) -> None:
        self._plugin = plugin

    def call(self, method: str, args: Any = None, *, timeout: float | None = None) -> Any:
        """Call host function ``method`` with JSON-able ``args``; return its decoded result.

        Blocks; use it in plain (non-async) handlers, which run in worker threads.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                f"{self._plugin.name}: host.call() would block the event loop; use "
                f"`await plugin.host.acall({method!r}, ...)` in async handlers"
            )
        session, request, metadata, seconds = self._prepare(method, args, timeout)
        try:
            reply = session.sync_stub().Call(request, timeout=seconds, metadata=metadata)
        except grpc.RpcError as exc:
            raise self._transport_error(method, exc) from exc
        return self._result(method, reply)

    async def acall(self, method: str, args: Any = None, *, timeout: float | None = None) -> Any:
        """Like :meth:`call`, for async handlers."""
        session, request, metadata, seconds = self._prepare(method, args, timeout)
        try:
            reply = await session.aio_stub().Call(request, timeout=seconds, metadata=metadata)
        except grpc.RpcError as exc:
            raise self._transport_error(method, exc) from exc
        return self._result(method, reply)

    def _prepare(
        self, method: str, args: Any, timeout: float | None
    ) -> tuple[_Session, pb.HostCallRequest, tuple[tuple[str, str], ...], float]:
        scope = _current.get()
        session = scope.session if scope is not None else self._plugin._latest_session()
        if session is None:
            raise HostCallError(
                f"{self._plugin.name}: host.call({method!r}) before the host sent Init; call "
                "host functions from handlers",
                plugin=self._plugin.name,
                function=method,
                code="not_initialised",
            )
        metadata = session.metadata
        if scope is not None and scope.call_metadata:
            metadata = (*metadata, (CALL_METADATA, scope.call_metadata))
        seconds = timeout or HOST_CALL_TIMEOUT
        if scope is not None:
            seconds = min(seconds, max(0.001, scope.deadline - time.monotonic()))
        raw = b"" if args is None else _ENCODE(args).encode()
        return session, pb.HostCallRequest(method=method, args_json=raw), metadata, seconds

    def _transport_error(self, method: str, exc: grpc.RpcError) -> HostCallError:
        code = exc.code() if hasattr(exc, "code") else None
        name = code.name if code is not None else "UNKNOWN"
        return HostCallError(
            f"{self._plugin.name}: host call {method} could not be made (gRPC {name})",
            plugin=self._plugin.name,
            function=method,
            code="timeout" if name == "DEADLINE_EXCEEDED" else "unavailable",
        )

    def _result(self, method: str, reply: pb.HostCallResponse) -> Any:
        if reply.HasField("error"):
            cls = CapabilityDenied if reply.error.code == "capability_denied" else HostCallError
            raise cls(
                reply.error.message,
                plugin=self._plugin.name,
                function=method,
                code=reply.error.code or "host_error",
            )
        return json.loads(reply.result_json) if reply.result_json else None


@dataclass
class _Handler:
    fn: Callable[..., Any]
    payload: bool  # hook handlers take the payload as one argument
    signature: inspect.Signature
    accepts_any: bool  # has **kwargs
    is_async: bool

    @classmethod
    def of(cls, fn: Callable[..., Any], *, payload: bool) -> _Handler:
        signature = inspect.signature(fn)
        return cls(
            fn=fn,
            payload=payload,
            signature=signature,
            accepts_any=any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
            ),
            is_async=inspect.iscoroutinefunction(fn),
        )

    def arguments(self, name: str, args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.payload:
            positional: tuple[Any, ...] = (args,)
            keywords: dict[str, Any] = {}
        elif isinstance(args, dict):
            positional = ()
            keywords = (
                args
                if self.accepts_any
                else {k: v for k, v in args.items() if k in self.signature.parameters}
            )
        else:
            positional, keywords = (() if args is None else (args,)), {}
        try:
            self.signature.bind(*positional, **keywords)
        except TypeError as exc:
            raise PluginCallError(f"{name}: {exc}", function=name, code="bad_input") from exc
        return positional, keywords


class Plugin:
    """A gRPC plugin: its registration, its handlers, and the server that runs them.

    ``name`` must match the manifest's. Other registration fields (``menu_items``, ``widgets``,
    ``jobs``, ``templates``, ``i18n``, ``error_codes``, ``min_host_version``) can be given as
    keyword arguments in the registration JSON's shapes. ``max_workers`` bounds the threads that
    run plain handlers.
    """

    def __init__(
        self,
        name: str,
        version: str = "0.0.0",
        *,
        description: str = "",
        author: str = "",
        license: str = "",
        homepage: str = "",
        permissions: Sequence[str | Mapping[str, str]] = (),
        max_workers: int = 8,
        **registration: Any,
    ) -> None:
        self.name = name
        self.version = version
        self.host = Host(self)
        self.config: dict[str, Any] = {}
        self.max_workers = max_workers
        self._meta: dict[str, Any] = {
            "name": name,
            "version": version,
            "description": description,
            "author": author,
            "license": license,
            "homepage": homepage,
            "permissions": list(permissions),
            **registration,
        }
        self._functions: list[dict[str, Any]] = []
        self._routes: list[dict[str, Any]] = []
        self._hooks: list[dict[str, Any]] = []
        self._handlers: dict[str, _Handler] = {}
        self._hook_handlers: dict[str, str] = {}
        self._sessions: dict[str, _Session] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._stop: asyncio.Event | None = None

    # -- declaring ---------------------------------------------------------------------------

    def function(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        args: Sequence[str | Mapping[str, Any]] | None = None,
        returns: str = "json",
        description: str | None = None,
    ) -> Any:
        """Declare a function the host (and templates) may call. ``args`` defaults to the
        handler's parameter names."""

        def add(fn: F) -> F:
            handler = self._add_handler(name or fn.__name__, fn, payload=False)
            declared = list(args) if args is not None else _parameter_names(handler)
            self._functions.append(
                {
                    "name": name or fn.__name__,
                    "args": declared,
                    "returns": returns,
                    "description": description if description is not None else _doc(fn),
                }
            )
            return fn

        return add(fn) if fn is not None else add

    def route(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        permission: str | None = None,
        description: str = "",
    ) -> Callable[[F], F]:
        """Declare an HTTP route served by the decorated handler (GoatKit's request object in,
        ``{"html"}``, ``{"template", "context"}``, ``{"status", "headers", "body"}`` or JSON out).
        """

        def add(fn: F) -> F:
            handler = name or fn.__name__
            self._add_handler(handler, fn, payload=False)
            route: dict[str, Any] = {
                "method": method,
                "path": path,
                "handler": handler,
                "description": description or _doc(fn),
            }
            if permission:
                route["permission"] = permission
            self._routes.append(route)
            return fn

        return add

    def hook(self, hook: str, *, name: str | None = None, priority: int = 0) -> Callable[[F], F]:
        """Declare the handler of event ``hook``; it gets the event's payload."""

        def add(fn: F) -> F:
            if hook in self._hook_handlers:
                raise ValueError(f"{self.name}: hook {hook!r} already has a handler")
            handler = name or fn.__name__
            self._add_handler(handler, fn, payload=True)
            self._hook_handlers[hook] = handler
            self._hooks.append({"name": hook, "handler": handler, "priority": priority})
            return fn

        return add

    def _add_handler(self, name: str, fn: Callable[..., Any], *, payload: bool) -> _Handler:
        if name in self._handlers:
            raise ValueError(f"{self.name}: a handler named {name!r} is already declared")
        handler = self._handlers[name] = _Handler.of(fn, payload=payload)
        return handler

    def registration(self) -> dict[str, Any]:
        """The registration JSON document (what ``Register`` returns)."""
        doc = {key: value for key, value in self._meta.items() if value not in ("", [], None)}
        doc["functions"] = self._functions
        if self._routes:
            doc["routes"] = self._routes
        if self._hooks:
            doc["hooks"] = self._hooks
        return doc

    # -- running -----------------------------------------------------------------------------

    def _latest_session(self) -> _Session | None:
        return next(reversed(self._sessions.values()), None)

    def _session_for(self, call_metadata: str | None) -> _Session | None:
        if call_metadata:
            session = self._sessions.get(call_metadata.partition("/")[0])
            if session is not None:
                return session
        return self._latest_session()

    async def _run(self, name: str, args: Any) -> Any:
        handler = self._handlers[name]
        positional, keywords = handler.arguments(name, args)
        if handler.is_async:
            return await handler.fn(*positional, **keywords)
        assert self._executor is not None
        context = contextvars.copy_context()
        call = functools.partial(handler.fn, *positional, **keywords)
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, call)

    def serve(self, argv: Sequence[str] | None = None) -> None:
        """Run the plugin until the host shuts it down (or SIGTERM / SIGINT).

        Started by the platform, it announces itself with the handshake line. Otherwise
        ``argv`` (default ``sys.argv[1:]``) must say where to listen: ``--listen HOST:PORT``.
        """
        if os.environ.get(MAGIC_COOKIE_KEY) == MAGIC_COOKIE_VALUE:
            asyncio.run(self.serve_async())
            return
        parser = argparse.ArgumentParser(
            description=f"goatkit gRPC plugin {self.name}. The platform starts it by itself "
            "(manifest runtime: grpc); run it by hand to serve it at an endpoint.",
        )
        parser.add_argument("--listen", help="HOST:PORT (port 0: any free port)")
        parser.add_argument("--tls-cert", help="server certificate chain (PEM)")
        parser.add_argument("--tls-key", help="server private key (PEM)")
        parser.add_argument("--tls-client-ca", help="require client certificates from this CA")
        opts = parser.parse_args(argv)
        if not opts.listen:
            parser.error(
                f"{self.name} is a goatkit gRPC plugin. The platform starts it by itself "
                "(manifest runtime: grpc); to serve it at an endpoint, give --listen HOST:PORT"
            )
        tls = None
        if opts.tls_cert or opts.tls_key:
            if not (opts.tls_cert and opts.tls_key):
                parser.error("--tls-cert and --tls-key go together")
            tls = (opts.tls_cert, opts.tls_key, opts.tls_client_ca)
        asyncio.run(self.serve_async(listen=opts.listen, tls=tls))

    async def serve_async(
        self, *, listen: str | None = None, tls: tuple[str, str, str | None] | None = None
    ) -> None:
        """Serve until shut down. Without ``listen``: on a unix socket, with the handshake line
        (as the platform expects); with it: at ``HOST:PORT``, announced as
        ``listening on HOST:PORT``. ``tls`` is (cert file, key file, client CA file or None)."""
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(line_buffering=True)
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.max_workers, thread_name_prefix=f"{self.name}-handler"
        )
        server = grpc.aio.server(options=CHANNEL_OPTIONS)
        pb_grpc.add_PluginServicer_to_server(_Servicer(self), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        socket_dir: str | None = None
        try:
            if listen is None:
                socket_dir = tempfile.mkdtemp(prefix="gk-")
                path = os.path.join(socket_dir, "plugin.sock")
                server.add_insecure_port(f"unix:{path}")
                await server.start()
                announce = Handshake("unix", path).line()
            else:
                port = _add_port(server, listen, tls)
                await server.start()
                announce = f"listening on {listen.rpartition(':')[0]}:{port}"
            for sig in _STOP_SIGNALS:
                loop.add_signal_handler(sig, self._stop.set)
            print(announce, flush=True)
            await self._stop.wait()
            await health_servicer.enter_graceful_shutdown()
            await server.stop(1.0)
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            await server.stop(None)
            for session in self._sessions.values():
                await session.close()
            self._executor.shutdown(wait=False, cancel_futures=True)
            if socket_dir is not None:
                shutil.rmtree(socket_dir, ignore_errors=True)


def _add_port(server: Any, listen: str, tls: tuple[str, str, str | None] | None) -> int:
    if tls is None:
        port = server.add_insecure_port(listen)
    else:
        cert, key, client_ca = tls
        with open(cert, "rb") as f:
            chain = f.read()
        with open(key, "rb") as f:
            private = f.read()
        root = None
        if client_ca:
            with open(client_ca, "rb") as f:
                root = f.read()
        credentials = grpc.ssl_server_credentials(
            [(private, chain)], root_certificates=root, require_client_auth=root is not None
        )
        port = server.add_secure_port(listen, credentials)
    if not port:
        raise OSError(f"cannot listen on {listen}")
    return int(port)


class _Servicer(pb_grpc.PluginServicer):
    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin

    async def Register(self, request: pb.RegisterRequest, context: Any) -> pb.RegisterResponse:
        return pb.RegisterResponse(registration_json=_ENCODE(self.plugin.registration()).encode())

    async def Init(self, request: pb.InitRequest, context: Any) -> pb.InitResponse:
        plugin = self.plugin
        sid = hashlib.sha256(request.host_token.encode()).digest()[:8].hex()
        old = plugin._sessions.pop(sid, None)
        if old is not None:
            await old.close()
        plugin._sessions[sid] = _Session(
            request.host_address, request.host_token, ((TOKEN_METADATA, request.host_token),)
        )
        while len(plugin._sessions) > _MAX_SESSIONS:
            await plugin._sessions.pop(next(iter(plugin._sessions))).close()
        config: dict[str, Any] = {}
        for key, text in request.config.items():
            try:
                config[key] = json.loads(text)
            except ValueError:
                config[key] = text
        plugin.config = config
        return pb.InitResponse()

    async def Call(self, request: pb.CallRequest, context: Any) -> pb.CallResponse:
        error, result = await self._run(request.function, request.args_json, context)
        return pb.CallResponse(error=error, result_json=result)

    async def Hook(self, request: pb.HookRequest, context: Any) -> pb.HookResponse:
        handler = self.plugin._hook_handlers.get(request.hook)
        if handler is None:
            return pb.HookResponse(
                error=pb.Error(
                    code="unknown_hook",
                    message=f"{self.plugin.name} has no handler for hook {request.hook!r}",
                )
            )
        error, result = await self._run(handler, request.payload_json, context)
        return pb.HookResponse(error=error, result_json=result)

    async def Shutdown(self, request: pb.ShutdownRequest, context: Any) -> pb.ShutdownResponse:
        stop = self.plugin._stop
        if stop is not None:
            asyncio.get_running_loop().call_soon(stop.set)
        return pb.ShutdownResponse()

    async def _run(self, name: str, raw: bytes, context: Any) -> tuple[pb.Error | None, bytes]:
        plugin = self.plugin
        if name not in plugin._handlers:
            return _error("unknown_function", f"{plugin.name} has no function {name!r}"), b""
        try:
            args = json.loads(raw) if raw else None
        except ValueError as exc:
            return _error("bad_input", f"{name}: the arguments are not JSON ({exc})"), b""
        call_metadata = None
        for key, value in context.invocation_metadata() or ():
            if key == CALL_METADATA:
                call_metadata = value
        remaining = context.time_remaining()
        deadline = time.monotonic() + (remaining if remaining is not None else HOST_CALL_TIMEOUT)
        token = _current.set(_Scope(plugin._session_for(call_metadata), call_metadata, deadline))
        try:
            result = await plugin._run(name, args)
        except MemoryError:
            _out_of_memory(plugin.name, name)
        except GoatKitError as exc:
            return _error(exc.code, exc.message), b""
        except Exception as exc:
            return _failed(name, exc), b""
        finally:
            _current.reset(token)
        if result is None:
            return None, b""
        try:
            return None, _ENCODE(result).encode()
        except (TypeError, ValueError) as exc:
            return _error("bad_result", f"{name}: the result is not JSON ({exc})"), b""


def _error(code: str, message: str) -> pb.Error:
    return pb.Error(code=code, message=message)


def _failed(name: str, exc: Exception) -> pb.Error:
    traceback.print_exception(exc, file=sys.stderr)
    return _error("plugin_error", f"{name}: {type(exc).__name__}: {exc}")


def _out_of_memory(plugin: str, function: str) -> NoReturn:
    # A process that hit its memory cap is not trusted to go on; the platform starts a new one.
    os.write(
        2, f"{plugin}: out of memory in {function} (the process's memory cap); exiting\n".encode()
    )
    os._exit(70)


def _parameter_names(handler: _Handler) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in handler.signature.parameters.values() if p.kind in kinds]


def _doc(fn: Callable[..., Any]) -> str:
    return inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0].replace("\n", " ")
