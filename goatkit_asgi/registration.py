"""The registration a plugin returns from ``gk_register`` (or the gRPC ``Register`` call).

The JSON is GoatKit's ``GKRegistration`` joined with the design card's fields::

    {"name": "stats", "version": "1.0.0",
     "functions": [{"name": "ticket_counts", "args": [{"name": "days", "type": "int"}]}],
     "hooks": ["after_save"],
     "routes": [{"method": "GET", "path": "/stats/{queue}", "handler": "by_queue"}],
     "menu_items": [{"label": "Statistics", "path": "/stats", "icon": "chart"}],
     "widgets": [...], "jobs": [...], "templates": [...], "i18n": {...},
     "error_codes": [...], "permissions": ["stats.view"]}

The plugin is untrusted, so everything is checked here, once, when it registers: an invalid field
rejects the plugin with a :class:`~goatkit_asgi.errors.RegistrationError` such as
``stats: gk_register: routes[0].method: expected one of GET, POST, ...``; an unknown field is
ignored with a warning. As in GoatKit (Go's ``encoding/json``), ``null`` stands for "not given".
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType

from .errors import RegistrationError
from .specs import (
    Fail,
    FunctionSpec,
    Warn,
    at,
    describe,
    expect_mapping,
    get_bool,
    get_duration,
    get_int,
    get_list,
    get_mapping,
    get_str,
    get_str_tuple,
    get_version,
    key_path,
    parse_duration,
    parse_function_spec,
    problem,
    refuse_duplicates,
    warn_unknown_keys,
)

__all__ = [
    "HTTP_METHODS",
    "MAX_REGISTRATION_BYTES",
    "ErrorCode",
    "Hook",
    "I18n",
    "Job",
    "MenuItem",
    "Registration",
    "Route",
    "TemplateSpec",
    "Widget",
    "parse_registration",
]

logger = logging.getLogger("goatkit")

MAX_REGISTRATION_BYTES = 1024 * 1024
"""Larger registration documents are refused unparsed."""

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
"""Methods a route may name; ``"*"`` (or ``"ANY"``) means all of them."""

_MAX_MENU_DEPTH = 8
_CONVERTORS = frozenset({"str", "int", "float", "path", "uuid"})  # Starlette's
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_PARAM_RE = re.compile(r"\{([^{}]*)\}")
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*\Z")
_CRON_DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)

_TOP_LEVEL_KEYS = frozenset(
    {
        "name",
        "version",
        "description",
        "author",
        "license",
        "homepage",
        "runtime",  # in the design card's example; the manifest decides the runtime
        "functions",
        "hooks",
        "routes",
        "menu_items",
        "widgets",
        "jobs",
        "templates",
        "i18n",
        "error_codes",
        "permissions",
        "min_host_version",
    }
)
_ROUTE_KEYS = frozenset({"method", "path", "handler", "permission", "description", "middleware"})
_MENU_KEYS = frozenset(
    {"id", "label", "path", "icon", "location", "parent", "order", "permission", "children"}
)
_WIDGET_KEYS = frozenset(
    {
        "id",
        "title",
        "handler",
        "location",
        "size",
        "order",
        "refreshable",
        "refresh_sec",
        "description",
        "permission",
    }
)
_JOB_KEYS = frozenset({"id", "handler", "schedule", "description", "enabled", "timeout"})
_TEMPLATE_KEYS = frozenset({"name", "path", "override"})
_HOOK_KEYS = frozenset({"name", "handler", "priority"})
_ERROR_CODE_KEYS = frozenset({"code", "message", "http_status"})
_I18N_KEYS = frozenset({"namespace", "languages", "translations"})


# --- the registration's parts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """An HTTP route served by a plugin function.

    ``path`` is in Starlette syntax (``/reports/{id}``, ``/files/{rest:path}``); GoatKit's Gin
    syntax (``/reports/:id``, ``/files/*rest``) is converted to it.
    """

    method: str
    path: str
    handler: str
    permission: str | None = None
    description: str = ""
    middleware: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MenuItem:
    """A navigation entry; ``id`` defaults to a slug of the label."""

    id: str
    label: str
    path: str = ""
    icon: str = ""
    location: str = ""
    parent: str = ""
    order: int = 0
    permission: str | None = None
    children: tuple[MenuItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Widget:
    """A dashboard widget whose HTML comes from ``handler``."""

    id: str
    title: str
    handler: str
    location: str = ""
    size: str = ""
    order: int = 0
    refreshable: bool = False
    refresh_sec: int = 0
    description: str = ""
    permission: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduled call of ``handler``.

    In the registration JSON a job without ``"enabled"`` is disabled, as in GoatKit (Go reads a
    missing bool as false), so a plugin's jobs run here exactly when they would run there.
    """

    id: str
    handler: str
    schedule: str
    description: str = ""
    enabled: bool = True
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """A template the plugin ships at ``path``, known to the host as ``name``."""

    name: str
    path: str
    override: bool = False


@dataclass(frozen=True, slots=True)
class Hook:
    """A host event the plugin listens to; ``handler`` defaults to the hook's name."""

    name: str
    handler: str
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """An error code the plugin may report (the host shows it as ``<plugin>:<code>``)."""

    code: str
    message: str = ""
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class I18n:
    """Inline translations: language -> key -> text."""

    namespace: str = ""
    languages: tuple[str, ...] = ()
    translations: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True, slots=True)
class Registration:
    """A validated registration."""

    name: str
    version: str = "0.0.0"
    description: str = ""
    author: str = ""
    license: str = ""
    homepage: str = ""
    functions: tuple[FunctionSpec, ...] = ()
    hooks: tuple[Hook, ...] = ()
    routes: tuple[Route, ...] = ()
    menu_items: tuple[MenuItem, ...] = ()
    widgets: tuple[Widget, ...] = ()
    jobs: tuple[Job, ...] = ()
    templates: tuple[TemplateSpec, ...] = ()
    i18n: I18n | None = None
    error_codes: tuple[ErrorCode, ...] = ()
    permissions: tuple[str, ...] = ()
    min_host_version: str | None = None
    warnings: tuple[str, ...] = ()

    def callable_names(self) -> frozenset[str]:
        """Every function name the host may call: functions and route/widget/job/hook handlers."""
        return frozenset(
            [
                *(spec.name for spec in self.functions),
                *(route.handler for route in self.routes),
                *(widget.handler for widget in self.widgets),
                *(job.handler for job in self.jobs),
                *(hook.handler for hook in self.hooks),
            ]
        )


# --- parsing -----------------------------------------------------------------------------------


def parse_registration(
    raw: bytes | str | Mapping[str, object], *, plugin: str, source: str = "gk_register"
) -> Registration:
    """Validate the registration of ``plugin``.

    ``raw`` is the JSON text (at most :data:`MAX_REGISTRATION_BYTES`) or an already-decoded
    object. ``source`` names where it came from in messages (``gk_register`` or ``Register``).
    """
    ctx = _Context(plugin, source)
    data = expect_mapping(_decode(raw, ctx), "", ctx.fail)
    registration = _parse(data, ctx)
    for message in ctx.warnings:
        logger.warning("%s: %s: %s", plugin, source, message)
    return registration


class _Context:
    def __init__(self, plugin: str, source: str) -> None:
        self.plugin = plugin
        self.source = source
        self.warnings: list[str] = []

    def fail(self, message: str) -> RegistrationError:
        return RegistrationError(f"{self.plugin}: {self.source}: {message}", plugin=self.plugin)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _decode(raw: bytes | str | Mapping[str, object], ctx: _Context) -> object:
    if isinstance(raw, Mapping):
        return raw
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_REGISTRATION_BYTES:
        raise ctx.fail(
            problem(
                "",
                f"the registration is {size} bytes, more than the limit of "
                f"{MAX_REGISTRATION_BYTES // (1024 * 1024)} MiB",
                "move large data (translations, templates) into files of the plugin",
            )
        )
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ctx.fail(
                problem("", f"not UTF-8 (invalid byte at offset {exc.start})", "return UTF-8 JSON")
            ) from exc
    else:
        text = raw
    if not text.strip():
        raise ctx.fail(problem("", "the registration is empty", "return a JSON object"))
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ctx.fail(
            problem(
                "",
                f"invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})",
                "return a single JSON object",
            )
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise ctx.fail(problem("", f"invalid JSON ({exc})", "return a single JSON object")) from exc


def _parse(data: Mapping[str, object], ctx: _Context) -> Registration:
    fail, warn = ctx.fail, ctx.warn
    warn_unknown_keys(data, _TOP_LEVEL_KEYS, "", warn)

    name = get_str(data, "name", "", fail, default=ctx.plugin)
    if name != ctx.plugin:
        warn(
            problem(
                "name",
                f"the registration calls the plugin {describe(name)}, its manifest "
                f"{describe(ctx.plugin)}",
                "the manifest's name is used; make them the same",
            )
        )

    functions = tuple(
        parse_function_spec(item, at("functions", i), fail, warn=warn)
        for i, item in enumerate(get_list(data, "functions", "", fail))
    )
    refuse_duplicates(
        ((spec.name, at("functions", i)) for i, spec in enumerate(functions)), fail, "function"
    )

    routes = tuple(
        _parse_route(item, at("routes", i), ctx)
        for i, item in enumerate(get_list(data, "routes", "", fail))
    )
    refuse_duplicates(
        ((f"{route.method} {route.path}", at("routes", i)) for i, route in enumerate(routes)),
        fail,
        "route",
    )

    jobs = tuple(
        _parse_job(item, at("jobs", i), ctx)
        for i, item in enumerate(get_list(data, "jobs", "", fail))
    )
    refuse_duplicates(((job.id, at("jobs", i)) for i, job in enumerate(jobs)), fail, "job id")

    menu_items = tuple(
        _parse_menu_item(item, at("menu_items", i), ctx, depth=1)
        for i, item in enumerate(get_list(data, "menu_items", "", fail))
    )
    widgets = tuple(
        _parse_widget(item, at("widgets", i), ctx)
        for i, item in enumerate(get_list(data, "widgets", "", fail))
    )
    hooks = tuple(
        _parse_hook(item, at("hooks", i), ctx)
        for i, item in enumerate(get_list(data, "hooks", "", fail))
    )
    templates = tuple(
        _parse_template(item, at("templates", i), ctx)
        for i, item in enumerate(get_list(data, "templates", "", fail))
    )
    error_codes = tuple(
        _parse_error_code(item, at("error_codes", i), ctx)
        for i, item in enumerate(get_list(data, "error_codes", "", fail))
    )
    _warn_duplicates(_flatten_menu_ids(menu_items, "menu_items"), "menu item id", warn)
    _warn_duplicates(((w.id, at("widgets", i)) for i, w in enumerate(widgets)), "widget id", warn)
    _warn_duplicates(
        ((f"{h.name} -> {h.handler}", at("hooks", i)) for i, h in enumerate(hooks)), "hook", warn
    )
    _warn_duplicates(
        ((t.name, at("templates", i)) for i, t in enumerate(templates)), "template", warn
    )
    _warn_duplicates(
        ((e.code, at("error_codes", i)) for i, e in enumerate(error_codes)), "error code", warn
    )

    return Registration(
        name=name,
        version=get_version(data, "version", "", fail, default="0.0.0", loose=True) or "0.0.0",
        description=get_str(data, "description", "", fail),
        author=get_str(data, "author", "", fail),
        license=get_str(data, "license", "", fail),
        homepage=get_str(data, "homepage", "", fail),
        functions=functions,
        hooks=hooks,
        routes=routes,
        menu_items=menu_items,
        widgets=widgets,
        jobs=jobs,
        templates=templates,
        i18n=_parse_i18n(data.get("i18n"), ctx),
        error_codes=error_codes,
        permissions=_parse_permissions(data, fail),
        min_host_version=get_version(data, "min_host_version", "", fail, loose=True),
        warnings=tuple(ctx.warnings),
    )


# --- parts ---------------------------------------------------------------------------------------


def _parse_route(value: object, path: str, ctx: _Context) -> Route:
    fail = ctx.fail
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _ROUTE_KEYS, path, ctx.warn)
    method = get_str(data, "method", path, fail, required=True).upper()
    if method == "ANY":
        method = "*"
    if method != "*" and method not in HTTP_METHODS:
        choices = ", ".join(HTTP_METHODS)
        raise fail(
            problem(
                key_path(path, "method"),
                f'expected one of {choices} or "*", got {describe(data.get("method"))}',
                "use one of these methods",
            )
        )
    return Route(
        method=method,
        path=_route_path(get_str(data, "path", path, fail, required=True), path, fail),
        handler=_handler(data, "handler", path, fail),
        permission=get_str(data, "permission", path, fail) or None,
        description=get_str(data, "description", path, fail),
        middleware=get_str_tuple(data, "middleware", path, fail, what="a middleware name"),
    )


def _route_path(value: str, path: str, fail: Fail) -> str:
    where = key_path(path, "path")
    hint = "use a path such as /reports, /reports/{id} or /files/{rest:path}"
    if not value.startswith("/"):
        raise fail(problem(where, f'must start with "/", got {describe(value)}', hint))
    if any(c.isspace() or ord(c) < 32 for c in value) or "?" in value or "#" in value:
        raise fail(
            problem(where, f"must not contain spaces, '?' or '#', got {describe(value)}", hint)
        )
    segments = value.split("/")
    for i, segment in enumerate(segments):
        # GoatKit routes are registered with Gin: ":name" is a segment, "*name" the rest.
        if segment.startswith(":"):
            segments[i] = "{" + segment[1:] + "}"
        elif segment.startswith("*"):
            if i != len(segments) - 1:
                raise fail(
                    problem(where, f"{segment!r} must be the last segment of the path", hint)
                )
            segments[i] = "{" + segment[1:] + ":path}"
    converted = "/".join(segments)
    outside_params = _PARAM_RE.sub("", converted)
    if "{" in outside_params or "}" in outside_params:
        raise fail(problem(where, f"unbalanced braces in {describe(value)}", hint))
    seen: set[str] = set()
    for match in _PARAM_RE.finditer(converted):
        name, _, convertor = match[1].partition(":")
        if not _IDENTIFIER_RE.match(name):
            raise fail(problem(where, f"parameter {describe(name)} is not a valid name", hint))
        if convertor and convertor not in _CONVERTORS:
            raise fail(
                problem(
                    where,
                    f"unknown parameter type {describe(convertor)} "
                    f"(known: {', '.join(sorted(_CONVERTORS))})",
                    hint,
                )
            )
        if name in seen:
            raise fail(problem(where, f"parameter {describe(name)} appears twice", hint))
        seen.add(name)
    return converted


def _parse_menu_item(value: object, path: str, ctx: _Context, *, depth: int) -> MenuItem:
    fail = ctx.fail
    if depth > _MAX_MENU_DEPTH:
        raise fail(
            problem(path, f"menus nest deeper than {_MAX_MENU_DEPTH} levels", "flatten the menu")
        )
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _MENU_KEYS, path, ctx.warn)
    label = get_str(data, "label", path, fail, required=True)
    link = get_str(data, "path", path, fail)
    children_path = key_path(path, "children")
    children = tuple(
        _parse_menu_item(item, at(children_path, i), ctx, depth=depth + 1)
        for i, item in enumerate(get_list(data, "children", path, fail))
    )
    if link and not link.startswith(("/", "https://", "http://")):
        raise fail(
            problem(
                key_path(path, "path"),
                f'must start with "/" or be an http(s) URL, got {describe(link)}',
                'use an absolute path such as "/admin/stats"',
            )
        )
    if not link and not children:
        raise fail(
            problem(
                key_path(path, "path"),
                "is missing, and the item has no children",
                'give the path the item links to, such as "/admin/stats"',
            )
        )
    return MenuItem(
        id=get_str(data, "id", path, fail) or _slug(label) or _slug(link) or "item",
        label=label,
        path=link,
        icon=get_str(data, "icon", path, fail),
        location=get_str(data, "location", path, fail),
        parent=get_str(data, "parent", path, fail),
        order=get_int(data, "order", path, fail, default=0) or 0,
        permission=get_str(data, "permission", path, fail) or None,
        children=children,
    )


def _parse_widget(value: object, path: str, ctx: _Context) -> Widget:
    fail = ctx.fail
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _WIDGET_KEYS, path, ctx.warn)
    handler = _handler(data, "handler", path, fail)
    return Widget(
        id=get_str(data, "id", path, fail) or handler,
        title=get_str(data, "title", path, fail),
        handler=handler,
        location=get_str(data, "location", path, fail),
        size=get_str(data, "size", path, fail),
        order=get_int(data, "order", path, fail, default=0) or 0,
        refreshable=get_bool(data, "refreshable", path, fail),
        refresh_sec=get_int(data, "refresh_sec", path, fail, default=0, minimum=0, unit="seconds")
        or 0,
        description=get_str(data, "description", path, fail),
        permission=get_str(data, "permission", path, fail) or None,
    )


def _parse_job(value: object, path: str, ctx: _Context) -> Job:
    fail = ctx.fail
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _JOB_KEYS, path, ctx.warn)
    schedule = get_str(data, "schedule", path, fail, required=True)
    if not _looks_like_cron(schedule):
        raise fail(
            problem(
                key_path(path, "schedule"),
                f"expected a cron expression with 5 or 6 fields, got {describe(schedule)}",
                'use e.g. "0 8 * * 1", "@hourly" or "@every 5m"',
            )
        )
    return Job(
        id=get_str(data, "id", path, fail, required=True),
        handler=_handler(data, "handler", path, fail),
        schedule=schedule.strip(),
        description=get_str(data, "description", path, fail),
        enabled=get_bool(data, "enabled", path, fail, default=False),
        timeout=get_duration(data, "timeout", path, fail),
    )


def _looks_like_cron(schedule: str) -> bool:
    fields = schedule.split()
    if fields and fields[0].startswith("@"):
        if fields[0] == "@every":
            seconds = parse_duration(fields[1]) if len(fields) == 2 else None
            return seconds is not None and seconds > 0
        return len(fields) == 1 and fields[0] in _CRON_DESCRIPTORS
    return len(fields) in (5, 6)


def _parse_template(value: object, path: str, ctx: _Context) -> TemplateSpec:
    fail = ctx.fail
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _TEMPLATE_KEYS, path, ctx.warn)
    return TemplateSpec(
        name=_package_path(data, "name", path, fail, "a template name such as stats/index.html"),
        path=_package_path(data, "path", path, fail, "a path inside the plugin"),
        override=get_bool(data, "override", path, fail),
    )


def _parse_hook(value: object, path: str, ctx: _Context) -> Hook:
    fail = ctx.fail
    if isinstance(value, str):
        name = _name(value, path, fail, "a hook name")
        return Hook(name=name, handler=name)
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _HOOK_KEYS, path, ctx.warn)
    name = _name(data.get("name"), key_path(path, "name"), fail, "a hook name")
    handler = name
    if data.get("handler") not in (None, ""):
        handler = _handler(data, "handler", path, fail)
    return Hook(name=name, handler=handler, priority=get_int(data, "priority", path, fail) or 0)


def _parse_error_code(value: object, path: str, ctx: _Context) -> ErrorCode:
    fail = ctx.fail
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _ERROR_CODE_KEYS, path, ctx.warn)
    # Go sends 0 for "no status" (the field has no omitempty).
    status = get_int(data, "http_status", path, fail, default=0, minimum=0, maximum=599)
    if status and status < 100:
        raise fail(
            problem(
                key_path(path, "http_status"),
                f"expected an HTTP status from 100 to 599, got {status}",
                "use a status such as 400 or 500, or leave it out",
            )
        )
    return ErrorCode(
        code=_name(data.get("code"), key_path(path, "code"), fail, "an error code"),
        message=get_str(data, "message", path, fail),
        http_status=status or None,
    )


def _parse_i18n(value: object, ctx: _Context) -> I18n | None:
    fail = ctx.fail
    if value is None:
        return None
    data = expect_mapping(value, "i18n", fail)
    if not data:
        return None
    if not any(key in data for key in _I18N_KEYS):
        # The plain form, {"en": {"key": "text"}, ...}, as GoatKit's stats plugin sends it.
        translations = _translations(data, "i18n", fail)
        return I18n(languages=tuple(translations), translations=translations)
    warn_unknown_keys(data, _I18N_KEYS, "i18n", ctx.warn)
    raw = get_mapping(data, "translations", "i18n", fail)
    translations = _translations(raw or {}, "i18n.translations", fail)
    languages = get_str_tuple(
        data, "languages", "i18n", fail, pattern=_LANGUAGE_RE, what='a language code such as "de"'
    )
    return I18n(
        namespace=get_str(data, "namespace", "i18n", fail),
        languages=languages or tuple(translations),
        translations=translations,
    )


def _translations(
    data: Mapping[str, object], path: str, fail: Fail
) -> Mapping[str, Mapping[str, str]]:
    out: dict[str, Mapping[str, str]] = {}
    for language, table in data.items():
        where = key_path(path, language)
        if not _LANGUAGE_RE.match(language):
            raise fail(
                problem(
                    where,
                    f"expected a language code such as en or pt-BR, got {describe(language)}",
                    'use {"en": {"key": "text"}} or {"namespace", "languages", "translations"}',
                )
            )
        texts: dict[str, str] = {}
        for key, text in expect_mapping(table, where, fail).items():
            if not key or not isinstance(text, str):
                raise fail(
                    problem(
                        key_path(where, key),
                        f"expected a non-empty key with a text, got {describe(text)}",
                        "give each key a string",
                    )
                )
            texts[key] = text
        out[language] = MappingProxyType(texts)
    return MappingProxyType(out)


def _parse_permissions(data: Mapping[str, object], fail: Fail) -> tuple[str, ...]:
    names: list[str] = []
    for i, item in enumerate(get_list(data, "permissions", "", fail)):
        where = at("permissions", i)
        if isinstance(item, Mapping):
            entry = expect_mapping(item, where, fail)
            item = entry.get("name")
            where = key_path(where, "name")
        names.append(_name(item, where, fail, "a permission name"))
    return tuple(dict.fromkeys(names))


# --- helpers -----------------------------------------------------------------------------------


def _name(value: object, where: str, fail: Fail, what: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise fail(
            problem(where, f"expected {what}, got {describe(value)}", "use a name without spaces")
        )
    return value


def _handler(data: Mapping[str, object], key: str, path: str, fail: Fail) -> str:
    value = data.get(key)
    where = key_path(path, key)
    if value is None or value == "":
        raise fail(problem(where, "is missing", "name the plugin function that handles it"))
    return _name(value, where, fail, "a function name")


def _package_path(data: Mapping[str, object], key: str, path: str, fail: Fail, what: str) -> str:
    value = get_str(data, key, path, fail, required=True)
    where = key_path(path, key)
    pure = PurePosixPath(value)
    if "\\" in value or pure.is_absolute() or ".." in pure.parts:
        raise fail(
            problem(
                where,
                f"must be a relative path without '..', got {describe(value)}",
                f"use {what}",
            )
        )
    return pure.as_posix()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _flatten_menu_ids(items: Sequence[MenuItem], path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        where = at(path, i)
        out.append((item.id, where))
        out.extend(_flatten_menu_ids(item.children, key_path(where, "children")))
    return out


def _warn_duplicates(items: Iterable[tuple[str, str]], what: str, warn: Warn) -> None:
    seen: dict[str, str] = {}
    for key, where in items:
        if key in seen:
            warn(
                problem(
                    where, f"duplicate {what} {describe(key)} (also at {seen[key]})", "keep one"
                )
            )
        else:
            seen[key] = where
