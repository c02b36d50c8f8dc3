"""The calendar plugin, end to end on SQLite and PostgreSQL: appointments with time zones stored
in its own tables, month and week pages, the form (new, edit, delete), the iCalendar feed parsed
with ``icalendar``, the ``upcoming`` template function and e-mail reminders through a real SMTP
server. The plugin is installed from its packed ``.zip`` (``plugin_platform``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import icalendar
import jinja2
import pytest
import yaml
from starlette.applications import Starlette
from starlette.testclient import TestClient

from goatkit_asgi import Platform
from goatkit_asgi.errors import PluginCallError
from goatkit_asgi.web.middleware import GoatKitMiddleware
from tests.host.test_mail import Collector
from tests.plugins.conftest import (
    PLUGINS,
    HelpdeskDB,
    smtp_settings,
)

pytestmark = pytest.mark.anyio

PLUGIN = "calendar"
SOURCE = PLUGINS / PLUGIN
GRANTS: dict[str, Any] = {PLUGIN: {"email": True, "jobs": True}}
EVERYONE = {"calendar.view", "calendar.edit"}
MakePlatform = Callable[..., Platform]
EN_DASH = "\u2013"
T = TypeVar("T")


# -- helpers ----------------------------------------------------------------------------------


def allow(perms: set[str]) -> Callable[[Any, str], bool]:
    """A host ``has_permission`` that grants exactly ``perms``."""
    return lambda request, perm: perm in perms


def appointment(title: str, start: str, end: str, tzid: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "start": start, "end": end, "tzid": tzid, **extra}


def form(**fields: str) -> dict[str, str]:
    """A valid form post (a Berlin January hour) with ``fields`` replacing its values."""
    base = {
        "title": "Budget review",
        "start": "2026-01-12T14:00",
        "end": "2026-01-12T15:30",
        "tzid": "Europe/Berlin",
        "start_offset": "+01:00",
        "end_offset": "+01:00",
        "location": "",
        "description": "",
        "attendee_email": "",
        "remind_minutes": "0",
    }
    base.update(fields)
    return base


def rows(db: HelpdeskDB, where: str = "", args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return db.query(f"SELECT * FROM calendar_appointments {where} ORDER BY id", args)


@contextmanager
def client_for(platform: Platform) -> Iterator[TestClient]:
    with TestClient(GoatKitMiddleware(Starlette(), platform=platform)) as client:
        yield client


def run(client: TestClient, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``func(*args)`` on the client's event loop (where the platform lives)."""
    assert client.portal is not None, "use the client as a context manager"
    return client.portal.call(func, *args)


def target(response: Any) -> str:
    """Where a redirect leads: its Location resolved against the request's URL (path + query).

    (``response`` is the test client's response: httpx's or httpx2's, whichever Starlette uses.)
    """
    url = urlsplit(urljoin(str(response.request.url), response.headers["location"]))
    return f"{url.path}?{url.query}"


def text(html: str) -> str:
    """The page's text with tags dropped and white space collapsed (entities kept)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


class DayCells(HTMLParser):
    """Collects the text and class of every element with ``data-date`` (month cells, week days)."""

    VOID = frozenset({"input", "br", "img", "meta", "link", "hr", "source", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self._stack: list[tuple[str, str | None]] = []
        self.feed(html)
        self.text = {k: " ".join(v.split()) for k, v in self.text.items()}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        values = dict(attrs)
        date = values.get("data-date")
        self._stack.append((tag, date))
        if date:
            self.text[date] = ""
            self.classes[date] = values.get("class") or ""
            self.attrs[date] = values

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, date in self._stack:
            if date:
                self.text[date] += data


def ics_lines(body: bytes) -> list[bytes]:
    """Physical lines of an iCalendar body; every one must end with CRLF."""
    assert body.endswith(b"\r\n")
    lines = body[:-2].split(b"\r\n")
    assert not any(b"\n" in line or b"\r" in line for line in lines), "bare LF or CR"
    return lines


# -- registration, manifest, translations, build ----------------------------------------------


def test_manifest_asks_for_exactly_email_and_jobs() -> None:
    manifest = yaml.safe_load((SOURCE / "manifest.yaml").read_text())
    assert manifest["name"] == PLUGIN and manifest["version"] == "1.0.0"
    assert manifest["runtime"] == "wasm" and manifest["wasm"] == "plugin.wasm"
    assert manifest["license"] == "Apache-2.0"
    assert manifest["author"] == "goatkit_asgi contributors"
    assert manifest["capabilities"] == {"email": True, "jobs": True}
    assert [p["name"] for p in manifest["permissions"]] == ["calendar.view", "calendar.edit"]
    exports = {e["name"]: e for e in manifest["exports"]}
    assert set(exports) == {"upcoming", "create_appointment"}
    assert exports["upcoming"]["args"] == ["limit"]


def test_translations_are_complete_in_english_and_german() -> None:
    en = yaml.safe_load((SOURCE / "i18n" / "en.yaml").read_text())
    de = yaml.safe_load((SOURCE / "i18n" / "de.yaml").read_text())
    assert set(en) == set(de)
    for key in en:
        assert set(re.findall(r"\{(\w+)\}", en[key])) == set(re.findall(r"\{(\w+)\}", de[key])), key
    assert [de[f"month_{i}"] for i in (1, 3, 12)] == ["Januar", "März", "Dezember"]
    assert [de[f"weekday_short_{i}"] for i in (1, 7)] == ["Mo", "So"]
    # every message key the C code and the templates use is translated
    used = set(re.findall(r'"(err_[a-z_]+)"', (SOURCE / "calendar.c").read_text()))
    for template in (SOURCE / "templates").glob("*.html"):
        used |= set(re.findall(r"""_\(["']([a-z_0-9]+)["']\s*[,)]""", template.read_text()))
    assert len(used) > 60
    assert used <= set(en), sorted(used - set(en))


async def test_registration_routes_menu_and_job(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN, grants=GRANTS) as platform:
        info = platform.plugins[PLUGIN]
        reg = info.registration
        assert reg is not None
        routes = {(r.method, r.path): (r.handler, r.permission) for r in reg.routes}
        assert routes == {
            ("GET", "/calendar"): ("month_page", "calendar.view"),
            ("GET", "/calendar/week"): ("week_page", "calendar.view"),
            ("GET", "/calendar/feed.ics"): ("feed_ics", "calendar.view"),
            ("GET", "/calendar/new"): ("new_form", "calendar.edit"),
            ("POST", "/calendar/new"): ("create_submit", "calendar.edit"),
            ("GET", "/calendar/{id:int}"): ("detail_page", "calendar.edit"),
            ("POST", "/calendar/{id:int}"): ("update_submit", "calendar.edit"),
            ("POST", "/calendar/{id:int}/delete"): ("delete_submit", "calendar.edit"),
            ("GET", "/calendar/{id:int}/event.ics"): ("event_ics", "calendar.view"),
        }
        (item,) = reg.menu_items
        assert (item.id, item.label, item.path, item.location, item.order, item.permission) == (
            "calendar",
            "Calendar",
            "/calendar",
            "main",
            140,
            "calendar.view",
        )
        assert set(reg.permissions) == EVERYONE
        (job,) = await platform.jobs(PLUGIN)
        assert (job.job_id, job.callback, job.schedule) == (
            "reminders",
            "send_reminders",
            "@every 5m",
        )


# -- creating appointments and time zones -----------------------------------------------------


async def test_create_appointment_stores_local_time_zone_and_utc(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN, grants=GRANTS) as platform:
        winter = await platform.call(
            PLUGIN,
            "create_appointment",
            appointment(
                "Winter meeting",
                "2026-01-05T10:00:00+01:00",
                "2026-01-05T11:30:00+01:00",
                "Europe/Berlin",
                location="Room 4",
                description="Agenda",
                attendee_email="ada@example.com",
                remind_minutes=15,
            ),
        )
        summer = await platform.call(
            PLUGIN,
            "create_appointment",
            appointment(
                "Summer meeting",
                "2026-07-06T10:00:00+02:00",
                "2026-07-06T11:00:00+02:00",
                "Europe/Berlin",
            ),
        )
        # UTC (Z) and a negative offset with a separate zone name
        utc = await platform.call(
            PLUGIN,
            "create_appointment",
            appointment("Release", "2026-01-07T15:00:00Z", "2026-01-07T16:00:00Z", "UTC"),
        )
        new_york = await platform.call(
            PLUGIN,
            "create_appointment",
            appointment(
                "Evening call",
                "2026-01-31T20:00:00-05:00",
                "2026-01-31T21:00:00-05:00",
                "America/New_York",
            ),
        )
    assert winter["start_utc"] == "2026-01-05T09:00:00Z"
    assert summer["start_utc"] == "2026-07-06T08:00:00Z"
    uid_format = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{16}@goatkit$")
    ids = [a["id"] for a in (winter, summer, utc, new_york)]
    assert len(set(ids)) == 4 and all(isinstance(i, int) for i in ids)
    assert all(uid_format.match(a["uid"]) for a in (winter, summer, utc, new_york))

    stored = {r["id"]: r for r in rows(helpdesk)}
    w, s, u, n = (stored[i] for i in ids)
    assert (w["start_utc"], w["end_utc"]) == ("2026-01-05T09:00:00Z", "2026-01-05T10:30:00Z")
    assert (w["start_local"], w["end_local"]) == ("2026-01-05T10:00:00", "2026-01-05T11:30:00")
    assert (w["tzid"], w["offset_minutes"], w["uid"]) == ("Europe/Berlin", 60, winter["uid"])
    assert (w["location"], w["description"], w["attendee_email"]) == (
        "Room 4",
        "Agenda",
        "ada@example.com",
    )
    assert (w["remind_minutes"], w["reminded_at"]) == (15, None)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", w["created_at"])
    assert (s["start_utc"], s["end_utc"], s["offset_minutes"]) == (
        "2026-07-06T08:00:00Z",
        "2026-07-06T09:00:00Z",
        120,
    )
    assert (s["start_local"], s["tzid"]) == ("2026-07-06T10:00:00", "Europe/Berlin")
    assert (u["start_utc"], u["offset_minutes"], u["tzid"]) == ("2026-01-07T15:00:00Z", 0, "UTC")
    # the local date (31st) differs from the UTC date (1 February)
    assert (n["start_local"], n["start_utc"], n["offset_minutes"]) == (
        "2026-01-31T20:00:00",
        "2026-02-01T01:00:00Z",
        -300,
    )


BAD_API_INPUT: list[tuple[dict[str, Any], str]] = [
    (
        appointment("No offset", "2026-01-05T10:00:00", "2026-01-05T11:00:00", "Europe/Berlin"),
        "UTC offset for this time zone is unknown",
    ),
    (
        appointment(
            "Backwards", "2026-01-05T10:00:00+01:00", "2026-01-05T09:00:00+01:00", "Europe/Berlin"
        ),
        "end must be after the start",
    ),
    (
        appointment(
            "Same instant", "2026-01-05T10:00:00+01:00", "2026-01-05T09:00:00Z", "Europe/Berlin"
        ),
        "end must be after the start",
    ),
    (
        appointment("No such day", "2026-02-30T10:00:00Z", "2026-03-01T11:00:00Z", "UTC"),
        "start is not a valid date",
    ),
    (
        appointment("Hour 24", "2026-02-03T24:00:00Z", "2026-02-04T11:00:00Z", "UTC"),
        "start is not a valid date",
    ),
    (
        appointment("Bad zone", "2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "Europe/Berlin;"),
        "time zone name is not valid",
    ),
    (
        appointment("Long zone", "2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "A" * 65),
        "time zone name is not valid",
    ),
    (
        appointment("No zone", "2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", ""),
        "Choose a time zone",
    ),
    (
        appointment("x" * 201, "2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "UTC"),
        "at most 200 characters",
    ),
    (
        appointment("   ", "2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "UTC"),
        "Enter a title",
    ),
    (
        appointment(
            "Too far east", "2026-01-05T10:00:00+14:30", "2026-01-05T11:00:00+14:30", "Etc/X"
        ),
        "between -14:00 and +14:00",
    ),
    (
        appointment("UTC with an offset", "2026-01-05T10:00:00+01:00", "2026-01-05T11:00Z", "UTC"),
        "UTC has the offset +00:00",
    ),
    (
        appointment("Five weeks", "2026-01-01T10:00:00Z", "2026-02-05T10:00:00Z", "UTC"),
        "at most 31 days",
    ),
    (
        appointment(
            "Bad mail", "2026-01-05T10:00Z", "2026-01-05T11:00Z", "UTC", attendee_email="a@b"
        ),
        "e-mail address is not valid",
    ),
    (
        appointment(
            "Bad reminder", "2026-01-05T10:00Z", "2026-01-05T11:00Z", "UTC", remind_minutes=-5
        ),
        "whole number of minutes",
    ),
    (
        appointment("Reminder, nobody", "2026-01-05T10:00Z", "2026-01-05T11:00Z", "UTC")
        | {"remind_minutes": 30},
        "needs the attendee's e-mail",
    ),
    (
        appointment("No end", "2026-01-05T10:00Z", "", "UTC"),
        "Enter the end date and time",
    ),
]


async def test_create_appointment_refuses_bad_input(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN, grants=GRANTS) as platform:
        for args, message in BAD_API_INPUT:
            with pytest.raises(PluginCallError) as info:
                await platform.call(PLUGIN, "create_appointment", args)
            assert info.value.code == "bad_input", args
            assert message in str(info.value), (args, str(info.value))
        # 31 days exactly and the ±14:00 edges are fine
        ok = await platform.call(
            PLUGIN,
            "create_appointment",
            appointment("Month", "2026-01-01T10:00:00+14:00", "2026-02-01T10:00:00+14:00", "X/Y"),
        )
    assert [r["id"] for r in rows(helpdesk)] == [ok["id"]]


# -- the form ---------------------------------------------------------------------------------


def test_form_post_creates_and_redirects_to_the_month(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(EVERYONE))
    with client_for(platform) as client:
        page = client.get("/calendar/new?date=2026-07-06")
        assert page.status_code == 200
        html = page.text
        assert '<input id="f-start" name="start" type="datetime-local"' in html
        assert 'value="2026-07-06T09:00"' in html and 'value="2026-07-06T10:00"' in html
        assert '<label for="f-tzid">Time zone</label>' in html
        assert '<option value="Europe/Berlin">Europe/Berlin</option>' in html
        assert '<option value="UTC" selected>UTC</option>' in html
        assert len(re.findall(r"<option value=", html)) >= 25
        assert 'type="hidden" id="f-start-offset" name="start_offset"' in html
        assert "/plugins/calendar/static/calendar.js" in html
        assert "/plugins/calendar/static/calendar.css" in html
        assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
        for field in ("title", "start", "end", "tzid", "location", "description"):
            assert f'<label for="f-{field}">' in html

        posted = client.post(
            "/calendar/new",
            data=form(
                title="Team sync",
                start="2026-07-06T10:00",
                end="2026-07-06T11:00",
                start_offset="+02:00",
                end_offset="+02:00",
                location="Room 4",
                description="Line one\r\nLine two",
                attendee_email="ada@example.com",
                remind_minutes="30",
            ),
            follow_redirects=False,
        )
        assert posted.status_code == 303, posted.text
        # relative, so it works wherever the host mounts the app
        assert posted.headers["location"] == "../calendar?month=2026-07&notice=saved"
        assert target(posted) == "/calendar?month=2026-07&notice=saved"
        month = client.get(target(posted))
        assert month.status_code == 200
        assert 'role="status">The appointment was saved.</p>' in month.text
        cells = DayCells(month.text)
        assert "10:00 Team sync UTC+02:00" in cells.text["2026-07-06"]
    (row,) = rows(helpdesk)
    assert (row["title"], row["start_utc"], row["end_utc"]) == (
        "Team sync",
        "2026-07-06T08:00:00Z",
        "2026-07-06T09:00:00Z",
    )
    assert (row["start_local"], row["offset_minutes"], row["tzid"]) == (
        "2026-07-06T10:00:00",
        120,
        "Europe/Berlin",
    )
    assert row["description"] == "Line one\nLine two"  # CRLF from the browser normalised
    assert (row["attendee_email"], row["remind_minutes"]) == ("ada@example.com", 30)


BAD_FORMS: list[tuple[dict[str, str], str, str]] = [
    # (fields, the field marked invalid, the message)
    (
        {"start_offset": "", "end_offset": ""},
        "start",
        "The UTC offset for this time zone is unknown",
    ),
    ({"end": "2026-01-12T13:00"}, "end", "The end must be after the start."),
    ({"start": "2026-02-30T10:00"}, "start", "The start is not a valid date and time"),
    ({"tzid": "Europe/<Berlin>"}, "tzid", "The time zone name is not valid"),
    ({"title": "T" * 201}, "title", "The title may have at most 200 characters."),
    ({"title": ""}, "title", "Enter a title."),
    ({"start_offset": "+25:00"}, "start", "The UTC offset must be between -14:00 and +14:00"),
    ({"remind_minutes": "soon"}, "remind_minutes", "whole number of minutes"),
    ({"attendee_email": "not-an-address"}, "attendee_email", "e-mail address is not valid"),
]


def test_form_refuses_bad_input_with_422_and_keeps_the_values(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(EVERYONE))
    with client_for(platform) as client:
        for fields, field, message in BAD_FORMS:
            page = client.post("/calendar/new", data=form(**fields), follow_redirects=False)
            assert page.status_code == 422, fields
            html = page.text
            assert message in html, (fields, text(html)[:2000])
            assert '<div class="cal-errors" role="alert"' in html
            assert f'<a href="#f-{field}">' in html
            assert re.search(rf'id="f-{field}"[^>]*aria-invalid="true"', html, re.S), field
            assert f'id="err-{field}"' in html
        # the values come back (escaped) so nothing has to be typed again
        page = client.post(
            "/calendar/new",
            data=form(title='Say "hi" <now>', end="2026-01-12T13:00"),
            follow_redirects=False,
        )
        assert page.status_code == 422
        assert 'value="Say &#34;hi&#34; &lt;now&gt;"' in page.text
        assert 'value="2026-01-12T14:00"' in page.text
        assert '<option value="Europe/Berlin" selected>' in page.text
        # German texts with a German browser
        page = client.post(
            "/calendar/new", data=form(title=""), headers={"accept-language": "de-DE,de;q=0.9"}
        )
        assert page.status_code == 422
        assert "Bitte geben Sie einen Titel ein." in page.text
        assert '<html lang="de">' in page.text
    assert rows(helpdesk) == []


def test_detail_update_and_delete(plugin_platform: MakePlatform, helpdesk: HelpdeskDB) -> None:
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(EVERYONE))
    with client_for(platform) as client:
        created = client.post(
            "/calendar/new",
            data=form(attendee_email="ada@example.com", remind_minutes="10"),
            follow_redirects=False,
        )
        assert created.status_code == 303
        (row,) = rows(helpdesk)
        ident = row["id"]
        helpdesk.execute(
            "UPDATE calendar_appointments SET reminded_at = ? WHERE id = ?",
            ("2026-01-12T12:50:00Z", ident),
        )

        page = client.get(f"/calendar/{ident}")
        assert page.status_code == 200
        html = page.text
        assert "<h1>Budget review</h1>" in html
        assert "2026-01-12T13:00:00Z" in html and row["uid"] in html
        assert 'value="2026-01-12T14:00"' in html and 'value="2026-01-12T15:30"' in html
        assert 'name="start_offset" value="+01:00"' in html
        assert '<option value="Europe/Berlin" selected>' in html
        assert f'action="/calendar/{ident}"' in html
        assert f'action="/calendar/{ident}/delete"' in html
        assert f'href="/calendar/{ident}/event.ics"' in html

        # a title change keeps the reminder's state; a new start resets it
        same = client.post(
            f"/calendar/{ident}",
            data=form(
                title="Budget review (2)", attendee_email="ada@example.com", remind_minutes="10"
            ),
            follow_redirects=False,
        )
        assert same.status_code == 303
        assert target(same) == "/calendar?month=2026-01&notice=saved"
        (row,) = rows(helpdesk)
        assert (row["title"], row["reminded_at"]) == ("Budget review (2)", "2026-01-12T12:50:00Z")
        assert row["created_at"] <= row["updated_at"]

        moved = client.post(
            f"/calendar/{ident}",
            data=form(
                start="2026-03-30T09:00",
                end="2026-03-30T10:00",
                start_offset="+02:00",
                end_offset="+02:00",
                attendee_email="ada@example.com",
                remind_minutes="10",
            ),
            follow_redirects=False,
        )
        assert moved.status_code == 303
        assert target(moved) == "/calendar?month=2026-03&notice=saved"
        (row,) = rows(helpdesk)
        assert (row["start_utc"], row["start_local"], row["reminded_at"]) == (
            "2026-03-30T07:00:00Z",
            "2026-03-30T09:00:00",
            None,
        )

        # bad input: 422 with the stored details and the submitted values
        bad = client.post(f"/calendar/{ident}", data=form(start="2026-02-30T10:00"))
        assert bad.status_code == 422
        assert "The start is not a valid date and time" in bad.text
        assert 'value="2026-02-30T10:00"' in bad.text
        assert "2026-03-30T07:00:00Z" in bad.text  # the details still show what is stored
        assert rows(helpdesk)[0]["start_utc"] == "2026-03-30T07:00:00Z"

        # unknown ids
        for method, path in [
            ("GET", "/calendar/999"),
            ("POST", "/calendar/999"),
            ("POST", "/calendar/999/delete"),
            ("GET", "/calendar/999/event.ics"),
        ]:
            missing = client.request(method, path, data=form() if method == "POST" else None)
            assert missing.status_code == 404, path
            assert "There is no appointment number 999." in missing.text
        assert len(rows(helpdesk)) == 1

        deleted = client.post(f"/calendar/{ident}/delete", follow_redirects=False)
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "../../calendar?month=2026-03&notice=deleted"
        assert target(deleted) == "/calendar?month=2026-03&notice=deleted"
        assert rows(helpdesk) == []
        assert client.post(f"/calendar/{ident}/delete").status_code == 404


def test_pages_need_the_permissions(plugin_platform: MakePlatform, helpdesk: HelpdeskDB) -> None:
    granted: set[str] = set()
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(granted))
    views = ["/calendar", "/calendar/week", "/calendar/feed.ics", "/calendar/1/event.ics"]
    edits_get = ["/calendar/new", "/calendar/1"]
    edits_post = ["/calendar/new", "/calendar/1", "/calendar/1/delete"]
    with client_for(platform) as client:
        for path in views + edits_get:
            assert client.get(path).status_code == 403, path
        for path in edits_post:
            assert client.post(path, data=form()).status_code == 403, path
        refused = client.get("/calendar", headers={"accept": "text/html"})
        assert "calendar.view" in refused.text

        granted.add("calendar.view")
        for path in views[:3]:
            assert client.get(path).status_code == 200, path
        for path in edits_get:
            assert client.get(path).status_code == 403, path
        for path in edits_post:
            assert client.post(path, data=form()).status_code == 403, path

        granted.clear()
        granted.add("calendar.edit")
        assert client.get("/calendar").status_code == 403
        assert client.post("/calendar/new", data=form(), follow_redirects=False).status_code == 303
        assert client.get("/calendar/1/event.ics").status_code == 403
    assert [r["title"] for r in rows(helpdesk)] == ["Budget review"]


def test_links_follow_the_hosts_root_path(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(EVERYONE))
    app = GoatKitMiddleware(Starlette(), platform=platform)
    with TestClient(app, root_path="/desk") as client:
        month = client.get("/calendar?month=2026-01").text
        assert 'href="/desk/plugins/calendar/static/calendar.css"' in month
        assert '<script src="/desk/plugins/calendar/static/calendar.js" defer>' in month
        assert '<a rel="next" href="/desk/calendar?month=2026-02">' in month
        assert 'href="/desk/calendar/new?date=2026-01-05"' in month
        assert 'action="/desk/calendar/new"' in client.get("/calendar/new").text


# -- month and week pages ---------------------------------------------------------------------


async def _seed_views(platform: Platform) -> dict[str, int]:
    seeds = {
        "Winter meeting": ("2026-01-05T10:00:00+01:00", "2026-01-05T11:00:00+01:00", "Europe/Berlin"),
        "Summer meeting": ("2026-07-06T10:00:00+02:00", "2026-07-06T11:00:00+02:00", "Europe/Berlin"),
        # 08:00 in Tokyo on the 22nd is 23:00 UTC on the 21st
        "Tokyo breakfast": ("2026-01-22T08:00:00+09:00", "2026-01-22T09:00:00+09:00", "Asia/Tokyo"),
        # 20:00 in New York on the 31st is 01:00 UTC on 1 February
        "Evening call": ("2026-01-31T20:00:00-05:00", "2026-01-31T21:00:00-05:00", "America/New_York"),
        "Offsite": ("2026-01-07T09:00:00+01:00", "2026-01-09T17:00:00+01:00", "Europe/Berlin"),
        "Release": ("2026-01-07T15:00:00Z", "2026-01-07T15:30:00Z", "UTC"),
    }  # fmt: skip
    ids = {}
    for title, (start, end, tz) in seeds.items():
        made = await platform.call(
            PLUGIN, "create_appointment", appointment(title, start, end, tz, location="Room 4")
        )
        ids[title] = made["id"]
    return ids


def test_month_page_lists_appointments_on_their_local_days(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(EVERYONE))
    with client_for(platform) as client:
        ids = run(client, _seed_views, platform)
        page = client.get("/calendar?month=2026-01")
        assert page.status_code == 200
        html = page.text
        assert "<title>January 2026 · Calendar</title>" in html
        assert '<h1 id="cal-heading">January 2026</h1>' in html
        heads = re.findall(r'<th scope="col"><abbr title="(\w+)">', html)
        assert heads == [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ]
        cells = DayCells(html)
        # Mon-first weeks from 29 December to 1 February, five rows
        dates = list(cells.text)
        assert dates[0] == "2025-12-29" and dates[-1] == "2026-02-01" and len(dates) == 35
        assert all("cal-outside" in cells.classes[d] for d in ("2025-12-29", "2026-02-01"))
        assert not any("cal-outside" in cells.classes[d] for d in ("2026-01-01", "2026-01-31"))
        assert "10:00 Winter meeting UTC+01:00" in cells.text["2026-01-05"]
        assert "08:00 Tokyo breakfast UTC+09:00" in cells.text["2026-01-22"]
        assert "Tokyo breakfast" not in cells.text["2026-01-21"]
        assert "20:00 Evening call UTC-05:00" in cells.text["2026-01-31"]
        assert "Evening call" not in cells.text["2026-02-01"]
        # two on the 7th, in local start order; a multi-day one only on its first day
        seventh = cells.text["2026-01-07"]
        assert seventh.index("09:00 Offsite UTC+01:00") < seventh.index("15:00 Release UTC")
        assert "Offsite" not in cells.text["2026-01-08"]
        assert "Summer meeting" not in html
        assert f'href="/calendar/{ids["Winter meeting"]}"' in html
        assert 'title="Winter meeting (Europe/Berlin, UTC+01:00)"' in html
        assert '<a rel="prev" href="/calendar?month=2025-12">' in html
        assert '<a rel="next" href="/calendar?month=2026-02">' in html
        assert "Appointments: 5" in html

        july = DayCells(client.get("/calendar?month=2026-07").text)
        assert "10:00 Summer meeting UTC+02:00" in july.text["2026-07-06"]
        assert sum("meeting" in t for t in july.text.values()) == 1

        # December's grid shows the first days of January, dimmed, with their appointments
        december = DayCells(client.get("/calendar?month=2025-12").text)
        assert "cal-outside" in december.classes["2026-01-04"]
        assert list(december.text)[-1] == "2026-01-04"

        # today (UTC by default) is marked in the current month
        today = datetime.now(UTC).date().isoformat()
        current = client.get("/calendar")
        now_cells = DayCells(current.text)
        assert "cal-today" in now_cells.classes[today]
        assert now_cells.attrs[today].get("aria-current") == "date"
        assert sum("cal-today" in c for c in now_cells.classes.values()) == 1

        # German month and day names
        german = client.get("/calendar?month=2026-03", headers={"accept-language": "de"}).text
        assert '<h1 id="cal-heading">März 2026</h1>' in german
        assert '<abbr title="Montag">Mo</abbr>' in german and '<html lang="de">' in german


def test_month_and_week_refuse_bad_parameters_with_400(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(EVERYONE))
    today = datetime.now(UTC).date()
    with client_for(platform) as client:
        for month in ("2026-13", "2026-1", "<script>", "1899-12"):
            page = client.get("/calendar", params={"month": month})
            assert page.status_code == 400, month
            assert "The month must look like 2026-01" in page.text
            assert "<script>" not in text(page.text)
            assert today.isoformat() in DayCells(page.text).text  # the current month instead
        for date in ("2026-02-30", "2026-W02", "yesterday"):
            page = client.get("/calendar/week", params={"date": date})
            assert page.status_code == 400, date
            assert "The date must look like 2026-01-05" in page.text
            assert today.isoformat() in DayCells(page.text).text


def test_week_page_shows_the_iso_week_with_times(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(EVERYONE))
    with client_for(platform) as client:
        ids = run(client, _seed_views, platform)
        page = client.get("/calendar/week?date=2026-01-08")
        assert page.status_code == 200
        html = page.text
        assert "Week 2, 2026" in html and "2026-01-05 to 2026-01-11" in html
        days = DayCells(html)
        assert list(days.text) == [f"2026-01-{d:02d}" for d in range(5, 12)]
        assert days.text["2026-01-05"].startswith("Monday, January 5")
        assert days.text["2026-01-11"].startswith("Sunday, January 11")
        monday = days.text["2026-01-05"]
        assert f"10:00{EN_DASH}11:00 Europe/Berlin · UTC+01:00 Winter meeting Room 4" in monday
        wednesday = days.text["2026-01-07"]
        assert f"09:00 {EN_DASH} 2026-01-09 17:00" in wednesday
        assert f"15:00{EN_DASH}15:30 UTC · UTC Release" in wednesday
        assert "No appointments." in days.text["2026-01-06"]
        assert f'href="/calendar/{ids["Release"]}/event.ics"' in html
        assert '<a rel="prev" href="/calendar/week?date=2025-12-29">' in html
        assert '<a rel="next" href="/calendar/week?date=2026-01-12">' in html

        # ISO week 1 of 2026 starts on Monday 29 December 2025
        first = client.get("/calendar/week?date=2026-01-01").text
        assert "Week 1, 2026" in first and "2025-12-29 to 2026-01-04" in first
        # week 53 of 2026
        assert "Week 53, 2026" in client.get("/calendar/week?date=2027-01-03").text

        tokyo = DayCells(client.get("/calendar/week?date=2026-01-22").text)
        assert "08:00" in tokyo.text["2026-01-22"] and "Tokyo" not in tokyo.text["2026-01-21"]
        german = client.get("/calendar/week?date=2026-01-08", headers={"accept-language": "de"})
        assert "KW 2 2026" in german.text and "Montag, 5. Januar" in german.text


def test_hostile_text_is_escaped_everywhere(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    hostile = "<script>alert(1)</script>'); DROP TABLE calendar_appointments; --"
    where = '"><img src=x onerror=alert(2)>'
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow(EVERYONE))
    with client_for(platform) as client:
        made = client.post(
            "/calendar/new",
            data=form(title=hostile, location=where, description="<b>bold</b>"),
            follow_redirects=False,
        )
        assert made.status_code == 303
        (row,) = rows(helpdesk)
        assert (row["title"], row["location"]) == (hostile, where)  # stored verbatim
        for path in (
            "/calendar?month=2026-01",
            "/calendar/week?date=2026-01-12",
            f"/calendar/{row['id']}",
        ):
            html = client.get(path).text
            assert "<script>alert(1)" not in html, path
            assert "<img src=x" not in html and "<b>bold" not in html, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        bad = client.post("/calendar/new", data=form(title=hostile, tzid="<script>"))
        assert bad.status_code == 422 and "<script>alert(1)" not in bad.text


# -- iCalendar --------------------------------------------------------------------------------


def test_feed_is_rfc5545_with_escaping_and_folding(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    long_summary = ("Größe € 😀 " * 30)[:199] + "!"
    assert len(long_summary) == 200 and len(long_summary.encode()) > 300
    tricky = "Semi; colon, comma \\ backslash\nsecond line\r\nthird"
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow({"calendar.view"}))
    with client_for(platform) as client:
        empty = client.get("/calendar/feed.ics")
        assert empty.status_code == 200
        assert icalendar.Calendar.from_ical(empty.content).walk("VEVENT") == []

        made = [
            run(client, platform.call, PLUGIN, "create_appointment", args)
            for args in (
                appointment(
                    "Winter, meeting; with \\ specials",
                    "2026-01-05T10:00:00+01:00",
                    "2026-01-05T11:00:00+01:00",
                    "Europe/Berlin",
                    description=tricky,
                    location="Room 4, 2nd floor; east",
                ),
                appointment(
                    "Summer",
                    "2026-07-06T10:00:00+02:00",
                    "2026-07-06T11:15:00+02:00",
                    "Europe/Berlin",
                ),
                appointment(long_summary, "2026-02-01T08:00:00Z", "2026-02-01T09:00:00Z", "UTC"),
            )
        ]
        feed = client.get("/calendar/feed.ics")
    assert feed.status_code == 200
    assert feed.headers["content-type"] == "text/calendar; charset=utf-8"
    body = feed.content
    lines = ics_lines(body)
    assert all(len(line) <= 75 for line in lines), max(lines, key=len)
    for line in lines:
        line.decode("utf-8")  # no fold splits a UTF-8 sequence
    assert lines[:5] == [
        b"BEGIN:VCALENDAR",
        b"VERSION:2.0",
        b"PRODID:-//goatkit_asgi//calendar 1.0.0//EN",
        b"CALSCALE:GREGORIAN",
        b"METHOD:PUBLISH",
    ]
    assert lines[-1] == b"END:VCALENDAR"
    assert b"DESCRIPTION:Semi\\; colon\\, comma \\\\ backslash\\nsecond line\\nthird" in body
    assert sum(line.startswith(b" ") for line in lines) >= 4  # the long summary is folded

    cal = icalendar.Calendar.from_ical(body)
    assert str(cal["VERSION"]) == "2.0" and str(cal["METHOD"]) == "PUBLISH"
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {m["uid"] for m in made}
    winter, summer, long_one = (events[m["uid"]] for m in made)
    assert str(winter["SUMMARY"]) == "Winter, meeting; with \\ specials"
    assert str(winter["DESCRIPTION"]) == "Semi; colon, comma \\ backslash\nsecond line\nthird"
    assert str(winter["LOCATION"]) == "Room 4, 2nd floor; east"
    assert str(winter["X-GOATKIT-TZID"]) == "Europe/Berlin"
    assert winter.decoded("DTSTART") == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert winter.decoded("DTEND") == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert summer.decoded("DTSTART") == datetime(2026, 7, 6, 8, 0, tzinfo=UTC)
    assert summer.decoded("DTEND") == datetime(2026, 7, 6, 9, 15, tzinfo=UTC)
    assert "DESCRIPTION" not in summer and "LOCATION" not in summer
    assert str(long_one["SUMMARY"]) == long_summary
    assert long_one.decoded("DTSTART") == datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    for event in events.values():
        stamp = event.decoded("DTSTAMP")
        assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=5)
    assert len(re.findall(rb"\r\nDTSTART:\d{8}T\d{6}Z\r\n", body)) == 3


def test_single_event_export_is_an_attachment(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, grants=GRANTS, has_permission=allow({"calendar.view"}))
    with client_for(platform) as client:
        _first, second = (
            run(
                client,
                platform.call,
                PLUGIN,
                "create_appointment",
                appointment(
                    title, "2026-01-05T10:00:00+01:00", "2026-01-05T11:00:00+01:00", "Europe/Berlin"
                ),
            )
            for title in ("First", "Second")
        )
        page = client.get(f"/calendar/{second['id']}/event.ics")
        assert client.get("/calendar/0/event.ics").status_code == 404
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/calendar; charset=utf-8"
    assert (
        page.headers["content-disposition"]
        == f'attachment; filename="appointment-{second["id"]}.ics"'
    )
    ics_lines(page.content)
    (event,) = icalendar.Calendar.from_ical(page.content).walk("VEVENT")
    assert str(event["UID"]) == second["uid"] and str(event["SUMMARY"]) == "Second"
    assert event.decoded("DTSTART") == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# -- template function ------------------------------------------------------------------------


def _iso_z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_upcoming_lists_what_has_not_ended_soonest_first(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    spans = {
        "ended": (now - timedelta(hours=3), now - timedelta(hours=2)),
        "running": (now - timedelta(minutes=30), now + timedelta(minutes=30)),
        "tomorrow": (now + timedelta(days=1), now + timedelta(days=1, hours=1)),
        "next week": (now + timedelta(days=7), now + timedelta(days=7, hours=1)),
        "in an hour": (now + timedelta(hours=1), now + timedelta(hours=2)),
    }
    async with plugin_platform(PLUGIN, grants=GRANTS) as platform:
        for title, (start, end) in spans.items():
            await platform.call(
                PLUGIN, "create_appointment", appointment(title, _iso_z(start), _iso_z(end), "UTC")
            )
        result = await platform.call(PLUGIN, "upcoming", {})
        titles = [item["title"] for item in result["items"]]
        assert titles == ["running", "in an hour", "tomorrow", "next week"]
        first = result["items"][0]
        assert set(first) >= {"id", "title", "start_local", "tzid", "start_utc", "url"}
        assert first["url"] == f"/calendar/{first['id']}"
        assert first["start_utc"] == _iso_z(spans["running"][0])
        assert first["start_local"] == _iso_z(spans["running"][0])[:-1]
        assert first["tzid"] == "UTC"
        two = await platform.call(PLUGIN, "upcoming", {"limit": 2})
        assert [item["title"] for item in two["items"]] == ["running", "in an hour"]
        for limit in (0, 51, "five", 2.5):
            with pytest.raises(PluginCallError) as info:
                await platform.call(PLUGIN, "upcoming", {"limit": limit})
            assert info.value.code == "bad_input"

        # from a host template: {% use calendar %} with a positional limit
        env = jinja2.Environment(autoescape=True, enable_async=True)
        platform.install_jinja(env)
        template = env.from_string(
            "{% use calendar %}{% for item in calendar.upcoming(3)['items'] %}"
            "[{{ item.title }}]{% endfor %}{% enduse %}"
        )
        assert await template.render_async() == "[running][in an hour][tomorrow]"


# -- reminders --------------------------------------------------------------------------------


def _reminder_platform(
    plugin_platform: MakePlatform, port: int, grants: dict[str, Any] | None = None
) -> Platform:
    return plugin_platform(
        PLUGIN, grants=GRANTS if grants is None else grants, smtp=smtp_settings(port)
    )


async def _seed_reminders(platform: Platform) -> dict[str, int]:
    """Appointments in Berlin on 2030-03-04 (UTC+01:00), each an hour long."""
    seeds = {
        # starts 10:00 UTC: due from 09:00 UTC
        "Due": ("2030-03-04T11:00:00+01:00", 60, "ada@example.com"),
        # starts 10:00 UTC: due from 09:50 UTC only
        "Later": ("2030-03-04T11:00:00+01:00", 10, "bob@example.com"),
        # started at 08:30 UTC, before any moment the tests choose
        "Started": ("2030-03-04T09:30:00+01:00", 120, "cy@example.com"),
        # no reminder wanted, or nobody to tell
        "Quiet": ("2030-03-04T10:30:00+01:00", 0, "dee@example.com"),
        "Nobody": ("2030-03-04T10:30:00+01:00", 0, ""),
    }
    ids = {}
    for title, (start, remind, mail) in seeds.items():
        end = (datetime.fromisoformat(start) + timedelta(hours=1)).isoformat()
        args = appointment(title, start, end, "Europe/Berlin", remind_minutes=remind)
        if mail:
            args["attendee_email"] = mail
        made = await platform.call(PLUGIN, "create_appointment", args)
        ids[title] = made["id"]
    return ids


async def test_send_reminders_mails_each_due_reminder_once(
    plugin_platform: MakePlatform,
    helpdesk: HelpdeskDB,
    smtp: tuple[Collector, int],
) -> None:
    collector, port = smtp
    async with _reminder_platform(plugin_platform, port) as platform:
        ids = await _seed_reminders(platform)
        assert await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T08:59:59Z"}) == {
            "sent": 0,
            "failed": 0,
            "errors": [],
        }
        first = await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T09:00:00Z"})
        assert (first["sent"], first["failed"]) == (1, 0)
        again = await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T09:20:00+00:00"})
        assert again["sent"] == 0  # already reminded
        later = await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T10:50:00+01:00"})
        assert later["sent"] == 1  # "Later" is due at 09:50 UTC
        after = await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T10:00:00Z"})
        assert after["sent"] == 0  # both started: too late for anything else
        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "send_reminders", {"now": "tomorrow"})
        assert info.value.code == "bad_input"

    assert [m.rcpt_tos for m in collector.messages] == [["ada@example.com"], ["bob@example.com"]]
    due = collector.messages[0].message
    assert due["Subject"] == "Reminder: Due at 2030-03-04 11:00 (Europe/Berlin)"
    assert due["X-GoatKit-Plugin"] == PLUGIN
    body = due.get_content()
    assert "Starts: 2030-03-04 11:00 UTC+01:00 (Europe/Berlin)" in body
    assert "UTC: 2030-03-04T10:00:00Z" in body
    reminded = {r["title"]: r["reminded_at"] for r in rows(helpdesk)}
    assert reminded == {
        "Due": "2030-03-04T09:00:00Z",
        "Later": "2030-03-04T09:50:00Z",
        "Started": None,
        "Quiet": None,
        "Nobody": None,
    }
    assert set(ids) == set(reminded)


@pytest.mark.parametrize("helpdesk", ["sqlite"], indirect=True)  # the query is the same SQL
async def test_a_due_reminder_is_found_behind_many_sooner_appointments(
    plugin_platform: MakePlatform,
    helpdesk: HelpdeskDB,
    smtp: tuple[Collector, int],
) -> None:
    # 100 appointments start sooner, each with a 1-minute reminder (none due yet); the one that
    # starts in five days asks for a week's notice, so it is due now.
    collector, port = smtp
    async with _reminder_platform(plugin_platform, port) as platform:
        base = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
        for i in range(100):
            start = base + timedelta(minutes=i)
            await platform.call(
                PLUGIN,
                "create_appointment",
                appointment(
                    f"Slot {i}",
                    _iso_z(start),
                    _iso_z(start + timedelta(minutes=1)),
                    "UTC",
                    attendee_email="slots@example.com",
                    remind_minutes=1,
                ),
            )
        far = base + timedelta(days=5)
        await platform.call(
            PLUGIN,
            "create_appointment",
            appointment(
                "Planning week",
                _iso_z(far),
                _iso_z(far + timedelta(hours=1)),
                "UTC",
                attendee_email="ada@example.com",
                remind_minutes=7 * 24 * 60,
            ),
        )
        out = await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T09:00:00Z"})
        assert (out["sent"], out["failed"]) == (1, 0)
    assert [m.rcpt_tos for m in collector.messages] == [["ada@example.com"]]


async def test_the_reminders_job_runs_on_the_scheduler(
    plugin_platform: MakePlatform,
    helpdesk: HelpdeskDB,
    smtp: tuple[Collector, int],
) -> None:
    collector, port = smtp
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    soon = now + timedelta(minutes=20)
    async with _reminder_platform(plugin_platform, port) as platform:
        await platform.call(
            PLUGIN,
            "create_appointment",
            appointment(
                "Stand-up",
                _iso_z(soon),
                _iso_z(soon + timedelta(minutes=15)),
                "UTC",
                attendee_email="team@example.com",
                remind_minutes=30,
            ),
        )
        await platform.call(
            PLUGIN,
            "create_appointment",
            appointment(
                "Next week",
                _iso_z(now + timedelta(days=7)),
                _iso_z(now + timedelta(days=7, hours=1)),
                "UTC",
                attendee_email="team@example.com",
                remind_minutes=30,
            ),
        )
        (job,) = await platform.jobs(PLUGIN)
        assert (job.job_id, job.schedule, job.source) == ("reminders", "@every 5m", "registration")
        assert await platform.services.scheduler.tick(job.next_run + 1) == 1
        (job,) = await platform.jobs(PLUGIN)
        assert (job.runs, job.last_status) == (1, "ok"), job.last_error
        assert await platform.services.scheduler.tick(job.next_run + 1) == 1
        (job,) = await platform.jobs(PLUGIN)
        assert (job.runs, job.last_status) == (2, "ok"), job.last_error
    (mail,) = collector.messages
    assert (
        mail.message["Subject"]
        == f"Reminder: Stand-up at {_iso_z(soon)[:10]} {_iso_z(soon)[11:16]} (UTC)"
    )


async def test_a_refused_recipient_is_not_marked_reminded(
    plugin_platform: MakePlatform,
    helpdesk: HelpdeskDB,
    smtp: tuple[Collector, int],
) -> None:
    collector, port = smtp
    collector.refuse = {"ada@example.com"}
    async with _reminder_platform(plugin_platform, port) as platform:
        await _seed_reminders(platform)
        # the only due reminder fails: the call fails with the host's code
        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T09:00:00Z"})
        assert info.value.code == "smtp_error"
        assert {r["title"]: r["reminded_at"] for r in rows(helpdesk)}["Due"] is None
        # one refused, one sent: both are reported
        mixed = await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T09:55:00Z"})
        assert (mixed["sent"], mixed["failed"]) == (1, 1)
        (error,) = mixed["errors"]
        assert error["code"] == "smtp_error" and "ada@example.com" in error["message"]
        reminded = {r["title"]: r["reminded_at"] for r in rows(helpdesk)}
        assert reminded["Due"] is None and reminded["Later"] == "2030-03-04T09:55:00Z"
        # once the server takes it, it goes out exactly once
        collector.refuse = set()
        retry = await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T09:56:00Z"})
        assert (retry["sent"], retry["failed"]) == (1, 0)
    assert [m.rcpt_tos for m in collector.messages] == [["bob@example.com"], ["ada@example.com"]]


async def test_without_the_email_grant_reminders_are_denied(
    plugin_platform: MakePlatform,
    helpdesk: HelpdeskDB,
    smtp: tuple[Collector, int],
) -> None:
    collector, port = smtp
    async with _reminder_platform(
        plugin_platform, port, grants={PLUGIN: {"jobs": True}}
    ) as platform:
        await _seed_reminders(platform)  # its own tables need no grant
        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "send_reminders", {"now": "2030-03-04T09:00:00Z"})
        assert info.value.code == "capability_denied"
        assert "email" in str(info.value)
        denied = {e.function for e in platform.services.recent_audit(PLUGIN)}
        assert "send_email" in denied
    assert collector.messages == []
    assert all(r["reminded_at"] is None for r in rows(helpdesk))


async def test_without_the_jobs_grant_there_is_no_job(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN, grants={PLUGIN: {"email": True}}) as platform:
        assert await platform.jobs(PLUGIN) == []
        made = await platform.call(
            PLUGIN,
            "create_appointment",
            appointment("Still works", "2026-01-05T10:00Z", "2026-01-05T11:00Z", "UTC"),
        )
    assert [r["id"] for r in rows(helpdesk)] == [made["id"]]


# -- the form's script ------------------------------------------------------------------------

JS_HARNESS = r"""
const fs = require("fs");
function element(attrs) {
  const el = {
    attrs: Object.assign({}, attrs), value: attrs.value || "", hidden: true, textContent: "",
    id: attrs.id, listeners: {}, options: attrs.options || [],
    getAttribute(n) { return n in this.attrs ? this.attrs[n] : null; },
    hasAttribute(n) { return n in this.attrs; },
    setAttribute(n, v) { this.attrs[n] = v; },
    removeAttribute(n) { delete this.attrs[n]; },
    addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); },
    fire(t) { (this.listeners[t] || []).forEach((f) => f({ preventDefault() {} })); },
    classList: { toggle() {} },
  };
  return el;
}
const zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Mars/Olympus"];
const select = element({ name: "tzid", value: "UTC", options: zones.map((value) => ({ value })) });
const start = element({ id: "f-start", name: "start", "data-offset-target": "f-start-offset" });
const end = element({ id: "f-end", name: "end", "data-offset-target": "f-end-offset" });
const ids = {
  "f-start-offset": element({ id: "f-start-offset" }),
  "f-end-offset": element({ id: "f-end-offset" }),
  "f-start-offset-out": element({ id: "f-start-offset-out" }),
  "f-end-offset-out": element({ id: "f-end-offset-out" }),
};
const warning = element({});
const form = element({ "data-msg-unknown": "unknown", "data-msg-unsupported": "no such zone" });
form.querySelector = (s) => ({ "select[name=tzid]": select, "[data-offset-warning]": warning,
  "input[name=start]": start, "input[name=end]": end })[s] || null;
form.querySelectorAll = (s) => (s === "input[data-offset-target]" ? [start, end] : []);
globalThis.document = {
  readyState: "complete",
  getElementById: (id) => ids[id] || null,
  querySelectorAll: (s) => (s === "form[data-calendar-form]" ? [form] : []),
};
globalThis.window = { confirm: () => true };
eval(fs.readFileSync(process.argv[2], "utf8"));
const seen = [];
function snap(step) {
  seen.push({ step, start: ids["f-start-offset"].value, end: ids["f-end-offset"].value,
    out: ids["f-start-offset-out"].textContent, warning: warning.hidden ? "" : warning.textContent,
    endValue: end.value });
}
snap("empty");
start.value = "2026-01-05T10:00"; end.value = "2026-07-06T10:00";
select.value = "Europe/Berlin"; select.fire("change"); snap("berlin");
select.value = "America/New_York"; select.fire("change"); snap("new york");
start.value = "2026-07-01T09:00"; start.fire("input"); snap("new york, july start");
select.value = "Asia/Kolkata"; select.fire("change"); snap("kolkata");
select.value = "Mars/Olympus"; select.fire("change"); snap("unknown zone");
select.value = "UTC"; select.fire("change"); snap("utc");
select.value = "Europe/Berlin";
start.value = "2026-10-25T02:30"; end.value = "2026-03-29T02:30"; start.fire("input"); snap("dst edges");
end.value = "2026-01-01T00:00"; start.value = "2026-02-01T10:00"; start.fire("change"); snap("end moves");
process.stdout.write(JSON.stringify(seen));
"""


def test_the_form_script_fills_offsets_for_zone_and_date_changes(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(JS_HARNESS)
    out = subprocess.run(
        [node, str(harness), str(SOURCE / "static" / "calendar.js")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    steps = {s["step"]: s for s in json.loads(out.stdout)}
    assert (steps["empty"]["start"], steps["empty"]["out"]) == ("", "unknown")
    assert (steps["berlin"]["start"], steps["berlin"]["end"]) == ("+01:00", "+02:00")
    assert steps["berlin"]["out"] == "+01:00"
    assert (steps["new york"]["start"], steps["new york"]["end"]) == ("-05:00", "-04:00")
    assert steps["new york, july start"]["start"] == "-04:00"
    assert (steps["kolkata"]["start"], steps["kolkata"]["end"]) == ("+05:30", "+05:30")
    unknown = steps["unknown zone"]
    assert (unknown["start"], unknown["end"], unknown["warning"]) == ("", "", "no such zone")
    assert (steps["utc"]["start"], steps["utc"]["warning"]) == ("+00:00", "")
    # 02:30 on the autumn change happens twice (the later, +01:00, is taken); in the spring gap
    # it does not exist (+02:00, the offset after the change)
    assert (steps["dst edges"]["start"], steps["dst edges"]["end"]) == ("+01:00", "+02:00")
    # a start after the end moves the end to an hour after the start
    assert steps["end moves"]["endValue"] == "2026-02-01T11:00"
    assert steps["end moves"]["start"] == "+01:00"
