"""The plugin cache: an in-memory TTL/LRU store, namespaced per plugin.

Keys are namespaced by the host (``<plugin>\\x00<key>``), never by the plugin, so one plugin
cannot name another's keys.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class CacheBackend(Protocol):
    """What the host API needs of a cache. Methods are called from worker threads."""

    def get(self, namespace: str, key: str) -> bytes | None: ...

    def set(self, namespace: str, key: str, value: bytes, ttl: float | None) -> None: ...

    def delete(self, namespace: str, key: str) -> bool: ...


class MemoryCache:
    """A thread-safe in-memory cache with per-entry TTL and an LRU bound on total bytes."""

    def __init__(
        self, *, max_bytes: int = 64 * 1024 * 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[tuple[str, str], tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, namespace: str, key: str) -> bytes | None:
        k = (namespace, key)
        with self._lock:
            item = self._data.get(k)
            if item is None:
                return None
            value, expires = item
            if expires is not None and expires <= self._clock():
                self._drop(k)
                return None
            self._data.move_to_end(k)
            return value

    def set(self, namespace: str, key: str, value: bytes, ttl: float | None) -> None:
        k = (namespace, key)
        expires = self._clock() + ttl if ttl else None
        with self._lock:
            if k in self._data:
                self._drop(k)
            self._data[k] = (value, expires)
            self._bytes += len(value) + len(key)
            while self._bytes > self.max_bytes and self._data:
                self._drop(next(iter(self._data)))

    def delete(self, namespace: str, key: str) -> bool:
        with self._lock:
            if (namespace, key) in self._data:
                self._drop((namespace, key))
                return True
            return False

    def _drop(self, k: tuple[str, str]) -> None:
        value, _ = self._data.pop(k)
        self._bytes -= len(value) + len(k[1])
