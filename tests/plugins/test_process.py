"""The process plugin: workflows designed on its pages, stored in its own table and enforced
through the ``after_save`` hook.

Every test runs on SQLite and on PostgreSQL (the ``helpdesk`` fixture) with the plugin installed
from its packed ``.zip``, except the real-browser test of the designer, which runs on SQLite only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from goatkit_asgi import Platform
from goatkit_asgi.errors import PluginCallError
from goatkit_asgi.web.middleware import GoatKitMiddleware
from tests.browser import BROWSER_MARKS
from tests.plugins.conftest import (
    PLUGINS,
    HelpdeskDB,
)

pytestmark = pytest.mark.anyio

NAME = "process"
SOURCE = PLUGINS / NAME
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DESIGN = "process.design"

MakePlatform = Callable[..., Platform]

#: The demo helpdesk's states (conftest.TICKETS uses exactly these).
HELPDESK: dict[str, Any] = {
    "states": [
        {"id": "new", "label": "New", "x": 60, "y": 100, "initial": True},
        {"id": "open", "label": "Open", "x": 300, "y": 100},
        {"id": "pending", "label": "Pending", "x": 300, "y": 260},
        {"id": "closed", "label": "Closed", "x": 540, "y": 100},
    ],
    "transitions": [
        {"from": "new", "to": "open", "label": "Start"},
        {"from": "open", "to": "pending"},
        {"from": "pending", "to": "open"},
        {"from": "open", "to": "closed", "label": "Close"},
        {"from": "closed", "to": "open", "label": "Reopen"},
    ],
}

#: A stricter workflow for the same entity: closed is final, pending can be closed directly.
STRICT: dict[str, Any] = {
    "states": [
        {"id": "new", "label": "New", "x": 60, "y": 100, "initial": True},
        {"id": "open", "label": "Open", "x": 300, "y": 100},
        {"id": "pending", "label": "Pending", "x": 300, "y": 260},
        {"id": "closed", "label": "Closed", "x": 540, "y": 100},
    ],
    "transitions": [
        {"from": "new", "to": "open"},
        {"from": "new", "to": "closed"},
        {"from": "open", "to": "pending"},
        {"from": "pending", "to": "closed"},
        {"from": "open", "to": "closed"},
    ],
}

HOSTILE = "</script><script>alert(1)</script>"


def allow(*permissions: str) -> Callable[[Any, str], bool]:
    allowed = set(permissions)
    return lambda request, permission: permission in allowed


def copy(definition: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(definition))
    return result


@contextmanager
def running(
    plugin_platform: MakePlatform, permissions: set[str] | None = None
) -> Iterator[tuple[TestClient, Platform]]:
    """The plugin behind the middleware; ``permissions`` (mutable) is what the user has."""
    allowed = {DESIGN} if permissions is None else permissions
    platform = plugin_platform(NAME, has_permission=lambda request, perm: perm in allowed)
    with TestClient(GoatKitMiddleware(Starlette(), platform=platform)) as client:
        yield client, platform


def call(client: TestClient, platform: Platform, function: str, args: dict[str, Any]) -> Any:
    """``platform.call`` on the event loop the test client runs the platform on."""
    assert client.portal is not None
    return client.portal.call(platform.call, NAME, function, args)


def fire(client: TestClient, platform: Platform, payload: dict[str, Any]) -> Any:
    assert client.portal is not None
    (result,) = client.portal.call(platform.fire_hook, "after_save", payload)
    return result


def stored(helpdesk: HelpdeskDB, workflow_id: int) -> dict[str, Any]:
    (row,) = helpdesk.query(
        "SELECT id, name, entity, definition, active, updated_at FROM process_workflows "
        "WHERE id = ?",
        [workflow_id],
    )
    return row


def json_block(html: str, element_id: str) -> Any:
    """The JSON in the page's ``<script type="application/json" id=element_id>``."""
    match = re.search(
        rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S
    )
    assert match, f"the page embeds #{element_id}"
    return json.loads(match.group(1))


# -- registration ---------------------------------------------------------------------------


async def test_registration_declares_routes_menu_hook_and_no_capabilities(
    plugin_platform: MakePlatform,
) -> None:
    async with plugin_platform(NAME) as platform:  # no grants at all
        info = platform.plugins[NAME]
        assert info.error is None
        reg = info.registration
        assert reg is not None
        routes = {(r.method, r.path): (r.handler, r.permission) for r in reg.routes}
        assert routes == {
            ("GET", "/process"): ("list_page", DESIGN),
            ("POST", "/process/new"): ("create_workflow", DESIGN),
            ("GET", "/process/{id:int}"): ("designer_page", DESIGN),
            ("POST", "/process/{id:int}/save"): ("save_definition", DESIGN),
            ("POST", "/process/{id:int}/activate"): ("activate", DESIGN),
            ("POST", "/process/{id:int}/deactivate"): ("deactivate", DESIGN),
            ("POST", "/process/{id:int}/delete"): ("delete_workflow", DESIGN),
        }
        (menu,) = reg.menu_items
        assert (menu.id, menu.label, menu.path, menu.location, menu.order, menu.permission) == (
            "process",
            "Workflows",
            "/process",
            "main",
            150,
            DESIGN,
        )
        assert [(h.name, h.handler) for h in reg.hooks] == [("after_save", "after_save")]
        assert reg.permissions == (DESIGN,)
        assert [f.name for f in reg.functions] == [
            "allowed_transitions",
            "save_workflow",
            "get_workflow",
        ]
        manifest = info.manifest
        assert manifest is not None
        assert [e.name for e in manifest.exports] == [f.name for f in reg.functions]
        assert manifest.permissions == (DESIGN,)
        # It asks for nothing, and works without any grant: its own tables need none.
        assert info.requested.is_empty() and info.effective.is_empty()
        created = await platform.call(
            NAME,
            "save_workflow",
            {"name": "Tickets", "entity": "ticket", "definition": HELPDESK},
        )
        assert created == {"id": 1}
        assert not [e for e in platform.services.recent_audit(NAME) if e.decision == "denied"]


# -- template functions ---------------------------------------------------------------------


async def test_save_and_get_workflow_store_a_reserialised_definition(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    messy = copy(HELPDESK)
    messy["states"][0]["x"] = 60.4  # rounded to whole pixels
    messy["states"][1]["label"] = "  Open  "  # trimmed
    messy["states"][1]["initial"] = False  # only the initial state keeps "initial"
    messy["states"][2]["color"] = "red"  # unknown keys are dropped
    messy["transitions"][1]["label"] = ""  # an empty label is no label
    messy["extra"] = {"ignored": True}
    async with plugin_platform(NAME) as platform:
        first = await platform.call(
            NAME,
            "save_workflow",
            {"name": " Helpdesk tickets ", "entity": "ticket", "definition": messy, "active": True},
        )
        second = await platform.call(
            NAME, "save_workflow", {"name": "Strict", "entity": "ticket", "definition": STRICT}
        )
        assert (first, second) == ({"id": 1}, {"id": 2})

        got = await platform.call(NAME, "get_workflow", {"id": 1})
        assert got["definition"] == HELPDESK
        assert (got["id"], got["name"], got["entity"], got["active"]) == (
            1,
            "Helpdesk tickets",
            "ticket",
            True,
        )
        assert (got["states"], got["transitions"]) == (4, 5)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", got["updated_at"])
        assert (await platform.call(NAME, "get_workflow", {"id": 2}))["active"] is False

        # the row holds the plugin's own serialisation, not the input
        row = stored(helpdesk, 1)
        assert json.loads(row["definition"]) == HELPDESK
        assert '"color"' not in row["definition"] and '"extra"' not in row["definition"]
        assert (row["name"], row["entity"], row["active"]) == ("Helpdesk tickets", "ticket", 1)

        # with an id it replaces that workflow; active: true switches the others of the entity off
        again = await platform.call(
            NAME,
            "save_workflow",
            {"id": 2, "name": "Strict v2", "entity": "ticket", "definition": STRICT, "active": 1},
        )
        assert again == {"id": 2}
        rows = helpdesk.query("SELECT id, name, active FROM process_workflows ORDER BY id")
        assert rows == [
            {"id": 1, "name": "Helpdesk tickets", "active": 0},
            {"id": 2, "name": "Strict v2", "active": 1},
        ]

        for args, code in [
            ({"id": 99}, "not_found"),
            ({"id": "one"}, "bad_input"),
            ({}, "bad_input"),
        ]:
            with pytest.raises(PluginCallError) as info:
                await platform.call(NAME, "get_workflow", args)
            assert info.value.code == code, args

        with pytest.raises(PluginCallError) as info:
            await platform.call(
                NAME,
                "save_workflow",
                {"id": 42, "name": "X", "entity": "ticket", "definition": HELPDESK},
            )
        assert info.value.code == "not_found"

        bad = copy(HELPDESK)
        bad["transitions"].append({"from": "open", "to": "archived"})
        with pytest.raises(PluginCallError) as info:
            await platform.call(
                NAME, "save_workflow", {"name": "", "entity": "Tickets!", "definition": bad}
            )
        assert info.value.code == "invalid_workflow"
        message = str(info.value)
        assert "The workflow was not saved. Problems found: 3." in message
        assert "The workflow name must be 1 to 100 characters on one line (it has 0)." in message
        assert 'The entity "Tickets!" must be 1 to 40 characters' in message
        assert 'Transition "open" → "archived": there is no state "archived".' in message
        assert len(helpdesk.query("SELECT id FROM process_workflows")) == 2


async def test_allowed_transitions_follow_the_active_workflow(
    plugin_platform: MakePlatform,
) -> None:
    async with plugin_platform(NAME) as platform:

        async def allowed(entity: str, state: str | None) -> Any:
            args: dict[str, Any] = {"entity": entity}
            if state is not None:
                args["state"] = state
            return await platform.call(NAME, "allowed_transitions", args)

        # no workflow: the host offers its own list
        nothing: dict[str, Any] = {"workflow": None, "any": True, "current": None, "states": []}
        assert await allowed("ticket", "open") == nothing

        await platform.call(
            NAME,
            "save_workflow",
            {"name": "Helpdesk", "entity": "ticket", "definition": HELPDESK, "active": True},
        )
        out = await allowed("ticket", "open")
        assert out == {
            "workflow": "Helpdesk",
            "any": False,
            "current": {"id": "open", "label": "Open"},
            "states": [{"id": "pending", "label": "Pending"}, {"id": "closed", "label": "Closed"}],
        }
        assert (await allowed("ticket", "closed"))["states"] == [{"id": "open", "label": "Open"}]
        # a new record (no state yet) starts in the initial state
        assert (await allowed("ticket", None))["states"] == [{"id": "new", "label": "New"}]
        # a state the workflow does not know may enter any of its states
        legacy = await allowed("ticket", "escalated")
        assert legacy["current"] is None
        assert [s["id"] for s in legacy["states"]] == ["new", "open", "pending", "closed"]
        # another entity has no workflow
        assert await allowed("change", "open") == nothing
        with pytest.raises(PluginCallError) as info:
            await platform.call(NAME, "allowed_transitions", {"state": "open"})
        assert info.value.code == "bad_input"


# -- the after_save hook --------------------------------------------------------------------


async def test_the_hook_enforces_the_active_workflow(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    async with plugin_platform(NAME) as platform:

        async def hook(payload: dict[str, Any]) -> Any:
            (result,) = await platform.fire_hook("after_save", payload)
            assert result.plugin == NAME
            return result

        # no workflow yet: everything passes
        result = await hook(
            {"entity": "ticket", "id": 7, "state": "new", "previous_state": "closed"}
        )
        assert result.ok and result.value == {"ok": True, "workflow": None}

        await platform.call(
            NAME,
            "save_workflow",
            {
                "name": "Helpdesk tickets",
                "entity": "ticket",
                "definition": HELPDESK,
                "active": True,
            },
        )
        ok = {"ok": True, "workflow": "Helpdesk tickets"}

        # along a transition
        result = await hook({"entity": "ticket", "id": 7, "state": "open", "previous_state": "new"})
        assert result.ok and result.value == ok

        # against the workflow: a refusal with a message for the user
        result = await hook(
            {"entity": "ticket", "id": 7, "state": "new", "previous_state": "closed"}
        )
        assert not result.ok
        assert result.error is not None and result.error.code == "illegal_transition"
        assert result.refusal == (
            'Ticket 7 cannot go from "Closed" to "New": the workflow "Helpdesk tickets" allows '
            'from "Closed" only: "Open".'
        )
        result = await hook({"entity": "ticket", "id": 3, "state": "new", "previous_state": "open"})
        assert result.refusal == (
            'Ticket 3 cannot go from "Open" to "New": the workflow "Helpdesk tickets" allows '
            'from "Open" only: "Pending", "Closed".'
        )

        # the same state again is no transition
        result = await hook(
            {"entity": "ticket", "id": 7, "state": "pending", "previous_state": "pending"}
        )
        assert result.ok and result.value == ok

        # a state the workflow does not have
        result = await hook(
            {"entity": "ticket", "id": "T-9", "state": "archived", "previous_state": "closed"}
        )
        assert result.error is not None and result.error.code == "illegal_transition"
        assert result.refusal == (
            'Ticket T-9 cannot be set to "archived": the workflow "Helpdesk tickets" has no '
            "such state."
        )

        # a new record (previous_state missing or null) must start in the initial state
        for payload in (
            {"entity": "ticket", "id": 13, "state": "open"},
            {"entity": "ticket", "id": 13, "state": "open", "previous_state": None},
        ):
            result = await hook(payload)
            assert result.refusal == (
                'Ticket 13 cannot start in "Open": the workflow "Helpdesk tickets" starts in "New".'
            )
        result = await hook({"entity": "ticket", "id": 13, "state": "new", "previous_state": None})
        assert result.ok and result.value == ok

        # a record older than the workflow, in a state it does not know, may enter it
        result = await hook(
            {"entity": "ticket", "id": 1, "state": "open", "previous_state": "escalated"}
        )
        assert result.ok and result.value == ok

        # other entities, and payloads without a state, are not checked
        result = await hook({"entity": "change", "id": 1, "state": "x", "previous_state": "y"})
        assert result.ok and result.value == {"ok": True, "workflow": None}
        result = await hook({"entity": "ticket", "id": 1})
        assert result.ok and result.value == {"ok": True, "workflow": None}

        # every seeded ticket moved to "closed": only open ones (and closed ones, which stay)
        tickets = helpdesk.query("SELECT id, state FROM tickets ORDER BY id")
        assert len(tickets) == 12
        outcomes: dict[str, list[bool]] = {}
        for ticket in tickets:
            result = await hook(
                {
                    "entity": "ticket",
                    "id": ticket["id"],
                    "state": "closed",
                    "previous_state": ticket["state"],
                }
            )
            outcomes.setdefault(ticket["state"], []).append(result.ok)
            if not result.ok:
                assert result.refusal is not None
                assert result.refusal.startswith(f"Ticket {ticket['id']} cannot go from")
        assert outcomes == {
            "closed": [True] * 6,
            "open": [True] * 2,
            "pending": [False] * 2,
            "new": [False] * 2,
        }


def test_activation_switches_which_workflow_applies(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    with running(plugin_platform) as (client, platform):
        helpdesk_id = call(
            client,
            platform,
            "save_workflow",
            {"name": "Helpdesk", "entity": "ticket", "definition": HELPDESK, "active": True},
        )["id"]
        strict_id = call(
            client,
            platform,
            "save_workflow",
            {"name": "Strict", "entity": "ticket", "definition": STRICT},
        )["id"]
        change_id = call(
            client,
            platform,
            "save_workflow",
            {"name": "Changes", "entity": "change", "definition": HELPDESK, "active": True},
        )["id"]
        reopen = {"entity": "ticket", "id": 4, "state": "open", "previous_state": "closed"}
        assert fire(client, platform, reopen).value == {"ok": True, "workflow": "Helpdesk"}

        page = client.post(f"/process/{strict_id}/activate", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "../../process"
        actives = helpdesk.query("SELECT id, active FROM process_workflows ORDER BY id")
        assert actives == [
            {"id": helpdesk_id, "active": 0},
            {"id": strict_id, "active": 1},
            {"id": change_id, "active": 1},  # another entity keeps its own
        ]
        result = fire(client, platform, reopen)
        assert result.error is not None and result.error.code == "illegal_transition"
        assert result.refusal == (
            'Ticket 4 cannot go from "Closed" to "Open": the workflow "Strict" allows no '
            'transitions from "Closed".'
        )
        skip = {"entity": "ticket", "id": 5, "state": "closed", "previous_state": "pending"}
        assert fire(client, platform, skip).value == {"ok": True, "workflow": "Strict"}

        # deactivated: no workflow applies any more
        page = client.post(f"/process/{strict_id}/deactivate")  # follows the redirect
        assert page.status_code == 200 and page.url.path == "/process"
        assert fire(client, platform, reopen).value == {"ok": True, "workflow": None}

        # moving the active "Changes" to tickets while "Helpdesk" is active there again: one
        # active workflow per entity stays (the moved one, which was active)
        client.post(f"/process/{helpdesk_id}/activate")
        call(
            client,
            platform,
            "save_workflow",
            {"id": change_id, "name": "Changes", "entity": "ticket", "definition": HELPDESK},
        )
        actives = helpdesk.query("SELECT id, entity, active FROM process_workflows ORDER BY id")
        assert [(r["entity"], r["active"]) for r in actives] == [
            ("ticket", 0),
            ("ticket", 0),
            ("ticket", 1),
        ]

        # unknown ids are a 404 page
        for action in ("activate", "deactivate", "delete"):
            missing = client.post(f"/process/999/{action}")
            assert missing.status_code == 404
            assert "There is no workflow 999." in missing.text


# -- pages ----------------------------------------------------------------------------------


def test_list_page_shows_the_workflows_and_the_new_form(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    with running(plugin_platform) as (client, platform):
        empty = client.get("/process")
        assert empty.status_code == 200
        assert "No workflows yet." in empty.text

        call(
            client,
            platform,
            "save_workflow",
            {"name": "Helpdesk", "entity": "ticket", "definition": HELPDESK, "active": True},
        )
        call(
            client,
            platform,
            "save_workflow",
            {"name": '<img src=x onerror="alert(1)">', "entity": "change", "definition": STRICT},
        )
        page = client.get("/process")
        assert page.status_code == 200
        html = page.text
        assert "<title>Workflows</title>" in html
        assert '<a href="/process" data-plugin="process">Workflows</a>' in html  # the menu
        assert 'href="/plugins/process/static/process.css"' in html
        assert 'src="/plugins/process/static/process.js"' in html
        rows = re.findall(r'<tr data-workflow="(\d+)">(.*?)</tr>', html, re.S)
        assert [r[0] for r in rows] == ["2", "1"]  # by entity: change, then ticket
        first, second = rows[1][1], rows[0][1]
        assert '<a href="/process/1">Helpdesk</a>' in first
        assert "<code>ticket</code>" in first and "process-badge-on" in first
        assert re.findall(r'<td class="num">(\d+)</td>', first) == ["4", "5"]
        assert 'action="/process/1/deactivate"' in first
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in second
        assert "<img src=x" not in html
        assert 'action="/process/2/activate"' in second
        assert 'class="js-confirm"' in second
        # the new-workflow form has labels for its fields
        assert '<label for="process-new-name">Name</label>' in html
        assert '<label for="process-new-entity">Entity</label>' in html
        assert 'id="process-new-entity" name="entity"' in html and 'value="ticket"' in html

        german = client.get("/process", headers={"accept-language": "de-DE,de;q=0.9"})
        assert "Neuer Workflow" in german.text and "Anlegen und bearbeiten" in german.text
        assert "<title>Workflows</title>" in german.text
        assert "Zustände" in german.text and "Aktiv" in german.text

        # the static files are served
        assert client.get("/plugins/process/static/process.js").status_code == 200
        css = client.get("/plugins/process/static/process.css")
        assert css.status_code == 200 and ".process-node" in css.text


def test_the_new_form_creates_a_workflow_or_shows_its_problems(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    with running(plugin_platform) as (client, _platform):
        made = client.post(
            "/process/new",
            data={"name": "Service desk", "entity": "ticket"},
            follow_redirects=False,
        )
        assert made.status_code == 303
        assert made.headers["location"] == "../process/1"
        row = stored(helpdesk, 1)
        assert (row["name"], row["entity"], row["active"]) == ("Service desk", "ticket", 0)
        starter = json.loads(row["definition"])
        assert [(s["id"], s["label"]) for s in starter["states"]] == [
            ("new", "New"),
            ("open", "Open"),
            ("closed", "Closed"),
        ]
        assert starter["states"][0]["initial"] is True
        assert [(t["from"], t["to"]) for t in starter["transitions"]] == [
            ("new", "open"),
            ("open", "closed"),
            ("closed", "open"),
        ]
        # the redirect leads to the designer
        designer = client.post("/process/new", data={"name": "Second", "entity": "change"})
        assert designer.status_code == 200 and designer.url.path == "/process/2"
        assert 'id="workflow-data"' in designer.text

        # in German, the starter's labels are German
        client.post(
            "/process/new",
            data={"name": "Dritter", "entity": "ticket"},
            headers={"accept-language": "de"},
        )
        german = json.loads(stored(helpdesk, 3)["definition"])
        assert [s["label"] for s in german["states"]] == ["Neu", "Offen", "Geschlossen"]

        bad = client.post("/process/new", data={"name": "   ", "entity": "Big <Tickets>"})
        assert bad.status_code == 422
        assert "The workflow was not created:" in bad.text
        assert "The workflow name must be 1 to 100 characters on one line (it has 0)." in bad.text
        assert (
            "The entity &#34;Big &lt;Tickets&gt;&#34; must be 1 to 40 characters of a-z, 0-9, _ "
            "and - (for example &#34;ticket&#34;)." in bad.text
        )
        assert 'value="Big &lt;Tickets&gt;"' in bad.text  # the input is kept, escaped
        too_long = client.post("/process/new", data={"name": "x" * 101, "entity": "ticket"})
        assert too_long.status_code == 422 and "(it has 101)" in too_long.text
        assert len(helpdesk.query("SELECT id FROM process_workflows")) == 3


def test_designer_page_embeds_the_definition_safely(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    hostile = copy(HELPDESK)
    hostile["states"][1]["label"] = HOSTILE
    hostile["transitions"][0]["label"] = "<b>&'\""
    with running(plugin_platform) as (client, platform):
        workflow_id = call(
            client,
            platform,
            "save_workflow",
            {"name": "Tickets </script>", "entity": "ticket", "definition": hostile},
        )["id"]
        page = client.get(f"/process/{workflow_id}")
        assert page.status_code == 200
        html = page.text
        assert json_block(html, "workflow-data") == hostile
        assert "<script>alert(1)" not in html
        assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in html
        assert html.count("</script>") == 3  # process.js and the two JSON blocks, no other
        assert "<title>Workflow: Tickets &lt;/script&gt;</title>" in html
        assert 'data-save-url="/process/1/save"' in html
        assert '<svg class="process-canvas"' in html and 'id="process-arrow"' in html
        texts = json_block(html, "workflow-texts")
        assert texts["saved"] == "Saved: {states} states, {transitions} transitions."
        for field in (
            "process-name",
            "process-selected-label",
            "process-new-state-id",
            "process-new-state-label",
            "process-transition-from",
            "process-transition-to",
            "process-transition-label",
        ):
            assert f'<label for="{field}">' in html, field
            assert f'id="{field}"' in html
        assert "onclick" not in html and "onload" not in html

        german = client.get(f"/process/{workflow_id}", headers={"accept-language": "de"})
        assert "Zustand hinzufügen" in german.text
        assert json_block(german.text, "workflow-texts")["saved"] == (
            "Gespeichert: {states} Zustände, {transitions} Übergänge."
        )

        missing = client.get("/process/404")
        assert missing.status_code == 404
        assert "Workflow not found" in missing.text and "There is no workflow 404." in missing.text


def test_delete_removes_the_workflow(plugin_platform: MakePlatform, helpdesk: HelpdeskDB) -> None:
    with running(plugin_platform) as (client, platform):
        first = call(
            client,
            platform,
            "save_workflow",
            {"name": "A", "entity": "ticket", "definition": HELPDESK, "active": True},
        )["id"]
        second = call(
            client,
            platform,
            "save_workflow",
            {"name": "B", "entity": "ticket", "definition": STRICT},
        )["id"]
        gone = client.post(f"/process/{first}/delete", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"] == "../../process"
        assert [r["id"] for r in helpdesk.query("SELECT id FROM process_workflows")] == [second]
        assert client.get(f"/process/{first}").status_code == 404
        with pytest.raises(PluginCallError) as info:
            call(client, platform, "get_workflow", {"id": first})
        assert info.value.code == "not_found"
        # the deleted workflow was active: nothing applies now
        payload = {"entity": "ticket", "id": 1, "state": "new", "previous_state": "closed"}
        assert fire(client, platform, payload).value == {"ok": True, "workflow": None}


def test_every_route_needs_the_design_permission(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    permissions: set[str] = {DESIGN}
    with running(plugin_platform, permissions) as (client, platform):
        workflow_id = call(
            client,
            platform,
            "save_workflow",
            {"name": "Tickets", "entity": "ticket", "definition": HELPDESK, "active": True},
        )["id"]
        assert [m.url for m in platform.menu_items(None)] == ["/process"]
        permissions.clear()
        assert platform.menu_items(None) == []
        attempts = [
            client.get("/process"),
            client.get(f"/process/{workflow_id}"),
            client.post("/process/new", data={"name": "Sneaky", "entity": "ticket"}),
            client.post(f"/process/{workflow_id}/save", json={"definition": STRICT}),
            client.post(f"/process/{workflow_id}/deactivate"),
            client.post(f"/process/{workflow_id}/delete"),
        ]
        for response in attempts:
            assert response.status_code == 403, response.request.url
            assert response.json()["error"]["code"] == "forbidden"
            assert "process.design" in response.json()["error"]["message"]
        html = client.get("/process", headers={"accept": "text/html"})
        assert html.status_code == 403 and "process.design" in html.text
        # nothing changed
        row = stored(helpdesk, workflow_id)
        assert json.loads(row["definition"]) == HELPDESK and row["active"] == 1
        assert len(helpdesk.query("SELECT id FROM process_workflows")) == 1
        # the hook needs no permission
        payload = {"entity": "ticket", "id": 2, "state": "new", "previous_state": "closed"}
        assert fire(client, platform, payload).error is not None


# -- saving from the designer ---------------------------------------------------------------


def test_save_route_stores_the_designers_definition(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    with running(plugin_platform) as (client, platform):
        workflow_id = call(
            client,
            platform,
            "save_workflow",
            {"name": "Old", "entity": "ticket", "definition": STRICT},
        )["id"]
        before = stored(helpdesk, workflow_id)["updated_at"]
        sent = copy(HELPDESK)
        sent["states"][3]["x"] = 612.6
        sent["states"][3]["y"] = 0
        sent["states"].append({"id": "re-view_2", "label": "Zur Prüfung ✓", "x": 4000, "y": 4000})
        sent["transitions"].append({"from": "pending", "to": "re-view_2", "label": "  Review  "})
        saved = client.post(
            f"/process/{workflow_id}/save", json={"name": "Helpdesk tickets", "definition": sent}
        )
        assert saved.status_code == 200
        assert saved.headers["content-type"] == "application/json"
        assert saved.json() == {"ok": True, "states": 5, "transitions": 6}
        row = stored(helpdesk, workflow_id)
        expected = copy(sent)
        expected["states"][3]["x"] = 613
        expected["transitions"][5]["label"] = "Review"
        assert json.loads(row["definition"]) == expected
        assert row["name"] == "Helpdesk tickets" and row["updated_at"] >= before
        # without a name only the definition changes
        assert (
            client.post(f"/process/{workflow_id}/save", json={"definition": HELPDESK}).json()[
                "states"
            ]
            == 4
        )
        row = stored(helpdesk, workflow_id)
        assert row["name"] == "Helpdesk tickets" and json.loads(row["definition"]) == HELPDESK

        # the largest workflow allowed: 50 states, 200 transitions
        big: dict[str, Any] = {
            "states": [
                {"id": f"s{i:02d}", "label": "L" * 80, "x": i * 80, "y": 4000 - i * 80}
                for i in range(50)
            ],
            "transitions": [
                {"from": f"s{i:02d}", "to": f"s{(i + k) % 50:02d}", "label": "T" * 80}
                for i in range(50)
                for k in (1, 2, 3, 4)
            ],
        }
        big["states"][0]["initial"] = True
        answer = client.post(f"/process/{workflow_id}/save", json={"definition": big})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ok": True, "states": 50, "transitions": 200}


def _states(n: int) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = [
        {"id": f"s{i}", "label": f"S{i}", "x": 10, "y": 10} for i in range(n)
    ]
    if states:
        states[0]["initial"] = True
    return states


def _case(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Tickets", "definition": copy(HELPDESK)}
    change(body)
    return body


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to body: set ``definition.states.1.label`` (dots; numbers index lists)."""

    def change(body: dict[str, Any]) -> None:
        keys = path.split(".")
        target: Any = body
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        elif value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return change


_DELETE = object()
_TOO_MANY_TRANSITIONS = [
    {"from": f"s{i}", "to": f"s{j}"} for i in range(15) for j in range(15) if i != j
][:201]

#: (what is wrong, the change to a valid body, the problem the answer must name)
RULES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no definition", _set("definition", _DELETE), "The definition is missing"),
    (
        "definition not an object",
        _set("definition", [1, 2]),
        "The definition must be a JSON object",
    ),
    ("no states list", _set("definition.states", _DELETE), 'The definition needs a "states" list.'),
    ("states not a list", _set("definition.states", {"a": 1}), 'needs a "states" list.'),
    ("zero states", _set("definition.states", []), "A workflow needs at least one state."),
    (
        "51 states",
        _set("definition", {"states": _states(51), "transitions": []}),
        "A workflow has at most 50 states; this one has 51.",
    ),
    ("state not an object", _set("definition.states.1", "open"), "State #2 is not an object"),
    ("state without id", _set("definition.states.1.id", _DELETE), "State #2 has no id."),
    (
        "id with capitals and spaces",
        _set("definition.states.1.id", "Open Now"),
        'State #2: the id "Open Now" must be 1 to 40 characters of a-z, 0-9, _ and -.',
    ),
    (
        "id of 41 characters",
        _set("definition.states.1.id", "a" * 41),
        'State #2: the id "' + "a" * 40 + '…" must be 1 to 40 characters',
    ),
    ("empty id", _set("definition.states.1.id", ""), 'State #2: the id "" must be'),
    (
        "duplicate id",
        _set("definition.states.2.id", "open"),
        'The state id "open" is used twice; ids must be unique.',
    ),
    (
        "blank label",
        _set("definition.states.1.label", "   "),
        'State "open": the label must be 1 to 80 characters on one line.',
    ),
    (
        "label of 81 characters",
        _set("definition.states.1.label", "é" * 81),
        'State "open": the label must be 1 to 80 characters',
    ),
    (
        "label with a line break",
        _set("definition.states.1.label", "Open\nNow"),
        'State "open": the label must be',
    ),
    ("label missing", _set("definition.states.1.label", _DELETE), 'State "open": the label'),
    ("label not text", _set("definition.states.1.label", 7), 'State "open": the label'),
    (
        "x over 4000",
        _set("definition.states.1.x", 4000.5),
        'State "open": x must be a number from 0 to 4000, not 4000.5.',
    ),
    (
        "negative y",
        _set("definition.states.1.y", -5),
        'State "open": y must be a number from 0 to 4000, not -5.',
    ),
    (
        "x as text",
        _set("definition.states.1.x", "10"),
        'State "open": x must be a number from 0 to 4000, not "10".',
    ),
    ("y missing", _set("definition.states.1.y", _DELETE), 'State "open" has no y position'),
    (
        "initial not a boolean",
        _set("definition.states.1.initial", "yes"),
        'State "open": "initial" must be true or false.',
    ),
    (
        "no initial state",
        _set("definition.states.0.initial", False),
        "Exactly one state must be the initial state; none is marked.",
    ),
    (
        "two initial states",
        _set("definition.states.3.initial", True),
        "Exactly one state must be the initial state; 2 are marked.",
    ),
    (
        "transitions not a list",
        _set("definition.transitions", "new->open"),
        'The definition\'s "transitions" must be a list.',
    ),
    (
        "201 transitions",
        _set("definition", {"states": _states(15), "transitions": _TOO_MANY_TRANSITIONS}),
        "A workflow has at most 200 transitions; this one has 201.",
    ),
    (
        "transition not an object",
        _set("definition.transitions.0", ["new", "open"]),
        "Transition #1 is not an object",
    ),
    (
        "transition without to",
        _set("definition.transitions.0.to", _DELETE),
        'Transition #1 needs the state ids "from" and "to".',
    ),
    (
        "transition to an unknown state",
        _set("definition.transitions.0.to", "gone"),
        'Transition "new" → "gone": there is no state "gone".',
    ),
    (
        "transition from an unknown state",
        _set("definition.transitions.0.from", "nowhere"),
        'Transition "nowhere" → "open": there is no state "nowhere".',
    ),
    (
        "self-loop",
        _set("definition.transitions.1", {"from": "open", "to": "open"}),
        'Transition "open" → "open" leads from a state to itself.',
    ),
    (
        "duplicate transition",
        _set("definition.transitions.1", {"from": "new", "to": "open"}),
        'Transition "new" → "open" is defined twice.',
    ),
    (
        "transition label of 81 characters",
        _set("definition.transitions.0.label", "x" * 81),
        'Transition "new" → "open": the label must be at most 80 characters on one line.',
    ),
    (
        "empty name",
        _set("name", ""),
        "The workflow name must be 1 to 100 characters on one line (it has 0).",
    ),
    ("name of 101 characters", _set("name", "n" * 101), "(it has 101)."),
    ("name not text", _set("name", ["a"]), "The workflow name must be text."),
]


def test_save_route_refuses_each_invalid_workflow_with_its_problem(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB
) -> None:
    with running(plugin_platform) as (client, platform):
        workflow_id = call(
            client,
            platform,
            "save_workflow",
            {"name": "Tickets", "entity": "ticket", "definition": HELPDESK},
        )["id"]
        url = f"/process/{workflow_id}/save"
        for what, change, problem in RULES:
            response = client.post(url, json=_case(change))
            assert response.status_code == 422, what
            error = response.json()["error"]
            assert error["code"] == "invalid_workflow", what
            assert error["message"].startswith("The workflow was not saved. Problems found: "), what
            assert any(problem in p for p in error["problems"]), (what, error["problems"])

        # several problems at once, each listed
        body = _case(_set("definition.states.1.x", -1))
        _set("definition.states.2.label", "")(body)
        _set("definition.transitions.0.to", "gone")(body)
        error = client.post(url, json=body).json()["error"]
        assert error["message"] == "The workflow was not saved. Problems found: 3."
        assert error["problems"] == [
            'State "open": x must be a number from 0 to 4000, not -1.',
            'State "pending": the label must be 1 to 80 characters on one line.',
            'Transition "new" → "gone": there is no state "gone".',
        ]
        # past 25 problems the rest are counted
        many = {
            "states": [{"id": f"S{i}", "label": "", "x": -1, "y": 1} for i in range(20)],
            "transitions": [],
        }
        error = client.post(url, json={"definition": many}).json()["error"]
        assert error["message"] == "The workflow was not saved. Problems found: 61."
        assert len(error["problems"]) == 26
        assert error["problems"][-1] == "Problems not listed: 36."

        # in German
        german = client.post(
            url, json=_case(_set("definition.states.1.y", -5)), headers={"accept-language": "de"}
        ).json()["error"]
        assert german["message"] == "Der Workflow wurde nicht gespeichert. Gefundene Probleme: 1."
        assert german["problems"] == [
            'Zustand "open": y muss eine Zahl von 0 bis 4000 sein, nicht -5.'
        ]

        # malformed JSON never reaches the plugin: the host answers 400
        broken = client.post(
            url,
            content=b'{"definition": {"states": [',
            headers={"content-type": "application/json"},
        )
        assert broken.status_code == 400
        assert broken.json()["error"]["code"] == "bad_request"
        # a JSON body that is not an object has no definition
        listed = client.post(url, json=[HELPDESK])
        assert listed.status_code == 422
        assert "The definition is missing" in listed.json()["error"]["problems"][0]
        # a form post is no definition either
        form = client.post(url, data={"definition": json.dumps(HELPDESK)})
        assert form.status_code == 422
        assert "The definition must be a JSON object" in form.json()["error"]["problems"][0]

        # over 64 KiB
        huge = {"name": "Tickets", "definition": HELPDESK, "notes": "x" * 66_000}
        too_large = client.post(url, json=huge)
        assert too_large.status_code == 413
        assert too_large.json()["error"] == {
            "code": "too_large",
            "message": "The workflow is too large to save: a request may have at most 64 KiB.",
        }

        # an unknown workflow
        missing = client.post("/process/999/save", json={"definition": HELPDESK})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"

        # nothing of that was stored
        row = stored(helpdesk, workflow_id)
        assert json.loads(row["definition"]) == HELPDESK and row["name"] == "Tickets"


# -- the module -----------------------------------------------------------------------------


# -- the designer in a real browser ---------------------------------------------------------


@pytest.mark.parametrize("helpdesk", ["sqlite"], indirect=True)  # the pages are the same on both
@BROWSER_MARKS[0]
@BROWSER_MARKS[1]
def test_designer_in_chromium_drags_adds_and_saves(
    plugin_platform: MakePlatform, helpdesk: HelpdeskDB, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    from tests.web.server import serve

    page = browser_page
    platform = plugin_platform(NAME, has_permission=allow(DESIGN))
    with serve(GoatKitMiddleware(Starlette(), platform=platform)) as base:
        # create a workflow through the list page's form
        page.goto(f"{base}/process")
        page.fill("#process-new-name", "Browser workflow")
        page.fill("#process-new-entity", "ticket")
        page.click("form.process-new button[type=submit]")
        page.wait_for_url(f"{base}/process/1")
        expect(page.locator("g.process-node")).to_have_count(3)
        expect(page.locator("g.process-edge")).to_have_count(3)
        # the stylesheet was served and applied
        assert (
            page.locator("#process-save").evaluate("el => getComputedStyle(el).backgroundColor")
            == "rgb(43, 108, 176)"
        )

        # drag "open" with the mouse: 100 px right, 150 px down
        box = page.locator('g.process-node[data-state="open"] rect.process-node-box')
        start = box.bounding_box()
        assert start is not None
        x, y = start["x"] + 40, start["y"] + 20
        page.mouse.move(x, y)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(x + 10 * step, y + 15 * step)
        page.mouse.up()
        moved = box.bounding_box()
        assert moved is not None
        assert (round(moved["x"] - start["x"]), round(moved["y"] - start["y"])) == (100, 150)
        expect(page.locator("#process-selected-id")).to_have_text("open")

        # add a state through the form
        page.fill("#process-new-state-id", "review")
        page.fill("#process-new-state-label", "In review")
        page.click("#process-add-state button[type=submit]")
        expect(page.locator('g.process-node[data-state="review"]')).to_be_visible()
        expect(page.locator("#process-selected-id")).to_have_text("review")
        # an id that is taken is refused on the page
        page.fill("#process-new-state-id", "review")
        page.fill("#process-new-state-label", "Again")
        page.click("#process-add-state button[type=submit]")
        expect(page.locator("#process-add-state-error")).to_have_text(
            'There is already a state "review".'
        )

        # add a transition with the two selects
        page.select_option("#process-transition-from", "open")
        page.select_option("#process-transition-to", "review")
        page.fill("#process-transition-label", "Review")
        page.click("#process-add-transition button[type=submit]")
        expect(page.locator("g.process-edge")).to_have_count(4)
        # the same one again is refused
        page.click("#process-add-transition button[type=submit]")
        expect(page.locator("#process-add-transition-error")).to_have_text(
            "That transition exists already."
        )

        # and one by dragging from the handle of "review" onto "closed"
        page.locator(".process-canvas-scroll").scroll_into_view_if_needed()  # the form scrolled
        handle = page.locator('g.process-node[data-state="review"] circle.process-handle')
        target = page.locator('g.process-node[data-state="closed"] rect.process-node-box')
        hb, tb = handle.bounding_box(), target.bounding_box()
        assert hb is not None and tb is not None
        page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
        page.mouse.down()
        page.mouse.move(tb["x"] + 30, tb["y"] + 20, steps=8)
        page.mouse.up()
        expect(page.locator("g.process-edge")).to_have_count(5)
        expect(page.locator("#process-transitions li")).to_have_count(5)
        expect(page.locator('g.process-edge[data-from="review"][data-to="closed"]')).to_have_count(
            1
        )

        page.fill("#process-name", "Browser workflow v2")
        page.click("#process-save")
        expect(page.locator("#process-result")).to_have_text("Saved: 4 states, 5 transitions.")
        expect(page.locator("#process-heading-name")).to_have_text("Browser workflow v2")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "process-designer.png"), full_page=True)

    row = stored(helpdesk, 1)
    assert row["name"] == "Browser workflow v2"
    definition = json.loads(row["definition"])
    states = {s["id"]: s for s in definition["states"]}
    assert list(states) == ["new", "open", "closed", "review"]
    assert (states["open"]["x"], states["open"]["y"]) == (300 + 100, 100 + 150)
    assert (states["new"]["x"], states["new"]["y"]) == (60, 100)  # the others stayed
    assert (states["closed"]["x"], states["closed"]["y"]) == (540, 100)
    assert states["review"]["label"] == "In review"
    assert states["new"].get("initial") is True
    assert {(t["from"], t["to"], t.get("label")) for t in definition["transitions"]} == {
        ("new", "open", "Start"),
        ("open", "closed", "Close"),
        ("closed", "open", "Reopen"),
        ("open", "review", "Review"),
        ("review", "closed", None),
    }
