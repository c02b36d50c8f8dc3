"""The plugin cache on Redis (``cache_url="redis://…"``), for several workers sharing state.

Same contract as :class:`~goatkit_asgi.host.cache.MemoryCache`: the host namespaces every key
(``goatkit:<plugin>:<key>``), so a plugin cannot name another plugin's keys. Methods are called
from worker threads; redis-py's client and connection pool are thread-safe.
"""

from __future__ import annotations

import math

import redis

from ..errors import ConfigError, HostCallError

PREFIX = "goatkit"


class RedisCache:
    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        try:
            self._client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        except ValueError as exc:
            raise ConfigError(f"cache_url: {exc}; use redis://host:6379/0") from exc
        self.url = url

    def ping(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise ConfigError(
                f"cache_url: cannot reach Redis at {self.url} ({exc}); start Redis or fix the URL"
            ) from exc

    @staticmethod
    def _key(namespace: str, key: str) -> str:
        return f"{PREFIX}:{namespace}:{key}"

    def get(self, namespace: str, key: str) -> bytes | None:
        try:
            value = self._client.get(self._key(namespace, key))
        except redis.RedisError as exc:
            raise HostCallError(
                f"cache_get: the cache is unavailable ({exc})", code="cache_error"
            ) from exc
        return value if isinstance(value, bytes) else None

    def set(self, namespace: str, key: str, value: bytes, ttl: float | None) -> None:
        try:
            if ttl:
                self._client.set(self._key(namespace, key), value, px=max(1, math.ceil(ttl * 1000)))
            else:
                self._client.set(self._key(namespace, key), value)
        except redis.RedisError as exc:
            raise HostCallError(
                f"cache_set: the cache is unavailable ({exc})", code="cache_error"
            ) from exc

    def delete(self, namespace: str, key: str) -> bool:
        try:
            return bool(self._client.delete(self._key(namespace, key)))
        except redis.RedisError as exc:
            raise HostCallError(
                f"cache_delete: the cache is unavailable ({exc})", code="cache_error"
            ) from exc

    def close(self) -> None:
        self._client.close()
