"""``gk demo``: the example helpdesk with its plugins, as a user runs it."""

from __future__ import annotations

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

from goatkit_asgi.demo.app import build_app


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
