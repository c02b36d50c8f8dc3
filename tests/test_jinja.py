"""The Jinja integration: {% use %}, calls, failures, plugin templates and translations."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from jinja2 import ChoiceLoader, DictLoader, Environment, TemplateNotFound, TemplateSyntaxError
from markupsafe import Markup
from starlette.requests import Request

from goatkit_asgi import Platform, PluginInfo, PluginState
from goatkit_asgi.errors import ConfigError, PluginCallError, PluginCrashed, PluginLoadError
from goatkit_asgi.jinja import FailedCall, PluginsExtension, PluginTemplateLoader, install_jinja
from tests.fixtures.wat import make_plugin

pytestmark = pytest.mark.anyio

MakePlatform = Callable[..., Platform]

# "sink" declares its exports with argument names; "plain" and "my-sink" only register them
# (every kitchen-sink function, without argument names).
SINK_MANIFEST = {"exports": [{"name": "echo", "args": ["a", "b"]}, "trap", "loop"]}


@pytest.fixture
async def platform(plugins_dir: Path, make_platform: MakePlatform) -> AsyncIterator[Platform]:
    make_plugin(plugins_dir, "sink", manifest=SINK_MANIFEST)
    make_plugin(plugins_dir, "plain")
    make_plugin(plugins_dir, "my-sink")
    async with make_platform(call_timeout=0.5) as p:
        await p.wait_ready()  # registrations known, nothing loaded
        yield p


def async_env(platform: Platform, **options: Any) -> Environment:
    env = Environment(enable_async=True, autoescape=options.pop("autoescape", False), **options)
    install_jinja(platform, env)
    return env


def loads(platform: Platform) -> int:
    """How many times a module was compiled or taken from the cache (one per load)."""
    return sum(e.compiles + e.cache_hits for e in platform._engines.values())


def goatkit_logs(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "goatkit" and r.levelno == level]


# --- use and calls -----------------------------------------------------------------------------


async def test_use_makes_functions_callable_by_bare_name_and_as_plugin_attribute(
    platform: Platform,
) -> None:
    env = async_env(platform)
    template = env.from_string(
        "{% use sink %}{{ echo(1, 2).a }}-{{ echo(1, 2).b }}-{{ sink.echo(a='x').a }}"
        "|{{ sink['echo'](b=[1, 2]) | tojson }}"
    )
    assert await template.render_async() == '1-2-x|{"b": [1, 2]}'


async def test_results_are_python_values(platform: Platform) -> None:
    env = async_env(platform)
    template = env.from_string(
        "{% use sink %}{% set r = echo({'k': [1, 2, 3]}, 'two') %}"
        "{{ r.a.k | sum }} {{ r.b | upper }} {{ r is mapping }}"
    )
    assert await template.render_async() == "6 TWO True"


async def test_positional_arguments_map_to_declared_names_and_keywords_by_name(
    platform: Platform,
) -> None:
    env = async_env(platform)
    cases = {
        "echo(1, 2)": {"a": 1, "b": 2},
        "echo(1, b=2)": {"a": 1, "b": 2},
        "echo(b=2)": {"b": 2},
        "echo(1)": {"a": 1},
        "echo(1, extra=True)": {"a": 1, "extra": True},
        "echo()": {},  # no arguments: an empty object, not nothing
    }
    for call, expected in cases.items():
        template = env.from_string("{% use sink %}{{ " + call + " | tojson }}")
        assert await template.render_async() == json.dumps(expected, sort_keys=True), call


async def test_functions_without_declared_args_take_one_value_or_keywords(
    platform: Platform,
) -> None:
    env = async_env(platform)
    cases = {
        "echo({'x': [1, 2]})": '{"x": [1, 2]}',  # a single dict is passed as is
        "echo([1, 'two'])": '[1, "two"]',
        "echo(7)": "7",
        "echo(x=1, y='z')": '{"x": 1, "y": "z"}',
        "echo()": "{}",
    }
    for call, expected in cases.items():
        template = env.from_string("{% use plain %}{{ " + call + " | tojson }}")
        assert await template.render_async() == expected, call


async def test_bad_arguments_name_the_function_and_its_declared_args(platform: Platform) -> None:
    env = Environment(enable_async=True)
    install_jinja(platform, env, strict=True)
    cases = {
        "{% use sink %}{{ echo(1, 2, 3) }}": (
            r"sink\.echo takes at most 2 positional arguments \(a, b\), got 3"
        ),
        "{% use sink %}{{ echo(1, a=2) }}": r"sink\.echo got two values for argument 'a'",
        "{% use plain %}{{ echo(1, 2) }}": (
            r"plain\.echo takes keyword arguments or one value such as a dict, since it "
            r"declares no argument names; got 2 positional arguments"
        ),
        "{% use plain %}{{ echo({'a': 1}, b=2) }}": r"got 1 positional argument and 1 keyword",
        "{% use sink %}{{ echo(not_defined) }}": r"sink\.echo argument 'a' is undefined",
    }
    for source, message in cases.items():
        with pytest.raises(PluginCallError, match=message) as info:
            await env.from_string(source).render_async()
        assert info.value.code == "bad_arguments"


async def test_quoted_plugin_name_with_alias(platform: Platform) -> None:
    env = async_env(platform)
    template = env.from_string(
        '{% use "my-sink" as d %}{{ d.echo(a=1).a }} {{ echo(b=2).b }} {{ d["echo"]().keys() | list }}'
    )
    assert await template.render_async() == "1 2 []"
    with pytest.raises(TemplateSyntaxError, match=r'name with "-" must be quoted'):
        env.from_string("{% use my-sink %}")
    with pytest.raises(
        TemplateSyntaxError, match=r'add one with "as", as in: use "my-sink" as my_sink'
    ):
        env.from_string('{% use "my-sink" %}')
    with pytest.raises(TemplateSyntaxError, match=r"'none' cannot be a template variable"):
        env.from_string("{% use sink as none %}")


async def test_a_plain_name_with_an_alias_and_a_function_named_like_the_alias(
    platform: Platform,
) -> None:
    env = async_env(platform)
    template = env.from_string(
        "{% use sink as s %}{{ s.echo(1).a }}{% use plain as echo %}{{ echo(5) }}{{ echo.echo(6) }}"
    )
    assert await template.render_async() == "156"


async def test_unknown_plugin_is_a_syntax_error_listing_the_known_ones(
    platform: Platform,
) -> None:
    env = Environment(loader=DictLoader({"page.html": "line one\n{% use nope %}"}))
    install_jinja(platform, env)
    with pytest.raises(TemplateSyntaxError) as info:
        env.get_template("page.html")
    assert "no plugin named 'nope'; known plugins: my-sink, plain, sink" in info.value.message
    assert info.value.lineno == 2 and info.value.name == "page.html"


async def test_parsing_before_the_platform_started_says_why(make_platform: MakePlatform) -> None:
    env = Environment()
    install_jinja(make_platform(), env)
    with pytest.raises(TemplateSyntaxError, match=r"known plugins: none \(templates that use"):
        env.from_string("{% use sink %}")


async def test_unknown_function_on_the_namespace_is_undefined(platform: Platform) -> None:
    env = async_env(platform)
    template = env.from_string("{% use sink %}[{{ sink.nope is defined }}]")
    assert await template.render_async() == "[False]"


# --- lazy loading ------------------------------------------------------------------------------


async def test_first_use_loads_the_plugin_later_uses_do_not(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_calls: list[str] = []
    real_load = platform.load

    async def counting_load(name: str) -> PluginInfo:
        load_calls.append(name)
        return await real_load(name)

    monkeypatch.setattr(platform, "load", counting_load)
    env = async_env(platform)
    env.globals["state"] = lambda: platform.plugins["sink"].state.value
    template = env.from_string(
        "{{ state() }} {% use sink %}{{ state() }} {% use sink as again %}{{ again.echo(1).a }} "
        "{% use sink %}{{ echo(2).a }}{% fallback %}fb{% enduse %}"
    )
    # compiling a template reads the exports only: nothing is loaded
    assert platform.plugins["sink"].state is PluginState.DISCOVERED
    before = loads(platform)
    assert await template.render_async() == "discovered loaded 1 2"
    assert load_calls == ["sink"]
    assert loads(platform) == before + 1
    # a loaded plugin is not loaded again by a later render
    assert await template.render_async() == "loaded loaded 1 2"
    assert load_calls == ["sink"]
    assert loads(platform) == before + 1


async def test_lazy_load_in_a_sync_environment(platform: Platform) -> None:
    env = Environment()
    install_jinja(platform, env)
    template = env.from_string("{% use sink %}{{ echo(1, 2).b }}")
    assert platform.plugins["sink"].state is PluginState.DISCOVERED
    assert await anyio.to_thread.run_sync(template.render) == "2"
    assert platform.plugins["sink"].state is PluginState.LOADED


# --- sync environments -------------------------------------------------------------------------


async def test_sync_environment_rendered_in_a_worker_thread(platform: Platform) -> None:
    env = Environment()
    install_jinja(platform, env)
    template = env.from_string(
        "{% use sink %}{{ echo(1, b='two').b }} {{ sink.echo(a=3).a }} "
        "{% use sink %}{{ trap() }}{% fallback %}fallback{% enduse %}"
    )
    assert await anyio.to_thread.run_sync(template.render) == "two 3 fallback"


async def test_sync_environment_on_the_event_loop_thread_is_a_clear_error(
    platform: Platform,
) -> None:
    env = Environment()
    install_jinja(platform, env)
    template = env.from_string("{% use sink %}{{ echo(1) }}")
    with pytest.raises(ConfigError) as info:
        template.render()
    message = str(info.value)
    assert message.startswith("use sink: a synchronous Jinja environment is being rendered on")
    assert "event loop thread" in message
    assert "anyio.to_thread.run_sync(template.render" in message
    assert "enable_async=True" in message
    assert platform.plugins["sink"].state is PluginState.DISCOVERED  # nothing was attempted

    # the error is the host's, not the plugin's: a use block does not swallow it
    block = env.from_string("{% use sink %}{{ echo(1) }}{% fallback %}fb{% enduse %}")
    with pytest.raises(ConfigError, match="event loop thread"):
        block.render()


async def test_sync_environment_in_a_plain_thread_is_a_clear_error(platform: Platform) -> None:
    env = Environment()
    install_jinja(platform, env)
    template = env.from_string("{% use sink %}{{ echo(1) }}")
    errors: list[BaseException] = []

    def render() -> None:
        try:
            template.render()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=render)
    thread.start()
    await anyio.to_thread.run_sync(thread.join)
    assert len(errors) == 1 and isinstance(errors[0], ConfigError)
    assert "reaches plugins from an AnyIO worker thread only" in str(errors[0])


# --- delimiters --------------------------------------------------------------------------------


async def test_other_delimiters(platform: Platform) -> None:
    env = Environment(
        enable_async=True,
        block_start_string="<%",
        block_end_string="%>",
        variable_start_string="<<",
        variable_end_string=">>",
    )
    install_jinja(platform, env)
    template = env.from_string(
        "<% use sink %><< echo(1, 2).a >> {% use nope %} "
        '<% use "my-sink" as m %><< m.echo(b=3).b >> '
        "<% use sink %><< trap() >><% fallback %>fb<% enduse %>"
    )
    assert await template.render_async() == "1 {% use nope %} 3 fb"


async def test_line_statements(platform: Platform) -> None:
    env = Environment(line_statement_prefix="%%")
    install_jinja(platform, env)
    template = env.from_string(
        "%% use sink\n{{ echo(7).a }}\n%% use sink\n{{ trap() }}\n%% fallback\nfb\n%% enduse\n"
    )
    assert await anyio.to_thread.run_sync(template.render) == "7\nfb\n"


# --- failures ----------------------------------------------------------------------------------


async def test_block_renders_the_body_or_else_the_fallback(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    env = async_env(platform)
    template = env.from_string(
        "{% use sink %}ok {{ echo(1).a }}{% fallback %}unused{% enduse %}|"
        "{% use sink %}partial {{ echo(1).a }} {{ trap() }} never{% fallback %}"
        "unavailable{% enduse %}|"
        "{% use sink %}{{ trap() }}{% enduse %}|"
        "{% use sink %}{% use plain %}{{ plain.echo(1) }}{{ sink.trap() }}"
        "{% fallback %}inner{% enduse %}"
    )
    with caplog.at_level(logging.WARNING, logger="goatkit"):
        assert await template.render_async() == "ok 1|unavailable||inner"
    warnings = goatkit_logs(caplog, logging.WARNING)
    assert len(warnings) == 3
    assert warnings[0].startswith("use sink: rendering the fallback: sink: trap crashed")


async def test_block_fallback_wins_over_strict(platform: Platform) -> None:
    env = Environment(enable_async=True)
    install_jinja(platform, env, strict=True)
    template = env.from_string("{% use sink %}{{ trap() }}{% fallback %}fb{% enduse %}")
    assert await template.render_async() == "fb"


async def test_block_fallback_on_timeouts(platform: Platform) -> None:
    env = async_env(platform)
    template = env.from_string("{% use sink %}{{ sink.loop() }}{% fallback %}too slow{% enduse %}")
    assert await template.render_async() == "too slow"


async def test_failed_plugin_renders_the_fallback_and_is_not_retried(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    broken = make_plugin(plugins_dir, "broken", manifest=SINK_MANIFEST)
    (broken / "plugin.wasm").write_bytes(b"\0asm this is not a module")
    async with make_platform() as platform:
        await platform.wait_ready()
        assert platform.plugins["broken"].state is PluginState.FAILED
        before = loads(platform)
        env = async_env(platform)
        template = env.from_string(
            "{% use broken %}{{ echo(1) }}{% fallback %}broken plugin{% enduse %}|"
            "{% use broken %}{{ echo(1) }}|{{ broken.echo(1) | default('n/a') }}"
        )
        assert await template.render_async() == "broken plugin||n/a"
        assert loads(platform) == before  # a page is no reason to compile it again

        strict = Environment(enable_async=True)
        install_jinja(platform, strict, strict=True)
        with pytest.raises(PluginLoadError):
            await strict.from_string("{% use broken %}").render_async()


async def test_disabled_plugin_renders_the_fallback(platform: Platform) -> None:
    await platform.disable("sink")
    env = async_env(platform)
    template = env.from_string(
        "{% use sink %}{{ echo(1).a }}{% fallback %}turned off{% enduse %}|"
        "{% use sink %}[{{ sink.echo(1) }}]"
    )
    assert await template.render_async() == "turned off|[]"
    assert platform.plugins["sink"].state is PluginState.DISABLED
    await platform.enable("sink")
    assert await template.render_async() == "1|[{'a': 1}]"


async def test_debug_shows_an_escaped_error_box_without_a_traceback(platform: Platform) -> None:
    env = Environment(enable_async=True, autoescape=True)
    install_jinja(platform, env, debug=True)
    template = env.from_string(
        "{% use plain %}{{ echo({'error': '<b>bad</b> & worse'}) }}"
        "|{{ echo({'error': 'x'}).total.more }}|{{ echo({'ok': 1}).ok }}"
    )
    html = await template.render_async()
    box = (
        '<span class="goatkit-error" title="PluginReportedError (plugin_error)">plain.echo failed: '
        "plain: echo failed: &lt;b&gt;bad&lt;/b&gt; &amp; worse</span>"
    )
    assert html.startswith(box + "|")
    assert html.endswith("plain: echo failed: x</span>|1")
    assert "<b>" not in html and "Traceback" not in html

    crash = await env.from_string("{% use sink %}{{ trap() }}").render_async()
    assert crash.startswith('<span class="goatkit-error" title="PluginCrashed (crashed)">')
    assert "sink.trap failed: sink: trap crashed" in crash
    assert "\n" not in crash and "Traceback" not in crash

    # without autoescape the box is still escaped
    raw = Environment(enable_async=True)
    install_jinja(platform, raw, debug=True)
    out = await raw.from_string("{% use plain %}{{ echo({'error': '<i>'}) }}").render_async()
    assert out.endswith("plain: echo failed: &lt;i&gt;</span>")


async def test_production_renders_the_fallback_text_and_logs(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    env = Environment(enable_async=True, autoescape=True)
    install_jinja(platform, env, fallback="<unavailable>")
    template = env.from_string(
        "{% use sink %}[{{ trap() }}] [{{ trap().total }}] [{{ trap() | default('d') }}] "
        "[{% if trap() %}yes{% else %}no{% endif %}] [{{ echo(1).a }}]"
    )
    with caplog.at_level(logging.ERROR, logger="goatkit"):
        html = await template.render_async()
    assert html == ("[&lt;unavailable&gt;] [&lt;unavailable&gt;] [d] [no] [1]")
    errors = goatkit_logs(caplog, logging.ERROR)
    assert len(errors) == 4
    assert errors[0].startswith("sink.trap failed in a template: sink: trap crashed")

    markup = Environment(enable_async=True, autoescape=True)
    install_jinja(platform, markup, fallback=Markup("<em>n/a</em>"))
    out = await markup.from_string("{% use sink %}{{ trap() }}").render_async()
    assert out == "<em>n/a</em>"


async def test_default_fallback_is_empty(platform: Platform) -> None:
    env = async_env(platform)
    result = await env.from_string("{% use sink %}[{{ trap() }}]").render_async()
    assert result == "[]"


async def test_fallback_text_is_inserted_as_is_where_nothing_is_escaped(
    platform: Platform,
) -> None:
    env = Environment(enable_async=True, autoescape=False)
    install_jinja(platform, env, fallback="<n/a>")
    result = await env.from_string("{% use sink %}[{{ trap() }}]").render_async()
    assert result == "[<n/a>]"


async def test_strict_lets_the_error_propagate(platform: Platform) -> None:
    env = Environment(enable_async=True)
    install_jinja(platform, env, strict=True)
    with pytest.raises(PluginCrashed, match="sink: trap crashed"):
        await env.from_string("{% use sink %}{{ trap() }}").render_async()
    sync = Environment()
    install_jinja(platform, sync, strict=True)
    template = sync.from_string("{% use sink %}{{ trap() }}")
    with pytest.raises(PluginCrashed):
        await anyio.to_thread.run_sync(template.render)


async def test_failed_call_is_an_undefined_that_prints_its_text(platform: Platform) -> None:
    env = Environment(enable_async=True)
    install_jinja(platform, env, fallback="-")
    extension = env.extensions[PluginsExtension.identifier]
    assert isinstance(extension, PluginsExtension)
    calls: list[Any] = []
    env.globals["keep"] = calls.append
    await env.from_string("{% use sink %}{{ keep(trap()) }}").render_async()
    (result,) = calls
    assert isinstance(result, FailedCall)
    assert str(result) == "-" and not result and list(result) == []


async def test_enduse_without_use_is_a_syntax_error(platform: Platform) -> None:
    env = async_env(platform)
    with pytest.raises(TemplateSyntaxError, match="enduse without a use before it"):
        env.from_string("x\n{% enduse %}")


# --- install_jinja -----------------------------------------------------------------------------


async def test_install_keeps_the_host_loader_first_and_its_helpers(
    platform: Platform, plugins_dir: Path
) -> None:
    templates = plugins_dir / "sink" / "templates"
    templates.mkdir()
    (templates / "page.html").write_text("from the plugin")
    host_gettext = lambda key: f"host:{key}"  # noqa: E731
    env = Environment(
        enable_async=True,
        loader=DictLoader({"sink/page.html": "host override", "host.html": "host"}),
    )
    env.globals["_"] = host_gettext
    install_jinja(platform, env)
    install_jinja(platform, env)  # again with the same settings: nothing changes
    assert env.globals["_"] is host_gettext
    assert "gettext" in env.globals and "goatkit_gettext" in env.globals
    assert await env.get_template("sink/page.html").render_async() == "host override"
    assert await env.get_template("host.html").render_async() == "host"
    with pytest.raises(ConfigError, match="already set up for goatkit_asgi"):
        install_jinja(platform, env, debug=True)


async def test_extension_without_a_platform_says_how_to_install(platform: Platform) -> None:
    env = Environment(extensions=[PluginsExtension])
    with pytest.raises(TemplateSyntaxError, match=r"install_jinja\(platform, env\)"):
        env.from_string("{% use sink %}")


# --- plugin templates --------------------------------------------------------------------------


async def test_plugin_templates_are_served_by_plugin_name(
    platform: Platform, plugins_dir: Path
) -> None:
    templates = plugins_dir / "sink" / "templates"
    (templates / "parts").mkdir(parents=True)
    (templates / "page.html").write_text(
        "{% use sink %}{{ echo(a='hi').a }} {% include 'sink/parts/footer.html' %}"
    )
    (templates / "parts" / "footer.html").write_text("footer")
    env = Environment(
        enable_async=True, loader=DictLoader({"host.html": "{% include 'sink/page.html' %}!"})
    )
    install_jinja(platform, env)
    assert await env.get_template("host.html").render_async() == "hi footer!"
    assert env.list_templates() == ["host.html", "sink/page.html", "sink/parts/footer.html"]
    assert isinstance(env.loader, ChoiceLoader)
    assert isinstance(env.loader.loaders[-1], PluginTemplateLoader)


async def test_plugin_template_paths_cannot_leave_the_templates_directory(
    platform: Platform, plugins_dir: Path, tmp_path: Path
) -> None:
    templates = plugins_dir / "sink" / "templates"
    templates.mkdir()
    (templates / "ok.html").write_text("ok")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (templates / "link.html").symlink_to(secret)
    env = async_env(platform)
    assert await env.get_template("sink/./ok.html").render_async() == "ok"
    for name in (
        "sink/../sink/manifest.yaml",
        "sink/../../secret.txt",
        "sink/..",
        "sink/",
        "sink",
        "sink/link.html",
        "nope/ok.html",
        "/ok.html",
        "sink/missing.html",
    ):
        with pytest.raises(TemplateNotFound):
            env.get_template(name)


async def test_changed_plugin_templates_are_reloaded(platform: Platform, plugins_dir: Path) -> None:
    templates = plugins_dir / "sink" / "templates"
    templates.mkdir()
    page = templates / "page.html"
    page.write_text("first")
    env = async_env(platform)
    assert await env.get_template("sink/page.html").render_async() == "first"
    page.write_text("second")
    stat = page.stat()
    os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert await env.get_template("sink/page.html").render_async() == "second"


async def test_plugin_templates_work_in_a_sync_environment(
    platform: Platform, plugins_dir: Path
) -> None:
    templates = plugins_dir / "sink" / "templates"
    templates.mkdir()
    (templates / "page.html").write_text("{% use sink %}{{ echo(b=5).b }}")
    env = Environment()
    install_jinja(platform, env)

    def render() -> str:
        return env.get_template("sink/page.html").render()

    assert await anyio.to_thread.run_sync(render) == "5"


# --- translations ------------------------------------------------------------------------------

EN = """\
title: Statistics
menu:
  title: Reports
greeting: Hello {name}!
tickets:
  one: "{n} ticket"
  other: "{n} tickets"
"""
DE = """\
title: Statistik
menu:
  title: Berichte
greeting: Hallo {name}!
tickets:
  one: "{n} Ticket"
  other: "{n} Tickets"
"""
I18N_PAGE = (
    "{{ _('title') }}|{{ _('menu.title') }}|{{ _('greeting', name='Ada') }}|"
    "{{ _('greeting') }}|{{ _('missing.key') }}|{{ ngettext('tickets.one', 'tickets.other', 3) }}"
)


@pytest.fixture
def translated(platform: Platform, plugins_dir: Path) -> Environment:
    plugin = plugins_dir / "sink"
    (plugin / "i18n").mkdir()
    (plugin / "i18n" / "en.yaml").write_text(EN)
    (plugin / "i18n" / "de.yaml").write_text(DE)
    (plugin / "templates").mkdir()
    (plugin / "templates" / "page.html").write_text(I18N_PAGE)
    env = Environment(
        enable_async=True,
        loader=DictLoader({"host.html": "{{ _('title', n=1) }} {{ _('{n} x', n=2) }}"}),
    )
    install_jinja(platform, env)
    return env


def request(accept_language: str | None) -> Request:
    headers = [] if accept_language is None else [(b"accept-language", accept_language.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


async def test_plugin_templates_translate_in_english_and_german(translated: Environment) -> None:
    page = translated.get_template("sink/page.html")
    assert await page.render_async() == (
        "Statistics|Reports|Hello Ada!|Hello {name}!|missing.key|3 tickets"
    )
    assert await page.render_async(locale="de") == (
        "Statistik|Berichte|Hallo Ada!|Hallo {name}!|missing.key|3 Tickets"
    )
    assert (await page.render_async(locale="de-AT")).startswith("Statistik|Berichte|")
    assert (await page.render_async(locale="fr")).startswith("Statistics|")


async def test_locale_comes_from_the_accept_language_header(translated: Environment) -> None:
    page = translated.get_template("sink/page.html")
    german = await page.render_async(request=request("fr-FR, de-CH;q=0.9, en;q=0.5"))
    assert german.startswith("Statistik|")
    english = await page.render_async(request=request("de;q=0.1, en"))
    assert english.startswith("Statistics|")
    assert (await page.render_async(request=request(None))).startswith("Statistics|")
    # an explicit locale wins over the header
    assert (await page.render_async(locale="en", request=request("de"))).startswith("Statistics|")


async def test_outside_plugin_templates_underscore_formats_the_key(
    translated: Environment,
) -> None:
    assert await translated.get_template("host.html").render_async() == "title 2 x"
    assert await translated.from_string("{{ gettext('menu.title') }}").render_async() == (
        "menu.title"
    )


async def test_goatkit_gettext_is_there_when_the_host_has_its_own(
    platform: Platform, plugins_dir: Path
) -> None:
    plugin = plugins_dir / "sink"
    (plugin / "i18n").mkdir()
    (plugin / "i18n" / "de.yaml").write_text(DE)
    (plugin / "templates").mkdir()
    (plugin / "templates" / "page.html").write_text(
        "{{ _('title') }} {{ goatkit_gettext('title') }}"
    )
    env = Environment(enable_async=True)
    env.globals["_"] = lambda key: f"host:{key}"
    install_jinja(platform, env)
    page = env.get_template("sink/page.html")
    assert await page.render_async(locale="de") == "host:title Statistik"


async def test_registration_translations_are_used_without_files(
    plugins_dir: Path, make_platform: MakePlatform
) -> None:
    from tests.fixtures.wat import REGISTRATION

    registration = {
        **REGISTRATION,
        "name": "intl",
        "i18n": {"en": {"hello": "Hello"}, "de": {"hello": "Hallo"}},
    }
    plugin = make_plugin(plugins_dir, "intl", registration=registration)
    (plugin / "templates").mkdir()
    (plugin / "templates" / "t.html").write_text("{{ _('hello') }}")
    async with make_platform() as platform:
        await platform.wait_ready()
        env = Environment(enable_async=True)
        install_jinja(platform, env)
        page = env.get_template("intl/t.html")
        assert await page.render_async(request=request("de")) == "Hallo"
        assert await page.render_async() == "Hello"


# --- templates that extend, include and run concurrently ------------------------------------------


async def test_use_in_a_child_template_serves_its_blocks(
    platform: Platform, plugins_dir: Path
) -> None:
    templates = plugins_dir / "sink" / "templates"
    templates.mkdir()
    (templates / "page.html").write_text(
        "{% extends 'base.html' %}{% use sink %}"
        "{% block content %}{{ echo(1).a }}{% use plain %}{{ plain.echo(2) }}{% endblock %}"
    )
    base = "<main>{% block content %}{% endblock %}</main>"
    env = Environment(enable_async=True, loader=DictLoader({"base.html": base}))
    install_jinja(platform, env)
    assert await env.get_template("sink/page.html").render_async() == "<main>12</main>"


async def test_concurrent_first_renders_load_once(platform: Platform) -> None:
    env = async_env(platform)
    template = env.from_string("{% use sink %}{{ echo(n).a }}")
    before = loads(platform)
    results: list[str] = []

    async def render(n: int) -> None:
        results.append(await template.render_async(n=n))

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(render, n)
    assert sorted(results, key=int) == [str(n) for n in range(10)]
    assert loads(platform) == before + 1


async def test_sandboxed_environment(platform: Platform) -> None:
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(enable_async=True)
    install_jinja(platform, env)
    template = env.from_string("{% use sink %}{{ sink.echo(1, 2).b }} {{ echo(a=3).a }}")
    assert await template.render_async() == "2 3"
