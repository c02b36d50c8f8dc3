"""Plugin logs: the ``goatkit.plugin.<name>`` loggers plus a ring buffer per plugin (admin)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@dataclass(frozen=True)
class LogRecord:
    """One line a plugin logged (or that the platform logged about it)."""

    time: float
    plugin: str
    level: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


class PluginLogs:
    """Keeps the last ``size`` log records of each plugin and forwards them to ``logging``."""

    def __init__(self, size: int = 500) -> None:
        self.size = size
        self._buffers: dict[str, deque[LogRecord]] = {}
        self._lock = threading.Lock()

    def log(
        self, plugin: str, level: str, message: str, fields: dict[str, Any] | None = None
    ) -> None:
        level = level.lower()
        if level not in _LEVELS:
            level = "info"
        record = LogRecord(
            time.time(), plugin, "warn" if level == "warning" else level, message, fields or {}
        )
        with self._lock:
            buf = self._buffers.get(plugin)
            if buf is None:
                buf = self._buffers[plugin] = deque(maxlen=self.size)
            buf.append(record)
        logging.getLogger(f"goatkit.plugin.{plugin}").log(
            _LEVELS[level],
            "%s",
            message,
            extra={"goatkit_plugin": plugin, "goatkit_fields": fields or {}},
        )

    def records(self, plugin: str) -> list[LogRecord]:
        with self._lock:
            return list(self._buffers.get(plugin, ()))
