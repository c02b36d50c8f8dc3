"""A small helpdesk (tickets in SQLite) wrapped in GoatKitMiddleware: what ``gk demo`` serves.

It shows the three ways plugins reach a host app: their routes and menu items (through the
middleware), template functions (``{% use %}`` on the dashboard), and hooks (``after_save``
fires when a ticket is saved). It also hosts what the desk-digest plugin is granted: the
platform's database is the helpdesk's own (so the plugin can read ``tickets``), the app serves
``/status.json`` for the plugin to fetch, and an in-process SMTP server catches the plugin's
mail, which ``/mail`` lists. The plugin admin is mounted at ``/admin/plugins``, behind a
demo-only sign-in at ``/login``.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import email
import email.policy
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio.to_thread
import databases
import jinja2
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from .. import __version__
from ..errors import GoatKitError
from ..platform import Platform
from ..web.middleware import GoatKitMiddleware
from ..web.templates import PluginTemplates

HERE = Path(__file__).parent
logger = logging.getLogger("goatkit.demo")
STATES = ("new", "open", "pending", "closed")

SEED = [
    ("Printer on the 2nd floor is on fire", "facilities", "high", "open"),
    ("VPN drops every 20 minutes", "network", "high", "open"),
    ("Password reset for the sales team", "accounts", "normal", "closed"),
    ("New laptop for Ada", "hardware", "normal", "pending"),
    ("Email bounces from the billing alias", "email", "normal", "new"),
    ("Coffee machine out of order", "facilities", "low", "closed"),
]

#: Older tickets for the statistics: (title, queue, priority, days ago created, hours to close
#: or None while open). Fixed, so every demo shows the same shape of history.
HISTORY = [
    ("Monitor flickers", "hardware", "normal", 27, 20.0),
    ("Shared drive is full", "network", "high", 26, 6.0),
    ("Licence for the design tool", "accounts", "low", 25, 52.0),
    ("Badge does not open the garage", "facilities", "normal", 23, 3.5),
    ("Phishing mail reported", "email", "high", 22, 1.0),
    ("Wi-Fi slow in meeting room 4", "network", "normal", 20, 30.0),
    ("Keyboard missing keys", "hardware", "low", 19, 72.0),
    ("Calendar invites go to spam", "email", "normal", 17, 9.0),
    ("Access to the finance folder", "accounts", "normal", 16, 2.0),
    ("Projector remote lost", "facilities", "low", 14, 26.0),
    ("Laptop battery swells", "hardware", "high", 13, 4.0),
    ("VPN certificate expired", "network", "high", 11, 1.5),
    ("Mailbox over quota", "email", "normal", 10, 12.0),
    ("Two-factor reset", "accounts", "high", 9, 0.5),
    ("Heating in room 2.14", "facilities", "normal", 8, None),
    ("Docking station not detected", "hardware", "normal", 7, 48.0),
]

# What the demo grants its plugins: exactly what each manifest asks for (faq and process work on
# their own tables only, which needs no grant).
GRANTS: dict[str, dict[str, object]] = {
    "desk-digest": {
        "db": {"read": ["tickets"]},
        "http": {"hosts": ["127.0.0.1"]},
        "email": True,
        "jobs": True,
    },
    "stats": {"db": {"read": ["tickets"]}, "email": True, "jobs": True},
    "calendar": {"email": True, "jobs": True},
}

# Demo only: a fixed key signs the demo's session cookie, and the login below takes one fixed
# user. A real host uses its own sign-in and a secret key of its own.
DEMO_SESSION_SECRET = "goatkit-demo-session-key: demo only, never in production"
DEMO_USER = ("admin", "admin")


def _safe_next(value: object) -> str:
    """A path on this site to go to after signing in (never another site)."""
    text = str(value or "")
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return "/"
    return text


@dataclass(frozen=True)
class CaughtMail:
    received: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    body: str


class MailCatcher:
    """An SMTP server on 127.0.0.1 that keeps the last messages it receives (newest first).

    It runs in its own thread (aiosmtpd's ``Controller``), so plugins mail through the platform's
    real SMTP client and nothing leaves the machine.
    """

    def __init__(self, port: int, *, keep: int = 50) -> None:
        self.port = port
        self.messages: collections.deque[CaughtMail] = collections.deque(maxlen=keep)
        self._controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        body = ""
        if isinstance(message, EmailMessage):
            part = message.get_body(preferencelist=("plain", "html"))
            if part is not None:
                body = str(part.get_content())
        self.messages.appendleft(
            CaughtMail(
                received=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                subject=str(message.get("Subject", "")),
                body=body,
            )
        )
        return "250 Message accepted"

    def start(self) -> None:
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="localhost"
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_plugin_dirs() -> list[Path]:
    """Where the demo's plugins are: packaged beside this module, or in the source checkout."""
    packaged = HERE / "plugins"
    if packaged.is_dir():
        return [packaged]
    root = HERE.parents[1]
    return [d for d in (root / "examples", root / "plugins") if d.is_dir()]


def prepare_plugins_dir(data_dir: Path) -> Path:
    """A plugins directory for the demo: links to every example plugin that has a manifest."""
    plugins = data_dir / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    for source in demo_plugin_dirs():
        for candidate in sorted(source.iterdir()):
            if (
                not (candidate / "manifest.yaml").is_file()
                and not (candidate / "plugin.yaml").is_file()
            ):
                continue
            link = plugins / candidate.name
            if link.is_symlink() or link.exists():
                continue
            os.symlink(candidate.resolve(), link, target_is_directory=True)
    return plugins


async def _create_and_seed(database: databases.Database) -> None:
    """The tickets table, with the sample tickets and their history when it is empty."""
    await database.execute(
        "CREATE TABLE IF NOT EXISTS tickets (id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
        "queue TEXT NOT NULL, priority TEXT NOT NULL, state TEXT NOT NULL, "
        "created_at TEXT NOT NULL, closed_at TEXT)"
    )
    if await database.fetch_val("SELECT COUNT(*) FROM tickets"):
        return
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows: list[tuple[str, str, str, str, dt.datetime, dt.datetime | None]] = []
    for i, (title, queue, priority, state) in enumerate(SEED):
        created = now - dt.timedelta(days=len(SEED) - i)
        closed = created + dt.timedelta(hours=5) if state == "closed" else None
        rows.append((title, queue, priority, state, created, closed))
    for title, queue, priority, days, hours in HISTORY:
        created = now - dt.timedelta(days=days, hours=days % 5)
        closed = created + dt.timedelta(hours=hours) if hours is not None else None
        rows.append((title, queue, priority, "closed" if closed else "open", created, closed))
    for title, queue, priority, state, created, closed in rows:
        await database.execute(
            "INSERT INTO tickets (title, queue, priority, state, created_at, closed_at) "
            "VALUES (:t, :q, :p, :s, :c, :x)",
            {
                "t": title,
                "q": queue,
                "p": priority,
                "s": state,
                "c": created.isoformat(),
                "x": closed.isoformat() if closed else None,
            },
        )


FAQ_SEED = {
    "Accounts": [
        (
            "How do I reset my password?",
            "Open the self-service portal, choose 'Forgot password' and follow the link we mail "
            "you. The link is valid for one hour.\n\nIf you use two-factor sign-in, keep your "
            "phone at hand.",
        ),
        (
            "How do I get access to a shared folder?",
            "Ask the folder's owner to approve your request in the access portal. Access is "
            "granted within one working day.",
        ),
    ],
    "Network": [
        (
            "The VPN keeps dropping: what can I do?",
            "Update the VPN client to the latest version and switch from Wi-Fi to a cable if you "
            "can. If the VPN still drops every few minutes, open a ticket in the network queue "
            "with the time it happened.",
        ),
        (
            "Wi-Fi is slow in a meeting room",
            "Meeting rooms have their own access point. Forget the network and reconnect; if it "
            "stays slow, tell us the room number.",
        ),
    ],
    "Hardware": [
        (
            "How do I order a new laptop?",
            "Laptops are replaced every four years. Open a ticket in the hardware queue with your "
            "manager's approval; delivery takes about a week.",
        ),
    ],
}

TICKET_WORKFLOW = {
    "states": [
        # laid out so that no two arrows cross
        {"id": "new", "label": "New", "x": 40, "y": 150, "initial": True},
        {"id": "open", "label": "Open", "x": 280, "y": 40},
        {"id": "closed", "label": "Closed", "x": 280, "y": 270},
        {"id": "pending", "label": "Pending", "x": 520, "y": 150},
    ],
    "transitions": [
        {"from": "new", "to": "open", "label": "Start"},
        {"from": "new", "to": "closed", "label": "Reject"},
        {"from": "open", "to": "pending", "label": "Wait"},
        {"from": "pending", "to": "open", "label": "Resume"},
        {"from": "open", "to": "closed", "label": "Solve"},
        {"from": "pending", "to": "closed", "label": "Solve"},
        {"from": "closed", "to": "open", "label": "Reopen"},
    ],
}


async def _seed_plugins(platform: Platform, database: databases.Database) -> None:
    """Give the first-party plugins their demo content, once (through their own functions)."""
    await database.execute(
        "CREATE TABLE IF NOT EXISTS demo_seeded (plugin TEXT PRIMARY KEY, at TEXT NOT NULL)"
    )
    done = {r["plugin"] for r in await database.fetch_all("SELECT plugin FROM demo_seeded")}

    async def seed(plugin: str, work: Any) -> None:
        if plugin in done or plugin not in platform.plugins:
            return
        try:
            await work()
        except GoatKitError as exc:
            logger.warning("demo: could not seed %s: %s", plugin, exc)
            return
        await database.execute(
            "INSERT INTO demo_seeded (plugin, at) VALUES (:p, :a)",
            {"p": plugin, "a": dt.datetime.now(dt.UTC).isoformat()},
        )

    async def faq() -> None:
        for category, articles in FAQ_SEED.items():
            await platform.call("faq", "save_category", {"name": category})
            for title, body in articles:
                article = {"title": title, "body": body, "category": category, "published": True}
                await platform.call("faq", "save_article", article)
        draft = {
            "title": "Printer troubleshooting (draft)",
            "body": "Work in progress: not visible in the portal until published.",
            "category": "Hardware",
            "published": False,
        }
        await platform.call("faq", "save_article", draft)

    async def calendar() -> None:
        today = dt.datetime.now(dt.UTC).date()
        monday = today - dt.timedelta(days=today.weekday())
        appointments = [
            ("Team stand-up", monday + dt.timedelta(days=1), "09:30", 30, "Europe/Berlin"),
            ("Laptop hand-over with Ada", today + dt.timedelta(days=1), "14:00", 45, "UTC"),
            ("Network maintenance window", monday + dt.timedelta(days=5), "22:00", 120, "UTC"),
            ("Vendor call (New York)", today + dt.timedelta(days=3), "10:00", 60,
             "America/New_York"),
            ("Quarterly review", today + dt.timedelta(days=12), "11:00", 90, "Europe/Berlin"),
        ]  # fmt: skip
        for title, day, at, minutes, zone in appointments:
            local = dt.datetime.combine(day, dt.time.fromisoformat(at), ZoneInfo(zone))
            end = local + dt.timedelta(minutes=minutes)
            await platform.call(
                "calendar",
                "create_appointment",
                {
                    "title": title,
                    "start": local.isoformat(),
                    "end": end.isoformat(),
                    "tzid": zone,
                    "location": "Room 2.14" if zone != "America/New_York" else "Phone",
                    "attendee_email": "team@example.com",
                    "remind_minutes": 30,
                },
            )

    async def process() -> None:
        workflow = {
            "name": "Helpdesk tickets",
            "entity": "ticket",
            "definition": TICKET_WORKFLOW,
            "active": True,
        }
        await platform.call("process", "save_workflow", workflow)

    await seed("faq", faq)
    await seed("calendar", calendar)
    await seed("process", process)


def _quiet(value: object) -> bool:
    """A hook answer with nothing to tell the user: the workflow plugin's plain approval."""
    return isinstance(value, dict) and value.get("ok") is True and set(value) <= {"ok", "workflow"}


def build_app(
    data_dir: Path, *, debug: bool = True, base_url: str = "http://127.0.0.1:8000"
) -> ASGIApp:
    """The demo helpdesk over ``data_dir`` (its SQLite database, plugins and platform state).

    ``base_url`` is where the app is served: desk-digest fetches ``{base_url}/status.json``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{data_dir / 'helpdesk.db'}"
    database = databases.Database(database_url)
    mail = MailCatcher(_free_port())
    platform = Platform(
        prepare_plugins_dir(data_dir),
        state_dir=data_dir / "state",
        database_url=database_url,  # plugins read the helpdesk's own tables, as granted
        grants=GRANTS,
        plugin_config={"desk-digest": {"status_url": f"{base_url.rstrip('/')}/status.json"}},
        smtp={
            "host": "127.0.0.1",
            "port": mail.port,
            "sender": "helpdesk@example.com",
            "local_hostname": "localhost",
        },
        has_permission=lambda request, permission: True,  # the demo user may do everything
        debug=debug,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        enable_async=True,
    )

    @jinja2.pass_context
    def url(context: Any, path: str) -> str:
        request = context.get("request")
        root = request.scope.get("root_path", "") if request is not None else ""
        return f"{root}{path}"

    env.globals["url"] = url
    templates = PluginTemplates(platform, env=env, layout="layout.html")

    async def index(request: Request) -> Response:
        rows = await database.fetch_all("SELECT state FROM tickets")
        return await templates.TemplateResponse(
            request,
            "index.html",
            {
                "ticket_count": len(rows),
                "open_count": sum(1 for r in rows if r["state"] != "closed"),
                "plugins": list(platform.plugins.values()),
                "user_name": "Demo User",
                "widgets": await templates.render_widgets(request, location="dashboard"),
            },
        )

    async def tickets(request: Request) -> Response:
        rows = await database.fetch_all("SELECT * FROM tickets ORDER BY id")
        return await templates.TemplateResponse(request, "tickets.html", {"tickets": rows})

    async def ticket(request: Request) -> Response:
        ticket_id = request.path_params["ticket_id"]
        row = await database.fetch_one("SELECT * FROM tickets WHERE id = :id", {"id": ticket_id})
        if row is None:
            return Response("no such ticket", status_code=404)
        notes: list[str] = []
        refusals: list[str] = []
        if request.method == "POST":
            form = await request.form()
            state = str(form.get("state", ""))
            if state in STATES:
                # closed_at is when the ticket was closed: saving it closed again keeps it
                closed = None
                if state == "closed":
                    closed = row["closed_at"] or dt.datetime.now(dt.UTC).isoformat()
                await database.execute(
                    "UPDATE tickets SET state = :state, closed_at = :closed WHERE id = :id",
                    {"state": state, "closed": closed, "id": ticket_id},
                )
                results = await platform.fire_hook(
                    "after_save",
                    {
                        "entity": "ticket",
                        "id": ticket_id,
                        "state": state,
                        "previous_state": row["state"],
                    },
                )
                refusals = [f"{r.plugin}: {r.refusal}" for r in results if r.refusal]
                if refusals:
                    # A plugin refused the change (the workflow forbids it): undo the save.
                    await database.execute(
                        "UPDATE tickets SET state = :state, closed_at = :closed WHERE id = :id",
                        {"state": row["state"], "closed": row["closed_at"], "id": ticket_id},
                    )
                notes = [
                    f"{r.plugin}: {r.value if r.ok else r.error}"
                    for r in results
                    if not r.refusal and not (r.ok and _quiet(r.value))
                ]
                if not notes and not refusals:
                    return RedirectResponse(request.url.path, status_code=303)
            row = await database.fetch_one(
                "SELECT * FROM tickets WHERE id = :id", {"id": ticket_id}
            )
            assert row is not None
        return await templates.TemplateResponse(
            request,
            "ticket.html",
            {"ticket": row, "states": STATES, "notes": notes, "refusals": refusals},
            status_code=409 if refusals else 200,
        )

    async def status(request: Request) -> Response:
        return JSONResponse({"service": "helpdesk", "ok": True, "version": __version__})

    async def mail_page(request: Request) -> Response:
        return await templates.TemplateResponse(
            request, "mail.html", {"messages": list(mail.messages), "title": "Mail"}
        )

    async def login(request: Request) -> Response:
        """The demo's sign-in: one fixed user (see DEMO_USER), remembered in the session."""
        error = ""
        next_url = _safe_next(request.query_params.get("next"))
        if request.method == "POST":
            form = await request.form()
            next_url = _safe_next(form.get("next"))
            if (form.get("username"), form.get("password")) == DEMO_USER:
                request.session["user"] = DEMO_USER[0]
                return RedirectResponse(next_url, status_code=303)
            error = "Wrong user name or password."
        return await templates.TemplateResponse(
            request,
            "login.html",
            {"title": "Sign in", "next": next_url, "error": error, "demo_user": DEMO_USER},
        )

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)

    def admin_auth(request: Request) -> bool | None:
        # None: not signed in, so the admin redirects to /login; any signed-in demo user may
        # administer plugins.
        return True if request.session.get("user") else None

    admin = platform.admin_app(admin_auth, secret_key=secrets.token_urlsafe(32), login_url="/login")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(mail.start)
        try:
            await database.connect()
            try:
                await _create_and_seed(database)
                await _seed_plugins(platform, database)
                yield
            finally:
                await database.disconnect()
        finally:
            await anyio.to_thread.run_sync(mail.stop)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/tickets", tickets),
            Route("/tickets/{ticket_id:int}", ticket, methods=["GET", "POST"]),
            Route("/status.json", status),
            Route("/mail", mail_page),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Mount("/admin/plugins", admin),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key=DEMO_SESSION_SECRET)],
        lifespan=lifespan,
    )
    return GoatKitMiddleware(app, platform=platform, templates=templates)
