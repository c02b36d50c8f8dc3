"""Grants, capability checks and the audit log, end to end: a WASM plugin's host calls through
the platform to real backends (SQLite, a local HTTP server, an SMTP server, the scheduler)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from goatkit_asgi import Platform
from goatkit_asgi.errors import ConfigError
from goatkit_asgi.platform import current_user
from tests.conftest import postgres_database
from tests.fixtures.wat import REGISTRATION, make_plugin
from tests.host.test_mail import Collector, smtp  # noqa: F401 - the SMTP server fixture
from tests.web.server import serve

pytestmark = pytest.mark.anyio

MakePlatform = Callable[..., Platform]


def host(platform: Platform, plugin: str, function: str, args: dict[str, Any]) -> Any:
    return platform.call(plugin, "host", [function, args])


POSTGRES = os.environ.get("GOATKIT_TEST_POSTGRES_DSN")
SEED = [
    "CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT)",
    "INSERT INTO tickets (id, title) VALUES (1, 'printer on fire')",
    "CREATE TABLE secrets (value TEXT)",
    "INSERT INTO secrets VALUES ('hunter2')",
]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The app database (tickets, secrets) that is also the platform database."""
    if request.param == "sqlite":
        path = tmp_path / "app.db"
        with sqlite3.connect(path) as conn:
            for statement in SEED:
                conn.execute(statement)
        yield f"sqlite:///{path}"
        return
    if not POSTGRES:
        pytest.skip("no PostgreSQL here: set GOATKIT_TEST_POSTGRES_DSN (CI starts a server)")
    import asyncpg

    async with postgres_database(POSTGRES, "goatkit_caps") as url:
        conn = await asyncpg.connect(url)
        for statement in SEED:
            await conn.execute(statement)
        await conn.close()
        yield url


def reader(plugins_dir: Path, name: str = "reader", caps: dict[str, Any] | None = None) -> None:
    make_plugin(plugins_dir, name, manifest={"capabilities": caps or {"db": {"read": ["tickets"]}}})


async def test_db_denied_without_grant_and_audited(
    plugins_dir: Path, make_platform: MakePlatform, db_url: str
) -> None:
    reader(plugins_dir)
    async with make_platform(database_url=db_url) as platform:
        token = current_user.set("agent-7")
        try:
            out = await host(platform, "reader", "db_query", {"query": "SELECT title FROM tickets"})
        finally:
            current_user.reset(token)
        assert out["failed"]["code"] == "capability_denied"
        assert "tickets" in out["failed"]["message"]
        info = platform.plugins["reader"]
        assert info.requested.db_read == ("tickets",) and info.pending.db_read == ("tickets",)
        entry = platform.services.recent_audit("reader")[-1]
        assert (entry.function, entry.decision, entry.user) == ("db_query", "denied", "agent-7")
        await platform.services.flush_audit()
        stored = await platform.services.store.audit("reader")
        assert stored[0].decision == "denied" and stored[0].user == "agent-7"


async def test_granted_read_works_and_a_grant_beyond_the_request_gives_nothing(
    plugins_dir: Path, make_platform: MakePlatform, db_url: str
) -> None:
    reader(plugins_dir)
    grants = {"reader": {"db": {"read": ["tickets", "secrets"]}}}
    async with make_platform(database_url=db_url, grants=grants) as platform:
        rows = await host(platform, "reader", "db_query", {"query": "SELECT title FROM tickets"})
        assert rows == [{"title": "printer on fire"}]
        assert (
            await host(
                platform,
                "reader",
                "db_query",
                {"query": "SELECT title FROM tickets WHERE id = ?", "args": [99]},
            )
            is None
        )
        out = await host(platform, "reader", "db_query", {"query": "SELECT value FROM secrets"})
        assert out["failed"]["code"] == "capability_denied"  # granted, but never asked for
        out = await host(platform, "reader", "db_exec", {"query": "DELETE FROM tickets"})
        assert out["failed"]["code"] == "capability_denied"
        # its own tables are always its own
        assert await host(
            platform, "reader", "db_exec", {"query": "CREATE TABLE reader_notes (t TEXT)"}
        ) == {"affected": 0}
        assert await host(
            platform,
            "reader",
            "db_exec",
            {
                "query": "INSERT INTO reader_notes VALUES (?)",
                "args": ["x'); DROP TABLE tickets; --"],
            },
        ) == {"affected": 1}
        assert await host(
            platform, "reader", "db_query", {"query": "SELECT t FROM reader_notes"}
        ) == [{"t": "x'); DROP TABLE tickets; --"}]
        decisions = [(e.function, e.decision) for e in platform.services.recent_audit("reader")]
        assert ("db_query", "allowed") in decisions and ("db_query", "denied") in decisions


async def test_grants_persist_across_restarts_and_can_be_revoked(
    plugins_dir: Path, make_platform: MakePlatform, db_url: str
) -> None:
    reader(plugins_dir)
    query = {"query": "SELECT COUNT(*) AS n FROM tickets"}
    async with make_platform(database_url=db_url) as platform:
        granted = await platform.grant("reader", {"db": {"read": ["tickets"]}})
        assert granted.db_read == ("tickets",)
        assert await host(platform, "reader", "db_query", query) == [{"n": 1}]
    async with make_platform(database_url=db_url) as platform:  # no grants= given this time
        assert platform.plugins["reader"].granted.db_read == ("tickets",)
        assert await host(platform, "reader", "db_query", query) == [{"n": 1}]
        await platform.revoke("reader")
        out = await host(platform, "reader", "db_query", query)
        assert out["failed"]["code"] == "capability_denied"
    async with make_platform(database_url=db_url) as platform:
        assert platform.plugins["reader"].granted.is_empty()


async def test_an_upgrade_asking_for_more_waits_for_approval(
    plugins_dir: Path, make_platform: MakePlatform, db_url: str
) -> None:
    reader(plugins_dir)
    async with make_platform(database_url=db_url, grants={"reader": {"db": {"read": ["tickets"]}}}):
        pass
    # version 2 also wants email and to write tickets
    reader(plugins_dir, caps={"db": {"read": ["tickets"], "write": ["tickets"]}, "email": True})
    async with make_platform(database_url=db_url) as platform:
        info = platform.plugins["reader"]
        assert info.effective.db_read == ("tickets",)
        assert info.pending.db_write == ("tickets",) and info.pending.email
        out = await host(platform, "reader", "db_exec", {"query": "UPDATE tickets SET title = 'x'"})
        assert out["failed"]["code"] == "capability_denied"
        await platform.grant("reader", {"db": {"write": ["tickets"]}})
        assert await host(
            platform, "reader", "db_exec", {"query": "UPDATE tickets SET title = 'x'"}
        ) == {"affected": 1}
        assert platform.plugins["reader"].pending.db_write == ()


async def test_auto_grant_allows_what_the_manifest_asks(
    plugins_dir: Path, make_platform: MakePlatform, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    reader(plugins_dir)
    async with make_platform(database_url=db_url, auto_grant=True) as platform:
        assert await host(platform, "reader", "db_query", {"query": "SELECT id FROM tickets"}) == [
            {"id": 1}
        ]
        out = await host(platform, "reader", "db_query", {"query": "SELECT value FROM secrets"})
        assert out["failed"]["code"] == "capability_denied"  # still only what it asked for
    assert "auto_grant is on" in caplog.text


@pytest.mark.parametrize(
    ("grants", "words"),
    [
        ({"x": {"db": {"read": "tickets"}}}, "grants['x']"),
        ({"x": {"email": "yes"}}, "email"),
    ],
)
def test_bad_grants_are_config_errors(make_platform: MakePlatform, grants: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        make_platform(grants=grants)


# -- HTTP, email ------------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    async def hello(request: Any) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    with serve(Starlette(routes=[Route("/hello", hello)])) as url:
        yield url


async def test_http_request_needs_an_exact_grant_for_loopback(
    plugins_dir: Path, make_platform: MakePlatform, http_server: str
) -> None:
    make_plugin(
        plugins_dir,
        "fetcher",
        manifest={"capabilities": {"http": {"hosts": ["127.0.0.1", "*.example.org"]}}},
    )
    url = http_server + "/hello"
    async with make_platform(
        grants={"fetcher": {"http": {"hosts": ["*.example.org"]}}}
    ) as platform:
        out = await host(platform, "fetcher", "http_request", {"method": "GET", "url": url})
        assert out["failed"]["code"] == "capability_denied"
        await platform.grant("fetcher", {"http": {"hosts": ["127.0.0.1"]}})
        out = await host(platform, "fetcher", "http_request", {"method": "GET", "url": url})
        assert out["status"] == 200
        import base64
        import json

        assert json.loads(base64.b64decode(out["body"])) == {"hello": "world"}


async def test_send_email_needs_the_email_grant(
    plugins_dir: Path,
    make_platform: MakePlatform,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    collector, port = smtp
    make_plugin(plugins_dir, "mailer", manifest={"capabilities": {"email": True}})
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "desk@example.com",
        "local_hostname": "localhost",
    }
    message = {"to": "ada@example.com", "subject": "Report", "body": "All quiet."}
    async with make_platform(smtp=settings) as platform:
        out = await host(platform, "mailer", "send_email", message)
        assert out["failed"]["code"] == "capability_denied"
        assert collector.messages == []
        await platform.grant("mailer", {"email": True})
        assert (await host(platform, "mailer", "send_email", message))["ok"] is True
        out = await host(
            platform, "mailer", "send_email", {**message, "subject": "x\r\nBcc: evil@example.com"}
        )
        assert out["failed"]["code"] == "bad_request"
    assert len(collector.messages) == 1
    received = collector.messages[0].message
    assert received["Subject"] == "Report" and received["X-GoatKit-Plugin"] == "mailer"


async def test_send_email_without_smtp_settings_is_unavailable(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "mailer", manifest={"capabilities": {"email": True}})
    async with make_platform(grants={"mailer": {"email": True}}) as platform:
        out = await host(
            platform, "mailer", "send_email", {"to": "a@example.com", "subject": "s", "body": "b"}
        )
        assert out["failed"]["code"] == "unavailable" and "smtp" in out["failed"]["message"]


# -- jobs -------------------------------------------------------------------------------------


async def test_schedule_job_runs_the_callback_once_per_tick(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "cron", manifest={"capabilities": {"jobs": True}})
    async with make_platform(job_poll=3600) as platform:
        job = {"id": "nightly", "cron": "@every 1s", "callback": "log", "args": "tick"}
        out = await host(platform, "cron", "schedule_job", job)
        assert out["failed"]["code"] == "capability_denied"
        await platform.grant("cron", {"jobs": True})
        assert await host(platform, "cron", "schedule_job", job) == {"id": "nightly"}
        bad = await host(platform, "cron", "schedule_job", {**job, "cron": "every tuesday"})
        assert (
            bad["failed"]["code"] == "bad_request"
            and "not a cron schedule" in bad["failed"]["message"]
        )
        (row,) = await platform.jobs("cron")
        assert row.schedule == "@every 1s" and row.runs == 0
        scheduler = platform.services.scheduler
        assert await scheduler.tick(row.next_run - 0.5) == 0  # not due yet
        assert await scheduler.tick(row.next_run + 0.1) == 1
        assert await scheduler.tick(row.next_run + 0.2) == 0  # that tick has run
        (row,) = await platform.jobs("cron")
        assert row.runs == 1 and row.last_status == "ok"
        assert ("warn", '"tick"') in [(r.level, r.message) for r in platform.logs.records("cron")]


async def test_registration_jobs_need_the_jobs_grant_and_failures_are_recorded(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    registration = {
        **REGISTRATION,
        "name": "reports",
        "jobs": [
            {"id": "boom", "handler": "trap", "schedule": "*/5 * * * *", "enabled": True},
            {
                "id": "off",
                "handler": "echo",
                "schedule": "@hourly",
            },  # no "enabled": off, as in GoatKit
        ],
    }
    make_plugin(
        plugins_dir, "reports", manifest={"capabilities": {"jobs": True}}, registration=registration
    )
    async with make_platform(job_poll=3600) as platform:
        assert await platform.jobs("reports") == []
        await platform.grant("reports", {"jobs": True})
        (row,) = await platform.jobs("reports")
        assert row.job_id == "boom" and row.source == "registration"
        await platform.services.scheduler.tick(row.next_run + 1)
        (row,) = await platform.jobs("reports")
        assert row.last_status == "failed" and "reports: trap crashed" in (row.last_error or "")
        assert row.next_run > time.time()  # the schedule goes on


async def test_a_job_runs_once_across_two_platforms_sharing_one_database(
    plugins_dir: Path, make_platform: MakePlatform, tmp_path: Path
) -> None:
    make_plugin(plugins_dir, "cron", manifest={"capabilities": {"jobs": True}})
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    grants = {"cron": {"jobs": True}}
    async with (
        make_platform(
            database_url=shared, grants=grants, job_poll=3600, state_dir=tmp_path / "s1"
        ) as one,
        make_platform(
            database_url=shared, grants=grants, job_poll=3600, state_dir=tmp_path / "s2"
        ) as two,
    ):
        await host(
            one,
            "cron",
            "schedule_job",
            {"id": "once", "cron": "@every 1s", "callback": "log", "args": "ran"},
        )
        (row,) = await two.jobs("cron")
        counts: list[int] = []

        async def tick(p: Platform) -> None:
            counts.append(await p.services.scheduler.tick(row.next_run + 0.1))

        async with anyio.create_task_group() as tg:
            for p in (one, two, one, two):
                tg.start_soon(tick, p)
        assert sum(counts) == 1
        ran = [r for p in (one, two) for r in p.logs.records("cron") if r.message == '"ran"']
        assert len(ran) == 1


# -- other plugins and events -------------------------------------------------------------------


async def test_plugin_call_needs_a_grant_and_refuses_itself(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "caller", manifest={"capabilities": {"plugins": ["callee"]}})
    make_plugin(plugins_dir, "callee")
    call = {"plugin": "callee", "function": "echo", "args": {"x": 1}}
    async with make_platform() as platform:
        assert (await host(platform, "caller", "plugin_call", call))["failed"][
            "code"
        ] == "capability_denied"
        await platform.grant("caller", {"plugins": ["callee"]})
        assert await host(platform, "caller", "plugin_call", call) == {"x": 1}
        out = await host(platform, "caller", "plugin_call", {**call, "plugin": "caller"})
        assert out["failed"]["code"] == "bad_request" and "to itself" in out["failed"]["message"]


async def test_publish_event_reaches_host_subscribers(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    make_plugin(plugins_dir, "notifier", manifest={"capabilities": {"events": True}})
    async with make_platform() as platform:
        seen: list[tuple[str, str, Any]] = []
        platform.events.subscribe("ticket.*", lambda e: seen.append((e.plugin, e.topic, e.payload)))

        async def broken(event: Any) -> None:
            raise RuntimeError("a subscriber bug")

        platform.events.subscribe("ticket.*", broken)
        event = {"topic": "ticket.closed", "payload": {"id": 3}}
        assert (await host(platform, "notifier", "publish_event", event))["failed"][
            "code"
        ] == "capability_denied"
        await platform.grant("notifier", {"events": True})
        assert await host(platform, "notifier", "publish_event", event) == {
            "ok": True,
            "delivered": 1,
        }
        assert seen == [("notifier", "ticket.closed", {"id": 3})]
