"""Fixtures for the first-party plugins in ``plugins/``.

Each test runs once on SQLite and once on PostgreSQL (``GOATKIT_TEST_POSTGRES_DSN``; CI always
sets it). The database holds the demo helpdesk's ``tickets`` table with :data:`TICKETS`, and the
plugins are loaded the way a user installs them: packed into a ``.zip`` with ``gk plugin pack``'s
code and dropped into the platform's plugins directory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from goatkit_asgi import Platform
from goatkit_asgi.cli import pack_plugin
from tests.host.test_mail import Collector, smtp  # noqa: F401 - the SMTP server fixture

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
PG_DSN = os.environ.get("GOATKIT_TEST_POSTGRES_DSN", "")

T = TypeVar("T")

#: The demo helpdesk's table, as ``goatkit_asgi.demo.app`` creates it (timestamps are ISO 8601
#: text in UTC, as ``datetime.isoformat()`` writes them).
TICKETS_DDL = (
    "CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT NOT NULL, queue TEXT NOT NULL, "
    "priority TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, closed_at TEXT)"
)

#: (title, queue, priority, state, created_at, closed_at): twelve tickets in January 2026.
TICKETS: list[tuple[str, str, str, str, str, str | None]] = [
    ("Printer jam", "facilities", "low", "closed",
     "2026-01-05T09:00:00+00:00", "2026-01-05T11:00:00+00:00"),
    ("VPN drops", "network", "high", "closed",
     "2026-01-05T10:30:00+00:00", "2026-01-06T10:30:00+00:00"),
    ("Password reset", "accounts", "normal", "closed",
     "2026-01-06T08:00:00+00:00", "2026-01-06T08:30:00+00:00"),
    ("New laptop", "hardware", "normal", "open",
     "2026-01-06T12:00:00+00:00", None),
    ("Mail bounces", "email", "high", "pending",
     "2026-01-07T07:15:00+00:00", None),
    ("Coffee machine", "facilities", "low", "closed",
     "2026-01-07T13:00:00+00:00", "2026-01-09T13:00:00+00:00"),
    ("Wi-Fi in room 4", "network", "normal", "new",
     "2026-01-08T09:45:00+00:00", None),
    ("Licence renewal", "accounts", "low", "closed",
     "2026-01-08T16:00:00+00:00", "2026-01-08T20:00:00+00:00"),
    ("Broken monitor", "hardware", "high", "open",
     "2026-01-09T10:00:00+00:00", None),
    ("Shared drive full", "network", "high", "closed",
     "2026-01-12T08:00:00+00:00", "2026-01-12T14:00:00+00:00"),
    ("Badge not working", "facilities", "normal", "pending",
     "2026-01-13T11:00:00+00:00", None),
    ("Phone headset", "hardware", "low", "new",
     "2026-01-14T15:30:00+00:00", None),
]  # fmt: skip


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a loop of its own (also from inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class HelpdeskDB:
    """The test database: its URL for the platform, and plain SQL for the test itself.

    ``query`` and ``execute`` take ``?`` placeholders on both databases, like the host API.
    On PostgreSQL they run as the administrator with the search path set to ``public`` and every
    plugin schema, so a test can read a plugin's own tables by their plain names.
    """

    kind: str  # "sqlite" or "postgresql"
    url: str

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute(sql, tuple(args)).fetchall()]
        return run_async(self._pg(sql, args, fetch=True))

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                conn.execute(sql, tuple(args))
            return
        run_async(self._pg(sql, args, fetch=False))

    async def _pg(self, sql: str, args: Sequence[Any], *, fetch: bool) -> list[dict[str, Any]]:
        import asyncpg

        from goatkit_asgi.host.db import numbered_placeholders

        text, params = numbered_placeholders(sql, list(args))
        conn = await asyncpg.connect(self.url)
        try:
            schemas = await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'goatkit\\_p\\_%'"
            )
            path = ", ".join(['"public"', *(f'"{r["nspname"]}"' for r in schemas)])
            await conn.execute(f"SET search_path TO {path}")
            if fetch:
                return [dict(r) for r in await conn.fetch(text, *params)]
            await conn.execute(text, *params)
            return []
        finally:
            await conn.close()


def _seed(db: HelpdeskDB) -> None:
    ddl = TICKETS_DDL
    if db.kind == "postgresql":  # INTEGER PRIMARY KEY numbers rows on SQLite only
        ddl = ddl.replace(
            "id INTEGER PRIMARY KEY", "id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
        )
    db.execute(ddl)
    for row in TICKETS:
        db.execute(
            "INSERT INTO tickets (title, queue, priority, state, created_at, closed_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )


async def _pg_create(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _pg_drop(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def helpdesk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HelpdeskDB]:
    """The seeded helpdesk database, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        db = HelpdeskDB("sqlite", f"sqlite:///{tmp_path / 'helpdesk.db'}")
        _seed(db)
        yield db
        return
    if not PG_DSN:
        pytest.skip("PostgreSQL: set GOATKIT_TEST_POSTGRES_DSN to run (CI always does)")
    name = f"gk_plugins_{uuid.uuid4().hex[:12]}"
    run_async(_pg_create(name))
    try:
        db = HelpdeskDB("postgresql", f"{PG_DSN.rpartition('/')[0]}/{name}")
        _seed(db)
        yield db
    finally:
        run_async(_pg_drop(name))


def install_packed(plugins_dir: Path, name: str) -> Path:
    """Pack ``plugins/<name>`` as a release would and put the zip into ``plugins_dir``."""
    return pack_plugin(PLUGINS / name, plugins_dir / f"{name}.zip").path


@pytest.fixture
def plugin_platform(
    make_platform: Callable[..., Platform], plugins_dir: Path, helpdesk: HelpdeskDB
) -> Callable[..., Platform]:
    """``plugin_platform("stats", grants={...}, **platform_kwargs)``: a Platform on the test
    database with the named first-party plugins installed from their packed ``.zip``."""

    def make(*names: str, **kwargs: Any) -> Platform:
        for name in names:
            if not (plugins_dir / f"{name}.zip").exists():
                install_packed(plugins_dir, name)
        kwargs.setdefault("database_url", helpdesk.url)
        kwargs.setdefault("job_poll", 3600)  # jobs run only when a test ticks the scheduler
        return make_platform(**kwargs)

    return make


def smtp_settings(port: int) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "sender": "helpdesk@example.com",
        "local_hostname": "localhost",
    }
