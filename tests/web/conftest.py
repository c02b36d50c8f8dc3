from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.wat import REGISTRATION, make_plugin

SITE_REGISTRATION = {
    **REGISTRATION,
    "name": "site",
    "routes": [
        {"method": "GET", "path": "/site/echo", "handler": "echo"},
        {"method": "POST", "path": "/site/echo", "handler": "echo"},
        {"method": "GET", "path": "/site/items/{item_id:int}", "handler": "echo"},
        {"method": "GET", "path": "/site/secret", "handler": "echo", "permission": "site.secret"},
        {"method": "GET", "path": "/site/trap", "handler": "trap"},
        {"method": "GET", "path": "/site/loop", "handler": "loop"},
        {"method": "GET", "path": "/site/empty", "handler": "empty"},
    ],
    "menu_items": [
        {"id": "site", "label": "Site", "path": "/site/echo", "order": 1},
        {
            "id": "secret",
            "label": "Secret",
            "path": "/site/secret",
            "order": 2,
            "permission": "site.secret",
        },
    ],
    "hooks": [{"name": "before_render", "handler": "echo"}],
    # echo answers with its args, which are {"widget": id}: neither html nor a template, so the
    # widgets of this plugin exercise the error path; the "fragment" widget calls "maybe".
    "widgets": [
        {"id": "broken", "title": "Broken", "handler": "echo", "location": "dashboard"},
        {
            "id": "hidden",
            "title": "Hidden",
            "handler": "echo",
            "location": "dashboard",
            "permission": "site.secret",
        },
        {"id": "side", "title": "Side", "handler": "echo", "location": "sidebar"},
    ],
}


@pytest.fixture
def site(plugins_dir: Path) -> Path:
    """A plugin with routes of every kind, templates and static files."""
    directory = make_plugin(
        plugins_dir,
        "site",
        manifest={"resources": {"call_timeout": "300ms"}},
        registration=SITE_REGISTRATION,
    )
    (directory / "templates").mkdir()
    (directory / "templates" / "page.html").write_text(
        "<h1>{{ title }}</h1><p>{{ who }}</p><i>{{ plugin }}</i>"
    )
    (directory / "templates" / "full.html").write_text(
        "{% extends goatkit_layout %}"
        "{% block head %}<link rel=stylesheet href=\"{{ goatkit_static('site.css') }}\">"
        "{% endblock %}"
        "{% block content %}<h1>{{ title }}</h1>{% endblock %}"
    )
    (directory / "templates" / "widget.html").write_text("<p class=w>{{ n }} {{ plugin }}</p>")
    (directory / "static").mkdir()
    (directory / "static" / "site.css").write_text("body { color: teal; }\n")
    (directory / "static" / "app.js").write_text("console.log('hi');\n")
    (directory / "secret.txt").write_text("not for the web\n")
    return directory
