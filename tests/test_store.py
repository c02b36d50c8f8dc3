"""The platform database (grants, jobs and their leases, audit, plugin state) on SQLite and on
PostgreSQL. PostgreSQL runs when GOATKIT_TEST_POSTGRES_DSN names a server (CI starts one)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from goatkit_asgi.errors import ConfigError
from goatkit_asgi.packaging.manifest import Capabilities
from goatkit_asgi.store import AuditEntry, Store
from tests.conftest import postgres_database

pytestmark = pytest.mark.anyio

POSTGRES = os.environ.get("GOATKIT_TEST_POSTGRES_DSN")


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'platform.db'}"
        return
    if not POSTGRES:
        pytest.skip("no PostgreSQL here: set GOATKIT_TEST_POSTGRES_DSN (CI starts a server)")
    async with postgres_database(POSTGRES, "goatkit_store") as url:
        yield url


async def test_grants_roundtrip(url: str) -> None:
    store = Store(url)
    await store.connect()
    try:
        caps = Capabilities(db_read=("tickets",), email=True)
        await store.set_grant("stats", caps)
        assert (await store.grants())["stats"] == caps
        await store.set_grant("stats", Capabilities())
        assert "stats" not in await store.grants()
    finally:
        await store.disconnect()


async def test_one_lease_per_tick_under_contention(url: str) -> None:
    stores = [Store(url) for _ in range(3)]
    for s in stores:
        await s.connect()
    try:
        due = time.time() - 1
        await stores[0].upsert_job("cron", "j", "@every 1s", "run", {"a": 1}, "schedule_job", due)
        wins: list[bool] = []

        async def race(store: Store, owner: str) -> None:
            wins.append(
                await store.lease_job("cron", "j", due, owner, time.time() + 60, time.time())
            )

        async with anyio.create_task_group() as tg:
            for i, s in enumerate(stores * 2):
                tg.start_soon(race, s, f"w{i}")
        assert wins.count(True) == 1
        await stores[0].finish_job(
            "cron", "j", "nobody", ran_at=time.time(), next_run=due + 60, status="ok", error=None
        )
        (job,) = await stores[1].jobs("cron")
        assert job.runs == 0  # only the lease holder can finish the tick
        assert job.args == {"a": 1}
    finally:
        for s in stores:
            await s.disconnect()


async def test_audit_and_plugin_state(url: str) -> None:
    store = Store(url)
    await store.connect()
    try:
        await store.write_audit(
            [AuditEntry(time.time(), "p", "db_query", "denied", "ada", "secrets")]
        )
        (entry,) = await store.audit("p")
        assert (entry.function, entry.decision, entry.user) == ("db_query", "denied", "ada")
        await store.set_enabled("p", False)
        assert await store.disabled_plugins() == {"p"}
        await store.set_enabled("p", True)
        assert await store.disabled_plugins() == set()
    finally:
        await store.disconnect()


async def test_unreachable_database_is_a_clear_config_error() -> None:
    store = Store("postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(
        ConfigError,
        match=r"cannot open the platform database postgresql://nobody:\*\*\*@127\.0\.0\.1:1/none",
    ):
        await store.connect()


def test_the_platform_tables_are_the_ones_plugins_are_kept_from() -> None:
    import re

    from goatkit_asgi import store
    from goatkit_asgi.specs import PLATFORM_TABLES

    created = {m for s in store._SCHEMA for m in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", s)}
    assert created == set(PLATFORM_TABLES)
