"""The Redis cache backend against a real redis-server started by the test (CI installs it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from goatkit_asgi import Platform
from goatkit_asgi.errors import ConfigError, HostCallError
from goatkit_asgi.host.redis_cache import RedisCache
from tests.fixtures.wat import make_plugin

MakePlatform = Callable[..., Platform]

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not installed here (CI installs Debian's redis-server)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed here (CI installs Debian's redis-server)")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            RedisCache(url).ping()
            break
        except ConfigError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs_redis
def test_set_get_delete_ttl_and_namespaces(redis_url: str) -> None:
    cache = RedisCache(redis_url)
    cache.set("alpha", "k", b"\x00bytes", None)
    assert cache.get("alpha", "k") == b"\x00bytes"
    assert cache.get("beta", "k") is None  # another plugin's namespace
    cache.set("alpha", "short", b"x", 0.05)
    time.sleep(0.1)
    assert cache.get("alpha", "short") is None
    assert cache.delete("alpha", "k") is True and cache.delete("alpha", "k") is False
    cache.close()


@needs_redis
@pytest.mark.anyio
async def test_two_platforms_share_the_cache_but_not_across_plugins(
    plugins_dir: Path, make_platform: MakePlatform, redis_url: str, tmp_path: Path
) -> None:
    make_plugin(plugins_dir, "alpha")
    make_plugin(plugins_dir, "beta")
    async with (
        make_platform(cache_url=redis_url, state_dir=tmp_path / "s1") as one,
        make_platform(cache_url=redis_url, state_dir=tmp_path / "s2") as two,
    ):
        put = ["cache_set", {"key": "shared", "value": "aGk=", "ttl": 60}]
        assert await one.call("alpha", "host", put) == {"ok": True}
        get = ["cache_get", {"key": "shared"}]
        assert await two.call("alpha", "host", get) == {"value": "aGk=", "found": True}
        assert await two.call("beta", "host", get) == {"value": None, "found": False}


def test_unreachable_redis_is_a_clear_error() -> None:
    port = _free_port()  # nothing listens there
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        cache.ping()
    with pytest.raises(HostCallError, match="the cache is unavailable"):
        cache.get("alpha", "k")


def test_bad_cache_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cache_url"):
        RedisCache("http://not-redis")
