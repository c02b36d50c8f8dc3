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
from goatkit_asgi.demo.app import SEED, build_app
from goatkit_asgi.web.middleware import GoatKitMiddleware


def test_demo_pages_show_plugin_menu_page_function_and_hook(tmp_path: Path) -> None:
    with TestClient(build_app(tmp_path / "demo")) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert "6 open tickets" not in home.text and "open tickets of 6" in home.text
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
        assert tickets.text.count("<tr>") == 7  # header + six seeded tickets


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

        counts = collections.Counter(state for *_, state in SEED)
        open_count = sum(n for state, n in counts.items() if state != "closed")
        page = client.get("/digest")
        assert page.status_code == 200
        assert "Helpdesk</a>" in page.text and 'data-plugin="desk-digest"' in page.text
        for state, n in counts.items():
            assert f"<tr><td>{state}</td><td>{n}</td></tr>" in page.text
        assert f'<th class="digest-open">{open_count}</th>' in page.text
        assert "Status unavailable: http_error" in page.text
        # the dashboard counts open tickets the same way
        assert f"{open_count} open tickets of {len(SEED)}" in client.get("/").text

        mail = client.get("/mail")
        assert mail.status_code == 200 and "No mail yet." in mail.text
        (job,) = client.portal.call(platform.jobs, "desk-digest")
        assert job.job_id == "daily-digest"
        assert client.portal.call(platform.services.scheduler.tick, job.next_run + 1) == 1
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
