"""Jinja2 integration: ``{% use plugin %}``, plugin templates and plugin translations.

``install_jinja(platform, env)`` (or ``platform.install_jinja(env)``) adds
:class:`PluginsExtension`, serves each plugin's ``templates/`` as ``"<plugin>/<path>"`` and adds
the ``_`` / ``gettext`` / ``ngettext`` helpers (unless the host already defines them)::

    {% use stats %}                         {# the first use in a render loads the plugin #}
    {{ ticket_counts(7).total }}            {# positional arguments map to the declared names #}
    {{ stats.ticket_counts(days=7).total }}

    {% use "ticket-tools" as tools %}       {# a name that is not an identifier needs "as" #}
    {{ tools.summary({"id": 42}) }}         {# one dict, for a function that declares no args #}

    {% use stats %}
      {{ ticket_counts(7).total }} tickets
    {% fallback %}
      Statistics are unavailable right now.
    {% enduse %}

The tag reads the plugin's exported functions when the template is compiled (the manifest's
``exports`` and the registration's ``functions``), so each is callable by its bare name and as
``alias.fn(...)``; an unknown plugin is a :class:`~jinja2.TemplateSyntaxError`. Tags are found by
token type, so any delimiters work (``<% use stats %>``).

Calls return the plugin's JSON result as Python values. In an async environment
(``enable_async=True``, ``render_async``) calls are awaited on the event loop; a sync environment
must be rendered in a worker thread (``await anyio.to_thread.run_sync(template.render)``), from
where calls reach the loop; rendering it on the loop thread raises
:class:`~goatkit_asgi.errors.ConfigError`.

When a plugin fails (a :class:`~goatkit_asgi.errors.GoatKitError` from its load or a call):

- inside ``use … fallback … enduse``, the fallback is rendered instead of the body;
- elsewhere, the call gives a :class:`FailedCall`: an undefined value that prints as a
  ``<span class="goatkit-error">`` box with the escaped message (never a traceback) with
  ``debug=True``, or as the ``fallback`` text given to :func:`install_jinja` (empty by default);
  the error is logged. With ``strict=True`` the error propagates instead, so the host can answer
  with an error page. A standalone ``use`` whose load fails logs it, and its calls fail as above.

Errors in the host's setup (:class:`~goatkit_asgi.errors.ConfigError`, such as a sync render on
the event loop thread) always propagate. A plugin in the ``failed`` state is not retried by
templates (``platform.load`` or a reload does that).

Scoping: the names a standalone ``use`` binds follow Jinja's ``set`` (template-wide at the top
level, local inside a block, macro or loop); those of a ``use`` block exist in its body only.
Functions whose names Jinja reserves (``loop``, ``self``, ``caller``, ``super``, ...) or that are
not identifiers get no bare name: call them as ``alias.loop()`` or ``alias["fn-name"]()``. A
function named like the alias is called through the alias itself.

Each render loads a plugin at most once: its first ``use`` asks the platform, later ones reuse
the answer (kept on the render's context).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

import anyio
import anyio.from_thread
import anyio.lowlevel
from jinja2 import nodes, pass_context
from jinja2.environment import Environment
from jinja2.exceptions import TemplateNotFound, TemplateRuntimeError, TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.loaders import BaseLoader, ChoiceLoader, split_template_path
from jinja2.parser import Parser
from jinja2.runtime import ChainableUndefined, Context, Undefined
from markupsafe import Markup, escape

from .errors import (
    ConfigError,
    GoatKitError,
    PluginCallError,
    PluginDisabled,
    PluginLoadError,
    PluginNotFound,
)
from .i18n import Translations, format_text, negotiate_locale
from .platform import Platform, PluginInfo, PluginState
from .specs import FunctionSpec

__all__ = [
    "FailedCall",
    "PluginFunction",
    "PluginNamespace",
    "PluginTemplateLoader",
    "PluginsExtension",
    "install_jinja",
]

logger = logging.getLogger("goatkit")

T = TypeVar("T")

# filter_stream renames the "use" of a use ... enduse block to this tag.
_BLOCK_TAG = "usebody"
# The argument of the caller macro of a use block: false renders the body, true the fallback.
_FALLBACK_ARG = "_goatkit_fallback"
# The attribute of a jinja2 Context that records the plugins used in that render.
_RENDER_STATE = "_goatkit_used"
# How long translations are trusted before the plugin and its i18n files are looked at again.
# Names a template cannot assign to (or that Jinja gives a meaning of its own).
_RESERVED_NAMES = frozenset(
    {"true", "false", "none", "True", "False", "None", "loop", "self", "caller", "varargs"}
    | {"kwargs", "super"}
)
_SETTINGS = ("goatkit_platform", "goatkit_debug", "goatkit_strict", "goatkit_fallback")

# More than 0 while a use block's body renders: plugin failures then raise, for the block.
_use_block_depth: ContextVar[int] = ContextVar("goatkit_use_block_depth", default=0)


def install_jinja(
    platform: Platform,
    env: Environment,
    *,
    debug: bool = False,
    strict: bool = False,
    fallback: str = "",
) -> None:
    """Give ``env`` the ``use`` tag, the plugins' templates and their translations.

    ``debug`` shows a failed call as a visible error box; otherwise it renders as ``fallback``
    (a ``Markup`` fallback is inserted as HTML, a plain string is escaped). ``strict`` lets the
    error propagate instead. ``_``, ``gettext`` and ``ngettext`` are added only where the host
    has none; ``goatkit_gettext`` and ``goatkit_ngettext`` are always there.
    """
    settings = dict(zip(_SETTINGS, (platform, debug, strict, fallback), strict=True))
    if getattr(env, "goatkit_platform", None) is not None:
        if all(getattr(env, key, None) == value for key, value in settings.items()):
            return
        raise ConfigError(
            "install_jinja: this environment is already set up for goatkit_asgi with other "
            "settings; use one environment per platform and set debug/strict/fallback once"
        )
    if PluginsExtension.identifier not in env.extensions:
        env.add_extension(PluginsExtension)
    env.extend(**settings)
    plugin_loader = PluginTemplateLoader(platform)
    env.loader = plugin_loader if env.loader is None else ChoiceLoader([env.loader, plugin_loader])
    extension = cast(PluginsExtension, env.extensions[PluginsExtension.identifier])
    for name, helper in (
        ("_", extension.gettext),
        ("gettext", extension.gettext),
        ("ngettext", extension.ngettext),
    ):
        env.globals.setdefault(name, helper)
    env.globals["goatkit_gettext"] = extension.gettext
    env.globals["goatkit_ngettext"] = extension.ngettext
    env.globals["goatkit_static"] = extension.static_url


# --- what templates see ------------------------------------------------------------------------


class FailedCall(ChainableUndefined):
    """The result of a failed plugin call outside a ``use`` block.

    It prints as the error box (``debug=True``) or the configured fallback text, and otherwise
    behaves as undefined: false, empty, ``|default(...)`` replaces it, and attribute or item
    access gives itself, so ``{{ stats.count().total }}`` shows the box too. ``text`` is
    escaped where the template autoescapes, unless it is ``Markup``.
    """

    __slots__ = ("_goatkit_text",)

    def __init__(self, text: str, hint: str) -> None:
        super().__init__(hint=hint)
        self._goatkit_text = text

    def __str__(self) -> str:
        return str(self._goatkit_text)

    def __html__(self) -> Markup:
        return escape(self._goatkit_text)

    def __repr__(self) -> str:
        return f"FailedCall({self._undefined_hint!r})"


class PluginFunction:
    """One plugin function as templates call it.

    Positional arguments map to the declared argument names in order and keyword arguments
    go by name; a function that declares no arguments takes keyword arguments or one value
    (typically a dict) that is passed as is. No arguments send ``{}``.
    """

    __slots__ = ("_extension", "name", "plugin", "spec")

    def __init__(self, extension: PluginsExtension, plugin: str, spec: FunctionSpec) -> None:
        self._extension = extension
        self.plugin = plugin
        self.name = spec.name
        self.spec = spec

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._extension._invoke(self, args, kwargs)

    def arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """The JSON-able arguments for a call with ``args`` and ``kwargs``."""
        names = self.spec.arg_names
        if not names:
            if len(args) > 1 or (args and kwargs):
                raise self._error(
                    f"takes keyword arguments or one value such as a dict, since it declares "
                    f"no argument names; got {_count(len(args), 'positional argument')}"
                    + (f" and {_count(len(kwargs), 'keyword argument')}" if kwargs else "")
                )
            if args:
                self._check_defined("the argument", args[0])
                return args[0]
            payload = dict(kwargs)
        else:
            if len(args) > len(names):
                raise self._error(
                    f"takes at most {_count(len(names), 'positional argument')} "
                    f"({', '.join(names)}), got {len(args)}"
                )
            payload = dict(zip(names, args, strict=False))
            for key, value in kwargs.items():
                if key in payload:
                    raise self._error(f"got two values for argument {key!r}")
                payload[key] = value
            missing = [a.name for a in self.spec.args if a.required and a.name not in payload]
            if missing:
                raise self._error(f"is missing the required argument {', '.join(missing)}")
        for key, value in payload.items():
            self._check_defined(f"argument {key!r}", value)
        return payload

    def _check_defined(self, what: str, value: Any) -> None:
        if isinstance(value, Undefined):
            raise self._error(f"{what} is undefined in the template")

    def _error(self, problem: str) -> PluginCallError:
        return PluginCallError(
            f"{self.plugin}.{self.name} {problem}",
            plugin=self.plugin,
            function=self.name,
            code="bad_arguments",
        )

    def __repr__(self) -> str:
        return f"<plugin function {self.plugin}.{self.name}({', '.join(self.spec.arg_names)})>"


class PluginNamespace:
    """What ``{% use name as alias %}`` binds to ``alias``: the plugin's functions as attributes
    (and items, for names that are not identifiers: ``alias["fn-name"]``)."""

    __slots__ = ("_functions", "_plugin")

    def __init__(self, plugin: str, functions: Mapping[str, PluginFunction]) -> None:
        self._plugin = plugin
        self._functions = functions

    def __getattr__(self, name: str) -> PluginFunction:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._functions[name]
        except KeyError:
            raise AttributeError(self._missing(name)) from None

    def __getitem__(self, name: str) -> PluginFunction:
        try:
            return self._functions[name]
        except KeyError:
            raise KeyError(self._missing(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __iter__(self) -> Iterator[str]:
        return iter(self._functions)

    def _missing(self, name: str) -> str:
        known = ", ".join(sorted(self._functions)) or "none"
        return f"plugin {self._plugin!r} has no function {name!r}; it has {known}"

    def __repr__(self) -> str:
        return f"<plugin {self._plugin}: {', '.join(self._functions)}>"


class _CallableNamespace(PluginNamespace):
    """A namespace whose alias is also the name of one of its functions: calling it calls that."""

    __slots__ = ("_own",)

    def __init__(
        self, plugin: str, functions: Mapping[str, PluginFunction], own: PluginFunction
    ) -> None:
        super().__init__(plugin, functions)
        self._own = own

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._own(*args, **kwargs)


@dataclass
class _Used:
    """A plugin's first ``use`` in one render: its functions, and the load error if any."""

    functions: Mapping[str, PluginFunction]
    error: GoatKitError | None = None
    reported: bool = False


# --- the extension -----------------------------------------------------------------------------


class PluginsExtension(Extension):
    """The ``use`` tag (see the module docstring); add it with :func:`install_jinja`."""

    tags = {"use", _BLOCK_TAG}

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)

    @property
    def platform(self) -> Platform:
        """The platform given to :func:`install_jinja`."""
        platform = getattr(self.environment, "goatkit_platform", None)
        if platform is None:
            raise ConfigError(
                "PluginsExtension has no platform: set it up with install_jinja(platform, env) "
                "or platform.install_jinja(env)"
            )
        return cast(Platform, platform)

    # -- parsing -------------------------------------------------------------------------------

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        """Mark each ``use`` that an ``enduse`` closes (the nearest unclosed one before it) as a
        block; the other ``use`` tags stand alone."""
        tokens = list(stream)
        unclosed: list[int] = []
        for i in range(len(tokens) - 1):
            if tokens[i].type != "block_begin" or tokens[i + 1].type != "name":
                continue
            tag = tokens[i + 1]
            if tag.value == "use":
                unclosed.append(i + 1)
            elif tag.value == "enduse":
                if not unclosed:
                    raise TemplateSyntaxError(
                        "enduse without a use before it; a use block is: use NAME, the body, "
                        "optionally fallback and what to show when the plugin fails, enduse",
                        tag.lineno,
                        stream.name,
                        stream.filename,
                    )
                opening = unclosed.pop()
                tokens[opening] = Token(tokens[opening].lineno, "name", _BLOCK_TAG)
        return tokens

    def parse(self, parser: Parser) -> nodes.Node | list[nodes.Node]:
        tag = next(parser.stream)
        lineno = tag.lineno
        plugin, alias = _parse_names(parser)
        functions = self._exported_functions(parser, plugin, lineno)
        setup = self._setup(plugin, alias, functions, block=tag.value == _BLOCK_TAG, lineno=lineno)
        if tag.value != _BLOCK_TAG:
            return setup
        body = parser.parse_statements(("name:fallback", "name:enduse"))
        fallback: list[nodes.Node] = []
        if next(parser.stream).value == "fallback":
            fallback = parser.parse_statements(("name:enduse",), drop_needle=True)
        choose = nodes.If(
            nodes.Name(_FALLBACK_ARG, "load", lineno=lineno),
            fallback,
            [],
            [*setup, *body],
            lineno=lineno,
        )
        call = self.call_method("_use_block", [nodes.Const(plugin)], lineno=lineno)
        return nodes.CallBlock(
            call, [nodes.Name(_FALLBACK_ARG, "param", lineno=lineno)], [], [choose], lineno=lineno
        )

    def _exported_functions(self, parser: Parser, plugin: str, lineno: int) -> tuple[str, ...]:
        try:
            platform = self.platform
        except ConfigError as exc:
            parser.fail(f"use {plugin}: {exc.message}", lineno)
        info = _look(lambda: platform.info(plugin))
        if info is None:
            known = ", ".join(_look(platform.plugin_names)) or (
                "none (templates that use plugins must be compiled once the platform has "
                "started: inside `async with platform:` or the app's lifespan)"
            )
            parser.fail(f"use {plugin}: no plugin named {plugin!r}; known plugins: {known}", lineno)
        return tuple(_function_specs(info))

    def _setup(
        self, plugin: str, alias: str, functions: Iterable[str], *, block: bool, lineno: int
    ) -> list[nodes.Node]:
        """``alias = <use plugin>`` and ``fn = alias.fn`` for each function with a usable name."""
        use = self.call_method(
            "_use",
            [nodes.Const(plugin), nodes.Const(alias), nodes.ContextReference(), nodes.Const(block)],
            lineno=lineno,
        )
        out: list[nodes.Node] = [
            nodes.Assign(nodes.Name(alias, "store", lineno=lineno), use, lineno=lineno)
        ]
        for function in functions:
            if function == alias or not _assignable(function):
                continue  # the alias itself calls it; other names: alias["fn-name"](...)
            value = nodes.Getattr(nodes.Name(alias, "load", lineno=lineno), function, "load")
            out.append(
                nodes.Assign(nodes.Name(function, "store", lineno=lineno), value, lineno=lineno)
            )
        return out

    # -- rendering: use ------------------------------------------------------------------------

    def _use(self, plugin: str, alias: str, context: Context, block: bool) -> Any:
        """The first use of ``plugin`` in a render loads it; later ones reuse what it found."""
        if self.environment.is_async:
            return self._use_async(plugin, alias, context, block)
        state = _render_state(context)
        used = state.get(plugin)
        if used is None:
            used = state[plugin] = _run_on_loop(f"use {plugin}", self._load, plugin)
        return self._namespace(plugin, alias, used, block)

    async def _use_async(self, plugin: str, alias: str, context: Context, block: bool) -> Any:
        state = _render_state(context)
        used = state.get(plugin)
        if used is None:
            used = state[plugin] = await self._load(plugin)
        return self._namespace(plugin, alias, used, block)

    async def _load(self, plugin: str) -> _Used:
        platform = self.platform
        info = platform.info(plugin)
        try:
            if info is None:
                raise PluginNotFound(
                    f"no plugin named {plugin!r}: it was removed after the template was compiled",
                    plugin=plugin,
                )
            if info.state is PluginState.DISABLED:
                raise PluginDisabled(
                    f"{plugin}: the plugin is disabled; enable it first", plugin=plugin
                )
            if info.state is PluginState.FAILED:
                # As platform.call does: a failed plugin is retried by an explicit load or
                # reload, not by every page that uses it.
                raise info.error or PluginLoadError(f"{plugin}: the plugin failed", plugin=plugin)
            if info.state is not PluginState.LOADED:
                info = await platform.load(plugin)
        except ConfigError:
            raise
        except GoatKitError as exc:
            return _Used(self._functions(plugin, platform.info(plugin)), exc)
        return _Used(self._functions(plugin, info))

    def _functions(self, plugin: str, info: PluginInfo | None) -> dict[str, PluginFunction]:
        specs = _function_specs(info) if info is not None else {}
        return {name: PluginFunction(self, plugin, spec) for name, spec in specs.items()}

    def _namespace(self, plugin: str, alias: str, used: _Used, block: bool) -> PluginNamespace:
        if used.error is not None:
            if block or self._strict:
                raise used.error
            if not used.reported:
                used.reported = True
                logger.error("use %s failed in a template: %s", plugin, _first_line(used.error))
        own = used.functions.get(alias)
        if own is not None:
            return _CallableNamespace(plugin, used.functions, own)
        return PluginNamespace(plugin, used.functions)

    def _use_block(self, plugin: str, caller: Callable[[bool], Any]) -> Any:
        """Render a use block's body; if the plugin fails in it, render its fallback instead."""
        if self.environment.is_async:
            return self._use_block_async(plugin, caller)
        depth = _use_block_depth.set(_use_block_depth.get() + 1)
        try:
            return caller(False)
        except ConfigError:
            raise
        except GoatKitError as exc:
            _log_fallback(plugin, exc)
        finally:
            _use_block_depth.reset(depth)
        return caller(True)

    async def _use_block_async(self, plugin: str, caller: Callable[[bool], Any]) -> Any:
        depth = _use_block_depth.set(_use_block_depth.get() + 1)
        try:
            return await caller(False)
        except ConfigError:
            raise
        except GoatKitError as exc:
            _log_fallback(plugin, exc)
        finally:
            _use_block_depth.reset(depth)
        return await caller(True)

    # -- rendering: calls ----------------------------------------------------------------------

    def _invoke(self, function: PluginFunction, args: tuple[Any, ...], kwargs: Any) -> Any:
        try:
            payload = function.arguments(args, kwargs)
        except PluginCallError as exc:
            if self._must_raise:
                raise
            return self._failed(function, exc)
        if self.environment.is_async:
            return self._call_async(function, payload)
        try:
            return _run_on_loop(
                f"{function.plugin}.{function.name}",
                self.platform.call,
                function.plugin,
                function.name,
                payload,
            )
        except ConfigError:
            raise
        except GoatKitError as exc:
            if self._must_raise:
                raise
            return self._failed(function, exc)

    async def _call_async(self, function: PluginFunction, payload: Any) -> Any:
        try:
            return await self.platform.call(function.plugin, function.name, payload)
        except ConfigError:
            raise
        except GoatKitError as exc:
            if self._must_raise:
                raise
            return self._failed(function, exc)

    @property
    def _strict(self) -> bool:
        return bool(getattr(self.environment, "goatkit_strict", False))

    @property
    def _must_raise(self) -> bool:
        return _use_block_depth.get() > 0 or self._strict

    def _failed(self, function: PluginFunction, exc: GoatKitError) -> FailedCall:
        where = f"{function.plugin}.{function.name}"
        message = _first_line(exc)
        logger.error("%s failed in a template: %s", where, message)
        text: str
        if getattr(self.environment, "goatkit_debug", False):
            text = Markup('<span class="goatkit-error" title="{}">{} failed: {}</span>').format(
                f"{type(exc).__name__} ({exc.code})", where, message
            )
        else:
            text = getattr(self.environment, "goatkit_fallback", "")
        return FailedCall(text, f"{where} failed: {message}")

    # -- translations --------------------------------------------------------------------------

    @pass_context
    def gettext(self, context: Context, key: str, /, **params: Any) -> str:
        """``_("key", name=...)``: the plugin's text for ``key`` in a plugin template (one named
        ``"<plugin>/..."``), in the render's locale; elsewhere ``key`` itself, formatted."""
        translations = self._context_translations(context)
        if translations is None:
            return format_text(str(key), params)
        return translations.gettext(str(key), _locale(context, translations), **params)

    @pass_context
    def ngettext(
        self, context: Context, singular: str, plural: str, n: int, /, **params: Any
    ) -> str:
        """``ngettext("one", "many", n)``: as ``_`` with ``singular`` when ``n`` is 1, else
        ``plural``; ``{n}`` is available to the text."""
        translations = self._context_translations(context)
        if translations is None:
            params.setdefault("n", n)
            return format_text(str(singular if n == 1 else plural), params)
        locale = _locale(context, translations)
        return translations.ngettext(str(singular), str(plural), n, locale, **params)

    @pass_context
    def static_url(self, context: Context, path: str, /, plugin: str | None = None) -> str:
        """``goatkit_static("app.css")``: the URL of a file in a plugin's ``static/`` directory.

        The plugin is the one whose template is rendering (``"<plugin>/..."``) unless ``plugin``
        names another; the URL is under the platform's static prefix and the request's
        ``root_path``, so it works wherever the host mounts the app.
        """
        name = plugin
        if name is None:
            template = context.name or ""
            name = template.split("/", 1)[0] if "/" in template else context.get("plugin")
        if not name:
            raise TemplateRuntimeError(
                f"goatkit_static({path!r}) outside a plugin template: pass plugin='name'"
            )
        request = context.get("request")
        root = str(request.scope.get("root_path", "")).rstrip("/") if request is not None else ""
        prefix = self.platform.settings.static_prefix
        return f"{root}{prefix}/{quote(str(name))}/static/{quote(str(path).lstrip('/'))}"

    def translations(self, plugin: str) -> Translations | None:
        """``plugin``'s translations (``None`` for an unknown plugin), from the platform's cache."""
        platform = self.platform
        return _look(lambda: platform.translations(plugin))

    def _context_translations(self, context: Context) -> Translations | None:
        name = context.name
        if not name or "/" not in name:
            return None
        return self.translations(name.split("/", 1)[0])


# --- plugin templates --------------------------------------------------------------------------


class PluginTemplateLoader(BaseLoader):
    """Serves ``"<plugin>/<path>"`` from the plugin's ``templates/`` directory.

    Paths cannot leave that directory; a changed file is picked up on the next
    ``get_template`` (with Jinja's default ``auto_reload``).
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        plugin, _, rest = template.partition("/")
        try:
            pieces = split_template_path(rest)
        except TemplateNotFound:
            raise TemplateNotFound(template) from None
        root = self._root(plugin)
        if root is None or not pieces:
            raise TemplateNotFound(template)
        path = root.joinpath(*pieces)
        try:
            if not path.resolve().is_relative_to(root.resolve()):
                raise TemplateNotFound(template)  # a symlink out of the plugin
            mtime = path.stat().st_mtime_ns
            source = path.read_text(encoding="utf-8")
        except OSError:
            raise TemplateNotFound(template) from None

        def uptodate() -> bool:
            try:
                return path.stat().st_mtime_ns == mtime
            except OSError:
                return False

        return source, os.fspath(path), uptodate

    def list_templates(self) -> list[str]:
        platform = self.platform
        found: list[str] = []
        for plugin in _look(platform.plugin_names):
            root = self._root(plugin)
            if root is None:
                continue
            for directory, _, files in os.walk(root):
                rel = Path(directory).relative_to(root)
                found.extend(f"{plugin}/{(rel / f).as_posix()}" for f in files)
        return sorted(found)

    def _root(self, plugin: str) -> Path | None:
        platform = self.platform
        info = _look(lambda: platform.info(plugin)) if plugin else None
        if info is None or info.directory is None:
            return None
        return info.directory / "templates"


# --- helpers -----------------------------------------------------------------------------------


def _parse_names(parser: Parser) -> tuple[str, str]:
    """``use name``, ``use name as alias`` or ``use "any-name" as alias``."""
    stream = parser.stream
    token = stream.current
    if token.type == "string":
        plugin = str(token.value)
    elif token.type == "name":
        plugin = str(token.value)
        if stream.look().type == "sub":
            parser.fail(
                f'use: a plugin name with "-" must be quoted, as in: use "{plugin}-..." as alias',
                token.lineno,
            )
    else:
        parser.fail(
            'use: expected a plugin name, as in: use stats, or use "ticket-tools" as tools',
            token.lineno,
        )
    next(stream)
    if stream.skip_if("name:as"):
        alias_token = stream.expect("name")
        alias = str(alias_token.value)
        if not _assignable(alias):
            parser.fail(
                f"use {plugin} as {alias}: {alias!r} cannot be a template variable; "
                "choose another name",
                alias_token.lineno,
            )
        return plugin, alias
    if not _assignable(plugin):
        parser.fail(
            f'use "{plugin}": the plugin name is not a template variable name; add one with '
            f'"as", as in: use "{plugin}" as {_suggest_alias(plugin)}',
            token.lineno,
        )
    return plugin, plugin


def _assignable(name: str) -> bool:
    return name.isidentifier() and name not in _RESERVED_NAMES


def _suggest_alias(name: str) -> str:
    alias = re.sub(r"\W", "_", name)
    return alias if _assignable(alias) else f"p_{alias}"


def _function_specs(info: PluginInfo) -> dict[str, FunctionSpec]:
    """The manifest's exports and the registration's functions (the declaration with argument
    names wins)."""
    specs: dict[str, FunctionSpec] = {}
    if info.manifest is not None:
        specs.update((spec.name, spec) for spec in info.manifest.exports)
    if info.registration is not None:
        for spec in info.registration.functions:
            known = specs.get(spec.name)
            if known is None or (spec.args and not known.args):
                specs[spec.name] = spec
    return specs


def _render_state(context: Context) -> dict[str, _Used]:
    state: dict[str, _Used] | None = getattr(context, _RENDER_STATE, None)
    if state is None:
        state = {}
        setattr(context, _RENDER_STATE, state)
    return state


def _run_on_loop(what: str, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``func(*args)`` on the event loop from a sync render in a worker thread."""
    try:
        return anyio.from_thread.run(func, *args)
    except anyio.NoEventLoopError as exc:
        if _on_event_loop_thread():
            raise ConfigError(
                f"{what}: a synchronous Jinja environment is being rendered on the event loop "
                "thread, where waiting for a plugin would block the loop; render it in a worker "
                "thread (await anyio.to_thread.run_sync(template.render, ...)) or use an async "
                "environment (Environment(enable_async=True) and await template.render_async())"
            ) from None
        raise ConfigError(
            f"{what}: a synchronous Jinja environment reaches plugins from an AnyIO worker "
            "thread only; render it with await anyio.to_thread.run_sync(template.render, ...) "
            "(as Starlette does for sync endpoints) or use an async environment "
            "(Environment(enable_async=True) and await template.render_async())"
        ) from exc


def _on_event_loop_thread() -> bool:
    try:
        anyio.lowlevel.current_token()
    except anyio.NoEventLoopError:
        return False
    return True


def _look(func: Callable[[], T]) -> T:
    """Read the platform's state on the event loop thread, also from a sync render's worker
    thread (the loop thread owns it); elsewhere read it directly."""
    try:
        return anyio.from_thread.run_sync(func)
    except anyio.NoEventLoopError:
        return func()


def _locale(context: Context, translations: Translations) -> str:
    """The render's ``locale`` variable, else the request's Accept-Language, else ``en``."""
    value = context.get("locale")
    if value is not None and not isinstance(value, Undefined) and str(value):
        return str(value)
    headers = getattr(context.get("request"), "headers", None)
    if headers is not None:
        header = headers.get("accept-language")
        return negotiate_locale(header if isinstance(header, str) else None, translations.languages)
    return "en"


def _log_fallback(plugin: str, exc: GoatKitError) -> None:
    logger.warning("use %s: rendering the fallback: %s", plugin, _first_line(exc))


def _first_line(exc: GoatKitError) -> str:
    lines = exc.message.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"
