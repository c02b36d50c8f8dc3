"""Pieces shared by the manifest and the registration: function specs and validation helpers.

Both ``manifest.yaml`` and the registration JSON are untrusted documents. The helpers here read
one key at a time and report a problem through a ``fail(message)`` callable supplied by the
parser, which adds the file or plugin in front and returns the exception to raise. Every message
they build has the shape ``"<key path>: <what is wrong>; <what to do>"``, for example::

    resources.call_timeout: expected seconds as a number or a string like "500ms" or "2s",
    got "soon"; ...

Key paths use dots for mapping keys and brackets for list items: ``routes[2].method``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "NAME_RE",
    "SEMVER_RE",
    "ArgSpec",
    "Fail",
    "FunctionSpec",
    "Warn",
    "at",
    "describe",
    "expect_list",
    "expect_mapping",
    "get_bool",
    "get_duration",
    "get_int",
    "get_list",
    "get_mapping",
    "get_str",
    "get_str_tuple",
    "get_version",
    "key_path",
    "parse_duration",
    "parse_function_spec",
    "problem",
    "refuse_duplicates",
    "warn_unknown_keys",
]

Fail = Callable[[str], Exception]
"""Turns ``"<key path>: <problem>; <what to do>"`` into the exception to raise."""

Warn = Callable[[str], None]
"""Records a ``"<key path>: <problem>; <what to do>"`` warning."""

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
"""A plugin name: 1..64 of ``a-z``, ``0-9``, ``-`` and ``_``, starting with a letter or digit."""

SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)
"""Semantic version ``x.y.z`` with optional ``-prerelease`` and ``+build`` (semver.org 2.0.0)."""

# Host versions are compared loosely: "1", "0.7", "v0.7.0" and "0.7.0-rc.1" all name a release.
_LOOSE_VERSION_RE = re.compile(
    r"^v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*)){0,2}(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?\Z"
)

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    # Go's time.ParseDuration accepts both micro signs (U+00B5 and U+03BC).
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+")

_DURATION_EXPECTED = 'seconds as a number or a string like "500ms" or "2s"'
_DURATION_HINT = 'use a number of seconds such as 5, or a string such as "500ms", "2s" or "5m"'


# --- key paths and value descriptions ---------------------------------------------------------


def key_path(path: str, key: str) -> str:
    """The path of ``key`` inside the mapping at ``path`` (``""`` is the top level)."""
    return f"{path}.{key}" if path else key


def at(path: str, index: int) -> str:
    """The path of item ``index`` of the list at ``path``."""
    return f"{path}[{index}]"


def describe(value: object) -> str:
    """A short, safe rendering of a value for an error message (JSON-like, truncated)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def problem(path: str, what: str, hint: str) -> str:
    """``"<key path>: <what is wrong>; <what to do>"`` (the top level is called \"top level\")."""
    return f"{path or 'top level'}: {what}; {hint}"


# --- containers -------------------------------------------------------------------------------


def expect_mapping(value: object, path: str, fail: Fail) -> Mapping[str, object]:
    """``value`` as a mapping with string keys, or ``fail``."""
    if not isinstance(value, Mapping):
        raise fail(
            problem(path, f"expected a mapping, got {describe(value)}", "use key: value pairs")
        )
    for key in value:
        if not isinstance(key, str):
            raise fail(
                problem(
                    key_path(path, str(key)),
                    f"keys must be strings, got {describe(key)}",
                    "quote the key",
                )
            )
    return value


def expect_list(value: object, path: str, fail: Fail) -> Sequence[object]:
    """``value`` as a list (a string is not a list), or ``fail``."""
    if not isinstance(value, list | tuple):
        raise fail(problem(path, f"expected a list, got {describe(value)}", "use a list"))
    return value


def get_mapping(
    data: Mapping[str, object], key: str, path: str, fail: Fail
) -> Mapping[str, object] | None:
    """The mapping under ``key``; ``None`` when the key is missing or null."""
    value = data.get(key)
    if value is None:
        return None
    return expect_mapping(value, key_path(path, key), fail)


def get_list(data: Mapping[str, object], key: str, path: str, fail: Fail) -> Sequence[object]:
    """The list under ``key``; empty when the key is missing or null."""
    value = data.get(key)
    if value is None:
        return ()
    return expect_list(value, key_path(path, key), fail)


# --- scalars ----------------------------------------------------------------------------------


def get_str(
    data: Mapping[str, object],
    key: str,
    path: str,
    fail: Fail,
    *,
    default: str = "",
    required: bool = False,
) -> str:
    """The string under ``key``.

    Missing, null and (unless ``required``) empty values give ``default``; a ``required`` key
    must be a non-empty string.
    """
    value = data.get(key)
    where = key_path(path, key)
    if value is None or value == "":
        if required:
            state = "is missing" if value is None else "must not be empty"
            raise fail(problem(where, state, f"set {key} to a non-empty string"))
        return default
    if not isinstance(value, str):
        raise fail(
            problem(
                where,
                f"expected a string, got {describe(value)}",
                "use a string (quote it if it looks like a number, date or true/false)",
            )
        )
    return value


def get_bool(
    data: Mapping[str, object], key: str, path: str, fail: Fail, *, default: bool = False
) -> bool:
    """The boolean under ``key`` (``default`` when missing or null); ``"yes"`` or 1 are refused."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise fail(
            problem(
                key_path(path, key),
                f"expected true or false, got {describe(value)}",
                "use true or false",
            )
        )
    return value


def get_int(
    data: Mapping[str, object],
    key: str,
    path: str,
    fail: Fail,
    *,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    unit: str = "",
) -> int | None:
    """The integer under ``key`` within ``[minimum, maximum]``; ``default`` when missing or null.

    ``true``/``false`` are not integers here, and neither is ``2.5``; ``2.0`` is accepted as 2.
    """
    value = data.get(key)
    if value is None:
        return default
    where = key_path(path, key)
    if minimum is not None and maximum is not None:
        wanted = f"a whole number from {minimum} to {maximum}"
    elif minimum == 1:
        wanted = "a positive whole number"
    elif minimum is not None:
        wanted = f"a whole number of at least {minimum}"
    else:
        wanted = "a whole number"
    if unit:
        wanted += f" ({unit})"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(problem(where, f"expected {wanted}, got {describe(value)}", f"use {wanted}"))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise fail(problem(where, f"expected {wanted}, got {value}", f"use {wanted}"))
    return value


def get_str_tuple(
    data: Mapping[str, object],
    key: str,
    path: str,
    fail: Fail,
    *,
    pattern: re.Pattern[str] | None = None,
    what: str = "a non-empty string",
) -> tuple[str, ...]:
    """The list of non-empty strings under ``key`` (each matching ``pattern`` if given)."""
    where = key_path(path, key)
    out: list[str] = []
    for i, item in enumerate(get_list(data, key, path, fail)):
        if not isinstance(item, str) or not item or (pattern and not pattern.match(item)):
            raise fail(
                problem(at(where, i), f"expected {what}, got {describe(item)}", f"use {what}")
            )
        out.append(item)
    return tuple(out)


def parse_duration(value: object) -> float | None:
    """Seconds from a number or a Go-style duration string; ``None`` when unparseable.

    Accepts ``5``, ``1.5``, ``"5"``, ``"500ms"``, ``"2s"``, ``"1.5s"``, ``"5m"``, ``"1h"`` and
    compound forms such as ``"1h30m"`` (units ``ns``, ``us``, ``ms``, ``s``, ``m``, ``h``, as Go's
    ``time.ParseDuration``). A sign is kept, so callers can reject negative and zero values with
    a precise message.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if not text:
        return None
    if _NUMBER_RE.fullmatch(text):
        return sign * float(text)
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART_RE.match(text, pos)
        if match is None:
            return None
        total += float(match[1]) * _DURATION_UNITS[match[2]]
        pos = match.end()
    return sign * total if math.isfinite(total) else None


def get_duration(data: Mapping[str, object], key: str, path: str, fail: Fail) -> float | None:
    """Seconds (more than 0) under ``key``, see :func:`parse_duration`; ``None`` when unset."""
    value = data.get(key)
    if value is None or value == "":
        return None
    where = key_path(path, key)
    seconds = parse_duration(value)
    if seconds is None:
        raise fail(
            problem(where, f"expected {_DURATION_EXPECTED}, got {describe(value)}", _DURATION_HINT)
        )
    if seconds <= 0:
        raise fail(
            problem(where, f"must be more than 0 seconds, got {describe(value)}", _DURATION_HINT)
        )
    return seconds


def get_version(
    data: Mapping[str, object],
    key: str,
    path: str,
    fail: Fail,
    *,
    default: str | None = None,
    loose: bool = False,
) -> str | None:
    """A version string under ``key``: strict semver, or with ``loose`` also ``"0.7"``/``"v1"``."""
    value = data.get(key)
    if value is None or value == "":
        return default
    where = key_path(path, key)
    pattern = _LOOSE_VERSION_RE if loose else SEMVER_RE
    expected = "a version such as 0.7.0" if loose else "a semantic version x.y.z such as 1.0.0"
    if not isinstance(value, str):
        # YAML reads `version: 1.0` as a number: say so rather than just "wrong type".
        raise fail(
            problem(
                where,
                f"expected {expected} as a string, got {describe(value)}",
                'quote it, e.g. "1.0.0"',
            )
        )
    if not pattern.match(value):
        raise fail(
            problem(
                where,
                f"expected {expected}, got {describe(value)}",
                "use MAJOR.MINOR.PATCH with an optional -prerelease or +build suffix",
            )
        )
    return value


def warn_unknown_keys(
    data: Mapping[str, object], known: Collection[str], path: str, warn: Warn | None
) -> None:
    """Report each key of ``data`` that is not in ``known`` (in document order)."""
    if warn is None:
        return
    for key in data:
        if key not in known:
            warn(problem(key_path(path, key), "unknown key, ignored", "check its spelling"))


# --- function specs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One declared argument of a plugin function."""

    name: str
    type: str = "any"
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function a plugin exports (manifest ``exports``, registration ``functions``)."""

    name: str
    args: tuple[ArgSpec, ...] = ()
    returns: str = "json"
    description: str = ""

    @property
    def arg_names(self) -> tuple[str, ...]:
        """The declared argument names, in order (used to map positional template arguments)."""
        return tuple(arg.name for arg in self.args)


_FUNCTION_KEYS = frozenset({"name", "args", "returns", "description"})
_ARG_KEYS = frozenset({"name", "type", "required", "description"})
_NAME_HINT = "use a non-empty name without spaces"


def _check_name(value: object, where: str, fail: Fail, what: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise fail(problem(where, f"expected {what}, got {describe(value)}", _NAME_HINT))
    return value


def _parse_arg(value: object, path: str, fail: Fail, warn: Warn | None) -> ArgSpec:
    if isinstance(value, str):
        return ArgSpec(_check_name(value, path, fail, "an argument name"))
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _ARG_KEYS, path, warn)
    return ArgSpec(
        name=_check_name(data.get("name"), key_path(path, "name"), fail, "an argument name"),
        type=get_str(data, "type", path, fail, default="any"),
        required=get_bool(data, "required", path, fail),
        description=get_str(data, "description", path, fail),
    )


def parse_function_spec(
    value: object, path: str, fail: Fail, *, warn: Warn | None = None
) -> FunctionSpec:
    """A :class:`FunctionSpec` from a bare name or a ``{name, args, returns, description}`` mapping.

    ``args`` items are names or ``{name, type, required, description}`` mappings; an argument
    name may appear only once.
    """
    if isinstance(value, str):
        return FunctionSpec(_check_name(value, path, fail, "a function name"))
    if not isinstance(value, Mapping):
        raise fail(
            problem(
                path,
                f"expected a function name or a mapping with a name, got {describe(value)}",
                "use a name, or {name: ..., args: [...], returns: ..., description: ...}",
            )
        )
    data = expect_mapping(value, path, fail)
    warn_unknown_keys(data, _FUNCTION_KEYS, path, warn)
    name = _check_name(data.get("name"), key_path(path, "name"), fail, "a function name")
    args_path = key_path(path, "args")
    args = tuple(
        _parse_arg(item, at(args_path, i), fail, warn)
        for i, item in enumerate(get_list(data, "args", path, fail))
    )
    refuse_duplicates(
        ((arg.name, at(args_path, i)) for i, arg in enumerate(args)), fail, "argument"
    )
    return FunctionSpec(
        name=name,
        args=args,
        returns=get_str(data, "returns", path, fail, default="json"),
        description=get_str(data, "description", path, fail),
    )


def refuse_duplicates(items: Iterable[tuple[str, str]], fail: Fail, what: str) -> None:
    """Fail on the second occurrence of a key; ``items`` are ``(key, key path)`` pairs."""
    seen: dict[str, str] = {}
    for key, where in items:
        if key in seen:
            raise fail(
                problem(
                    where,
                    f"duplicate {what} {describe(key)} (already at {seen[key]})",
                    f"give each {what} a different name",
                )
            )
        seen[key] = where


#: The platform's own tables (in ``store.py``): no plugin may own any of them.
PLATFORM_TABLES = (
    "goatkit_grants",
    "goatkit_audit",
    "goatkit_jobs",
    "goatkit_installs",
    "goatkit_meta",
    "goatkit_plugin_state",
)


def table_prefix(plugin: str) -> str:
    """The prefix of the tables a plugin owns (``<prefix>_*``), without the trailing ``_``."""
    return plugin.replace("-", "_").lower()


def table_conflict(plugin: str, others: Iterable[str]) -> str | None:
    """Why ``plugin`` cannot own its tables beside ``others`` (None when it can).

    Two plugins may not share tables: ``a-b`` and ``a_b`` have the same prefix, and ``hello``
    would own ``hello_world_*``, the tables of ``hello-world``.
    """
    mine = table_prefix(plugin)
    taken = [t for t in PLATFORM_TABLES if t.startswith(mine + "_") or mine == "goatkit"]
    if taken:
        return (
            f"the name {plugin!r} would own the platform's own tables ({', '.join(taken)}); "
            "choose another name"
        )
    for other in others:
        theirs = table_prefix(other)
        if other == plugin:
            continue
        if mine == theirs or mine.startswith(theirs + "_") or theirs.startswith(mine + "_"):
            return (
                f"the name {plugin!r} would share database tables with the plugin {other!r} "
                f"({mine}_* and {theirs}_* overlap); rename one of them"
            )
    return None
