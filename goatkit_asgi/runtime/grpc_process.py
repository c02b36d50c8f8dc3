"""The process of a local gRPC plugin: start, handshake, output, limits, stop.

The process gets a minimal environment (``PATH``, ``LANG``, ``HOME`` and ``TMPDIR`` pointing to a
private directory, the magic cookie ``GOATKIT_PLUGIN`` and ``GOATKIT_PLUGIN_NAME``; with a memory
cap also ``MALLOC_ARENA_MAX=2``), runs in the plugin directory in a session and process group of
its own, and on Linux is killed when the thread that started it goes away
(``PR_SET_PDEATHSIG``), so even a host that is killed leaves no plugin behind. Its address space is
capped with ``RLIMIT_AS``. Its first stdout line is the handshake; every later stdout line and
every stderr line goes to the plugin log. :meth:`PluginProcess.stop` sends SIGTERM and then
SIGKILL to the whole group and removes the private directory (the plugin's socket lives there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import PluginLoadError
from .grpc_handshake import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, Handshake, parse_handshake
from .grpc_host import LogSink

__all__ = ["PYTHON_NAMES", "PluginProcess", "plugin_argv"]

PYTHON_NAMES = frozenset({"python", "python3"})
"""Program names that mean "the interpreter running the host" (so the SDK is importable)."""

_MAX_LINE = 16 * 1024  # longer output lines are cut; the handshake line is far shorter

# The plugin is started through this launcher (a bare interpreter: no site, no environment), which
# sets the parent-death signal and the memory cap on itself and then execs the plugin's program in
# its place: same pid, same process group, limits inherited. Doing the same in a ``preexec_fn``
# would fork the host, which is not safe while gRPC's threads run (and makes gRPC complain);
# without one, the launcher is spawned with vfork.
_LAUNCHER = """\
import os, resource, signal, sys
memory, parent, *argv = sys.argv[1:]
if sys.platform.startswith("linux"):
    import ctypes
    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):
        os._exit(1)
if int(memory):
    resource.setrlimit(resource.RLIMIT_AS, (int(memory), int(memory)))
try:
    os.execv(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"cannot start {argv[0]}: {exc.strerror}\\n")
    os._exit(127)
"""


def plugin_argv(directory: Path, *, command: Sequence[str] | None, binary: str | None) -> list[str]:
    """The argv to start: ``binary`` or ``command`` from the manifest, made absolute.

    A program path with a ``/`` is a file of the plugin (relative to its directory); ``python``
    and ``python3`` mean the interpreter running the host; other bare names are looked up on PATH.
    """
    if binary is not None:
        return [str(directory / binary)]
    if not command:
        raise ValueError("a local plugin needs a command or a binary")
    program, *rest = command
    if program in PYTHON_NAMES:
        program = sys.executable
    elif "/" in program and not program.startswith("/"):
        program = str(directory / program)
    return [program, *rest]


def _executable(plugin: str, program: str, path: str) -> str:
    """``program`` as an absolute path to an executable file, or a PluginLoadError."""
    found = program if "/" in program else shutil.which(program, path=path)
    if found is None:
        raise PluginLoadError(
            f"{plugin}: cannot start {program!r}: no such program on PATH; install it or give "
            "its full path in the manifest's command",
            plugin=plugin,
        )
    if not os.path.isfile(found) or not os.access(found, os.X_OK):
        what = "is not an executable file" if os.path.exists(found) else "does not exist"
        raise PluginLoadError(
            f"{plugin}: cannot start {Path(found).name}: it {what}; check the manifest's "
            "command or binary (a binary needs the executable bit)",
            plugin=plugin,
        )
    return os.path.abspath(found)


class PluginProcess:
    """A started plugin process that printed a valid handshake line."""

    def __init__(
        self,
        plugin: str,
        transport: asyncio.SubprocessTransport,
        protocol: _Protocol,
        workdir: Path,
        log: LogSink,
    ) -> None:
        self.plugin = plugin
        self.pid: int = transport.get_pid()
        self.workdir = workdir
        self.handshake: Handshake | None = None
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self._transport = transport
        self._protocol = protocol
        self._waiter = protocol.exited
        self._log = log
        self._pumps: list[asyncio.Task[None]] = []

    # -- start -------------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        plugin: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        workdir: Path,
        log: LogSink,
        memory_mb: int | None,
        start_timeout: float,
    ) -> PluginProcess:
        """Start ``argv`` and wait for its handshake line (at most ``start_timeout`` seconds).

        Raises :class:`PluginLoadError` when the program cannot be started, prints no line in
        time, prints something that is not a valid handshake, or exits first; the process is
        gone and ``workdir`` removed by then.
        """
        path = os.environ.get("PATH", os.defpath)
        env = {
            "PATH": path,
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE,
            "GOATKIT_PLUGIN_NAME": plugin,
        }
        if memory_mb:
            # glibc reserves 64 MiB of address space per thread arena; under RLIMIT_AS that
            # reservation, not memory in use, would decide when the plugin runs out.
            env["MALLOC_ARENA_MAX"] = "2"
        try:
            program = _executable(plugin, argv[0], path)
            loop = asyncio.get_running_loop()
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(_MAX_LINE, loop),
                sys.executable,
                "-I",
                "-S",
                "-c",
                _LAUNCHER,
                str(memory_mb * 1024 * 1024 if memory_mb else 0),
                str(os.getpid()),
                program,
                *argv[1:],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except (OSError, PluginLoadError) as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            if isinstance(exc, PluginLoadError):
                raise
            raise PluginLoadError(
                f"{plugin}: cannot start the plugin ({exc.strerror or exc}); check the "
                "manifest's command or binary",
                plugin=plugin,
            ) from exc
        self = cls(plugin, transport, protocol, workdir, log)
        assert protocol.stderr is not None
        self._pumps.append(asyncio.ensure_future(self._pump(protocol.stderr, "warn")))
        try:
            self.handshake = await self._read_handshake(start_timeout)
        except BaseException:
            await self.stop(grace=0)
            raise
        assert protocol.stdout is not None
        self._pumps.append(asyncio.ensure_future(self._pump(protocol.stdout, "info")))
        return self

    async def _read_handshake(self, timeout: float) -> Handshake:
        stdout = self._protocol.stdout
        assert stdout is not None
        reader = asyncio.ensure_future(_read_line(stdout))
        either: set[asyncio.Future[Any]] = {reader, self._waiter}
        try:
            done, _ = await asyncio.wait(
                either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if reader in done:
                line = reader.result()
                if line is not None:
                    return parse_handshake(line, self.plugin)
                # stdout closed: the process is exiting; give it a moment to say why.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._waiter), 1.0)
            if self._waiter.done():
                await self._drain_stderr()
                raise PluginLoadError(
                    f"{self.plugin}: the plugin process {_exit_reason(self._waiter.result())} "
                    f"before printing its handshake line{self._tail()}; see the plugin log",
                    plugin=self.plugin,
                )
            if reader.done():
                raise PluginLoadError(
                    f"{self.plugin}: the plugin process closed its stdout without printing a "
                    "handshake line; it must print 1|1|unix|/path.sock|grpc when it is ready",
                    plugin=self.plugin,
                )
            raise PluginLoadError(
                f"{self.plugin}: the plugin process printed no handshake line within "
                f"{timeout:g}s of starting{self._tail()}; a gRPC plugin must print "
                "1|1|unix|/path.sock|grpc on stdout once it serves (the goatkit_asgi.sdk.python "
                "helper does this)",
                plugin=self.plugin,
            )
        finally:
            reader.cancel()

    def _tail(self) -> str:
        if not self.stderr_tail:
            return ""
        return f" (last stderr line: {self.stderr_tail[-1][:200]!r})"

    async def _pump(self, stream: asyncio.StreamReader, level: str) -> None:
        while True:
            line = await _read_line(stream)
            if line is None:
                return
            line = line.rstrip("\r\n")
            if level == "warn":
                self.stderr_tail.append(line)
            self._log(self.plugin, level, line)

    async def _drain_stderr(self) -> None:
        # The stderr pump may still hold the last lines of a process that just exited.
        if self._pumps:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pumps[0]), 0.5)

    # -- state -------------------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self._waiter.result() if self._waiter.done() else None

    async def wait(self) -> int:
        """Wait for the process to exit; its exit status (negative: killed by that signal)."""
        return await asyncio.shield(self._waiter)

    def exit_reason(self) -> str:
        """``exited with code N`` or ``was killed by SIGNAME`` (``is running`` while it runs)."""
        code = self.returncode
        return "is running" if code is None else _exit_reason(code)

    def rss_bytes(self) -> int:
        """Resident memory of the process (Linux; 0 where unknown)."""
        if self._waiter.done():
            return 0
        try:
            with open(f"/proc/{self.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    # -- stop --------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the process group now (the process and anything it started)."""
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, grace: float = 2.0) -> int:
        """End the process: wait ``grace`` seconds for it to exit by itself, then SIGTERM, one
        more ``grace`` (at most a second), then SIGKILL. Remove its private directory."""
        try:
            deadline = time.monotonic() + grace
            for sig in (signal.SIGTERM, signal.SIGKILL):
                remaining = max(0.0, deadline - time.monotonic())
                if remaining:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(self._waiter), remaining)
                if self._waiter.done():
                    break
                self._signal_group(sig)
                deadline = time.monotonic() + min(grace, 1.0)
            code = await asyncio.shield(self._waiter)
            # Children the plugin started share its group; none may outlive it.
            self._signal_group(signal.SIGKILL)
            for pump in self._pumps:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pump), 0.5)
            return code
        finally:
            for pump in self._pumps:
                pump.cancel()
            self._transport.close()
            shutil.rmtree(self.workdir, ignore_errors=True)


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Stream protocol that reports the exit itself: ``Process.wait()`` would also wait until
    every pipe is closed, which a child of the plugin holding them could delay forever."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[int] = loop.create_future()
        self._process: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._process = transport
        super().connection_made(transport)

    def process_exited(self) -> None:
        super().process_exited()
        assert self._process is not None
        code = self._process.get_returncode()
        if not self.exited.done() and code is not None:
            self.exited.set_result(code)


async def _read_line(stream: asyncio.StreamReader) -> str | None:
    """One line (cut at the stream's limit), or None at the end of the stream."""
    try:
        raw = await stream.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raw = exc.partial
    except asyncio.LimitOverrunError as exc:
        raw = await stream.readexactly(exc.consumed)
    if not raw:
        return None
    return raw.decode("utf-8", "replace")


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"
