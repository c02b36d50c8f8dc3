"""The faq plugin (``plugins/faq``) end to end, on SQLite and on PostgreSQL.

It is installed from its packed ``.zip`` and keeps its articles in its own ``faq_*`` tables,
without any grant. Search runs on SQLite FTS5, on LIKE (``config search: like``, on both
databases) and on PostgreSQL full text; the pages are driven through ``GoatKitMiddleware`` with a
``has_permission`` that grants ``faq.edit`` only to requests carrying an editor header.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import pytest
import yaml
from httpx2 import Response
from jinja2 import Environment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient

from goatkit_asgi import Platform
from goatkit_asgi.errors import PluginCallError
from goatkit_asgi.host.db import role_name
from goatkit_asgi.packaging.manifest import load_manifest
from goatkit_asgi.web.middleware import GoatKitMiddleware
from tests.plugins.conftest import (
    PLUGINS,
    HelpdeskDB,
)

pytestmark = pytest.mark.anyio

PLUGIN = "faq"
SOURCE = PLUGINS / PLUGIN
MakePlatform = Callable[..., Platform]
EDITOR = {"x-faq-editor": "1"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")

CATEGORIES = ["Network", "Accounts", "Hardware"]
#: key -> (category, title, body, published)
ARTICLES: dict[str, tuple[str, str, str, bool]] = {
    "vpn": (
        "Network",
        "VPN connection keeps dropping",
        "When the VPN drops every few minutes, reconnect the VPN client and check the Wi-Fi "
        "signal.\n\nIf it still drops, restart the laptop.",
        True,
    ),
    "wifi": (
        "Network",
        "Wi-Fi in meeting rooms",
        "Visitors use the guest network. Inside the office you do not need the VPN.",
        True,
    ),
    "password": (
        "Accounts",
        "Reset your password",
        "Open the self-service portal and choose Forgot password.\n"
        "The new password needs 12 characters.",
        True,
    ),
    "licence": (
        "Accounts",
        "Software licence renewal",
        "Licences are renewed every January and cover 1000 seats. "
        "Ask before buying a password manager.",
        True,
    ),
    "printer": (
        "Hardware",
        "Printer jam on the 2nd floor",
        "Open tray 2 and remove the paper. The printer runs at 100% load on Mondays.",
        True,
    ),
    "draft": (
        "Network",
        "VPN outage report",
        "Internal notes about the VPN outage, not public yet.",
        False,
    ),
}
PUBLISHED = [key for key, (_, _, _, published) in ARTICLES.items() if published]


NOTICES = ["created", "saved", "deleted", "published", "unpublished", "category"]


def has_permission(request: Request, permission: str) -> bool:
    """``faq.edit`` for requests with the editor header; nothing else exists here."""
    return permission == "faq.edit" and request.headers.get("x-faq-editor") == "1"


async def seed(platform: Platform) -> dict[str, int]:
    """Create :data:`CATEGORIES` and :data:`ARTICLES` through the JSON functions."""
    ids: dict[str, int] = {}
    for name in CATEGORIES:
        out = await platform.call(PLUGIN, "save_category", {"name": name})
        assert out["created"] is True
        ids[name] = out["id"]
    for key, (category, title, body, published) in ARTICLES.items():
        out = await platform.call(
            PLUGIN,
            "save_article",
            {"title": title, "body": body, "category": category, "published": published},
        )
        assert out["created"] is True
        ids[key] = out["id"]
    return ids


def seed_sync(client: TestClient, platform: Platform) -> dict[str, int]:
    assert client.portal is not None
    return client.portal.call(seed, platform)


def web(platform: Platform, **kwargs: Any) -> TestClient:
    return TestClient(GoatKitMiddleware(Starlette(), platform=platform), **kwargs)


def count(helpdesk: HelpdeskDB, table: str) -> int:
    return int(helpdesk.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


def article_row(helpdesk: HelpdeskDB, article_id: int) -> dict[str, Any] | None:
    rows = helpdesk.query("SELECT * FROM faq_articles WHERE id = ?", [article_id])
    return rows[0] if rows else None


def schema_objects(helpdesk: HelpdeskDB) -> dict[str, str]:
    """The plugin's tables and indexes: name -> SQL (SQLite) or index definition (PostgreSQL)."""
    if helpdesk.kind == "sqlite":
        rows = helpdesk.query("SELECT name, sql FROM sqlite_master WHERE name LIKE 'faq%'")
        return {r["name"]: r["sql"] or "" for r in rows}
    schema = role_name(PLUGIN)
    rows = helpdesk.query(
        "SELECT tablename AS name, '' AS sql FROM pg_tables WHERE schemaname = ? "
        "UNION ALL SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = ?",
        [schema, schema],
    )
    return {r["name"]: r["sql"] for r in rows}


def columns(helpdesk: HelpdeskDB, table: str) -> set[str]:
    if helpdesk.kind == "sqlite":
        return {r["name"] for r in helpdesk.query(f"PRAGMA table_info({table})")}
    rows = helpdesk.query(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ?",
        [role_name(PLUGIN), table],
    )
    return {r["column_name"] for r in rows}


def expected_mode(helpdesk: HelpdeskDB, setting: str) -> str:
    if setting == "like":
        return "like"
    return "fts5" if helpdesk.kind == "sqlite" else "postgres"


def location(response: Response) -> str:
    """Where a redirect leads, resolved against the request's URL (the plugin answers with a
    relative reference, so that it works under any root_path)."""
    assert response.status_code == 303, response.text
    return urljoin(str(response.url), response.headers["location"])


# -- manifest, build, schema ------------------------------------------------------------------


def test_manifest_asks_for_nothing_and_defines_faq_edit() -> None:
    manifest = load_manifest(SOURCE)
    assert manifest.name == PLUGIN and manifest.version == "1.0.0"
    assert manifest.capabilities.is_empty()  # its own faq_* tables need no grant
    assert manifest.permissions == ("faq.edit",)
    assert {spec.name for spec in manifest.exports} == {"faq_suggest", "search"}
    assert manifest.config == {"search": "auto"}
    assert manifest.license == "Apache-2.0" and manifest.author == "goatkit_asgi contributors"


def test_translations_are_complete_in_english_and_german() -> None:
    english = yaml.safe_load((SOURCE / "i18n" / "en.yaml").read_text("utf-8"))
    german = yaml.safe_load((SOURCE / "i18n" / "de.yaml").read_text("utf-8"))
    assert set(english) == set(german)
    used: set[str] = set()
    for template in (SOURCE / "templates").glob("*.html"):
        used |= set(re.findall(r"""_\(\s*["']([a-z_.]*[a-z_])["']""", template.read_text("utf-8")))
    # the error keys come from the plugin, the notices from ?done=
    used |= set(re.findall(r'"(error\.[a-z_]+)"', (SOURCE / "faq.c").read_text("utf-8")))
    used |= {f"notice.{done}" for done in NOTICES}
    assert used - set(english) == set()
    assert all(isinstance(v, str) and v for v in [*english.values(), *german.values()])
    assert english["portal.title"] != german["portal.title"]


async def test_tables_appear_on_first_use_without_any_grant(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN) as platform:  # no grants at all
        assert schema_objects(helpdesk) == {}  # discovered; nothing created yet
        out = await platform.call(PLUGIN, "search", {"q": "anything"})
        assert out == {"q": "anything", "mode": expected_mode(helpdesk, "auto"), "items": []}
        objects = schema_objects(helpdesk)
        assert {"faq_categories", "faq_articles"} <= set(objects)
        assert columns(helpdesk, "faq_articles") == {
            "id", "category_id", "title", "body", "published", "created_at", "updated_at"
        }  # fmt: skip
        assert columns(helpdesk, "faq_categories") == {"id", "name", "position"}
        if helpdesk.kind == "sqlite":
            assert "using fts5(title, body)" in objects["faq_fts"].lower()
        else:
            index = objects["faq_articles_fts"]
            assert "USING gin" in index
            assert "to_tsvector('simple'::regconfig, ((title || ' '::text) || body))" in index
        # a second instance finds everything in place (CREATE ... IF NOT EXISTS)
        await platform.reload(PLUGIN)
        assert (await platform.call(PLUGIN, "search", {"q": "x"}))["items"] == []
        assert schema_objects(helpdesk) == objects
        audit = platform.services.recent_audit(PLUGIN)
        assert audit and {entry.decision for entry in audit} == {"allowed"}
        assert {entry.function for entry in audit} <= {"db_query", "db_exec", "config_get", "log"}


# -- the JSON functions -----------------------------------------------------------------------


async def test_save_category_and_save_article_store_what_they_are_given(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN) as platform:
        ids = await seed(platform)
        rows = helpdesk.query("SELECT id, name, position FROM faq_categories ORDER BY id")
        assert rows == [
            {"id": ids[name], "name": name, "position": n} for n, name in enumerate(CATEGORIES, 1)
        ]
        # an existing name gives its id back; a position can be chosen
        again = await platform.call(PLUGIN, "save_category", {"name": "  Network "})
        assert again == {"id": ids["Network"], "created": False}
        faq = await platform.call(PLUGIN, "save_category", {"name": "Misc", "position": 0})
        assert faq["created"] is True
        assert helpdesk.query("SELECT position FROM faq_categories WHERE id = ?", [faq["id"]]) == [
            {"position": 0}
        ]

        assert count(helpdesk, "faq_articles") == len(ARTICLES)
        for key, (category, title, body, published) in ARTICLES.items():
            row = article_row(helpdesk, ids[key])
            assert row is not None
            assert (row["category_id"], row["title"], row["body"], row["published"]) == (
                ids[category],
                title,
                body,
                int(published),
            )
            assert ISO_UTC.match(row["created_at"]) and row["updated_at"] == row["created_at"]

        # update by id, category by id, text cleaned (CR LF, control characters, outer spaces)
        out = await platform.call(
            PLUGIN,
            "save_article",
            {
                "id": ids["printer"],
                "title": "  Printer\tjam\x07 ",
                "body": "Line one\r\nLine two\x00\r\n",
                "category": ids["Network"],
            },
        )
        assert out == {"id": ids["printer"], "created": False}
        row = article_row(helpdesk, ids["printer"])
        assert row is not None
        assert (row["title"], row["body"], row["category_id"]) == (
            "Printer jam",
            "Line one\nLine two",
            ids["Network"],
        )
        assert row["published"] == 1  # "published" left out: kept as it was


async def test_save_functions_refuse_bad_input(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN) as platform:
        ids = await seed(platform)
        good = {"title": "T", "body": "B", "category": "Network"}
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({**good, "title": ""}, "bad_input", "title is required"),
            ({**good, "title": " \t "}, "bad_input", "title is required"),
            ({**good, "title": "x" * 201}, "bad_input", "title is longer than 200 characters"),
            ({**good, "body": ""}, "bad_input", "body is required"),
            ({**good, "body": "y" * 20001}, "bad_input", "body is longer than 20000 characters"),
            ({**good, "category": "Nope"}, "bad_input", "the category does not exist"),
            ({**good, "category": 999}, "bad_input", "the category does not exist"),
            ({"title": "T", "body": "B"}, "bad_input", "category is required"),
            ({**good, "id": "abc"}, "bad_input", "id must be a positive integer"),
            ({**good, "id": 999}, "not_found", "no article with that id"),
        ]
        for args, code, message in cases:
            with pytest.raises(PluginCallError) as info:
                await platform.call(PLUGIN, "save_article", args)
            assert info.value.code == code, args
            assert message in str(info.value), args
        for name, message in [("", "name is required"), ("z" * 101, "longer than 100")]:
            with pytest.raises(PluginCallError) as info:
                await platform.call(PLUGIN, "save_category", {"name": name})
            assert info.value.code == "bad_input" and message in str(info.value)
        assert count(helpdesk, "faq_articles") == len(ARTICLES)
        assert count(helpdesk, "faq_categories") == len(CATEGORIES)
        # the limits count characters, not bytes: 200 two-byte characters are fine
        out = await platform.call(PLUGIN, "save_article", {**good, "title": "\u00e9" * 200})
        assert out["created"] is True and out["id"] == max(ids.values()) + 1


# -- search -----------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["auto", "like"])
async def test_search_ranks_published_matches_best_first(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB, setting: str
) -> None:
    mode = expected_mode(helpdesk, setting)
    async with plugin_platform(PLUGIN, plugin_config={PLUGIN: {"search": setting}}) as platform:
        ids = await seed(platform)

        async def found(q: str) -> list[int]:
            out = await platform.call(PLUGIN, "search", {"q": q})
            assert out["mode"] == mode and out["q"] == q.strip()
            return [item["id"] for item in out["items"]]

        # title + body beats a single mention in the body; the draft never shows
        assert await found("vpn") == [ids["vpn"], ids["wifi"]]
        assert await found("VPN") == [ids["vpn"], ids["wifi"]]
        assert await found("password") == [ids["password"], ids["licence"]]
        assert await found("pass") == [ids["password"], ids["licence"]]  # prefixes match
        assert await found("vpn drops") == [ids["vpn"]]  # every word must match
        assert await found("drops wifi-less") == []
        assert await found("outage") == []  # only the draft has it
        assert set(await found("vpn wi-fi")) == {ids["vpn"], ids["wifi"]}
        # LIKE matches inside words, and its % and _ are escaped: "100%" is literal there
        if mode == "like":
            assert await found("ssword") == [ids["password"], ids["licence"]]
            assert await found("100%") == [ids["printer"]]
        else:
            assert await found("ssword") == []
            assert set(await found("100%")) == {ids["printer"], ids["licence"]}  # 100, 1000
        assert await found("v_n") == []  # an unescaped _ would match "vpn"

        out = await platform.call(PLUGIN, "search", {"q": "vpn"})
        best = out["items"][0]
        assert best["title"] == "VPN connection keeps dropping"
        assert best["category"] == "Network"
        assert best["url"] == f"/faq/article/{ids['vpn']}"
        assert "VPN" in best["snippet"] and "\x02" not in best["snippet"]
        hits = [part["text"] for part in best["parts"] if part["hit"]]
        assert hits and {hit.lower() for hit in hits} == {"vpn"}
        assert "".join(part["text"] for part in best["parts"]) == best["snippet"]


@pytest.mark.parametrize("setting", ["auto", "like"])
async def test_search_syntax_from_users_never_breaks_the_query(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB, setting: str
) -> None:
    async with plugin_platform(PLUGIN, plugin_config={PLUGIN: {"search": setting}}) as platform:
        ids = await seed(platform)
        vpn_hits = [ids["vpn"], ids["wifi"]]
        # quoted words: FTS5 and tsquery operators and SQL are just text
        typographic = [
            "\u201cvpn\u201d",
            "vpn \u2013",
            "\u00abvpn\u00bb",
            "vpn\u2026",
            "\u3010vpn\u3011",
        ]
        for q in [
            'vpn"',
            '"vpn"',
            "vpn*",
            "(vpn",
            "vpn)",
            "^vpn",
            "-vpn",
            "{vpn}",
            "vpn'",
            "vpn:",
            *typographic,
        ]:
            out = await platform.call(PLUGIN, "search", {"q": q})
            assert [item["id"] for item in out["items"]] == vpn_hits, q
        hostile = [
            '"unbalanced',
            "NEAR(",
            "NEAR(vpn drops",
            "vpn NEAR/2 drops",
            "*",
            "**",
            "%",
            "_",
            "%_%",
            "!",
            "\\",
            "' OR '1'='1",
            "'; DROP TABLE faq_articles; --",
            "title:vpn",
            "vpn AND OR NOT",
            "a & b | !c",
            "vpn:* & drops",
            "\x00vpn\x01",
            "<script>alert(1)</script>",
        ]
        for q in hostile:
            out = await platform.call(PLUGIN, "search", {"q": q})
            found = [item["id"] for item in out["items"]]
            assert ids["draft"] not in found, q
            assert len(found) < len(PUBLISHED), q  # never "everything"
        for q in ["*", "%", "_", "%_%", "!", "\\", "   "]:  # nothing to search for
            assert (await platform.call(PLUGIN, "search", {"q": q}))["items"] == []
        assert count(helpdesk, "faq_articles") == len(ARTICLES)
        # too long: refused, not cut
        assert (await platform.call(PLUGIN, "search", {"q": "vpn " + "x" * 196}))["items"] == []
        with pytest.raises(PluginCallError) as info:
            await platform.call(PLUGIN, "search", {"q": "vpn " + "x" * 197})
        assert info.value.code == "bad_input"


async def test_faq_suggest_finds_articles_for_ticket_texts(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN) as platform:
        ids = await seed(platform)

        async def suggest(text: str) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = (
                await platform.call(PLUGIN, "faq_suggest", {"text": text})
            )["items"]
            assert len(items) <= 3
            assert ids["draft"] not in [item["id"] for item in items]
            return items

        items = await suggest("VPN keeps dropping")
        assert items[0]["id"] == ids["vpn"]
        assert set(items[0]) == {"id", "title", "category", "url", "snippet", "parts"}
        assert items[0]["url"] == f"/faq/article/{ids['vpn']}"
        assert items[0]["title"] == "VPN connection keeps dropping"
        # the seeded helpdesk tickets, as a ticket page would ask
        best = {
            "VPN drops": "vpn",
            "Password reset": "password",
            "Printer jam": "printer",
            "Licence renewal": "licence",
            "Wi-Fi in room 4": "wifi",
        }
        tickets = {r["title"] for r in helpdesk.query("SELECT title FROM tickets")}
        assert set(best) <= tickets
        for title in tickets:
            items = await suggest(title)
            if title in best:
                assert items and items[0]["id"] == ids[best[title]], title
        # the draft matches "outage report" but stays hidden; stop words and short words alone
        # give nothing
        assert await suggest("VPN outage report") != []
        assert await suggest("outage report") == []
        assert await suggest("Please help, it does not work with my PC") == []
        assert await suggest("") == []
        assert (await platform.call(PLUGIN, "faq_suggest", {}))["items"] == []


async def test_template_functions_work_in_a_host_template(plugin_platform: MakePlatform) -> None:
    async with plugin_platform(PLUGIN) as platform:
        ids = await seed(platform)
        env = Environment(enable_async=True, autoescape=True)
        platform.install_jinja(env)
        template = env.from_string(
            "{% use faq %}"
            '{% for item in faq.faq_suggest(text)["items"] %}{{ item.id }} {{ item.url }};'
            "{% endfor %}|"
            '{% set found = faq.search("password") %}'
            '{{ found.mode }}:{% for item in found["items"] %}{{ item.title }};{% endfor %}'
        )
        out = await template.render_async(text="Our VPN keeps dropping since Monday")
        suggestions, _, searched = out.partition("|")
        assert suggestions.startswith(f"{ids['vpn']} /faq/article/{ids['vpn']};")
        assert searched.endswith(":Reset your password;Software licence renewal;")


async def test_drafts_never_reach_the_portal_or_the_article_page(
    plugin_platform: MakePlatform,
) -> None:
    async with plugin_platform(PLUGIN) as platform:
        ids = await seed(platform)
        portal = await platform.call(PLUGIN, "page_portal", {})
        assert portal["template"] == "portal.html"
        context = portal["context"]
        assert [c["name"] for c in context["categories"]] == CATEGORIES
        listed = [a["id"] for c in context["categories"] for a in c["articles"]]
        assert sorted(listed) == sorted(ids[key] for key in PUBLISHED)
        assert context["article_count"] == len(PUBLISHED)
        draft = await platform.call(PLUGIN, "page_article", {"id": ids["draft"]})
        assert draft == {
            "template": "not_found.html",
            "context": {"id": ids["draft"]},
            "status": 404,
        }
        page = await platform.call(PLUGIN, "page_article", {"id": ids["vpn"]})
        assert page["context"]["article"]["paragraphs"] == [
            [
                "When the VPN drops every few minutes, reconnect the VPN client and check the "
                "Wi-Fi signal."
            ],
            ["If it still drops, restart the laptop."],
        ]
        assert [r["id"] for r in page["context"]["related"]] == [ids["wifi"]]  # not the draft


@pytest.mark.parametrize("helpdesk", ["sqlite"], indirect=True)  # FTS5 is SQLite's
async def test_the_search_index_is_rebuilt_when_it_is_lost(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(PLUGIN) as platform:
        ids = await seed(platform)
        assert count(helpdesk, "faq_fts") == len(ARTICLES)
        helpdesk.execute("DROP TABLE faq_fts")
        await platform.reload(PLUGIN)  # a new instance creates it again and fills it
        out = await platform.call(PLUGIN, "search", {"q": "password"})
        assert out["mode"] == "fts5"
        assert [item["id"] for item in out["items"]] == [ids["password"], ids["licence"]]
        assert count(helpdesk, "faq_fts") == len(ARTICLES)


# -- pages through the middleware -------------------------------------------------------------


def test_portal_search_and_article_pages(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, has_permission=has_permission)
    with web(platform) as client:
        ids = seed_sync(client, platform)
        page = client.get("/faq")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "<title>Frequently asked questions</title>" in html
        assert '<link rel="stylesheet" href="/plugins/faq/static/faq.css">' in html
        assert '<form class="faq-search" role="search" method="get" action="/faq/search">' in html
        assert '<label for="faq-q">Search the FAQ</label>' in html
        for key in PUBLISHED:
            assert f'<a href="/faq/article/{ids[key]}">{ARTICLES[key][1]}</a>' in html
        assert "VPN outage report" not in html
        positions = [html.index(f'<h2 id="faq-category-{ids[name]}">') for name in CATEGORIES]
        assert positions == sorted(positions)
        assert client.get("/plugins/faq/static/faq.css").status_code == 200

        article = client.get(f"/faq/article/{ids['password']}")
        assert article.status_code == 200
        assert "<title>Reset your password</title>" in article.text
        assert (
            "<p>Open the self-service portal and choose Forgot password.<br>"
            "The new password needs 12 characters.</p>"
        ) in article.text
        assert '<a href="/faq">Back to the FAQ</a>' in article.text
        assert f'<a href="/faq/article/{ids["licence"]}">Software licence renewal</a>' in (
            article.text
        )  # more in the category

        results = client.get("/faq/search", params={"q": "password"})
        assert results.status_code == 200
        assert "2 articles found" in results.text
        first = results.text.index(f'<a href="/faq/article/{ids["password"]}">')
        second = results.text.index(f'<a href="/faq/article/{ids["licence"]}">')
        assert first < second
        assert "<mark>password</mark>" in results.text
        assert 'value="password"' in results.text

        for path in (f"/faq/article/{ids['draft']}", "/faq/article/999"):
            missing = client.get(path)
            assert missing.status_code == 404
            assert '<h1 id="faq-notfound-heading">Article not found</h1>' in missing.text

        # states of the search page
        empty = client.get("/faq/search")
        assert empty.status_code == 200 and "Enter a word to search for." in empty.text
        symbols = client.get("/faq/search", params={"q": "%_*"})
        assert symbols.status_code == 200 and "contains no words to look for" in symbols.text
        none = client.get("/faq/search", params={"q": "outage"})
        assert none.status_code == 200 and "No published article matches" in none.text
        too_long = client.get("/faq/search", params={"q": "x" * 201})
        assert too_long.status_code == 400
        assert "Your search is too long. Please use at most 200 characters." in too_long.text
        assert client.get("/faq/search", params={"q": "x" * 200}).status_code == 200

        german = client.get("/faq", headers={"accept-language": "de-DE,de;q=0.9,en;q=0.5"})
        assert "<title>Häufig gestellte Fragen</title>" in german.text
        assert '<label for="faq-q">FAQ durchsuchen</label>' in german.text
        german = client.get("/faq/search", params={"q": "vpn"}, headers={"accept-language": "de"})
        assert "2 Artikel gefunden" in german.text


def test_hostile_text_is_escaped_on_every_page(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, has_permission=has_permission)
    title = '<script>alert("t")</script> Evil'
    body = "<img src=x onerror=alert(1)> & \"quotes\" 'single'\n<b>bold</b>"
    with web(platform) as client:
        assert client.portal is not None
        category = client.portal.call(
            platform.call, PLUGIN, "save_category", {"name": "<i>Cat</i>"}
        )["id"]
        article = client.portal.call(
            platform.call,
            PLUGIN,
            "save_article",
            {"title": title, "body": body, "category": category, "published": True},
        )["id"]
        escaped_title = "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt; Evil"
        pages = {
            "/faq": [escaped_title, "&lt;i&gt;Cat&lt;/i&gt;"],
            f"/faq/article/{article}": [
                f"<title>{escaped_title}</title>",
                "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quotes&#34; &#39;single&#39;<br>"
                "&lt;b&gt;bold&lt;/b&gt;",
            ],
            "/faq/search?q=evil": [escaped_title],
            "/faq/search?q=%3Cscript%3Ealert(2)%3C/script%3E": [
                'value="&lt;script&gt;alert(2)&lt;/script&gt;"'
            ],
        }
        for path, expected in pages.items():
            html = client.get(path).text
            assert "<script" not in html and "<img" not in html and "<i>" not in html, path
            for snippet in expected:
                assert snippet in html, (path, snippet)
        manage = client.get("/faq/manage", headers=EDITOR).text
        assert manage.count("<script") == 1  # faq.js, nothing else
        assert '<script src="/plugins/faq/static/faq.js" defer></script>' in manage
        assert f'data-confirm="Delete the article “{escaped_title}”? This cannot' in manage
        form = client.get(f"/faq/manage/{article}", headers=EDITOR).text
        assert f'value="{escaped_title}"' in form
        assert "&lt;img src=x onerror=alert(1)&gt;" in form and "<img" not in form


def test_editor_creates_edits_publishes_and_deletes_an_article(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, has_permission=has_permission)
    with web(platform, headers=EDITOR, follow_redirects=False) as client:
        # a category first
        done = client.post("/faq/manage/categories", data={"name": "Remote work"})
        assert location(done) == "http://testserver/faq/manage?done=category"
        (row,) = helpdesk.query("SELECT id FROM faq_categories")
        category = row["id"]
        assert "The category was created." in client.get("/faq/manage?done=category").text

        form = client.get("/faq/manage/new")
        assert form.status_code == 200
        for label in ('for="faq-title"', 'for="faq-body"', 'for="faq-category"'):
            assert label in form.text
        assert f'<option value="{category}">Remote work</option>' in form.text

        created = client.post(
            "/faq/manage/new",
            data={
                "title": "How to connect to the VPN",
                "body": "Install the VPN client.\nSign in with your account.\n\nCall us if it fails.",
                "category_id": str(category),
            },
        )
        assert location(created) == "http://testserver/faq/manage?done=created"
        (row,) = helpdesk.query("SELECT * FROM faq_articles")
        article_id = row["id"]
        assert row["published"] == 0  # unchecked: a draft
        assert row["title"] == "How to connect to the VPN" and row["category_id"] == category
        assert ISO_UTC.match(row["created_at"])
        manage = client.get("/faq/manage?done=created").text
        assert "The article was created." in manage
        assert f'<a href="/faq/manage/{article_id}">How to connect to the VPN</a>' in manage
        assert '<span class="faq-badge faq-badge-draft">Draft</span>' in manage
        assert client.get(f"/faq/article/{article_id}").status_code == 404
        assert "How to connect" not in client.get("/faq").text

        # publish (toggle), then it is public and searchable
        published = client.post(f"/faq/manage/{article_id}/publish")
        assert location(published) == "http://testserver/faq/manage?done=published"
        assert (article_row(helpdesk, article_id) or {})["published"] == 1
        page = client.get(f"/faq/article/{article_id}")
        assert page.status_code == 200
        assert "<p>Install the VPN client.<br>Sign in with your account.</p>" in page.text
        assert "<p>Call us if it fails.</p>" in page.text
        assert f'<a href="/faq/article/{article_id}">How to connect to the VPN</a>' in (
            client.get("/faq").text
        )
        assert "<mark>VPN</mark>" in client.get("/faq/search?q=vpn").text

        # edit: the form shows the stored values; saving updates the index too
        edit = client.get(f"/faq/manage/{article_id}").text
        assert 'value="How to connect to the VPN"' in edit
        assert (
            ">Install the VPN client.\nSign in with your account.\n\nCall us if it fails.</textarea>"
            in edit
        )
        assert f'<option value="{category}" selected>Remote work</option>' in edit
        assert 'name="published" value="1" checked' in edit
        saved = client.post(
            f"/faq/manage/{article_id}",
            data={
                "title": "Connect from home",
                "body": "Start the tunnel app.",
                "category_id": str(category),
                "published": "1",
            },
        )
        assert location(saved) == "http://testserver/faq/manage?done=saved"
        page = client.get(f"/faq/article/{article_id}")
        assert "<h1>Connect from home</h1>" in page.text and "VPN" not in page.text
        assert f'href="/faq/article/{article_id}"' in client.get("/faq/search?q=tunnel").text
        assert "No published article matches" in client.get("/faq/search?q=vpn").text

        # explicit unpublish / publish
        off = client.post(f"/faq/manage/{article_id}/publish", data={"published": "0"})
        assert location(off) == "http://testserver/faq/manage?done=unpublished"
        assert client.get(f"/faq/article/{article_id}").status_code == 404
        on = client.post(f"/faq/manage/{article_id}/publish", data={"published": "1"})
        assert location(on) == "http://testserver/faq/manage?done=published"
        again = client.post(f"/faq/manage/{article_id}/publish", data={"published": "1"})
        assert location(again) == "http://testserver/faq/manage?done=published"  # stays on
        assert client.get(f"/faq/article/{article_id}").status_code == 200

        # delete
        deleted = client.post(f"/faq/manage/{article_id}/delete")
        assert location(deleted) == "http://testserver/faq/manage?done=deleted"
        assert article_row(helpdesk, article_id) is None
        if helpdesk.kind == "sqlite":
            assert helpdesk.query("SELECT rowid FROM faq_fts") == []
        assert client.get(f"/faq/article/{article_id}").status_code == 404
        manage = client.get("/faq/manage?done=deleted").text
        assert "The article was deleted." in manage and "There are no articles yet." in manage

        # unknown ids
        assert client.get("/faq/manage/999").status_code == 404
        data = {"title": "T", "body": "B", "category_id": str(category)}
        assert client.post("/faq/manage/999", data=data).status_code == 404
        assert client.post("/faq/manage/999/publish").status_code == 404
        assert client.post("/faq/manage/999/delete").status_code == 404
        assert count(helpdesk, "faq_articles") == 0


def test_forms_are_rendered_again_with_messages_for_bad_input(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, has_permission=has_permission)
    with web(platform, headers=EDITOR, follow_redirects=False) as client:
        ids = seed_sync(client, platform)
        category = str(ids["Network"])
        good = {"title": "Title", "body": "Body", "category_id": category}
        cases: list[tuple[dict[str, str], list[str]]] = [
            ({**good, "title": ""}, ["Enter a title."]),
            ({**good, "title": "   "}, ["Enter a title."]),
            ({**good, "title": "t" * 201}, ["The title is too long (at most 200 characters)."]),
            ({**good, "body": "\n \n"}, ["Enter the text of the article."]),
            ({**good, "body": "b" * 20001}, ["The text is too long (at most 20,000 characters)."]),
            ({**good, "category_id": "999"}, ["The chosen category does not exist."]),
            ({**good, "category_id": "abc"}, ["The chosen category does not exist."]),
            ({**good, "category_id": ""}, ["Choose a category."]),
            ({"title": "T", "body": "B"}, ["Choose a category."]),
            ({}, ["Enter a title.", "Enter the text of the article.", "Choose a category."]),
        ]
        for data, messages in cases:
            page = client.post("/faq/manage/new", data=data)
            assert page.status_code == 422, data
            assert "Please correct the following" in page.text
            for message in messages:
                assert f'class="faq-error">{message}</p>' in page.text, (data, message)
            assert 'aria-invalid="true"' in page.text
        assert count(helpdesk, "faq_articles") == len(ARTICLES)
        # the values come back, escaped
        page = client.post("/faq/manage/new", data={**good, "title": "<b>x</b>", "body": ""})
        assert 'value="&lt;b&gt;x&lt;/b&gt;"' in page.text
        assert f'<option value="{category}" selected>Network</option>' in page.text
        # editing keeps the article as it was
        page = client.post(f"/faq/manage/{ids['vpn']}", data={**good, "title": ""})
        assert page.status_code == 422
        assert (article_row(helpdesk, ids["vpn"]) or {})["title"] == ARTICLES["vpn"][1]
        # the limits are characters: exactly 200 and 20000 are accepted
        ok = client.post("/faq/manage/new", data={**good, "title": "ü" * 200, "body": "b" * 20000})
        assert location(ok) == "http://testserver/faq/manage?done=created"

        # categories
        for name, message in [
            ("", "Enter a name for the category."),
            ("Network", "A category with this name already exists."),
            ("c" * 101, "The name is too long (at most 100 characters)."),
        ]:
            page = client.post("/faq/manage/categories", data={"name": name})
            assert page.status_code == 422, name
            assert f'<p id="faq-category-error" class="faq-error">{message}</p>' in page.text
        assert count(helpdesk, "faq_categories") == len(CATEGORIES)


def test_manage_pages_need_faq_edit_and_their_menu_item_is_hidden(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, has_permission=has_permission)
    with web(platform, follow_redirects=False) as client:
        ids = seed_sync(client, platform)
        vpn = ids["vpn"]
        form = {"title": "Hacked", "body": "x", "category_id": str(ids["Network"])}
        refused = [
            ("GET", "/faq/manage", None),
            ("GET", "/faq/manage/new", None),
            ("POST", "/faq/manage/new", form),
            ("GET", f"/faq/manage/{vpn}", None),
            ("POST", f"/faq/manage/{vpn}", form),
            ("POST", f"/faq/manage/{vpn}/publish", {"published": "0"}),
            ("POST", f"/faq/manage/{vpn}/delete", None),
            ("POST", "/faq/manage/categories", {"name": "Hacked"}),
        ]
        for method, path, data in refused:
            response = client.request(method, path, data=data)
            assert response.status_code == 403, (method, path)
            assert "faq.edit" in response.text and "faq" in response.text
        assert count(helpdesk, "faq_articles") == len(ARTICLES)
        assert count(helpdesk, "faq_categories") == len(CATEGORIES)
        row = article_row(helpdesk, vpn)
        assert row is not None and row["title"] == ARTICLES["vpn"][1] and row["published"] == 1

        public = client.get("/faq").text
        assert '<a href="/faq" data-plugin="faq">FAQ</a>' in public
        assert "Manage FAQ" not in public
        editor = client.get("/faq", headers=EDITOR).text
        assert '<a href="/faq/manage" data-plugin="faq">Manage FAQ</a>' in editor
        assert client.get("/faq/manage", headers=EDITOR).status_code == 200


def test_links_and_redirects_follow_the_root_path(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    platform = plugin_platform(PLUGIN, has_permission=has_permission)
    app = web(platform, root_path="/helpdesk", headers=EDITOR, follow_redirects=False)
    with app as client:
        ids = seed_sync(client, platform)
        html = client.get("/faq").text
        assert 'action="/helpdesk/faq/search"' in html
        assert f'href="/helpdesk/faq/article/{ids["vpn"]}"' in html
        assert 'href="/helpdesk/plugins/faq/static/faq.css"' in html
        manage = client.get("/faq/manage").text
        assert f'action="/helpdesk/faq/manage/{ids["vpn"]}/publish"' in manage
        # a relative Location keeps the prefix the browser sees
        response = client.post(f"/faq/manage/{ids['vpn']}/publish")
        assert response.headers["location"] == "../../manage?done=unpublished"
        seen = f"http://testserver/helpdesk/faq/manage/{ids['vpn']}/publish"
        assert urljoin(seen, response.headers["location"]) == (
            "http://testserver/helpdesk/faq/manage?done=unpublished"
        )
