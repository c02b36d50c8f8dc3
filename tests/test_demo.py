"""``gk demo``: the example helpdesk with its plugins, as a user runs it."""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from starlette.testclient import TestClient

import goatkit_asgi
from goatkit_asgi.demo.app import HISTORY, SEED, build_app
from goatkit_asgi.web.middleware import GoatKitMiddleware

#: Every seeded ticket's state: the named tickets, then the history (closed when it has hours).
STATES = [state for *_, state in SEED] + [
    "open" if hours is None else "closed" for *_, hours in HISTORY
]


def test_demo_pages_show_plugin_menu_page_function_and_hook(tmp_path: Path) -> None:
    with TestClient(build_app(tmp_path / "demo")) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert f"open tickets of {len(STATES)}" in home.text
        # a plugin menu item in the host layout, and a plugin function on the dashboard
        assert 'data-plugin="hello-wasm"' in home.text
        assert "Hello, Demo User!" in home.text
        # the plugin's own page, wrapped in the host layout
        page = client.get("/hello/Ada")
        assert page.status_code == 200
        assert "<p>Hello, Ada</p>" in page.text and "Helpdesk</a>" in page.text
        # saving a ticket fires after_save; the plugin's answer is shown
        saved = client.post("/tickets/1", data={"state": "closed"})
        assert saved.status_code == 200
        assert "hello-wasm: {&#39;seen&#39;: &#39;ticket&#39;}" in saved.text
        assert "<option selected>closed</option>" in saved.text
        tickets = client.get("/tickets")
        assert tickets.text.count("<tr>") == 1 + len(STATES)  # header + the seeded tickets


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_digest_page_and_mail_from_the_digest_job(tmp_path: Path) -> None:
    # Nothing listens on this port: the status part fails, and the digest says so. (The
    # command-line test below has the demo fetch its own /status.json.)
    app = build_app(tmp_path / "demo", base_url=f"http://127.0.0.1:{_free_port()}")
    assert isinstance(app, GoatKitMiddleware)
    platform = app.platform
    with TestClient(app) as client:
        assert client.portal is not None
        assert client.get("/status.json").json() == {
            "service": "helpdesk",
            "ok": True,
            "version": goatkit_asgi.__version__,
        }
        # granted exactly what its manifest asks for
        info = platform.plugins["desk-digest"]
        assert info.effective == info.requested and info.pending.is_empty()

        counts = collections.Counter(STATES)
        open_count = sum(n for state, n in counts.items() if state != "closed")
        page = client.get("/digest")
        assert page.status_code == 200
        assert "Helpdesk</a>" in page.text and 'data-plugin="desk-digest"' in page.text
        for state, n in counts.items():
            assert f"<tr><td>{state}</td><td>{n}</td></tr>" in page.text
        assert f'<th class="digest-open">{open_count}</th>' in page.text
        assert "Status unavailable: http_error" in page.text
        # the dashboard counts open tickets the same way
        assert f"{open_count} open tickets of {len(STATES)}" in client.get("/").text

        mail = client.get("/mail")
        assert mail.status_code == 200 and "No mail yet." in mail.text
        (job,) = client.portal.call(platform.jobs, "desk-digest")
        assert job.job_id == "daily-digest"
        # (other plugins' jobs may be due at that moment too: the calendar's reminders)
        assert client.portal.call(platform.services.scheduler.tick, job.next_run + 1) >= 1
        (job,) = client.portal.call(platform.jobs, "desk-digest")
        assert job.runs == 1 and job.last_status == "ok"
        mail = client.get("/mail")
        assert f"Helpdesk digest: {open_count} open" in mail.text
        assert "To team@example.com" in mail.text
        for state, n in counts.items():
            assert f"  {state}: {n}\n" in mail.text
        assert "No mail yet." not in mail.text


def test_gk_demo_command_serves_the_app(tmp_path: Path) -> None:
    port = _free_port()
    gk = Path(sys.executable).with_name("gk")
    cmd = [str(gk)] if gk.exists() else [sys.executable, "-m", "goatkit_asgi.cli"]
    proc = subprocess.Popen(
        [
            *cmd,
            "demo",
            "--port",
            str(port),
            "--dir",
            str(tmp_path / "demo"),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.search(rf"goatkit demo: http://127\.0\.0\.1:{port}/", line), line
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert r.status_code == 200 and "Hello, Demo User!" in r.text
        # desk-digest fetches the demo's own /status.json: the command passes its URL
        digest = httpx.get(f"http://127.0.0.1:{port}/digest", timeout=10)
        assert digest.status_code == 200
        assert f"http://127.0.0.1:{port}/status.json" in digest.text
        assert '<strong class="digest-status">200</strong>' in digest.text
        assert "&quot;service&quot;:&quot;helpdesk&quot;" in digest.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode in (0, 130, -signal.SIGINT)


def test_demo_admin_is_behind_the_demo_login(tmp_path: Path) -> None:
    with TestClient(build_app(tmp_path / "demo")) as client:
        home = client.get("/")
        assert '<a href="/admin/plugins/">Plugins admin</a>' in home.text
        # not signed in: the admin sends the browser to the demo's login page
        r = client.get("/admin/plugins/", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/admin/plugins/"
        assert client.get("/admin/plugins/api/plugins").status_code == 401
        login = client.get(r.headers["location"])
        assert 'name="next" value="/admin/plugins/"' in login.text
        wrong = client.post("/login", data={"username": "admin", "password": "guess"})
        assert "Wrong user name or password." in wrong.text
        # an outside next= is ignored
        r = client.post(
            "/login",
            data={"username": "admin", "password": "admin", "next": "//evil.example/"},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/"
        admin = client.get("/admin/plugins/")
        assert admin.status_code == 200
        assert 'href="/admin/plugins/plugins/hello-wasm"' in admin.text
        assert 'href="/admin/plugins/plugins/desk-digest"' in admin.text
        assert "default-src 'self'" in admin.headers["content-security-policy"]
        detail = client.get("/admin/plugins/plugins/hello-wasm")
        assert detail.status_code == 200 and "<code>gk_register</code>" in detail.text
        names = [p["name"] for p in client.get("/admin/plugins/api/plugins").json()["plugins"]]
        assert {"hello-wasm", "desk-digest"} <= set(names)
        # signing out closes the admin again
        client.post("/logout")
        assert client.get("/admin/plugins/api/health").status_code == 401


def test_the_wheel_ships_every_demo_plugin() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    plugins = {
        f"{d.parent.name}/{d.name}": f"goatkit_asgi/demo/plugins/{d.name}"
        for parent in ("examples", "plugins")
        for d in sorted((root / parent).iterdir())
        if (d / "manifest.yaml").is_file()
    }
    assert wheel == plugins
    assert {"plugins/stats", "plugins/faq", "plugins/calendar", "plugins/process"} <= set(wheel)
    sdist = config["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert {"examples", "plugins"} <= set(sdist)


def test_demo_shows_the_first_party_plugins_on_seeded_data(tmp_path: Path) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    import icalendar

    from goatkit_asgi.demo.app import FAQ_SEED

    app = build_app(tmp_path / "demo")
    assert isinstance(app, GoatKitMiddleware)
    platform = app.platform
    with TestClient(app) as client:
        assert client.portal is not None
        home = client.get("/")
        assert home.status_code == 200
        # all four in the menu, in the host's layout
        for path, plugin in [
            ("/stats", "stats"),
            ("/faq", "faq"),
            ("/calendar", "calendar"),
            ("/process", "process"),
        ]:
            assert f'<a class="plugin-item" href="{path}" data-plugin="{plugin}">' in home.text
        # granted exactly what each manifest asks for
        for name in ("stats", "faq", "calendar", "process"):
            info = platform.plugins[name]
            assert info.effective == info.requested and info.pending.is_empty(), name
        # the stats widget and template function on the dashboard, over the seeded tickets
        widget = home.text.split('id="widget-stats-stats-overview"', 1)[1].split("</section>")[0]
        assert "<svg" in widget
        open_count = sum(1 for state in STATES if state != "closed")
        assert (
            f"Statistics plugin: <strong>{open_count}</strong> open of {len(STATES)} tickets"
            in home.text
        )
        assert "Laptop hand-over with Ada" in home.text  # the calendar's upcoming()

        stats = client.get("/stats")
        assert stats.status_code == 200 and "<svg" in stats.text and "Helpdesk</a>" in stats.text

        # the FAQ portal lists the published articles, not the draft, and its search works
        portal = client.get("/faq")
        assert portal.status_code == 200
        for articles in FAQ_SEED.values():
            for title, _ in articles:
                assert title.replace("'", "&#39;") in portal.text
        assert "Printer troubleshooting" not in portal.text
        found = client.get("/faq/search", params={"q": "password"})
        assert found.status_code == 200 and "How do I reset my password?" in found.text
        # ... and suggests an article on the ticket page (ticket 2: the VPN drops)
        ticket = client.get("/tickets/2")
        suggestions = ticket.text.split('id="faq-suggestions"', 1)[1]
        assert "The VPN keeps dropping: what can I do?" in suggestions.split("</ul>")[0]
        assert "Workflow “Helpdesk tickets”: from open to" in ticket.text

        # the workflow refuses closed -> new; the demo undoes the save and says why
        refused = client.post("/tickets/3", data={"state": "new"})
        assert refused.status_code == 409
        assert "Ticket 3 cannot go from &#34;Closed&#34; to &#34;New&#34;" in refused.text
        assert "<option selected>closed</option>" in refused.text
        assert "<option selected>closed</option>" in client.get("/tickets/3").text
        # saving a closed ticket as closed keeps the time it was closed (the statistics use it)
        before = client.get("/tickets/6")
        assert " · closed " in before.text
        client.post("/tickets/6", data={"state": "closed"})
        assert before.text == client.get("/tickets/6").text
        reopened = client.post("/tickets/3", data={"state": "open"})  # closed -> open: allowed
        assert reopened.status_code == 200 and "<option selected>open</option>" in reopened.text
        assert "Not saved" not in reopened.text

        # the calendar's pages and its feed, parsed by a real iCalendar parser
        assert client.get("/calendar").status_code == 200
        assert client.get("/calendar/week").status_code == 200
        feed = client.get("/calendar/feed.ics")
        assert feed.headers["content-type"].startswith("text/calendar")
        events = {
            str(e["SUMMARY"]): e for e in icalendar.Calendar.from_ical(feed.text).walk("VEVENT")
        }
        assert len(events) == 5 and "Quarterly review" in events
        review = events["Quarterly review"]
        start = review.decoded("DTSTART")
        expected = dt.datetime.combine(
            dt.datetime.now(dt.UTC).date() + dt.timedelta(days=12),
            dt.time(11, 0),
            ZoneInfo("Europe/Berlin"),
        )
        assert start == expected

        designer = client.get("/process")
        assert designer.status_code == 200 and "Helpdesk tickets" in designer.text

        # the weekly report, sent now, arrives at the demo's SMTP server
        assert client.portal.call(platform.call, "stats", "send_report", {})["sent"] is True
        mail = client.get("/mail")
        assert "Helpdesk report" in mail.text and "To team@example.com" in mail.text
