"""The desk-digest example plugin, end to end: its committed module reads a real SQLite tickets
table, fetches a status document from a local HTTP server, mails through a local SMTP server and
schedules jobs, all through the capability-checked host API."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from goatkit_asgi import Platform
from goatkit_asgi.errors import PluginCallError
from goatkit_asgi.web.middleware import GoatKitMiddleware
from tests.host.test_mail import Collector, smtp  # noqa: F401 - the SMTP server fixture
from tests.web.server import serve

pytestmark = pytest.mark.anyio

MakePlatform = Callable[..., Platform]
PLUGIN = "desk-digest"
SOURCE = Path(__file__).resolve().parent.parent / "examples" / PLUGIN
GRANTS = {
    PLUGIN: {
        "db": {"read": ["tickets"]},
        "http": {"hosts": ["127.0.0.1"]},
        "email": True,
        "jobs": True,
    }
}
# state -> how many tickets are in it; "open" counts every state but closed
SEED = {"new": 1, "open": 3, "pending": 2, "closed": 4}
COUNTS = dict(sorted(SEED.items()))
OPEN = 6
STATUS = {"service": "status-test", "ok": True}


@pytest.fixture(autouse=True)
def plugin(plugins_dir: Path) -> None:
    shutil.copytree(SOURCE, plugins_dir / PLUGIN)


def seed(path: Path, states: dict[str, int]) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT NOT NULL, queue TEXT NOT "
            "NULL, priority TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, "
            "closed_at TEXT)"
        )
        for state, n in states.items():
            for i in range(n):
                conn.execute(
                    "INSERT INTO tickets (title, queue, priority, state, created_at) "
                    "VALUES (?, 'it', 'normal', ?, '2025-01-01T00:00:00')",
                    (f"{state} ticket {i}", state),
                )
    return f"sqlite:///{path}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return seed(tmp_path / "helpdesk.db", SEED)


class StatusServer:
    def __init__(self, url: str, hits: list[str]) -> None:
        self.base = url
        self.url = url + "/status.json"
        self.hits = hits


@pytest.fixture
def status_server() -> Iterator[StatusServer]:
    hits: list[str] = []

    async def status(request: Request) -> JSONResponse:
        hits.append(request.headers.get("accept", ""))
        return JSONResponse(STATUS)

    with serve(Starlette(routes=[Route("/status.json", status)])) as url:
        yield StatusServer(url, hits)


def smtp_settings(port: int) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "sender": "desk@example.com",
        "local_hostname": "localhost",
    }


def options(
    db_url: str, status_url: str, port: int, grants: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "database_url": db_url,
        "plugin_config": {PLUGIN: {"status_url": status_url}},
        "smtp": smtp_settings(port),
        "grants": grants,
        "job_poll": 3600,  # jobs run only when a test ticks the scheduler
    }


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/status.json"


# -- without grants ---------------------------------------------------------------------------


async def test_without_grants_every_part_reports_its_denial(
    make_platform: MakePlatform,
    db_url: str,
    status_server: StatusServer,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    collector, port = smtp
    async with make_platform(**options(db_url, status_server.url, port)) as platform:
        out = await platform.call(PLUGIN, "digest")
        assert out["counts"] is None and out["open"] is None  # no rows
        assert out["counts_error"]["code"] == "capability_denied"
        assert "tickets" in out["counts_error"]["message"]
        assert out["status"] is None
        assert out["status_error"]["code"] == "capability_denied"
        assert out["cached"] is False
        # a digest with a failed part is not cached: the next call asks again
        again = await platform.call(PLUGIN, "digest")
        assert again["cached"] is False and again["counts_error"]["code"] == "capability_denied"
        # the page shows the denials instead of a table
        page = await platform.call(PLUGIN, "digest_page")
        assert "Ticket counts unavailable: capability_denied" in page["html"]
        assert "Status unavailable: capability_denied" in page["html"]
        assert "<table" not in page["html"]
        # mailing and scheduling fail with the host's code
        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "send_digest")
        assert info.value.code == "capability_denied"
        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "schedule", {"cron": "@hourly"})
        assert info.value.code == "capability_denied"
        # the registration's job waits for the jobs grant
        assert await platform.jobs(PLUGIN) == []
        denied = {e.function for e in platform.services.recent_audit(PLUGIN)}
        assert {"db_query", "http_request", "schedule_job"} <= denied
    assert status_server.hits == []
    assert collector.messages == []


# -- granted ----------------------------------------------------------------------------------


async def test_granted_digest_matches_the_data_and_is_cached(
    make_platform: MakePlatform,
    db_url: str,
    status_server: StatusServer,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    _, port = smtp
    async with make_platform(**options(db_url, status_server.url, port, GRANTS)) as platform:
        out = await platform.call(PLUGIN, "digest")
        assert out["counts"] == COUNTS and list(out["counts"]) == sorted(SEED)
        assert out["open"] == OPEN
        assert out["status"]["url"] == status_server.url
        assert out["status"]["code"] == 200
        assert json.loads(out["status"]["body"]) == STATUS
        assert out["cached"] is False
        assert "counts_error" not in out and "status_error" not in out
        assert status_server.hits == ["application/json"]

        second = await platform.call(PLUGIN, "digest")
        assert second == {**out, "cached": True}
        assert len(status_server.hits) == 1  # served from the cache, no second request

        # the cache entry is the plugin's "digest" key: once it is gone, the digest is rebuilt
        assert platform.cache.delete(PLUGIN, "digest")
        third = await platform.call(PLUGIN, "digest")
        assert third["cached"] is False and len(status_server.hits) == 2


async def test_a_failed_status_fetch_is_reported_and_not_cached(
    make_platform: MakePlatform,
    db_url: str,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    _, port = smtp
    async with make_platform(**options(db_url, closed_port_url(), port, GRANTS)) as platform:
        out = await platform.call(PLUGIN, "digest")
        assert out["counts"] == COUNTS and out["open"] == OPEN
        assert out["status"] is None and out["status_error"]["code"] == "http_error"
        assert (await platform.call(PLUGIN, "digest"))["cached"] is False


async def test_an_empty_tickets_table_gives_empty_counts(
    make_platform: MakePlatform,
    tmp_path: Path,
    status_server: StatusServer,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    _, port = smtp
    empty = seed(tmp_path / "empty.db", {})
    async with make_platform(**options(empty, status_server.url, port, GRANTS)) as platform:
        out = await platform.call(PLUGIN, "digest")  # db_query answers null for zero rows
        assert out["counts"] == {} and out["open"] == 0 and out["status"]["code"] == 200


def test_digest_page_is_a_table_inside_the_host_layout(
    make_platform: MakePlatform,
    tmp_path: Path,
    status_server: StatusServer,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    _, port = smtp
    # a state that needs escaping
    url = seed(tmp_path / "escape.db", {**SEED, "<b>escalated</b>": 1})
    platform = make_platform(**options(url, status_server.url, port, GRANTS))
    with TestClient(GoatKitMiddleware(Starlette(), platform=platform)) as client:
        page = client.get("/digest")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        # the built-in layout: title, and the plugin's menu item
        assert "<title>Digest</title>" in html
        assert '<nav class="goatkit-menu">' in html
        assert f'<a href="/digest" data-plugin="{PLUGIN}">Digest</a>' in html
        # the counts table, values escaped
        for state, n in COUNTS.items():
            assert f"<tr><td>{state}</td><td>{n}</td></tr>" in html
        assert "<tr><td>&lt;b&gt;escalated&lt;/b&gt;</td><td>1</td></tr>" in html
        assert "<b>escalated</b>" not in html
        assert f'<th class="digest-open">{OPEN + 1}</th>' in html
        assert '<strong class="digest-status">200</strong>' in html
        assert "&quot;service&quot;:&quot;status-test&quot;" in html  # the body, escaped
        assert "Fresh." in html
        assert "From the cache" in client.get("/digest").text
    assert len(status_server.hits) == 1


# -- jobs and email ---------------------------------------------------------------------------


async def test_the_daily_job_mails_one_fresh_digest(
    make_platform: MakePlatform,
    db_url: str,
    status_server: StatusServer,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    collector, port = smtp
    async with make_platform(**options(db_url, status_server.url, port, GRANTS)) as platform:
        (row,) = await platform.jobs(PLUGIN)
        assert (row.job_id, row.callback, row.schedule, row.source) == (
            "daily-digest",
            "send_digest",
            "0 7 * * *",
            "registration",
        )
        await platform.call(PLUGIN, "digest")  # fills the cache, which the job does not use
        assert len(status_server.hits) == 1

        assert await platform.services.scheduler.tick(row.next_run + 1) == 1
        (row,) = await platform.jobs(PLUGIN)
        assert row.runs == 1 and row.last_status == "ok", row.last_error
        assert len(status_server.hits) == 2

    (mail,) = collector.messages
    assert mail.rcpt_tos == ["team@example.com"]  # the manifest's default digest_to
    assert mail.message["Subject"] == f"Helpdesk digest: {OPEN} open"
    assert mail.message["X-GoatKit-Plugin"] == PLUGIN
    body = mail.message.get_content()
    for state, n in COUNTS.items():
        assert f"  {state}: {n}\n" in body
    assert f"Open (not closed): {OPEN}\n" in body
    assert f"Service status: 200 from {status_server.url}\n" in body


async def test_send_digest_fails_with_the_hosts_error_code(
    make_platform: MakePlatform,
    db_url: str,
    status_server: StatusServer,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    collector, port = smtp
    collector.refuse = {"nobody@example.com"}
    opts = options(db_url, status_server.url, port, GRANTS)
    opts["plugin_config"][PLUGIN]["digest_to"] = "nobody@example.com"
    async with make_platform(**opts) as platform:
        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "send_digest")
        assert info.value.code == "smtp_error"
        # as a job, the failure is recorded and the schedule goes on
        (row,) = await platform.jobs(PLUGIN)
        await platform.services.scheduler.tick(row.next_run + 1)
        (row,) = await platform.jobs(PLUGIN)
        assert row.last_status == "failed" and "nobody@example.com" in (row.last_error or "")
    assert collector.messages == []


async def test_schedule_adds_a_second_job_that_mails_too(
    make_platform: MakePlatform,
    db_url: str,
    status_server: StatusServer,
    smtp: tuple[Collector, int],  # noqa: F811
) -> None:
    collector, port = smtp
    async with make_platform(**options(db_url, status_server.url, port, GRANTS)) as platform:
        assert await platform.call(PLUGIN, "schedule", {"cron": "*/15 * * * *"}) == {
            "id": "extra-digest"
        }
        jobs = {row.job_id: row for row in await platform.jobs(PLUGIN)}
        assert set(jobs) == {"daily-digest", "extra-digest"}
        extra = jobs["extra-digest"]
        assert (extra.callback, extra.schedule, extra.source) == (
            "send_digest",
            "*/15 * * * *",
            "schedule_job",
        )
        ran = await platform.services.scheduler.tick(extra.next_run + 1)
        jobs = {row.job_id: row for row in await platform.jobs(PLUGIN)}
        assert jobs["extra-digest"].runs == 1 and jobs["extra-digest"].last_status == "ok"
        assert len(collector.messages) == ran  # (the daily job too, if 07:00 UTC was that close)

        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "schedule", {"cron": "every tuesday"})
        assert info.value.code == "bad_request"
        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "schedule", {})
        assert info.value.code == "bad_input"
        assert len(await platform.jobs(PLUGIN)) == 2
