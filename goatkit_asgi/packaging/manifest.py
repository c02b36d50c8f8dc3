"""The plugin manifest: ``manifest.yaml`` (or GoatKit's ``plugin.yaml``) in a plugin directory.

The manifest is read at discovery time, before anything of the plugin is loaded, so it is the
only place that says which runtime to start, what the plugin asks of the host and which functions
templates may call. Only ``name`` is required::

    name: stats
    version: 1.2.0
    runtime: wasm                      # or grpc (then one of command / binary / endpoint)
    exports: [ticket_counts, {name: top_queues, args: [limit]}]
    resources: {memory_mb: 32, call_timeout: 2s, max_instances: 4}
    capabilities:
      db: {read: [tickets, queues]}
      http: {hosts: [api.example.com]}
    permissions: [stats.view]
    config: {days: 7}

Unknown keys are warned about (``Manifest.warnings`` and the ``goatkit`` logger); a wrong value
raises :class:`~goatkit_asgi.errors.ManifestError` whose message reads
``"<dir>/manifest.yaml: <key path>: <what is wrong>; <what to do>"``.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import yaml

from ..errors import ManifestError
from ..specs import (
    NAME_RE,
    Fail,
    FunctionSpec,
    Warn,
    at,
    describe,
    expect_list,
    expect_mapping,
    get_bool,
    get_duration,
    get_int,
    get_mapping,
    get_str,
    get_str_tuple,
    get_version,
    key_path,
    parse_function_spec,
    problem,
    refuse_duplicates,
    warn_unknown_keys,
)

__all__ = [
    "MANIFEST_NAMES",
    "MAX_MANIFEST_BYTES",
    "Capabilities",
    "ConfigValue",
    "Manifest",
    "Resources",
    "load_manifest",
    "parse_manifest",
]

logger = logging.getLogger("goatkit")

MANIFEST_NAMES = ("manifest.yaml", "plugin.yaml")
"""Manifest file names, in order of preference (``plugin.yaml`` is GoatKit's name)."""

MAX_MANIFEST_BYTES = 256 * 1024
"""Larger manifest files are refused unread."""

_MAX_INSTANCES = 64

_RUNTIMES = ("wasm", "grpc")

ConfigValue = str | int | float | bool | None
"""A configuration default: a single YAML value."""

_TOP_LEVEL_KEYS = frozenset(
    {
        "name",
        "version",
        "runtime",
        "description",
        "author",
        "license",
        "homepage",
        "wasm",
        "binary",
        "command",
        "endpoint",
        "tls",
        "exports",
        "min_host_version",
        "resources",
        "capabilities",
        "permissions",
        "config",
    }
)
_RESOURCE_KEYS = frozenset({"memory_mb", "call_timeout", "max_instances", "fuel"})
_CAPABILITY_KEYS = frozenset({"db", "http", "email", "jobs", "plugins", "events", "log", "cache"})
_TLS_KEYS = ("ca", "cert", "key")

# Table names may carry "*" wildcards (a plugin's own tables are "<name>_*").
_TABLE_RE = re.compile(r"^[A-Za-z0-9_.*-]+\Z")
# A host name or "*.domain" pattern, optionally with a port; "*" alone means any host.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^(?:\*|(?:\*\.)?{_LABEL}(?:\.{_LABEL})*)(?::\d{{1,5}})?\Z")


# --- the manifest's parts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resources:
    """Limits the plugin asks for; ``None`` means "the platform's default"."""

    memory_mb: int | None = None
    call_timeout: float | None = None
    max_instances: int | None = None
    fuel: int | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a plugin asks of the host (manifest ``capabilities``) or was granted (grants).

    ``log`` and the plugin's own cache namespace are always allowed and so have no field here.
    """

    db_read: tuple[str, ...] = ()
    db_write: tuple[str, ...] = ()
    http_hosts: tuple[str, ...] = ()
    email: bool = False
    jobs: bool = False
    plugins: tuple[str, ...] = ()
    events: bool = False

    def is_empty(self) -> bool:
        """True when nothing beyond the always-allowed capabilities is asked for."""
        return not (
            self.db_read
            or self.db_write
            or self.http_hosts
            or self.email
            or self.jobs
            or self.plugins
            or self.events
        )

    def to_dict(self) -> dict[str, object]:
        """The YAML/JSON shape accepted by :meth:`from_dict`, leaving out empty parts."""
        out: dict[str, object] = {}
        db: dict[str, list[str]] = {}
        if self.db_read:
            db["read"] = list(self.db_read)
        if self.db_write:
            db["write"] = list(self.db_write)
        if db:
            out["db"] = db
        if self.http_hosts:
            out["http"] = {"hosts": list(self.http_hosts)}
        if self.email:
            out["email"] = True
        if self.jobs:
            out["jobs"] = True
        if self.plugins:
            out["plugins"] = list(self.plugins)
        if self.events:
            out["events"] = True
        return out

    @classmethod
    def from_dict(
        cls, value: object, path: str, fail: Fail, *, warn: Warn | None = None
    ) -> Capabilities:
        """Validate ``{db: {read, write}, http: {hosts}, email, jobs, plugins, events}``.

        ``value`` may be ``None`` (nothing asked). ``log`` and ``cache`` are accepted and ignored;
        other unknown keys are passed to ``warn``. Problems are raised through ``fail`` with key
        paths under ``path`` (for example ``capabilities.db.read[1]``).
        """
        if value is None:
            return cls()
        data = expect_mapping(value, path, fail)
        warn_unknown_keys(data, _CAPABILITY_KEYS, path, warn)
        db_read: tuple[str, ...] = ()
        db_write: tuple[str, ...] = ()
        db = get_mapping(data, "db", path, fail)
        if db is not None:
            db_path = key_path(path, "db")
            warn_unknown_keys(db, ("read", "write"), db_path, warn)
            db_read = _tables(db, "read", db_path, fail)
            db_write = _tables(db, "write", db_path, fail)
        hosts: tuple[str, ...] = ()
        http = get_mapping(data, "http", path, fail)
        if http is not None:
            http_path = key_path(path, "http")
            warn_unknown_keys(http, ("hosts",), http_path, warn)
            hosts = get_str_tuple(
                http,
                "hosts",
                http_path,
                fail,
                pattern=_HOST_RE,
                what='a host name such as "api.example.com" or "*.example.org"',
            )
        plugins = get_str_tuple(data, "plugins", path, fail, pattern=NAME_RE, what="a plugin name")
        return cls(
            db_read=db_read,
            db_write=db_write,
            http_hosts=_unique(host.lower() for host in hosts),
            email=get_bool(data, "email", path, fail),
            jobs=get_bool(data, "jobs", path, fail),
            plugins=_unique(plugins),
            events=get_bool(data, "events", path, fail),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated plugin manifest. Paths (``wasm``, ``binary``, ``tls``) are relative to
    ``directory`` and known to stay inside it."""

    name: str
    version: str = "0.0.0"
    runtime: str = "wasm"
    description: str = ""
    author: str = ""
    license: str = ""
    homepage: str = ""
    wasm: str | None = "plugin.wasm"
    binary: str | None = None
    command: tuple[str, ...] | None = None
    endpoint: str | None = None
    tls: Mapping[str, str] | None = None
    exports: tuple[FunctionSpec, ...] = ()
    min_host_version: str | None = None
    resources: Resources = Resources()
    capabilities: Capabilities = Capabilities()
    permissions: tuple[str, ...] = ()
    permission_descriptions: tuple[tuple[str, str], ...] = ()
    config: Mapping[str, ConfigValue] = field(default_factory=lambda: MappingProxyType({}))
    source: Path = Path(MANIFEST_NAMES[0])
    directory: Path = Path()
    warnings: tuple[str, ...] = ()

    def export(self, name: str) -> FunctionSpec | None:
        """The declared export called ``name``, if any."""
        for spec in self.exports:
            if spec.name == name:
                return spec
        return None


# --- reading -----------------------------------------------------------------------------------


def load_manifest(plugin_dir: Path) -> Manifest:
    """Find, read and validate the manifest of the plugin in ``plugin_dir``.

    ``manifest.yaml`` is preferred over ``plugin.yaml``. The file must be UTF-8 YAML of at most
    :data:`MAX_MANIFEST_BYTES`; a key given twice in one mapping is an error.
    """
    plugin_dir = Path(plugin_dir)
    dir_name = plugin_dir.name or str(plugin_dir)
    present = [plugin_dir / name for name in MANIFEST_NAMES if (plugin_dir / name).is_file()]
    if not present:
        raise ManifestError(
            f"{dir_name}: no {' or '.join(MANIFEST_NAMES)} found; add a {MANIFEST_NAMES[0]} "
            f"with at least `name: {dir_name}`",
            plugin=dir_name,
        )
    source = present[0]
    label = _label(source, plugin_dir)
    extra = [
        problem("", f"{other.name} is ignored because {source.name} is present", "remove one")
        for other in present[1:]
    ]
    text = _read_text(source, label, dir_name)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # _StrictLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ManifestError(_yaml_message(label, exc), plugin=dir_name) from exc
    if data is None:
        raise ManifestError(
            f"{label}: the file is empty; add at least `name: {dir_name}`", plugin=dir_name
        )
    return _parse(data, source=source, directory=plugin_dir, early_warnings=extra)


def parse_manifest(data: object, *, source: Path, directory: Path) -> Manifest:
    """Validate already-loaded manifest ``data`` read from ``source`` in ``directory``."""
    return _parse(data, source=Path(source), directory=Path(directory), early_warnings=[])


def _read_text(source: Path, label: str, plugin: str) -> str:
    try:
        with source.open("rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(
            f"{label}: cannot be read ({exc.strerror or exc}); check that the file is readable",
            plugin=plugin,
        ) from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"{label}: the file is larger than {MAX_MANIFEST_BYTES // 1024} KiB; a manifest "
            "only describes the plugin, so keep data and translations in separate files",
            plugin=plugin,
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{label}: is not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8",
            plugin=plugin,
        ) from exc


def _yaml_message(label: str, exc: yaml.YAMLError) -> str:
    where = ""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        where = f"line {mark.line + 1}, column {mark.column + 1}: "
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{context}, {what}" if context else what
    return f"{label}: {where}invalid YAML ({detail}); correct the YAML there"


# The C parser, where libyaml is there, reads a manifest about ten times faster (startup scans
# every manifest); both are safe loaders.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    seen: set[tuple[str, str]] = set()
    for key_node, _value in node.value:
        # Merge keys ("<<") may legitimately be overridden, so only plain scalars are compared.
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key_node.value!r} twice",
                    key_node.start_mark,
                )
            seen.add(ident)
    data: dict[Any, Any] = {}
    yield data
    data.update(loader.construct_mapping(node))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --- validation --------------------------------------------------------------------------------


class _Context:
    """Where errors and warnings of one manifest go."""

    def __init__(self, label: str, plugin: str) -> None:
        self.label = label
        self.plugin = plugin
        self.warnings: list[str] = []

    def fail(self, message: str) -> ManifestError:
        return ManifestError(f"{self.label}: {message}", plugin=self.plugin)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _parse(data: object, *, source: Path, directory: Path, early_warnings: list[str]) -> Manifest:
    ctx = _Context(_label(source, directory), directory.name or str(directory))
    for message in early_warnings:
        ctx.warn(message)
    fail = ctx.fail
    top = expect_mapping(data, "", fail)

    name = get_str(top, "name", "", fail, required=True)
    if not NAME_RE.match(name):
        raise fail(
            problem(
                "name",
                f"{describe(name)} is not a valid plugin name",
                "use 1 to 64 lowercase letters, digits, '-' or '_', starting with a letter "
                "or digit",
            )
        )
    ctx.plugin = name
    warn_unknown_keys(top, _TOP_LEVEL_KEYS, "", ctx.warn)

    version = get_version(top, "version", "", fail, default="0.0.0") or "0.0.0"
    runtime = get_str(top, "runtime", "", fail, default="wasm")
    if runtime not in _RUNTIMES:
        raise fail(
            problem(
                "runtime", f"expected wasm or grpc, got {describe(runtime)}", "use wasm or grpc"
            )
        )

    wasm, binary, command, endpoint = _parse_entry_point(top, runtime, directory, fail)
    tls = _parse_tls(top, runtime, directory, ctx)

    exports = tuple(
        parse_function_spec(item, at("exports", i), fail, warn=ctx.warn)
        for i, item in enumerate(_list(top, "exports", fail))
    )
    refuse_duplicates(
        ((spec.name, at("exports", i)) for i, spec in enumerate(exports)), fail, "export"
    )

    permissions, descriptions = _parse_permissions(top, fail)

    manifest = Manifest(
        name=name,
        version=version,
        runtime=runtime,
        description=get_str(top, "description", "", fail),
        author=get_str(top, "author", "", fail),
        license=get_str(top, "license", "", fail),
        homepage=get_str(top, "homepage", "", fail),
        wasm=wasm,
        binary=binary,
        command=command,
        endpoint=endpoint,
        tls=tls,
        exports=exports,
        min_host_version=get_version(top, "min_host_version", "", fail, loose=True),
        resources=_parse_resources(top, ctx),
        capabilities=Capabilities.from_dict(
            top.get("capabilities"), "capabilities", fail, warn=ctx.warn
        ),
        permissions=permissions,
        permission_descriptions=descriptions,
        config=_parse_config(top, fail),
        source=source,
        directory=directory,
        warnings=tuple(ctx.warnings),
    )
    # Logged only for a manifest that is accepted; a refused one is reported by its error.
    for message in manifest.warnings:
        logger.warning("%s: %s", ctx.label, message)
    return manifest


def _parse_entry_point(
    top: Mapping[str, object], runtime: str, directory: Path, fail: Fail
) -> tuple[str | None, str | None, tuple[str, ...] | None, str | None]:
    given = [key for key in ("command", "binary", "endpoint") if top.get(key) not in (None, "")]
    if runtime == "wasm":
        if given:
            raise fail(
                problem(
                    given[0],
                    f"{given[0]} is for runtime grpc, but runtime is wasm",
                    "remove it, or set `runtime: grpc`",
                )
            )
        wasm = _relative_file(top, "wasm", directory, fail) or "plugin.wasm"
        return wasm, None, None, None
    if top.get("wasm") is not None:
        raise fail(
            problem(
                "wasm",
                "wasm is for runtime wasm, but runtime is grpc",
                "remove it, or set `runtime: wasm`",
            )
        )
    if not given:
        raise fail(
            problem(
                "runtime",
                "runtime grpc needs one of command, binary or endpoint, and none is set",
                'add `command: ["python", "plugin.py"]`, `binary: ./my-plugin` or '
                "`endpoint: host:port`",
            )
        )
    if len(given) > 1:
        raise fail(
            problem(
                given[1],
                f"{' and '.join(given)} are set, but a plugin has exactly one of them",
                "keep only one",
            )
        )
    binary = _relative_file(top, "binary", directory, fail)
    command = _parse_command(top, directory, fail)
    endpoint = _parse_endpoint(top, fail)
    return None, binary, command, endpoint


def _parse_command(
    top: Mapping[str, object], directory: Path, fail: Fail
) -> tuple[str, ...] | None:
    value = top.get("command")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise fail(
                problem("command", f"cannot be split into arguments ({exc})", "balance the quotes")
            ) from exc
    else:
        items = expect_list(value, "command", fail)
        argv = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise fail(
                    problem(
                        at("command", i),
                        f"expected a string, got {describe(item)}",
                        "quote each argument",
                    )
                )
            argv.append(item)
    if not argv or not argv[0]:
        raise fail(
            problem("command", "names no program", 'give the program first, e.g. ["node", "x.js"]')
        )
    program = argv[0]
    # A bare name ("node") is looked up on PATH and an absolute path is a system program; a
    # relative path is a file of the plugin and must stay inside its directory.
    if "/" in program and not program.startswith("/"):
        # Checked, but kept as written: "./run" must not turn into "run", a name on PATH.
        _inside(program, at("command", 0), directory, fail)
    elif ".." in PurePosixPath(program).parts:
        raise fail(
            problem(at("command", 0), "must not contain '..'", "use a path inside the plugin")
        )
    return tuple(argv)


def _parse_endpoint(top: Mapping[str, object], fail: Fail) -> str | None:
    endpoint = get_str(top, "endpoint", "", fail)
    if not endpoint:
        return None
    host, sep, port = endpoint.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    valid_host = bool(host) and (bracketed or (":" not in host and "/" not in host))
    if (
        not sep
        or not valid_host
        or any(c.isspace() for c in endpoint)
        or not port.isdigit()
        or not 1 <= int(port) <= 65535
    ):
        raise fail(
            problem(
                "endpoint",
                f"expected host:port with a port from 1 to 65535, got {describe(endpoint)}",
                'use e.g. "127.0.0.1:50051" or "plugins.internal:443" (no scheme)',
            )
        )
    return endpoint


def _parse_tls(
    top: Mapping[str, object], runtime: str, directory: Path, ctx: _Context
) -> Mapping[str, str] | None:
    fail = ctx.fail
    data = get_mapping(top, "tls", "", fail)
    if data is None:
        return None
    if runtime != "grpc":
        raise fail(problem("tls", "tls is for runtime grpc only", "remove it"))
    warn_unknown_keys(data, _TLS_KEYS, "tls", ctx.warn)
    files = {key: _relative_file(data, key, directory, fail, path="tls") for key in _TLS_KEYS}
    if (files["cert"] is None) != (files["key"] is None):
        missing = "key" if files["key"] is None else "cert"
        raise fail(
            problem(
                f"tls.{missing}",
                "a client certificate needs both cert and key",
                f"add tls.{missing}, or remove the other",
            )
        )
    kept = {key: value for key, value in files.items() if value is not None}
    return MappingProxyType(kept) if kept else None


def _parse_resources(top: Mapping[str, object], ctx: _Context) -> Resources:
    fail = ctx.fail
    data = get_mapping(top, "resources", "", fail)
    if data is None:
        return Resources()
    for key in data:
        if key == "permissions":
            ctx.warn(
                problem(
                    "resources.permissions",
                    "GoatKit-style permission requests are not read, ignored",
                    "declare what the plugin needs under `capabilities:`",
                )
            )
        elif key not in _RESOURCE_KEYS:
            ctx.warn(
                problem(key_path("resources", key), "unknown key, ignored", "check its spelling")
            )
    return Resources(
        memory_mb=get_int(data, "memory_mb", "resources", fail, minimum=1, unit="megabytes"),
        call_timeout=get_duration(data, "call_timeout", "resources", fail),
        max_instances=get_int(
            data, "max_instances", "resources", fail, minimum=1, maximum=_MAX_INSTANCES
        ),
        fuel=get_int(data, "fuel", "resources", fail, minimum=1),
    )


def _parse_permissions(
    top: Mapping[str, object], fail: Fail
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    names: list[tuple[str, str]] = []
    descriptions: list[tuple[str, str]] = []
    for i, item in enumerate(_list(top, "permissions", fail)):
        where = at("permissions", i)
        description = ""
        if isinstance(item, Mapping):
            entry = expect_mapping(item, where, fail)
            name_value: object = entry.get("name")
            description = get_str(entry, "description", where, fail)
            where = key_path(where, "name")
        else:
            name_value = item
        if (
            not isinstance(name_value, str)
            or not name_value
            or any(c.isspace() for c in name_value)
        ):
            raise fail(
                problem(
                    where,
                    f"expected a permission name, got {describe(name_value)}",
                    'use a name without spaces such as "stats.view", or {name, description}',
                )
            )
        names.append((name_value, where))
        if description:
            descriptions.append((name_value, description))
    refuse_duplicates(names, fail, "permission")
    return tuple(name for name, _ in names), tuple(descriptions)


def _parse_config(top: Mapping[str, object], fail: Fail) -> Mapping[str, ConfigValue]:
    data = get_mapping(top, "config", "", fail)
    out: dict[str, ConfigValue] = {}
    for key, value in (data or {}).items():
        where = key_path("config", key)
        if not key:
            raise fail(problem(where, "a config key must not be empty", "name the key"))
        if not (value is None or isinstance(value, str | int | float | bool)):
            raise fail(
                problem(
                    where,
                    f"expected a single value (string, number or true/false), got "
                    f"{describe(value)}",
                    "store structured settings as a JSON string",
                )
            )
        out[key] = value
    return MappingProxyType(out)


# --- helpers -----------------------------------------------------------------------------------


def _relative_file(
    data: Mapping[str, object], key: str, directory: Path, fail: Fail, *, path: str = ""
) -> str | None:
    value = get_str(data, key, path, fail)
    if not value:
        return None
    return _inside(value, key_path(path, key), directory, fail)


def _inside(value: str, where: str, directory: Path, fail: Fail) -> str:
    """``value`` as a normalised relative path that stays inside ``directory``."""
    hint = "use a path relative to the plugin directory, such as plugin.wasm or bin/plugin"
    if "\\" in value or "\x00" in value:
        raise fail(problem(where, f"{describe(value)} contains a backslash or NUL", hint))
    pure = PurePosixPath(value)
    if pure.is_absolute() or (len(value) > 1 and value[1] == ":" and value[0].isalpha()):
        raise fail(problem(where, f"{describe(value)} is an absolute path", hint))
    if ".." in pure.parts:
        raise fail(problem(where, f"{describe(value)} leaves the plugin directory ('..')", hint))
    if not pure.parts or pure.parts == (".",):
        raise fail(problem(where, f"{describe(value)} names the plugin directory itself", hint))
    root = directory.resolve()
    # Catches symbolic links inside the plugin that point elsewhere.
    if not (root / pure).resolve().is_relative_to(root):
        raise fail(problem(where, f"{describe(value)} resolves outside the plugin directory", hint))
    return pure.as_posix()


def _list(data: Mapping[str, object], key: str, fail: Fail) -> tuple[object, ...]:
    value = data.get(key)
    return () if value is None else tuple(expect_list(value, key, fail))


def _tables(data: Mapping[str, object], key: str, path: str, fail: Fail) -> tuple[str, ...]:
    tables = get_str_tuple(data, key, path, fail, pattern=_TABLE_RE, what="a table name")
    return _unique(tables)


def _unique(items: Iterator[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _label(source: Path, directory: Path) -> str:
    """How messages name the manifest: ``<plugin dir>/<file>``, never an absolute path."""
    try:
        relative = source.relative_to(directory)
    except ValueError:
        return source.name
    return f"{directory.name}/{relative.as_posix()}" if directory.name else relative.as_posix()
