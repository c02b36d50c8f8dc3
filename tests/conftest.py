from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from goatkit_asgi import Platform

pytest_plugins = ["tests.browser"]  # the browser_page fixture


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    path = tmp_path / "plugins"
    path.mkdir()
    return path


@pytest.fixture
def make_platform(plugins_dir: Path) -> Callable[..., Platform]:
    """A fresh Platform over ``plugins_dir`` with its state beside it."""

    def make(**kwargs: Any) -> Platform:
        kwargs.setdefault("state_dir", plugins_dir.parent / "state")
        kwargs.setdefault("database_url", f"sqlite:///{plugins_dir.parent / 'goatkit.db'}")
        return Platform(plugins_dir, **kwargs)

    return make


@pytest.fixture
async def platform(make_platform: Callable[..., Platform]) -> AsyncIterator[Platform]:
    async with make_platform() as p:
        yield p


@asynccontextmanager
async def postgres_database(dsn: str, prefix: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database on the server ``dsn`` names; dropped afterwards."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"{dsn.rpartition('/')[0]}/{name}"
    finally:
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
