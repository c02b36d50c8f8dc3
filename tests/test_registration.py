from __future__ import annotations

import copy
import dataclasses
import json
import logging
from typing import Any

import pytest

from goatkit_asgi.errors import RegistrationError
from goatkit_asgi.registration import (
    MAX_REGISTRATION_BYTES,
    ErrorCode,
    Hook,
    I18n,
    Job,
    MenuItem,
    Registration,
    Route,
    TemplateSpec,
    Widget,
    parse_registration,
)
from goatkit_asgi.specs import ArgSpec, FunctionSpec

# GoatKit's plugins/hello-wasm/main.go returns exactly this from gk_register.
HELLO_WASM = """{
  "name":"hello-wasm",
  "version":"1.0.0",
  "description":"A simple hello world WASM plugin",
  "author":"GOTRS Team",
  "license":"Apache-2.0",
  "routes":[{"method":"GET","path":"/api/plugins/hello-wasm","handler":"hello","description":"Returns a hello message"}],
  "widgets":[{"id":"hello-wasm-widget","title":"Hello WASM","handler":"widget","location":"dashboard","size":"small","refreshable":true}],
  "i18n":{
    "namespace":"hello_wasm",
    "languages":["en","de","es","fr"],
    "translations":{
      "en":{"greeting":"Hello from WASM","widget_title":"WASM Widget","widget_desc":"This widget runs in a sandboxed WASM module."},
      "de":{"greeting":"Hallo aus WASM","widget_title":"WASM-Widget","widget_desc":"Dieses Widget läuft in einem isolierten WASM-Modul."},
      "es":{"greeting":"Hola desde WASM","widget_title":"Widget WASM","widget_desc":"Este widget se ejecuta en un módulo WASM aislado."},
      "fr":{"greeting":"Bonjour depuis WASM","widget_title":"Widget WASM","widget_desc":"Ce widget s'exécute dans un module WASM isolé."}
    }
  }
}"""

# The example of the design card (DESIGN.md, "Planned Self-Describing Registration").
DESIGN_CARD: dict[str, Any] = {
    "name": "my-plugin",
    "version": "1.0.0",
    "runtime": "wasm",
    "functions": [
        {
            "name": "calculate_something",
            "args": [{"name": "input", "type": "string"}],
            "returns": "json",
            "description": "Calculates something useful",
        }
    ],
    "hooks": ["before_render", "after_save"],
    "menu_items": [{"label": "My Feature", "path": "/admin/my-feature", "icon": "star"}],
    "permissions": ["my_plugin.view", "my_plugin.edit"],
}


def test_goatkit_hello_wasm_registration_parses() -> None:
    reg = parse_registration(HELLO_WASM.encode(), plugin="hello-wasm")
    assert (reg.name, reg.version, reg.author, reg.license) == (
        "hello-wasm",
        "1.0.0",
        "GOTRS Team",
        "Apache-2.0",
    )
    assert reg.description == "A simple hello world WASM plugin"
    assert reg.routes == (
        Route("GET", "/api/plugins/hello-wasm", "hello", description="Returns a hello message"),
    )
    assert reg.widgets == (
        Widget(
            id="hello-wasm-widget",
            title="Hello WASM",
            handler="widget",
            location="dashboard",
            size="small",
            refreshable=True,
        ),
    )
    assert reg.i18n is not None
    assert reg.i18n.namespace == "hello_wasm"
    assert reg.i18n.languages == ("en", "de", "es", "fr")
    assert set(reg.i18n.translations) == {"en", "de", "es", "fr"}
    assert reg.i18n.translations["de"]["greeting"] == "Hallo aus WASM"
    assert (
        reg.i18n.translations["fr"]["widget_desc"]
        == "Ce widget s'exécute dans un module WASM isolé."
    )
    assert reg.callable_names() == frozenset({"hello", "widget"})
    assert reg.warnings == ()


def test_design_card_example_parses() -> None:
    reg = parse_registration(json.dumps(DESIGN_CARD), plugin="my-plugin")
    assert reg.functions == (
        FunctionSpec(
            "calculate_something",
            (ArgSpec("input", "string"),),
            "json",
            "Calculates something useful",
        ),
    )
    assert reg.hooks == (Hook("before_render", "before_render"), Hook("after_save", "after_save"))
    assert reg.menu_items == (
        MenuItem(id="my-feature", label="My Feature", path="/admin/my-feature", icon="star"),
    )
    assert reg.permissions == ("my_plugin.view", "my_plugin.edit")
    assert reg.callable_names() == frozenset({"calculate_something", "before_render", "after_save"})
    assert reg.warnings == ()


def test_bytes_text_and_mapping_give_the_same_registration() -> None:
    text = json.dumps(DESIGN_CARD)
    from_bytes = parse_registration(text.encode(), plugin="my-plugin")
    assert parse_registration(text, plugin="my-plugin") == from_bytes
    assert parse_registration(DESIGN_CARD, plugin="my-plugin") == from_bytes
    assert parse_registration(b"\xef\xbb\xbf" + text.encode(), plugin="my-plugin") == from_bytes


def test_full_registration_with_every_field() -> None:
    raw = {
        "name": "stats",
        "version": "2.0.0",
        "description": "Statistics",
        "author": "Team",
        "license": "MIT",
        "homepage": "https://example.com",
        "functions": ["ticket_counts"],
        "hooks": [{"name": "after_save", "handler": "on_save", "priority": 5}],
        "routes": [
            {
                "method": "post",
                "path": "/stats/{queue}/export",
                "handler": "export",
                "permission": "stats.export",
                "description": "Export",
                "middleware": ["auth", "admin"],
            },
            {"method": "*", "path": "/stats/files/{rest:path}", "handler": "files"},
        ],
        "menu_items": [
            {
                "id": "stats",
                "label": "Statistics",
                "location": "admin",
                "order": 3,
                "permission": "stats.view",
                "children": [
                    {"label": "By Queue", "path": "/stats/queues", "parent": "stats", "order": -1}
                ],
            }
        ],
        "widgets": [
            {
                "id": "overview",
                "title": "Overview",
                "handler": "widget_overview",
                "location": "agent_home",
                "size": "large",
                "order": 2,
                "refreshable": True,
                "refresh_sec": 60,
                "description": "Counts",
                "permission": "stats.view",
            }
        ],
        "jobs": [
            {
                "id": "weekly-report",
                "handler": "report_email",
                "schedule": "0 8 * * 1",
                "description": "Weekly",
                "enabled": True,
                "timeout": "2m",
            },
            {"id": "tick", "handler": "tick", "schedule": "@every 30s"},
        ],
        "templates": [
            {"name": "stats/index.html", "path": "templates/index.html", "override": True}
        ],
        "error_codes": [
            {"code": "query_failed", "message": "Database query failed", "http_status": 500},
            {"code": "soft", "message": "No status", "http_status": 0},
        ],
        "permissions": ["stats.view", {"name": "stats.export", "description": "Export"}],
        "min_host_version": "0.7.0",
    }
    reg = parse_registration(raw, plugin="stats")
    assert reg == Registration(
        name="stats",
        version="2.0.0",
        description="Statistics",
        author="Team",
        license="MIT",
        homepage="https://example.com",
        functions=(FunctionSpec("ticket_counts"),),
        hooks=(Hook("after_save", "on_save", 5),),
        routes=(
            Route(
                "POST",
                "/stats/{queue}/export",
                "export",
                "stats.export",
                "Export",
                ("auth", "admin"),
            ),
            Route("*", "/stats/files/{rest:path}", "files"),
        ),
        menu_items=(
            MenuItem(
                id="stats",
                label="Statistics",
                location="admin",
                order=3,
                permission="stats.view",
                children=(
                    MenuItem(
                        id="by-queue",
                        label="By Queue",
                        path="/stats/queues",
                        parent="stats",
                        order=-1,
                    ),
                ),
            ),
        ),
        widgets=(
            Widget(
                "overview",
                "Overview",
                "widget_overview",
                "agent_home",
                "large",
                2,
                True,
                60,
                "Counts",
                "stats.view",
            ),
        ),
        jobs=(
            Job("weekly-report", "report_email", "0 8 * * 1", "Weekly", True, 120.0),
            Job("tick", "tick", "@every 30s", enabled=False),
        ),
        templates=(TemplateSpec("stats/index.html", "templates/index.html", True),),
        error_codes=(
            ErrorCode("query_failed", "Database query failed", 500),
            ErrorCode("soft", "No status", None),
        ),
        permissions=("stats.view", "stats.export"),
        min_host_version="0.7.0",
    )
    assert reg.callable_names() == frozenset(
        {"ticket_counts", "on_save", "export", "files", "widget_overview", "report_email", "tick"}
    )
    assert hash(reg) == hash(copy.deepcopy(reg))


def test_goatkit_stats_style_plain_i18n_and_extra_fields() -> None:
    # GoatKit's stats plugin sends i18n as language -> key -> text and a "resources" block.
    raw = {
        "name": "stats",
        "version": "2.0.0",
        "resources": {"memory_mb": 32, "call_timeout": "15s"},
        "i18n": {"en": {"stats.title": "Statistics"}, "de": {"stats.title": "Statistiken"}},
    }
    reg = parse_registration(raw, plugin="stats")
    assert reg.i18n == I18n(
        namespace="",
        languages=("en", "de"),
        translations={"en": {"stats.title": "Statistics"}, "de": {"stats.title": "Statistiken"}},
    )
    assert reg.warnings == ("resources: unknown key, ignored; check its spelling",)


def test_go_style_nulls_and_empty_strings_mean_not_given() -> None:
    raw = {
        "name": "stats",
        "version": "",
        "description": None,
        "routes": None,
        "menu_items": None,
        "i18n": None,
        "min_host_version": "",
        "widgets": [{"id": "w", "title": "W", "handler": "h", "size": "", "order": None}],
    }
    reg = parse_registration(raw, plugin="stats")
    assert (reg.version, reg.description, reg.routes, reg.i18n) == ("0.0.0", "", (), None)
    assert reg.min_host_version is None
    assert reg.widgets == (Widget("w", "W", "h"),)


def test_missing_name_defaults_to_the_plugin_and_a_different_name_is_warned() -> None:
    assert parse_registration({}, plugin="stats").name == "stats"
    reg = parse_registration({"name": "other"}, plugin="stats")
    assert reg.name == "other"
    assert reg.warnings == (
        'name: the registration calls the plugin "other", its manifest "stats"; the manifest\'s '
        "name is used; make them the same",
    )


@pytest.mark.parametrize(
    ("method", "expected"),
    [("get", "GET"), ("Delete", "DELETE"), ("*", "*"), ("ANY", "*"), ("options", "OPTIONS")],
)
def test_route_methods_are_uppercased(method: str, expected: str) -> None:
    raw = {"routes": [{"method": method, "path": "/x", "handler": "h"}]}
    assert parse_registration(raw, plugin="p").routes[0].method == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/reports/{id}", "/reports/{id}"),
        ("/reports/{id:int}/{slug:str}", "/reports/{id:int}/{slug:str}"),
        ("/files/{rest:path}", "/files/{rest:path}"),
        ("/tickets/:id/notes/:note_id", "/tickets/{id}/notes/{note_id}"),
        ("/static/*filepath", "/static/{filepath:path}"),
    ],
)
def test_route_paths_in_starlette_or_gin_syntax(path: str, expected: str) -> None:
    raw = {"routes": [{"method": "GET", "path": path, "handler": "h"}]}
    assert parse_registration(raw, plugin="p").routes[0].path == expected


def test_job_enabled_follows_goatkit_when_absent_and_timeouts_are_seconds() -> None:
    reg = parse_registration(
        {
            "jobs": [
                {"id": "a", "handler": "h", "schedule": "*/5 * * * *"},
                {
                    "id": "b",
                    "handler": "h",
                    "schedule": "0 0 * * * *",
                    "enabled": True,
                    "timeout": "1h30m",
                },
                {"id": "c", "handler": "h", "schedule": "@daily", "timeout": 90},
            ]
        },
        plugin="p",
    )
    assert [(j.id, j.enabled, j.timeout) for j in reg.jobs] == [
        ("a", False, None),
        ("b", True, 5400.0),
        ("c", False, 90.0),
    ]


def test_widget_id_defaults_to_its_handler_and_menu_id_to_a_slug() -> None:
    reg = parse_registration(
        {
            "widgets": [{"title": "T", "handler": "widget_main"}],
            "menu_items": [
                {"label": "Reports & Charts!", "path": "/r"},
                {"label": "★", "path": "/admin/star-page"},
            ],
        },
        plugin="p",
    )
    assert reg.widgets[0].id == "widget_main"
    assert [m.id for m in reg.menu_items] == ["reports-charts", "admin-star-page"]


def test_unknown_fields_are_ignored_with_a_warning_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = {
        "name": "stats",
        "uis": [{"id": "kiosk"}],
        "routes": [{"method": "GET", "path": "/x", "handler": "h", "auth": "basic"}],
        "menu_items": [{"label": "L", "path": "/l", "colour": "red"}],
        "functions": [{"name": "f", "pure": True}],
        "i18n": {"namespace": "n", "fallback": "en"},
    }
    with caplog.at_level(logging.WARNING, logger="goatkit"):
        reg = parse_registration(raw, plugin="stats")
    assert reg.routes == (Route("GET", "/x", "h"),)
    assert reg.warnings == (
        "uis: unknown key, ignored; check its spelling",
        "functions[0].pure: unknown key, ignored; check its spelling",
        "routes[0].auth: unknown key, ignored; check its spelling",
        "menu_items[0].colour: unknown key, ignored; check its spelling",
        "i18n.fallback: unknown key, ignored; check its spelling",
    )
    logged = [r.getMessage() for r in caplog.records if r.name == "goatkit"]
    assert logged == [f"stats: gk_register: {w}" for w in reg.warnings]


def test_duplicate_widgets_menu_ids_and_error_codes_are_only_warned() -> None:
    reg = parse_registration(
        {
            "widgets": [{"id": "w", "handler": "a"}, {"id": "w", "handler": "b"}],
            "menu_items": [{"label": "Same", "path": "/a"}, {"label": "Same", "path": "/b"}],
            "error_codes": [{"code": "e"}, {"code": "e"}],
        },
        plugin="p",
    )
    assert len(reg.widgets) == 2
    assert reg.warnings == (
        'menu_items[1]: duplicate menu item id "same" (also at menu_items[0]); keep one',
        'widgets[1]: duplicate widget id "w" (also at widgets[0]); keep one',
        'error_codes[1]: duplicate error code "e" (also at error_codes[0]); keep one',
    )


def test_source_names_where_the_registration_came_from() -> None:
    with pytest.raises(RegistrationError, match=r"^stats: Register: routes: expected a list"):
        parse_registration({"routes": {}}, plugin="stats", source="Register")


# --- invalid fields: each is refused naming the plugin and the field's path --------------------

ROUTE = {"method": "GET", "path": "/x", "handler": "h"}

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"name": 5}, "name: expected a string, got 5;"),
    ({"version": "one"}, 'version: expected a version such as 0.7.0, got "one";'),
    ({"version": 1.0}, "version: expected a version such as 0.7.0 as a string, got 1.0;"),
    ({"description": ["x"]}, "description: expected a string, got a list;"),
    ({"homepage": 1}, "homepage: expected a string, got 1;"),
    ({"min_host_version": "latest"}, "min_host_version: expected a version such as 0.7.0, got"),
    ({"functions": "f"}, 'functions: expected a list, got "f";'),
    (
        {"functions": ["f", {"name": "f"}]},
        'functions[1]: duplicate function "f" (already at functions[0]);',
    ),
    ({"functions": [{"args": []}]}, "functions[0].name: expected a function name, got null;"),
    ({"functions": [{"name": "f", "args": [{"name": ""}]}]}, "functions[0].args[0].name: "),
    ({"routes": {}}, "routes: expected a list, got a mapping;"),
    ({"routes": ["GET /x"]}, 'routes[0]: expected a mapping, got "GET /x";'),
    (
        {"routes": [{**ROUTE, "method": "FETCH"}]},
        "routes[0].method: expected one of GET, POST, "
        'PUT, PATCH, DELETE, HEAD, OPTIONS or "*", got "FETCH"; use one of these methods',
    ),
    ({"routes": [ROUTE, ROUTE]}, 'routes[1]: duplicate route "GET /x" (already at routes[0]);'),
    ({"routes": [ROUTE, {**ROUTE, "method": 7}]}, "routes[1].method: expected a string, got 7;"),
    ({"routes": [{**ROUTE, "method": ""}]}, "routes[0].method: must not be empty;"),
    ({"routes": [{"path": "/x", "handler": "h"}]}, "routes[0].method: is missing;"),
    ({"routes": [{**ROUTE, "path": "x"}]}, 'routes[0].path: must start with "/", got "x";'),
    (
        {"routes": [{**ROUTE, "path": "/a b"}]},
        "routes[0].path: must not contain spaces, '?' or '#'",
    ),
    ({"routes": [{**ROUTE, "path": "/a?b=1"}]}, "routes[0].path: must not contain spaces,"),
    ({"routes": [{**ROUTE, "path": "/x/{id"}]}, 'routes[0].path: unbalanced braces in "/x/{id";'),
    ({"routes": [{**ROUTE, "path": "/x/id}"}]}, "routes[0].path: unbalanced braces"),
    (
        {"routes": [{**ROUTE, "path": "/x/{1id}"}]},
        'routes[0].path: parameter "1id" is not a valid name;',
    ),
    ({"routes": [{**ROUTE, "path": "/x/{}"}]}, 'routes[0].path: parameter "" is not a valid name'),
    (
        {"routes": [{**ROUTE, "path": "/x/{id:hex}"}]},
        'routes[0].path: unknown parameter type "hex" (known: float, int, path, str, uuid);',
    ),
    (
        {"routes": [{**ROUTE, "path": "/x/{id}/{id}"}]},
        'routes[0].path: parameter "id" appears twice;',
    ),
    ({"routes": [{**ROUTE, "path": "/x/*rest/more"}]}, "routes[0].path: '*rest' must be the last"),
    ({"routes": [{**ROUTE, "path": "/x/:"}]}, 'routes[0].path: parameter "" is not a valid name'),
    (
        {"routes": [{"method": "GET", "path": "/x"}]},
        "routes[0].handler: is missing; name the plugin function that handles it",
    ),
    (
        {"routes": [{**ROUTE, "handler": "two words"}]},
        'routes[0].handler: expected a function name, got "two words";',
    ),
    ({"routes": [{**ROUTE, "handler": 3}]}, "routes[0].handler: expected a function name, got 3;"),
    (
        {"routes": [{**ROUTE, "middleware": "auth"}]},
        'routes[0].middleware: expected a list, got "auth";',
    ),
    ({"routes": [{**ROUTE, "middleware": [""]}]}, "routes[0].middleware[0]: expected a middleware"),
    ({"routes": [{**ROUTE, "permission": True}]}, "routes[0].permission: expected a string,"),
    ({"menu_items": [{"path": "/x"}]}, "menu_items[0].label: is missing;"),
    (
        {"menu_items": [{"label": "L"}]},
        "menu_items[0].path: is missing, and the item has no children;",
    ),
    (
        {"menu_items": [{"label": "L", "path": "admin/x"}]},
        'menu_items[0].path: must start with "/" or be an http(s) URL, got "admin/x";',
    ),
    (
        {"menu_items": [{"label": "L", "path": "/x", "order": "1"}]},
        'menu_items[0].order: expected a whole number, got "1";',
    ),
    (
        {"menu_items": [{"label": "L", "path": "/x", "order": True}]},
        "menu_items[0].order: expected a whole number, got true;",
    ),
    (
        {"menu_items": [{"label": "L", "children": [{"label": "C", "path": "c"}]}]},
        'menu_items[0].children[0].path: must start with "/"',
    ),
    (
        {"menu_items": [{"label": "L", "path": "/x", "children": {}}]},
        "menu_items[0].children: expected a list, got a mapping;",
    ),
    ({"widgets": [{"id": "w"}]}, "widgets[0].handler: is missing;"),
    (
        {"widgets": [{"id": "w", "handler": "h", "refreshable": "true"}]},
        'widgets[0].refreshable: expected true or false, got "true";',
    ),
    (
        {"widgets": [{"id": "w", "handler": "h", "refresh_sec": -5}]},
        "widgets[0].refresh_sec: expected a whole number of at least 0 (seconds), got -5;",
    ),
    ({"widgets": [{"id": "w", "handler": "h", "refresh_sec": 1.5}]}, "widgets[0].refresh_sec:"),
    ({"widgets": [{"id": 1, "handler": "h"}]}, "widgets[0].id: expected a string, got 1;"),
    ({"jobs": [{"handler": "h", "schedule": "@hourly"}]}, "jobs[0].id: is missing;"),
    ({"jobs": [{"id": "j", "schedule": "@hourly"}]}, "jobs[0].handler: is missing;"),
    ({"jobs": [{"id": "j", "handler": "h"}]}, "jobs[0].schedule: is missing;"),
    (
        {"jobs": [{"id": "j", "handler": "h", "schedule": "every day"}]},
        'jobs[0].schedule: expected a cron expression with 5 or 6 fields, got "every day";',
    ),
    ({"jobs": [{"id": "j", "handler": "h", "schedule": "* * * * * * *"}]}, "jobs[0].schedule:"),
    ({"jobs": [{"id": "j", "handler": "h", "schedule": "@sometimes"}]}, "jobs[0].schedule:"),
    ({"jobs": [{"id": "j", "handler": "h", "schedule": "@every soon"}]}, "jobs[0].schedule:"),
    (
        {"jobs": [{"id": "j", "handler": "h", "schedule": "@hourly", "timeout": "soon"}]},
        'jobs[0].timeout: expected seconds as a number or a string like "500ms" or "2s", got '
        '"soon";',
    ),
    (
        {"jobs": [{"id": "j", "handler": "h", "schedule": "@hourly", "timeout": "-5m"}]},
        "jobs[0].timeout: must be more than 0 seconds",
    ),
    (
        {"jobs": [{"id": "j", "handler": "h", "schedule": "@hourly", "enabled": "yes"}]},
        'jobs[0].enabled: expected true or false, got "yes";',
    ),
    (
        {
            "jobs": [
                {"id": "j", "handler": "a", "schedule": "@hourly"},
                {"id": "j", "handler": "b", "schedule": "@daily"},
            ]
        },
        'jobs[1]: duplicate job id "j" (already at jobs[0]);',
    ),
    ({"templates": [{"name": "t.html"}]}, "templates[0].path: is missing;"),
    (
        {"templates": [{"name": "t.html", "path": "../t.html"}]},
        "templates[0].path: must be a relative path without '..', got \"../t.html\";",
    ),
    (
        {"templates": [{"name": "/etc/t.html", "path": "t.html"}]},
        "templates[0].name: must be a relative path",
    ),
    (
        {"templates": [{"name": "t", "path": "t", "override": 1}]},
        "templates[0].override: expected true or false, got 1;",
    ),
    ({"hooks": [5]}, "hooks[0]: expected a mapping, got 5;"),
    ({"hooks": [""]}, 'hooks[0]: expected a hook name, got "";'),
    ({"hooks": [{"handler": "h"}]}, "hooks[0].name: expected a hook name, got null;"),
    (
        {"hooks": [{"name": "after_save", "priority": True}]},
        "hooks[0].priority: expected a whole number, got true;",
    ),
    ({"error_codes": [{"message": "m"}]}, "error_codes[0].code: expected an error code, got null;"),
    (
        {"error_codes": [{"code": "c", "http_status": 42}]},
        "error_codes[0].http_status: expected an HTTP status from 100 to 599, got 42;",
    ),
    (
        {"error_codes": [{"code": "c", "http_status": 700}]},
        "error_codes[0].http_status: expected a whole number from 0 to 599, got 700;",
    ),
    ({"error_codes": [{"code": "c", "http_status": "500"}]}, "error_codes[0].http_status:"),
    ({"i18n": ["en"]}, "i18n: expected a mapping, got a list;"),
    ({"i18n": {"namespace": 5}}, "i18n.namespace: expected a string, got 5;"),
    (
        {"i18n": {"languages": ["english!"]}},
        'i18n.languages[0]: expected a language code such as "de", got "english!";',
    ),
    (
        {"i18n": {"translations": {"de": {"greeting": 5}}}},
        "i18n.translations.de.greeting: expected a non-empty key with a text, got 5;",
    ),
    (
        {"i18n": {"translations": {"de": {"greeting": {"nested": "x"}}}}},
        "i18n.translations.de.greeting: expected a non-empty key with a text, got a mapping;",
    ),
    (
        {"i18n": {"translations": {"deutsch": {}}}},
        'i18n.translations.deutsch: expected a language code such as en or pt-BR, got "deutsch";',
    ),
    ({"i18n": {"translations": ["de"]}}, "i18n.translations: expected a mapping, got a list;"),
    (
        {"i18n": {"english": {"a": "b"}}},
        'i18n.english: expected a language code such as en or pt-BR, got "english";',
    ),
    ({"i18n": {"en": "Hello"}}, 'i18n.en: expected a mapping, got "Hello";'),
    ({"permissions": "stats.view"}, 'permissions: expected a list, got "stats.view";'),
    ({"permissions": [""]}, 'permissions[0]: expected a permission name, got "";'),
    ({"permissions": [{"description": "d"}]}, "permissions[0].name: expected a permission name,"),
]


@pytest.mark.parametrize(("raw", "message"), INVALID)
def test_invalid_field_is_refused_naming_plugin_and_path(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(RegistrationError) as info:
        parse_registration(json.dumps(raw), plugin="stats")
    assert str(info.value).startswith(f"stats: gk_register: {message}")
    assert info.value.plugin == "stats"
    assert info.value.code == "registration_error"


def test_menus_may_not_nest_without_end() -> None:
    item: dict[str, Any] = {"label": "L", "path": "/l"}
    for _ in range(10):
        item = {"label": "L", "path": "/l", "children": [item]}
    with pytest.raises(RegistrationError, match=r"menus nest deeper than 8 levels"):
        parse_registration({"menu_items": [item]}, plugin="stats")


# --- the document itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": "stats",\n "routes": [}', "top level: invalid JSON at line 2, column 13 ("),
        ("{nope", "top level: invalid JSON at line 1, column 2 ("),
        ('{"a": NaN}', "top level: invalid JSON (NaN is not valid JSON);"),
        ("[1, 2]", "top level: expected a mapping, got a list;"),
        ('"stats"', 'top level: expected a mapping, got "stats";'),
        ("null", "top level: expected a mapping, got null;"),
        (b"", "top level: the registration is empty; return a JSON object"),
        (b"   \n", "top level: the registration is empty;"),
        (b'{"name": "caf\xe9"}', "top level: not UTF-8 (invalid byte at offset 13);"),
        (b"[" * 100_000 + b"]" * 100_000, "top level: invalid JSON ("),
    ],
)
def test_bad_documents_are_refused(raw: bytes | str, message: str) -> None:
    with pytest.raises(RegistrationError) as info:
        parse_registration(raw, plugin="stats")
    assert str(info.value).startswith(f"stats: gk_register: {message}")
    assert info.value.plugin == "stats"


def test_oversized_registration_is_refused_unparsed() -> None:
    exactly = " " * (MAX_REGISTRATION_BYTES - 2) + "{}"
    assert parse_registration(exactly, plugin="stats").name == "stats"
    with pytest.raises(RegistrationError) as info:
        parse_registration((exactly + " ").encode(), plugin="stats")
    assert str(info.value).startswith(
        f"stats: gk_register: top level: the registration is {MAX_REGISTRATION_BYTES + 1} bytes, "
        "more than the limit of 1 MiB;"
    )


def test_oversized_text_is_measured_in_utf8_bytes() -> None:
    raw = '{"description": "' + "é" * (MAX_REGISTRATION_BYTES // 2) + '"}'
    assert len(raw) < MAX_REGISTRATION_BYTES < len(raw.encode())
    with pytest.raises(RegistrationError, match=r"more than the limit of 1 MiB"):
        parse_registration(raw, plugin="stats")


def test_registration_parts_are_frozen() -> None:
    reg = parse_registration(json.dumps(DESIGN_CARD), plugin="my-plugin")
    with pytest.raises(dataclasses.FrozenInstanceError):
        reg.name = "x"  # type: ignore[misc]
    hello = parse_registration(HELLO_WASM, plugin="hello-wasm")
    assert hello.i18n is not None
    with pytest.raises(TypeError):
        hello.i18n.translations["en"]["greeting"] = "changed"  # type: ignore[index]
