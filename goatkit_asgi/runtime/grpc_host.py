"""The host side shared by every gRPC plugin of one platform: the ``Host`` service and tokens.

One :class:`GrpcHost` per platform. It starts when the first gRPC plugin connects (nothing runs
before) and serves ``goatkit.v1.Host`` on a unix socket in a private directory (mode 0700, under
the system temp directory; local plugins get their own private directories beside it). Give it
a TCP address (``listen="0.0.0.0:7070"``, ``advertise="web-1.internal:7070"``) when remote
plugins must reach it from other machines.

Every plugin connection gets a :class:`Session` with a secret token, which travels to the plugin
in ``InitRequest.host_token`` and comes back as ``x-goatkit-token`` metadata on each
``Host.Call``. The token decides who is calling: a plugin can only act as itself, within its own
grants. A call with a missing or unknown token is refused with the code ``unauthenticated`` and
logged. A token dies with its connection (a restarted process gets a new one).

While a ``Plugin.Call`` runs, the runtime opens a *call scope* and sends its id as
``x-goatkit-call`` metadata; a plugin that echoes it on its host calls gets the rest of that call's
time limit as the host call's deadline, and the host function runs in the context (user, call
depth) of the code that made the plugin call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import itertools
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, Protocol

import grpc
import grpc.aio

from .._proto.goatkit.v1 import plugin_pb2 as pb
from .._proto.goatkit.v1 import plugin_pb2_grpc as pb_grpc
from ..errors import GoatKitError

__all__ = [
    "CALL_METADATA",
    "MAX_MESSAGE_BYTES",
    "TOKEN_METADATA",
    "CallScope",
    "GrpcHost",
    "HostCall",
    "LogSink",
    "Session",
]

logger = logging.getLogger("goatkit")

TOKEN_METADATA = "x-goatkit-token"
CALL_METADATA = "x-goatkit-call"

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest gRPC message either side accepts (arguments, results, registration)."""

_ROOT_PREFIX = "goatkit-grpc-"

#: Deadline of a host call that names no running plugin call (made outside one).
UNSCOPED_HOST_CALL_TIMEOUT = 10.0

#: Options for every channel and server: large messages, and reconnects that back off from
#: 100 ms to 5 s (gRPC's defaults start at 1 s and grow to 2 minutes).
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
)


class HostCall(Protocol):
    """Runs host function ``function`` for ``plugin`` (JSON args in, JSON result out).

    ``deadline`` is a ``time.monotonic()`` value. Raises a
    :class:`~goatkit_asgi.errors.GoatKitError` when the call is refused or fails.
    """

    def __call__(
        self, plugin: str, function: str, args: bytes, deadline: float, /
    ) -> Awaitable[bytes]: ...


class LogSink(Protocol):
    """Records one line of a plugin's log (``level``: debug, info, warn, error). Never raises."""

    def __call__(self, plugin: str, level: str, message: str, /) -> None: ...


class CallScope:
    """One running ``Plugin.Call``, as seen by the host calls it makes."""

    __slots__ = ("context", "deadline", "metadata", "number")

    def __init__(self, number: int, sid: str, deadline: float) -> None:
        self.number = number
        self.deadline = deadline
        self.context = contextvars.copy_context()
        self.metadata = ((CALL_METADATA, f"{sid}/{number}"),)


class Session:
    """One plugin connection's identity at the Host service: plugin name and secret token."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.token = secrets.token_urlsafe(32)
        self.key = hashlib.sha256(self.token.encode()).digest()
        # Names the session in x-goatkit-call without revealing the token.
        self.sid = self.key[:8].hex()
        self.calls: dict[int, CallScope] = {}
        self._numbers = itertools.count(1)

    def begin(self, deadline: float) -> CallScope:
        """Open the scope of a plugin call that must end by ``deadline``."""
        scope = CallScope(next(self._numbers), self.sid, deadline)
        self.calls[scope.number] = scope
        return scope

    def end(self, scope: CallScope) -> None:
        self.calls.pop(scope.number, None)

    def scope(self, metadata_value: str | None) -> CallScope | None:
        if not metadata_value:
            return None
        sid, _, number = metadata_value.partition("/")
        if sid != self.sid or not number.isdigit():
            return None
        return self.calls.get(int(number))


class GrpcHost:
    """The ``Host`` service of one platform, the sessions of its plugins and their directories.

    ``host_call`` and ``log`` connect it to the platform (see :class:`HostCall`,
    :class:`LogSink`). Call :meth:`close` when the platform stops.
    """

    def __init__(
        self,
        host_call: HostCall,
        log: LogSink,
        *,
        listen: str | None = None,
        advertise: str | None = None,
        host_version: str = "",
    ) -> None:
        if listen is not None and advertise is None:
            host = listen.rpartition(":")[0]
            if host in ("", "0.0.0.0", "[::]"):
                raise ValueError(
                    f"GrpcHost(listen={listen!r}) listens on every interface: also give "
                    "advertise='name-plugins-can-reach:port'"
                )
        self.host_call = host_call
        self.log = log
        self.listen = listen
        self.advertise = advertise
        self.host_version = host_version or _package_version()
        self.root: Path | None = None
        self.address = ""
        self._server: grpc.aio.Server | None = None
        self._sessions: dict[bytes, Session] = {}
        self._lock = asyncio.Lock()
        self._dirs = itertools.count(1)

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start(self) -> str:
        """Start the Host service (once); return the address plugins are told to use."""
        async with self._lock:
            if self.started:
                return self.address
            _sweep_stale_roots()
            root = Path(tempfile.mkdtemp(prefix=f"{_ROOT_PREFIX}{os.getpid()}-"))
            os.chmod(root, 0o700)
            server = grpc.aio.server(options=CHANNEL_OPTIONS)
            pb_grpc.add_HostServicer_to_server(_HostServicer(self), server)
            try:
                if self.listen is None:
                    socket = root / "host.sock"
                    server.add_insecure_port(f"unix:{socket}")
                    address = f"unix:{socket}"
                else:
                    port = server.add_insecure_port(self.listen)
                    host = self.listen.rpartition(":")[0]
                    address = self.advertise or f"{host}:{port}"
                await server.start()
            except BaseException:
                await server.stop(None)
                shutil.rmtree(root, ignore_errors=True)
                raise
            self.root, self.address, self._server = root, address, server
            return address

    def new_workdir(self) -> Path:
        """A fresh private directory (HOME and TMPDIR) for one plugin process."""
        assert self.root is not None, "start() first"
        path = self.root / f"p{next(self._dirs)}"
        path.mkdir(mode=0o700)
        return path

    def open_session(self, plugin: str) -> Session:
        session = Session(plugin)
        self._sessions[session.key] = session
        return session

    def close_session(self, session: Session) -> None:
        self._sessions.pop(session.key, None)
        session.calls.clear()

    def lookup(self, token: str | None) -> Session | None:
        """The session of ``token``, compared in constant time; None for an unknown token."""
        if not token:
            return None
        session = self._sessions.get(hashlib.sha256(token.encode()).digest())
        if session is None or not hmac.compare_digest(session.token, token):
            return None
        return session

    def config_json(self, config: Mapping[str, Any]) -> dict[str, str]:
        """``InitRequest.config``: every value as JSON text."""
        return {str(k): json.dumps(v, separators=(",", ":")) for k, v in config.items()}

    async def close(self) -> None:
        """Stop the Host service and remove its directory (plugins should be stopped first)."""
        async with self._lock:
            server, self._server = self._server, None
            self._sessions.clear()
            if server is not None:
                await server.stop(0.5)
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None
            self.address = ""


class _HostServicer(pb_grpc.HostServicer):
    def __init__(self, host: GrpcHost) -> None:
        self._host = host

    async def Call(self, request: pb.HostCallRequest, context: Any) -> pb.HostCallResponse:
        host = self._host
        token = call_id = None
        for key, value in context.invocation_metadata() or ():
            if key == TOKEN_METADATA:
                token = value
            elif key == CALL_METADATA:
                call_id = value
        session = host.lookup(token)
        method = request.method
        if session is None:
            logger.warning(
                "gRPC Host.Call %r from %s refused: %s token",
                method[:64],
                context.peer(),
                "unknown" if token else "no",
            )
            return _error(
                "unauthenticated",
                f"Host.Call {method!r}: {'unknown' if token else 'missing'} {TOKEN_METADATA} "
                "metadata; send the host_token from InitRequest with every host call",
            )
        plugin = session.plugin
        scope = session.scope(call_id)
        if scope is not None:
            deadline = scope.deadline
        else:
            remaining = context.time_remaining()
            deadline = time.monotonic() + min(
                remaining if remaining is not None else UNSCOPED_HOST_CALL_TIMEOUT,
                UNSCOPED_HOST_CALL_TIMEOUT,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _error(
                "timeout", f"{plugin}: {method}: the call's time ran out before the host call"
            )
        coro = host.host_call(plugin, method, request.args_json, deadline)
        if scope is not None:
            # In the context of the code that made the plugin call (user, call depth).
            task = asyncio.get_running_loop().create_task(
                _awaited(coro), context=scope.context.copy()
            )
        else:
            task = asyncio.ensure_future(coro)
        try:
            result = await asyncio.wait_for(task, remaining)
        except TimeoutError:
            return _error(
                "timeout",
                f"{plugin}: {method} did not finish within the {remaining:.3f}s left of the call",
            )
        except GoatKitError as exc:
            return _error(exc.code, exc.message)
        except Exception:
            logger.exception("%s: host function %s failed", plugin, method)
            return _error("host_error", f"{plugin}: {method} failed inside the host; see its log")
        return pb.HostCallResponse(result_json=result)


async def _awaited(awaitable: Awaitable[bytes]) -> bytes:
    return await awaitable


def _error(code: str, message: str) -> pb.HostCallResponse:
    return pb.HostCallResponse(error=pb.Error(code=code, message=message))


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("goatkit-asgi")
    except PackageNotFoundError:
        return "0.0.0"


def _sweep_stale_roots() -> None:
    """Remove directories left by hosts that were killed (their pid is gone)."""
    tmp = Path(tempfile.gettempdir())
    uid = os.getuid()
    with contextlib.suppress(OSError):
        for path in tmp.glob(f"{_ROOT_PREFIX}*-*"):
            pid = path.name[len(_ROOT_PREFIX) :].partition("-")[0]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                if path.lstat().st_uid != uid or not path.is_dir() or path.is_symlink():
                    continue
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue
