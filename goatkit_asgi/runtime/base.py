"""What every runtime needs from the platform, and what the platform needs from a runtime.

Runtimes know nothing of host backends: the platform hands each one a :class:`HostBridge` that
carries host calls (name, JSON args, calling plugin, deadline) to the host API, so the WASM and
gRPC runtimes share one host API and tests can run a runtime with a fake bridge.
"""

from __future__ import annotations

from typing import Protocol

LOG_LEVELS = ("debug", "info", "warn", "error")


class HostBridge(Protocol):
    """The host side of a plugin, as seen from a runtime."""

    def host_call(self, plugin: str, function: str, args: bytes, deadline: float) -> bytes:
        """Run host function ``function`` for ``plugin`` and return its JSON result.

        Called from a worker thread (never on the event loop). ``deadline`` is a
        ``time.monotonic()`` value: the host call must give up by then. Raises a
        :class:`~goatkit_asgi.errors.GoatKitError` on failure (denied, bad input, backend error).
        """
        ...

    def log(self, plugin: str, level: str, message: str) -> None:
        """Record a log line from the plugin (``gk.log``, WASI stdout/stderr). Never raises."""
        ...


def level_name(level: int) -> str:
    """Map GoatKit's numeric log levels (0 debug .. 3 error) to names; out of range is "info"."""
    if 0 <= level < len(LOG_LEVELS):
        return LOG_LEVELS[level]
    return "info"
