"""The stats plugin (``plugins/stats``), installed from its packed zip, on SQLite and PostgreSQL.

The expected numbers are worked out by hand from :data:`tests.plugins.conftest.TICKETS` and
written as literals; :func:`expected_summary` computes the same from the tickets in Python as a
cross-check for other ranges.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from jinja2 import Environment
from starlette.applications import Starlette
from starlette.testclient import TestClient

from goatkit_asgi import Platform
from goatkit_asgi.errors import PluginCallError
from goatkit_asgi.web.middleware import GoatKitMiddleware
from goatkit_asgi.web.templates import PluginTemplates
from tests.host.test_mail import Collector
from tests.plugins.conftest import (
    PLUGINS,
    TICKETS,
    HelpdeskDB,
    smtp_settings,
)

pytestmark = pytest.mark.anyio

NAME = "stats"
SOURCE = PLUGINS / NAME
PluginPlatform = Callable[..., Platform]
GRANTS: dict[str, Any] = {NAME: {"db": {"read": ["tickets"]}, "email": True, "jobs": True}}
STATES = ["new", "open", "pending", "closed"]
DASH = "\N{EN DASH}"  # in the report's subject, and for "no median" on the page


# --- worked out by hand from TICKETS ---------------------------------------------------------

# 2026-01-05..2026-01-09: the first nine tickets. Closed among them: Printer jam (2 h), VPN drops
# (24 h), Password reset (0.5 h), Coffee machine (48 h), Licence renewal (4 h): median 4 h.
WEEK = {"from": "2026-01-05", "to": "2026-01-09"}
WEEK_SUMMARY: dict[str, Any] = {
    "from": "2026-01-05",
    "to": "2026-01-09",
    "days": 5,
    "total": 9,
    "by_state": {"new": 1, "open": 2, "pending": 1, "closed": 5},
    "by_queue": {"accounts": 2, "facilities": 2, "hardware": 2, "network": 2, "email": 1},
    "by_priority": {"high": 3, "low": 3, "normal": 3},
    "per_day": [
        {"day": "2026-01-05", "created": 2, "closed": 1},  # Printer jam closed the same day
        {"day": "2026-01-06", "created": 2, "closed": 2},  # VPN drops and Password reset
        {"day": "2026-01-07", "created": 2, "closed": 0},
        {"day": "2026-01-08", "created": 2, "closed": 1},  # Licence renewal
        {"day": "2026-01-09", "created": 1, "closed": 1},  # Coffee machine
    ],
    "closed": 5,
    "closed_in_range": 5,
    "median_close_hours": 4.0,
}
# January: all twelve; Shared drive full (6 h) joins the closed ones: median (4 + 6) / 2 = 5 h.
MONTH = {"from": "2026-01-01", "to": "2026-01-31"}
MONTH_CREATED = {5: 2, 6: 2, 7: 2, 8: 2, 9: 1, 12: 1, 13: 1, 14: 1}  # day of January -> n
MONTH_CLOSED = {5: 1, 6: 2, 8: 1, 9: 1, 12: 1}


def month_per_day() -> list[dict[str, Any]]:
    return [
        {
            "day": f"2026-01-{d:02d}",
            "created": MONTH_CREATED.get(d, 0),
            "closed": MONTH_CLOSED.get(d, 0),
        }
        for d in range(1, 32)
    ]


MONTH_SUMMARY: dict[str, Any] = {
    "from": "2026-01-01",
    "to": "2026-01-31",
    "days": 31,
    "total": 12,
    "by_state": {"new": 2, "open": 2, "pending": 2, "closed": 6},
    "by_queue": {"facilities": 3, "hardware": 3, "network": 3, "accounts": 2, "email": 1},
    "by_priority": {"high": 4, "low": 4, "normal": 4},
    "per_day": month_per_day(),
    "closed": 6,
    "closed_in_range": 6,
    "median_close_hours": 5.0,
}


# --- the same in Python ----------------------------------------------------------------------


def _ordered(counts: Counter[str], *, states: bool = False) -> dict[str, int]:
    if states:
        known = {s: counts.get(s, 0) for s in STATES}
        return known | {k: counts[k] for k in sorted(counts) if k not in known}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode())))


def utc(stamp: str) -> datetime:
    """An ISO timestamp; one without a zone is UTC, as the plugin reads it."""
    value = datetime.fromisoformat(stamp)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def expected_summary(
    first: str, last: str, tickets: Iterable[tuple[str, str, str, str, str, str | None]] = TICKETS
) -> dict[str, Any]:
    """What summary(first, last) must answer, computed from ``tickets`` in Python."""
    rows = list(tickets)
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    days = [start + timedelta(n) for n in range((end - start).days + 1)]
    inside = [t for t in rows if first <= t[4][:10] <= last]
    hours = [(utc(t[5]) - utc(t[4])).total_seconds() / 3600 for t in inside if t[5] is not None]
    created = Counter(t[4][:10] for t in inside)
    closed = Counter(t[5][:10] for t in rows if t[5] is not None)
    return {
        "from": first,
        "to": last,
        "days": len(days),
        "total": len(inside),
        "by_state": _ordered(Counter(t[3] for t in inside), states=True),
        "by_queue": _ordered(Counter(t[1] for t in inside)),
        "by_priority": _ordered(Counter(t[2] for t in inside)),
        "per_day": [
            {
                "day": d.isoformat(),
                "created": created[d.isoformat()],
                "closed": closed[d.isoformat()],
            }
            for d in days
        ],
        "closed": len(hours),
        "closed_in_range": sum(closed[d.isoformat()] for d in days),
        "median_close_hours": statistics.median(hours) if hours else None,
    }


def today() -> date:
    return datetime.now(UTC).date()


def add_ticket(
    db: HelpdeskDB,
    queue: str = "network",
    priority: str = "normal",
    state: str = "open",
    created_at: str = "2026-01-07T12:00:00+00:00",
    closed_at: str | None = None,
    title: str = "extra",
) -> tuple[str, str, str, str, str, str | None]:
    row = (title, queue, priority, state, created_at, closed_at)
    db.execute(
        "INSERT INTO tickets (title, queue, priority, state, created_at, closed_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        row,
    )
    return row


def allow(*permissions: str) -> Callable[[Any, str], bool]:
    return lambda request, permission: permission in permissions


def client_for(platform: Platform) -> TestClient:
    return TestClient(GoatKitMiddleware(Starlette(), platform=platform))


async def refused(platform: Platform, function: str, args: dict[str, Any]) -> PluginCallError:
    with pytest.raises(PluginCallError) as info:
        await platform.call(NAME, function, args)
    return info.value


# --- the package -----------------------------------------------------------------------------


def test_manifest_asks_for_exactly_what_the_plugin_uses() -> None:
    manifest = yaml.safe_load((SOURCE / "manifest.yaml").read_text())
    assert manifest["name"] == NAME and manifest["version"] == "1.0.0"
    assert manifest["runtime"] == "wasm" and manifest["wasm"] == "plugin.wasm"
    assert manifest["license"] == "Apache-2.0"
    assert manifest["author"] == "goatkit_asgi contributors"
    assert manifest["capabilities"] == {"db": {"read": ["tickets"]}, "email": True, "jobs": True}
    assert [p["name"] for p in manifest["permissions"]] == ["stats.view"]
    assert manifest["config"] == {"report_to": "team@example.com", "report_days": 7}
    assert [(e["name"], e["args"]) for e in manifest["exports"]] == [
        ("summary", ["from", "to"]),
        ("open_count", []),
    ]
    for lang in ("en", "de"):
        assert (SOURCE / "i18n" / f"{lang}.yaml").is_file()
    en = yaml.safe_load((SOURCE / "i18n" / "en.yaml").read_text())
    de = yaml.safe_load((SOURCE / "i18n" / "de.yaml").read_text())
    assert set(en) == set(de) and all(
        isinstance(v, str) and v for v in [*en.values(), *de.values()]
    )
    # every text the templates ask for exists: the literal keys, and those built from a value
    literal = re.compile(
        r"""(?:\b_|ngettext)\(\s*["']([a-z_.]*[a-z_])["'](?:,\s*"([a-z_.]*[a-z_])")?"""
    )
    used = {"error.format", "error.invalid", "error.order", "error.too_long", "form.from"}
    used |= {"form.to", *(f"state.{s}" for s in STATES)}
    for template in (SOURCE / "templates").glob("*.html"):
        for keys in literal.findall(template.read_text()):
            used |= {k for k in keys if k}
    assert len(used) > 40 and used <= set(en), used - set(en)


async def test_registration_declares_routes_menu_widget_job_and_functions(
    plugin_platform: PluginPlatform,
) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        await platform.load(NAME)
        info = platform.info(NAME)
        assert info is not None and info.registration is not None
        reg = info.registration
        assert [(f.name, f.arg_names) for f in reg.functions] == [
            ("summary", ("from", "to")),
            ("open_count", ()),
        ]
        assert {(r.method, r.path, r.handler, r.permission) for r in reg.routes} == {
            ("GET", "/stats", "page", "stats.view"),
            ("GET", "/stats/export.csv", "export_csv", "stats.view"),
        }
        (item,) = reg.menu_items
        assert (item.id, item.label, item.path, item.icon, item.location, item.order) == (
            "stats",
            "Statistics",
            "/stats",
            "chart",
            "main",
            120,
        )
        assert item.permission == "stats.view"
        (widget,) = reg.widgets
        assert (widget.id, widget.title, widget.handler, widget.location, widget.permission) == (
            "stats-overview",
            "Ticket statistics",
            "widget",
            "dashboard",
            "stats.view",
        )
        (job,) = reg.jobs
        assert (job.id, job.handler, job.schedule, job.enabled) == (
            "weekly-report",
            "send_report",
            "0 8 * * 1",
            True,
        )


# --- summary ---------------------------------------------------------------------------------


async def test_summary_of_the_first_week_matches_the_hand_count(
    plugin_platform: PluginPlatform,
) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        out = await platform.call(NAME, "summary", WEEK)
        assert out == WEEK_SUMMARY
        # states in workflow order; queues by count, then name
        assert list(out["by_state"]) == STATES
        assert list(out["by_queue"]) == ["accounts", "facilities", "hardware", "network", "email"]
        assert out == expected_summary("2026-01-05", "2026-01-09")


async def test_summary_of_january_has_every_day_and_the_even_median(
    plugin_platform: PluginPlatform,
) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        out = await platform.call(NAME, "summary", MONTH)
        assert out == MONTH_SUMMARY
        assert [d["day"] for d in out["per_day"]] == [f"2026-01-{d:02d}" for d in range(1, 32)]
        assert sum(d["created"] for d in out["per_day"]) == 12
        assert out == expected_summary("2026-01-01", "2026-01-31")


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("2026-01-06", "2026-01-06"),  # one day: 0.5 h median; VPN drops closes that day too
        ("2026-01-10", "2026-01-11"),  # a weekend without tickets: zeros, no median
        ("2026-01-07", "2026-01-13"),
        ("2025-12-01", "2026-01-05"),  # across the year end
        ("2025-06-01", "2026-06-01"),  # 366 days: the longest range allowed
    ],
)
async def test_summary_agrees_with_python(
    plugin_platform: PluginPlatform, first: str, last: str
) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        out = await platform.call(NAME, "summary", {"from": first, "to": last})
        assert out == expected_summary(first, last)


async def test_empty_range_gives_zeros_and_no_median(plugin_platform: PluginPlatform) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        out = await platform.call(NAME, "summary", {"from": "2026-01-10", "to": "2026-01-11"})
        assert out["total"] == 0 and out["closed"] == 0 and out["median_close_hours"] is None
        assert out["by_state"] == dict.fromkeys(STATES, 0)
        assert out["by_queue"] == {} and out["by_priority"] == {}
        assert out["per_day"] == [
            {"day": "2026-01-10", "created": 0, "closed": 0},
            {"day": "2026-01-11", "created": 0, "closed": 0},
        ]


async def test_timestamps_with_fractions_offsets_and_no_zone_are_read(
    plugin_platform: PluginPlatform, helpdesk: HelpdeskDB
) -> None:
    extra = [
        # 2.5 h, with microseconds
        add_ticket(
            helpdesk,
            state="closed",
            created_at="2026-02-02T10:00:00.250000+00:00",
            closed_at="2026-02-02T12:30:00.250000+00:00",
        ),
        # closed 10:00 at +01:00 = 09:00 UTC: 0 h
        add_ticket(
            helpdesk,
            state="closed",
            created_at="2026-02-03T09:00:00+00:00",
            closed_at="2026-02-03T10:00:00+01:00",
        ),
        # no zone (read as UTC) and Z: 1 h
        add_ticket(
            helpdesk,
            state="closed",
            created_at="2026-02-04T08:00:00",
            closed_at="2026-02-04T09:00:00Z",
        ),
        # a leap day, closed 36 h later at -05:00
        add_ticket(
            helpdesk,
            state="closed",
            created_at="2028-02-29T20:00:00+00:00",
            closed_at="2028-03-02T03:00:00-05:00",
        ),
    ]
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        feb = await platform.call(NAME, "summary", {"from": "2026-02-01", "to": "2026-02-28"})
        assert feb["closed"] == 3 and feb["median_close_hours"] == 1.0
        assert feb == expected_summary("2026-02-01", "2026-02-28", [*TICKETS, *extra[:3]])
        leap = await platform.call(NAME, "summary", {"from": "2028-02-29", "to": "2028-02-29"})
        assert leap["median_close_hours"] == 36.0 and leap["total"] == 1


async def test_median_reads_every_page_of_close_times(
    plugin_platform: PluginPlatform, helpdesk: HelpdeskDB
) -> None:
    # 4,500 closed tickets on one day: the first 2,000 (one page) took 1 h, the other 2,500 5 h,
    # so the median is 5 h only if every page is read
    helpdesk.execute(
        "INSERT INTO tickets (title, queue, priority, state, created_at, closed_at) "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4500) "
        "SELECT 'bulk', 'bulk', 'low', 'closed', '2026-03-02T00:00:00+00:00', "
        "CASE WHEN i <= 2000 THEN '2026-03-02T01:00:00+00:00' "
        "ELSE '2026-03-02T05:00:00+00:00' END FROM n"
    )
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        out = await platform.call(NAME, "summary", {"from": "2026-03-02", "to": "2026-03-02"})
        assert (out["total"], out["closed"], out["median_close_hours"]) == (4500, 4500, 5.0)
        assert out["per_day"] == [{"day": "2026-03-02", "created": 4500, "closed": 4500}]


async def test_default_range_is_the_30_days_ending_today(
    plugin_platform: PluginPlatform, helpdesk: HelpdeskDB
) -> None:
    now = datetime.now(UTC)
    add_ticket(helpdesk, created_at=now.isoformat())
    add_ticket(helpdesk, created_at=(now - timedelta(days=29)).isoformat())
    add_ticket(helpdesk, created_at=(now - timedelta(days=30)).isoformat())  # one day too old
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        for args in ({}, None, {"from": "", "to": ""}):
            out = await platform.call(NAME, "summary", args)
            end = today()
            assert (out["from"], out["to"]) == ((end - timedelta(29)).isoformat(), end.isoformat())
            assert len(out["per_day"]) == 30 and out["total"] == 2
            assert out["per_day"][-1] == {"day": end.isoformat(), "created": 1, "closed": 0}
        # only "from": up to today; only "to": the 30 days ending then
        start = today() - timedelta(days=10)
        out = await platform.call(NAME, "summary", {"from": start.isoformat()})
        assert (out["from"], out["to"], out["days"]) == (start.isoformat(), today().isoformat(), 11)
        out = await platform.call(NAME, "summary", {"to": "2026-01-31"})
        assert (out["from"], out["to"], out["total"]) == ("2026-01-02", "2026-01-31", 12)


@pytest.mark.parametrize(
    ("args", "field", "words"),
    [
        ({"from": "2026-1-5"}, "from", 'got "2026-1-5"'),
        ({"from": "05.01.2026"}, "from", 'got "05.01.2026"'),
        ({"to": "2026-01-05T00:00"}, "to", "got"),
        ({"from": 20260105}, "from", "expected a date"),
        ({"from": "2026-02-30"}, "from", "not a calendar date"),
        ({"to": "2026-13-01"}, "to", "not a calendar date"),
        ({"from": "2026-02-29"}, "from", "not a calendar date"),  # 2026 is no leap year
        ({"from": "0000-01-01"}, "from", "not a calendar date"),
        ({"from": "2026-01-10", "to": "2026-01-05"}, "from", "is after to (2026-01-05)"),
        ({"from": "2025-01-01", "to": "2026-01-05"}, "to", "spans 370 days; at most 366"),
        ({"from": "2024-01-01", "to": "2025-01-01"}, "to", "spans 367 days"),
    ],
)
async def test_bad_dates_are_refused_naming_the_field_and_format(
    plugin_platform: PluginPlatform, args: dict[str, Any], field: str, words: str
) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        error = await refused(platform, "summary", args)
        assert error.code == "bad_input"
        assert f"summary failed: {field}: " in error.message
        assert "YYYY-MM-DD" in error.message and words in error.message
        # the same input elsewhere: the CSV export and the report refuse it too
        assert (await refused(platform, "send_report", args)).code == "bad_input"


async def test_a_leap_year_of_366_days_is_accepted(plugin_platform: PluginPlatform) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        out = await platform.call(NAME, "summary", {"from": "2024-01-01", "to": "2024-12-31"})
        assert out["days"] == 366 and out["per_day"][59]["day"] == "2024-02-29"


async def test_open_count(plugin_platform: PluginPlatform, helpdesk: HelpdeskDB) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        # six of the twelve are closed
        assert await platform.call(NAME, "open_count", {}) == {"open": 6, "total": 12}
        add_ticket(helpdesk, state="closed", closed_at="2026-01-08T00:00:00+00:00")
        add_ticket(helpdesk, state="escalated")
        assert await platform.call(NAME, "open_count") == {"open": 7, "total": 14}


async def test_without_the_db_grant_every_reader_reports_capability_denied(
    plugin_platform: PluginPlatform,
) -> None:
    async with plugin_platform(NAME, grants={NAME: {"email": True, "jobs": True}}) as platform:
        for function, args in (
            ("summary", WEEK),
            ("open_count", {}),
            ("widget", {}),
            ("send_report", WEEK),
        ):
            error = await refused(platform, function, args)
            assert error.code == "capability_denied", function
            assert "tickets" in error.message, error.message
        assert {e.function for e in platform.services.recent_audit(NAME)} >= {"db_query"}


# --- pages -----------------------------------------------------------------------------------


def test_dashboard_shows_the_numbers_the_charts_and_the_export_link(
    plugin_platform: PluginPlatform,
) -> None:
    platform = plugin_platform(NAME, grants=GRANTS, has_permission=allow("stats.view"))
    with client_for(platform) as client:
        page = client.get("/stats", params=WEEK)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "<title>Ticket statistics</title>" in html
        assert '<link rel="stylesheet" href="/plugins/stats/static/stats.css">' in html
        assert '<a href="/stats" data-plugin="stats">Statistics</a>' in html  # the menu item
        # the form, labelled
        assert '<form class="stats-range" method="get" action="/stats">' in html
        assert '<label for="stats-from">From</label>' in html
        assert 'type="date" id="stats-from" name="from" value="2026-01-05"' in html
        assert 'type="date" id="stats-to" name="to" value="2026-01-09"' in html
        # totals: 9 created, 5 closed, 4 open, median 4 h
        assert '<dd data-stat="total">9</dd>' in html
        assert '<dd data-stat="closed">5</dd>' in html
        assert '<dd data-stat="open">4</dd>' in html
        assert '<dd data-stat="median">4 h</dd>' in html
        # the daily chart: a created and a closed bar per day, with tooltips, axes and legend
        assert html.count('class="bar-created"') == 5 and html.count('class="bar-closed"') == 5
        assert "<title>2026-01-06: 2 closed</title>" in html
        assert "<title>2026-01-09: 1 created</title>" in html
        assert ">01-05</text>" in html and ">Day</text>" in html and ">Tickets</text>" in html
        assert 'class="swatch swatch-created"' in html and 'class="swatch swatch-closed"' in html
        # the highest bar (2) spans the plot (216 px); one ticket is half of it
        assert 'y="16.0" width="53.2" height="216.0"><title>2026-01-05: 2 created' in html
        assert 'height="108.0"><title>2026-01-05: 1 closed' in html
        # the state chart: one bar per state, the largest (closed, 5) 500 wide
        assert html.count('class="bar-state"') == 4
        assert 'width="500.0" height="22"><title>Closed: 5</title>' in html
        # the tables
        assert '<tr><th scope="row">Open</th><td class="num">2</td>' in html
        assert '<tr><th scope="row">accounts</th><td class="num">2</td>' in html
        assert '<tr><th scope="row">High</th><td class="num">3</td>' in html
        assert 'href="/stats/export.csv?from=2026-01-05&amp;to=2026-01-09"' in html
        # the stylesheet is served
        css = client.get("/plugins/stats/static/stats.css")
        assert css.status_code == 200 and ".bar-created" in css.text

        month = client.get("/stats", params=MONTH).text
        assert month.count('class="bar-created"') == 31
        assert '<dd data-stat="median">5 h</dd>' in month
        assert '<dd data-stat="total">12</dd>' in month

        empty = client.get("/stats", params={"from": "2026-01-10", "to": "2026-01-11"}).text
        assert f'<dd data-stat="median">{DASH}</dd>' in empty
        assert "No tickets were created in this period." in empty


def test_dashboard_defaults_to_the_last_30_days(plugin_platform: PluginPlatform) -> None:
    platform = plugin_platform(NAME, grants=GRANTS, has_permission=allow("stats.view"))
    with client_for(platform) as client:
        page = client.get("/stats")
        assert page.status_code == 200
        start = (today() - timedelta(29)).isoformat()
        assert f'name="from" value="{start}"' in page.text
        assert page.text.count('class="bar-created"') == 30


def test_dashboard_in_german(plugin_platform: PluginPlatform) -> None:
    platform = plugin_platform(NAME, grants=GRANTS, has_permission=allow("stats.view"))
    with client_for(platform) as client:
        html = client.get("/stats", params=WEEK, headers={"accept-language": "de-DE,de;q=0.9"}).text
        assert "<title>Ticketstatistik</title>" in html
        assert "<dt>Erstellte Tickets</dt>" in html
        assert '<dd data-stat="median">4 Std.</dd>' in html
        assert "<title>2026-01-06: 2 geschlossen</title>" in html
        assert '<tr><th scope="row">Wartend</th>' in html
        assert "Als CSV herunterladen" in html
        bad = client.get("/stats", params={"from": "2026-02-30"}, headers={"accept-language": "de"})
        assert "Von: Dieses Datum gibt es im Kalender nicht." in bad.text


def test_hostile_names_are_escaped(plugin_platform: PluginPlatform, helpdesk: HelpdeskDB) -> None:
    add_ticket(helpdesk, queue="<script>alert(1)</script>", priority='"><img src=x onerror=1>')
    add_ticket(helpdesk, queue="<script>alert(1)</script>", state="<b>odd</b>")
    platform = plugin_platform(NAME, grants=GRANTS, has_permission=allow("stats.view"))
    with client_for(platform) as client:
        html = client.get("/stats", params=WEEK).text
        assert "<script>" not in html and "<img" not in html and "<b>odd" not in html
        assert (
            '<tr><th scope="row">&lt;script&gt;alert(1)&lt;/script&gt;</th><td class="num">2</td>'
            in html
        )
        assert "&#34;&gt;&lt;img src=x onerror=1&gt;" in html
        assert ">&lt;b&gt;odd&lt;/b&gt;</text>" in html  # an unknown state gets a bar too
        assert html.count('class="bar-state"') == 5
        # what was typed into the form comes back escaped
        bad = client.get("/stats", params={"from": '"><script>x</script>'})
        assert bad.status_code == 422
        assert "<script>x" not in bad.text
        assert 'value="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in bad.text


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"from": "2026-02-30", "to": "2026-03-05"}, "from", "From: this date does not exist"),
        ({"from": "tomorrow"}, "from", "From: please enter a date as YYYY-MM-DD."),
        ({"to": "2026-1-9"}, "to", "To: please enter a date as YYYY-MM-DD."),
        ({"from": "2026-01-09", "to": "2026-01-05"}, "from", "must not be after the end date"),
        ({"from": "2020-01-01", "to": "2026-01-05"}, "to", "at most 366 days long"),
    ],
)
def test_bad_dates_rerender_the_form_with_422(
    plugin_platform: PluginPlatform, params: dict[str, str], field: str, text: str
) -> None:
    platform = plugin_platform(NAME, grants=GRANTS, has_permission=allow("stats.view"))
    with client_for(platform) as client:
        page = client.get("/stats", params=params)
        assert page.status_code == 422
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert '<div class="stats-error" id="stats-error" role="alert">' in html
        assert text in html
        assert (
            f'id="stats-{field}" name="{field}" value="{params.get(field, "")}" aria-invalid="true"'
            in html
        )
        assert "bar-created" not in html and "data-stat" not in html
        csv_page = client.get("/stats/export.csv", params=params)
        assert csv_page.status_code == 422
        assert csv_page.headers["content-type"].startswith("text/plain")
        assert csv_page.text.startswith(f"{field}: ") and "YYYY-MM-DD" in csv_page.text


def test_without_stats_view_the_pages_are_forbidden(plugin_platform: PluginPlatform) -> None:
    platform = plugin_platform(NAME, grants=GRANTS, has_permission=allow("tickets.view"))
    with client_for(platform) as client:
        for path in ("/stats", "/stats/export.csv"):
            response = client.get(path, params=WEEK)
            assert response.status_code == 403, path
            assert "stats.view" in response.text
            assert "bar-created" not in response.text and "day,created" not in response.text


async def test_menu_item_and_widget_need_stats_view(plugin_platform: PluginPlatform) -> None:
    request = SimpleNamespace(scope={"root_path": "/desk"})
    async with plugin_platform(
        NAME, grants=GRANTS, has_permission=allow("tickets.view")
    ) as platform:
        assert [m for m in platform.menu_items(request) if m.plugin == NAME] == []
        assert await platform.widgets(request) == []
    async with plugin_platform(NAME, grants=GRANTS, has_permission=allow("stats.view")) as platform:
        (item,) = [m for m in platform.menu_items(request) if m.plugin == NAME]
        assert (item.id, item.label, item.url, item.icon, item.location, item.order) == (
            "stats",
            "Statistics",
            "/desk/stats",
            "chart",
            "main",
            120,
        )
        (widget,) = await platform.widgets(request, location="dashboard")
        assert (widget.plugin, widget.id, widget.title, widget.handler) == (
            NAME,
            "stats-overview",
            "Ticket statistics",
            "widget",
        )


def test_without_the_db_grant_the_page_names_the_denial(plugin_platform: PluginPlatform) -> None:
    platform = plugin_platform(NAME, grants={}, has_permission=allow("stats.view"))
    with client_for(platform) as client:
        page = client.get("/stats", params=WEEK)
        assert page.status_code == 502
        assert "capability_denied" in page.text and "stats" in page.text
        assert "Traceback" not in page.text


# --- CSV -------------------------------------------------------------------------------------


def test_csv_export_parses_back(plugin_platform: PluginPlatform, helpdesk: HelpdeskDB) -> None:
    # names a spreadsheet would run, or that need quoting
    add_ticket(helpdesk, queue='=HYPERLINK("http://x","y")', priority="+1")
    add_ticket(helpdesk, queue='north, "east"', priority="@SUM(A1)")
    add_ticket(helpdesk, queue="-2+3", priority="line\nbreak")
    platform = plugin_platform(NAME, grants=GRANTS, has_permission=allow("stats.view"))
    with client_for(platform) as client:
        response = client.get("/stats/export.csv", params=WEEK)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        response.headers["content-disposition"]
        == 'attachment; filename="tickets-2026-01-05-2026-01-09.csv"'
    )
    assert response.text.startswith("day,created,closed\r\n")
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[:6] == [
        ["day", "created", "closed"],
        ["2026-01-05", "2", "1"],
        ["2026-01-06", "2", "2"],
        ["2026-01-07", "5", "0"],  # two seeded, and the three above
        ["2026-01-08", "2", "1"],
        ["2026-01-09", "1", "1"],
    ]
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for row in rows[6:]:
        if not row:
            current = ""
        elif not current:
            assert row[1] == "tickets"
            current = row[0]
            sections[current] = {}
        else:
            sections[current][row[0]] = row[1]
    assert list(sections) == ["state", "queue", "priority"]
    assert sections["state"] == {"new": "1", "open": "5", "pending": "1", "closed": "5"}
    assert sections["queue"] == {
        "accounts": "2",
        "facilities": "2",
        "hardware": "2",
        "network": "2",
        "'-2+3": "1",
        '\'=HYPERLINK("http://x","y")': "1",
        'north, "east"': "1",
        "email": "1",
    }
    assert sections["priority"] == {
        "high": "3",
        "low": "3",
        "normal": "3",
        "'+1": "1",
        "'@SUM(A1)": "1",
        "line\nbreak": "1",
    }


# --- template functions and the widget -------------------------------------------------------


async def test_host_templates_use_the_functions(plugin_platform: PluginPlatform) -> None:
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        env = Environment(enable_async=True, autoescape=True)
        platform.install_jinja(env)
        template = env.from_string(
            "{% use stats %}"
            "{{ summary('2026-01-05', '2026-01-09').total }}|"
            "{{ stats.summary('2026-01-01', '2026-01-31').median_close_hours }}|"
            "{{ stats.summary(to='2026-01-31').by_state.closed }}|"
            "{{ open_count().open }}/{{ stats.open_count().total }}"
            "{% fallback %}unavailable{% enduse %}"
        )
        assert await template.render_async() == "9|5.0|6|6/12"
        broken = env.from_string(
            "{% use stats %}{{ summary('2026-02-30').total }}{% fallback %}no stats{% enduse %}"
        )
        assert await broken.render_async() == "no stats"


async def test_host_page_template_uses_the_functions(
    plugin_platform: PluginPlatform, tmp_path: Path
) -> None:
    (tmp_path / "home.html").write_text(
        "{% use stats %}<p>{{ open_count().open }} open of {{ open_count().total }}; "
        "{{ summary('2026-01-05', '2026-01-09').per_day|length }} days</p>{% enduse %}"
    )
    async with plugin_platform(NAME, grants=GRANTS) as platform:
        host = PluginTemplates(platform, tmp_path)
        assert await host.render("home.html") == "<p>6 open of 12; 5 days</p>"


async def test_widget_counts_and_sparkline(
    plugin_platform: PluginPlatform, helpdesk: HelpdeskDB
) -> None:
    now = datetime.now(UTC)
    add_ticket(helpdesk, created_at=now.isoformat())
    add_ticket(helpdesk, created_at=now.isoformat(), state="closed", closed_at=now.isoformat())
    add_ticket(helpdesk, created_at=(now - timedelta(days=13)).isoformat())
    add_ticket(helpdesk, created_at=(now - timedelta(days=14)).isoformat())  # outside
    async with plugin_platform(NAME, grants=GRANTS, has_permission=allow("stats.view")) as platform:
        out = await platform.call(NAME, "widget", {"widget": "stats-overview"})
        assert out["template"] == "widget.html"
        context = out["context"]
        days = [(today() - timedelta(13 - n)).isoformat() for n in range(14)]
        assert (context["open"], context["total"], context["max"]) == (6 + 3, 16, 2)
        assert (context["from"], context["to"]) == (days[0], days[-1])
        assert context["per_day"] == [
            {"day": d, "created": {0: 1, 13: 2}.get(n, 0)} for n, d in enumerate(days)
        ]

        # as a host renders its dashboard: the fragment goes into the host's own card
        (rendered,) = await PluginTemplates(platform).render_widgets(None, location="dashboard")
        assert rendered.error is None and rendered.plugin == NAME
        html = str(rendered.html)
        assert "<html" not in html and "<h2" not in html  # a fragment; the host shows the title
        assert '<strong data-stat="open">9</strong> open' in html
        assert "of 16 tickets" in html
        assert '<a href="/stats">All statistics</a>' in html
        assert html.count("<circle") == 14 and "<polyline" in html
        assert f"<title>{days[-1]}: 2 created</title>" in html
        assert '<link rel="stylesheet" href="/plugins/stats/static/stats.css">' in html


# --- the report ------------------------------------------------------------------------------


async def test_weekly_job_mails_the_last_report_days(
    plugin_platform: PluginPlatform,
    helpdesk: HelpdeskDB,
    smtp: tuple[Collector, int],
) -> None:
    collector, port = smtp
    yesterday = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(1)
    add_ticket(
        helpdesk,
        queue="network",
        state="closed",
        created_at=yesterday.isoformat(),
        closed_at=(yesterday + timedelta(hours=3)).isoformat(),
    )
    add_ticket(helpdesk, queue="email", created_at=(yesterday - timedelta(days=6)).isoformat())
    add_ticket(helpdesk, created_at=(yesterday - timedelta(days=7)).isoformat())  # too old
    async with plugin_platform(NAME, grants=GRANTS, smtp=smtp_settings(port)) as platform:
        (row,) = await platform.jobs(NAME)
        assert (row.job_id, row.callback, row.schedule, row.source) == (
            "weekly-report",
            "send_report",
            "0 8 * * 1",
            "registration",
        )
        when = datetime.fromtimestamp(row.next_run, UTC)
        assert (when.weekday(), when.hour, when.minute) == (0, 8, 0)  # Monday 08:00 UTC
        assert await platform.services.scheduler.tick(row.next_run + 1) == 1
        (row,) = await platform.jobs(NAME)
        assert row.runs == 1 and row.last_status == "ok", row.last_error

    first = (today() - timedelta(7)).isoformat()
    last = (today() - timedelta(1)).isoformat()
    (mail,) = collector.messages
    assert mail.rcpt_tos == ["team@example.com"]
    assert mail.message["Subject"] == f"Helpdesk report {first} {DASH} {last}: 2 tickets"
    assert mail.message["X-GoatKit-Plugin"] == NAME
    body = mail.message.get_content()
    assert body.startswith(f"Helpdesk report {first} to {last}\n")
    assert "Tickets created: 2\nClosed (of these): 1\n" in body
    assert "Median time to close: 3 h (3.00 hours)\n" in body
    assert "  open: 1\n" in body and "  closed: 1\n" in body and "  new: 0\n" in body
    assert "By queue:\n  email: 1\n  network: 1\n" in body  # equal counts: by name
    assert f"  {last}: 1 / 1\n" in body


async def test_send_report_for_a_chosen_range(
    plugin_platform: PluginPlatform, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    async with plugin_platform(
        NAME,
        grants=GRANTS,
        smtp=smtp_settings(port),
        plugin_config={NAME: {"report_to": "boss@example.com"}},
    ) as platform:
        out = await platform.call(NAME, "send_report", WEEK)
        assert out == {
            "sent": True,
            "recipient": "boss@example.com",
            "from": "2026-01-05",
            "to": "2026-01-09",
            "total": 9,
        }
        one = await platform.call(NAME, "send_report", {"from": "2026-01-14", "to": "2026-01-14"})
        assert one["total"] == 1
    week, single = collector.messages
    assert week.rcpt_tos == ["boss@example.com"]
    assert week.message["Subject"] == f"Helpdesk report 2026-01-05 {DASH} 2026-01-09: 9 tickets"
    body = week.message.get_content()
    assert "Tickets created: 9\nClosed (of these): 5\nTickets closed in the period: 5\n" in body
    assert "Median time to close: 4 h (4.00 hours)\n" in body
    assert "By state:\n  new: 1\n  open: 2\n  pending: 1\n  closed: 5\n" in body
    assert "By priority:\n  high: 3\n  low: 3\n  normal: 3\n" in body
    assert "  2026-01-06: 2 / 2\n" in body and "  2026-01-07: 2 / 0\n" in body
    assert single.message["Subject"] == f"Helpdesk report 2026-01-14 {DASH} 2026-01-14: 1 ticket"
    assert "Median time to close: -\n" in single.message.get_content()


async def test_report_fails_without_the_email_grant_or_with_bad_config(
    plugin_platform: PluginPlatform, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    grants = {NAME: {"db": {"read": ["tickets"]}, "jobs": True}}
    async with plugin_platform(NAME, grants=grants, smtp=smtp_settings(port)) as platform:
        error = await refused(platform, "send_report", WEEK)
        assert error.code == "capability_denied" and "email" in error.message
        (row,) = await platform.jobs(NAME)
        await platform.services.scheduler.tick(row.next_run + 1)
        (row,) = await platform.jobs(NAME)
        assert row.last_status == "failed" and "email" in (row.last_error or ""), row.last_error
    for config, code, words in (
        ({"report_days": 0}, "bad_config", "report_days"),
        ({"report_days": "a week"}, "bad_config", "report_days"),
        ({"report_to": ""}, "not_configured", "report_to"),
    ):
        async with plugin_platform(
            NAME, grants=GRANTS, smtp=smtp_settings(port), plugin_config={NAME: config}
        ) as platform:
            error = await refused(platform, "send_report", WEEK)
            assert (error.code, words in error.message) == (code, True), error
    assert collector.messages == []


async def test_report_days_from_the_config(
    plugin_platform: PluginPlatform, helpdesk: HelpdeskDB, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    add_ticket(helpdesk, created_at=(datetime.now(UTC) - timedelta(days=20)).isoformat())
    async with plugin_platform(
        NAME,
        grants=GRANTS,
        smtp=smtp_settings(port),
        plugin_config={NAME: {"report_days": "30"}},  # a host override may be text
    ) as platform:
        out = await platform.call(NAME, "send_report", {})
        assert (out["from"], out["to"], out["total"]) == (
            (today() - timedelta(30)).isoformat(),
            (today() - timedelta(1)).isoformat(),
            1,
        )
    assert len(collector.messages) == 1
