"""Hooks (order, isolation) and plugin translations (files, the translate host call)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from goatkit_asgi import Platform
from goatkit_asgi.errors import PluginCrashed, PluginReportedError
from goatkit_asgi.platform import current_accept_language
from tests.fixtures.wat import REGISTRATION, make_plugin

pytestmark = pytest.mark.anyio

MakePlatform = Callable[..., Platform]


def hooked(plugins_dir: Path, name: str, hooks: list[object]) -> None:
    make_plugin(plugins_dir, name, registration={**REGISTRATION, "name": name, "hooks": hooks})


async def test_hooks_run_in_priority_then_name_order_and_failures_are_isolated(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    hooked(plugins_dir, "alpha", [{"name": "after_save", "handler": "echo", "priority": 5}])
    hooked(plugins_dir, "bravo", [{"name": "after_save", "handler": "echo", "priority": -1}])
    hooked(plugins_dir, "charlie", [{"name": "after_save", "handler": "trap"}])
    hooked(plugins_dir, "delta", [{"name": "after_save", "handler": "echo"}])
    hooked(plugins_dir, "echo-only", [{"name": "before_render", "handler": "echo"}])
    async with make_platform() as platform:
        results = await platform.fire_hook("after_save", {"entity": "ticket", "id": 7})
        assert [r.plugin for r in results] == ["bravo", "charlie", "delta", "alpha"]
        assert [r.ok for r in results] == [True, False, True, True]
        assert results[0].value == {"entity": "ticket", "id": 7}
        assert isinstance(results[1].error, PluginCrashed)
        assert any("hook after_save failed" in r.message for r in platform.logs.records("charlie"))
        # a disabled plugin is skipped; a hook nobody registered returns nothing
        await platform.disable("delta")
        assert [r.plugin for r in await platform.fire_hook("after_save", {})] == [
            "bravo",
            "charlie",
            "alpha",
        ]
        assert await platform.fire_hook("nobody_listens", {}) == []


async def test_a_hook_that_answers_an_error_refuses_and_a_failed_call_does_not(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    # echo answers with the payload: an {"error": ...} payload is the plugin's own error answer
    hooked(plugins_dir, "alpha", [{"name": "after_save", "handler": "echo"}])
    hooked(plugins_dir, "bravo", [{"name": "after_save", "handler": "trap"}])
    refusal = {"error": {"code": "illegal_transition", "message": "closed cannot go to new"}}
    async with make_platform() as platform:
        alpha, bravo = await platform.fire_hook("after_save", refusal)
        assert isinstance(alpha.error, PluginReportedError)
        assert alpha.error.code == "illegal_transition"
        assert alpha.refusal == "closed cannot go to new"
        assert "alpha: echo failed: closed cannot go to new" in alpha.error.message
        assert bravo.refusal is None and isinstance(bravo.error, PluginCrashed)
        (logged,) = [r for r in platform.logs.records("alpha") if "after_save" in r.message]
        assert logged.level == "info" and "refused: closed cannot go to new" in logged.message
        ok, _ = await platform.fire_hook("after_save", {"entity": "ticket"})
        assert ok.ok and ok.refusal is None


@pytest.fixture
def translated(plugins_dir: Path) -> Path:
    directory = make_plugin(plugins_dir, "sink")
    (directory / "i18n").mkdir()
    (directory / "i18n" / "en.yaml").write_text("greeting: Hello {name}\nmenu:\n  title: Reports\n")
    (directory / "i18n" / "de.yaml").write_text(
        "greeting: Hallo {name}\nmenu:\n  title: Berichte\n"
    )
    return directory


async def test_translate_host_call_in_two_languages(
    translated: Path, make_platform: MakePlatform
) -> None:
    async with make_platform() as platform:
        call = lambda args: platform.call("sink", "host", ["translate", args])  # noqa: E731
        assert await call({"key": "greeting", "locale": "de", "args": {"name": "Ada"}}) == {
            "value": "Hallo Ada"
        }
        assert await call({"key": "greeting", "args": {"name": "Ada"}}) == {"value": "Hello Ada"}
        assert await call({"key": "menu.title", "locale": "de-AT"}) == {"value": "Berichte"}
        assert await call({"key": "menu.title", "locale": "fr"}) == {"value": "Reports"}
        assert await call({"key": "no.such.key", "locale": "de"}) == {"value": "no.such.key"}
        # while a request is served, its Accept-Language decides
        token = current_accept_language.set("fr;q=0.9, de-CH;q=0.8, en;q=0.1")
        try:
            assert await call({"key": "menu.title"}) == {"value": "Berichte"}
        finally:
            current_accept_language.reset(token)
        assert platform.translate("sink", "greeting", "de", name="Bo") == "Hallo Bo"


async def test_changed_translation_files_are_picked_up(
    translated: Path, make_platform: MakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from goatkit_asgi import i18n

    monkeypatch.setattr(i18n, "TRANSLATIONS_TTL", 0.0)
    async with make_platform() as platform:
        assert platform.translate("sink", "menu.title", "de") == "Berichte"
        (translated / "i18n" / "de.yaml").write_text("menu:\n  title: Auswertungen\n")
        assert platform.translate("sink", "menu.title", "de") == "Auswertungen"
