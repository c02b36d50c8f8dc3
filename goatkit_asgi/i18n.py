"""Plugin translations: ``i18n/<lang>.yaml`` files and the registration's ``i18n``.

A plugin ships one YAML file per language, flat or nested (nested keys are joined with dots)::

    # i18n/de.yaml
    title: Statistik
    menu:
      title: Berichte          # the key is "menu.title"
    greeting: Hallo {name}!

Files win over the inline ``i18n.translations`` of the registration, key by key. A broken file is
logged and ignored: translations never stop a plugin from working.

Lookups fall back from the most specific language to the least (``de-AT``, then ``de``), then to
``en``, then to the key itself; ``{name}`` placeholders are filled from keyword arguments, and a
placeholder without a value is left as it is.
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .registration import I18n

__all__ = [
    "Translations",
    "format_text",
    "i18n_files",
    "load_translations",
    "negotiate_locale",
]

logger = logging.getLogger("goatkit")

DEFAULT_LANGUAGE = "en"

# Limits on one i18n file: plugins are untrusted, and YAML aliases can make a small file
# describe a huge tree.
_MAX_FILE_BYTES = 1024 * 1024
_MAX_KEYS = 10_000
_MAX_DEPTH = 32
_MAX_ACCEPT_ENTRIES = 32

_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*\Z")
_ACCEPT_TAG_RE = re.compile(r"^(?:\*|[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*)\Z")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_FORMATTER = string.Formatter()


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's yes/no/on/off booleans: ``no: Nein`` is a key, not False."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _normalize(language: str) -> str:
    return language.replace("_", "-").lower()


class _TooLarge(Exception):
    pass


class Translations:
    """A plugin's texts by language and key, with fallback lookups (see the module docstring)."""

    __slots__ = ("_catalogs", "_languages")

    def __init__(self, catalogs: Mapping[str, Mapping[str, str]] | None = None) -> None:
        merged: dict[str, dict[str, str]] = {}
        languages: list[str] = []
        for language, texts in (catalogs or {}).items():
            key = _normalize(language)
            if key not in merged:
                merged[key] = {}
                languages.append(language.replace("_", "-"))
            merged[key].update(texts)
        self._catalogs: Mapping[str, Mapping[str, str]] = MappingProxyType(
            {key: MappingProxyType(texts) for key, texts in merged.items()}
        )
        self._languages = tuple(languages)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages that have texts, in the order they were first given."""
        return self._languages

    def catalog(self, language: str) -> Mapping[str, str]:
        """The texts of exactly ``language`` (no fallback); empty when there are none."""
        return self._catalogs.get(_normalize(language), MappingProxyType({}))

    def lookup(self, key: str, locale: str | None) -> str | None:
        """The text for ``key`` in ``locale`` or the first fallback language that has it."""
        for language in _fallbacks(locale):
            texts = self._catalogs.get(language)
            if texts is not None and key in texts:
                return texts[key]
        return None

    def gettext(self, key: str, locale: str | None, /, **params: Any) -> str:
        """The text for ``key`` (or the key itself) with ``{name}`` placeholders filled."""
        text = self.lookup(key, locale)
        return format_text(key if text is None else text, params)

    def ngettext(
        self, singular: str, plural: str, n: int, locale: str | None, /, **params: Any
    ) -> str:
        """``singular`` when ``n`` is 1, else ``plural``; ``{n}`` is available to the text."""
        params.setdefault("n", n)
        return self.gettext(singular if n == 1 else plural, locale, **params)

    def __repr__(self) -> str:
        return f"Translations(languages={list(self._languages)!r})"


def _fallbacks(locale: str | None) -> Iterator[str]:
    """``de-at`` → ``de-at``, ``de``, then ``en`` (normalized, without repeats)."""
    seen: set[str] = set()
    parts = _normalize(locale).split("-") if locale else []
    for end in range(len(parts), 0, -1):
        language = "-".join(parts[:end])
        if language and language not in seen:
            seen.add(language)
            yield language
    if DEFAULT_LANGUAGE not in seen:
        yield DEFAULT_LANGUAGE


def format_text(text: str, params: Mapping[str, Any]) -> str:
    """Fill ``{name}`` placeholders of ``text`` from ``params``; never raises.

    A placeholder without a value, or one that is not a plain name (``{user.name}``, ``{0}``), is
    left as written: the texts come from plugins, so they get no attribute or item access into
    the values the host passes.
    """
    if "{" not in text and "}" not in text:
        return text
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError:  # unbalanced braces: show the text as written
        return text
    out: list[str] = []
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        original = "{" + field + (f"!{conversion}" if conversion else "")
        original += (f":{spec}" if spec else "") + "}"
        if not _IDENTIFIER_RE.match(field) or field not in params:
            out.append(original)
            continue
        value = params[field]
        try:
            if conversion:
                value = _FORMATTER.convert_field(value, conversion)
            out.append(format(value, spec or ""))
        except Exception:  # a bad format spec or a value that cannot format itself
            out.append(original)
    return "".join(out)


# --- loading -----------------------------------------------------------------------------------


def load_translations(
    plugin_dir: Path | None,
    registration_i18n: I18n | None = None,
    *,
    plugin: str | None = None,
) -> Translations:
    """The translations of a plugin: ``plugin_dir/i18n/*.yaml`` over ``registration_i18n``.

    ``plugin`` names the plugin in log messages (the directory name by default).
    """
    catalogs: dict[str, dict[str, str]] = {}
    if registration_i18n is not None:
        for language, texts in registration_i18n.translations.items():
            catalogs.setdefault(_normalize(language), {}).update(texts)
    spelled: dict[str, str] = {_normalize(lang): lang for lang in catalogs}
    if plugin_dir is not None:
        name = plugin or plugin_dir.name
        for language, texts in _read_directory(plugin_dir / "i18n", name):
            key = _normalize(language)
            spelled.setdefault(key, language)
            catalogs.setdefault(key, {}).update(texts)
    return Translations({spelled[key]: texts for key, texts in catalogs.items()})


def i18n_files(directory: Path) -> list[Path]:
    """The translation files in ``directory`` (``*.yaml`` and ``*.yml``), sorted by name."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if p.suffix in (".yaml", ".yml") and p.is_file())


def _read_directory(directory: Path, plugin: str) -> Iterator[tuple[str, dict[str, str]]]:
    for path in i18n_files(directory):
        where = f"{plugin}: i18n/{path.name}"
        language = path.stem
        if not _LANGUAGE_RE.match(language):
            logger.warning(
                "%s: the file name is not a language code such as en.yaml or pt-BR.yaml; "
                "the file is ignored",
                where,
            )
            continue
        texts = _read_file(path, where)
        if texts is not None:
            yield language, texts


def _read_file(path: Path, where: str) -> dict[str, str] | None:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            logger.warning("%s: larger than %d bytes; the file is ignored", where, _MAX_FILE_BYTES)
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("%s: cannot be read (%s); the file is ignored", where, exc)
        return None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        logger.warning("%s: invalid YAML (%s); the file is ignored", where, _one_line(exc))
        return None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        logger.warning(
            "%s: expected a mapping of keys to texts, got a %s; the file is ignored",
            where,
            type(data).__name__,
        )
        return None
    out: dict[str, str] = {}
    try:
        _flatten(data, "", out, 0)
    except _TooLarge as exc:
        logger.warning("%s: %s; the file is ignored", where, exc)
        return None
    return out


def _flatten(data: Mapping[Any, Any], prefix: str, out: dict[str, str], depth: int) -> None:
    if depth >= _MAX_DEPTH:
        raise _TooLarge(f"nested more than {_MAX_DEPTH} levels deep")
    for raw_key, value in data.items():
        key = prefix + _text(raw_key)
        if isinstance(value, Mapping):
            _flatten(value, key + ".", out, depth + 1)
            continue
        if len(out) >= _MAX_KEYS:
            raise _TooLarge(f"more than {_MAX_KEYS} keys")
        out[key] = _text(value)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


# --- negotiation -------------------------------------------------------------------------------


def negotiate_locale(
    accept_language_header: str | None, available: Iterable[str], default: str = "en"
) -> str:
    """The best of ``available`` for an ``Accept-Language`` header, or ``default``.

    Languages are tried by falling quality (``q``), in header order for equal ones; each tries
    an exact match, then its less specific forms (``de-AT`` → ``de``), then any available
    variant of the same language (``en-US`` → ``en-GB``). ``q=0`` excludes a language; ``*``
    accepts the default. The result is spelled as in ``available``.
    """
    choices = {_normalize(lang): lang for lang in available}
    if not accept_language_header or not choices:
        return default
    for tag in _accepted(accept_language_header):
        if tag == "*":
            return default
        parts = tag.split("-")
        for end in range(len(parts), 0, -1):
            found = choices.get("-".join(parts[:end]))
            if found is not None:
                return found
        for key, language in choices.items():
            if key.split("-", 1)[0] == parts[0]:
                return language
    return default


def _accepted(header: str) -> list[str]:
    """The tags of an ``Accept-Language`` header, best first (normalized, q=0 left out)."""
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")[:_MAX_ACCEPT_ENTRIES]):
        tag, *params = (part.strip() for part in item.split(";"))
        if not tag or not _ACCEPT_TAG_RE.match(tag):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if not 0 < quality <= 1:
            continue
        ranked.append((-quality, index, _normalize(tag)))
    ranked.sort()
    return [tag for _, _, tag in ranked]


#: How long a plugin's translations are used before their files are checked for changes.
TRANSLATIONS_TTL = 2.0


@dataclass
class _Cached:
    checked: float
    signature: object
    translations: Translations | None


class TranslationCache:
    """Translations per plugin, re-read when its i18n files or registration change.

    ``source(plugin)`` gives the plugin's directory, a value that changes with its module (the
    module digest) and its registration's ``i18n``; ``None`` for an unknown plugin.
    """

    def __init__(
        self, source: Callable[[str], tuple[Path | None, object, I18n | None] | None]
    ) -> None:
        self._source = source
        self._cache: dict[str, _Cached] = {}

    def get(self, plugin: str) -> Translations | None:
        now = time.monotonic()
        cached = self._cache.get(plugin)
        if cached is not None and now - cached.checked < TRANSLATIONS_TTL:
            return cached.translations
        found_source = self._source(plugin)
        signature = _signature(found_source)
        if cached is not None and cached.signature == signature:
            found = cached.translations
        elif found_source is None:
            found = None
        else:
            directory, _version, i18n = found_source
            found = load_translations(directory, i18n, plugin=plugin)
        self._cache[plugin] = _Cached(now, signature, found)
        return found


def _signature(source: tuple[Path | None, object, I18n | None] | None) -> object:
    if source is None:
        return None
    directory, version, i18n = source
    files: list[tuple[str, int, int]] = []
    if directory is not None:
        for path in i18n_files(directory / "i18n"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((path.name, stat.st_mtime_ns, stat.st_size))
    return (directory, version, i18n, tuple(files))
