"""``gk plugin init``: write a new plugin from the templates in ``templates/``.

Templates end in ``.tmpl`` so that nothing treats them as code of this package, and a leading
``dot-`` in a template's name stands for ``.``. ``{{name}}``-style placeholders are replaced; the
values are plain text checked here (a plugin name cannot carry quotes or markup).

Layouts (``runtime``/``lang``)::

    wasm/c       manifest.yaml  plugin.c    build.sh  tests/test_plugin.py  README.md
    wasm/zig     manifest.yaml  plugin.zig  build.sh  tests/test_plugin.py  README.md
    grpc/python  manifest.yaml  plugin.py             tests/test_plugin.py  README.md

each with ``.gitignore`` and ``.gkignore`` (what ``gk plugin pack`` leaves out).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ..errors import ConfigError
from ..specs import NAME_RE

__all__ = ["LANGUAGES", "RUNTIMES", "Layout", "layout_for", "scaffold"]

RUNTIMES = ("wasm", "grpc")
LANGUAGES = {"wasm": ("c", "zig"), "grpc": ("python",)}
_DESCRIPTION_RE = re.compile(r"^[^\x00-\x1f\x7f\"\\{}`<>]{0,200}\Z")
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


@dataclass(frozen=True)
class Layout:
    """What ``init`` writes for one runtime and language."""

    runtime: str
    lang: str
    source: str  # the plugin's source file
    build: bool  # has a build.sh
    runtime_label: str
    build_steps: str
    runtime_notes: str


_LAYOUTS = {
    ("wasm", "c"): Layout(
        "wasm",
        "c",
        "plugin.c",
        True,
        "WebAssembly, written in C",
        "# build plugin.wasm from plugin.c with zig's C compiler\ngk plugin build\n",
        "The C SDK is one header, `goatkit.h`, shipped inside goatkit_asgi: `build.sh` finds it.\n"
        "It has JSON helpers (`gk_json_*`), host calls (`gk_host_call`, `gk_cache_get`, ...),\n"
        "logging and result helpers (`gk_return_*`).",
    ),
    ("wasm", "zig"): Layout(
        "wasm",
        "zig",
        "plugin.zig",
        True,
        "WebAssembly, written in Zig",
        "# build plugin.wasm from plugin.zig with zig\ngk plugin build\n",
        "`plugin.zig` speaks the GoatKit ABI directly: it exports `gk_malloc`, `gk_free`,\n"
        "`gk_register` and `gk_call`, and imports `host_call` and `log` from module `gk`.",
    ),
    ("grpc", "python"): Layout(
        "grpc",
        "python",
        "plugin.py",
        False,
        "a gRPC plugin process, written in Python",
        "",
        "The platform starts `plugin.py` (manifest `command`); `goatkit_asgi.sdk.python` does the\n"
        "gRPC serving, so the script only declares functions. Nothing needs building.",
    ),
}


def layout_for(runtime: str, lang: str | None) -> Layout:
    """The layout for ``runtime`` and ``lang`` (None: the runtime's first language).

    Raises :class:`~goatkit_asgi.errors.ConfigError` for a combination that does not exist.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    langs = LANGUAGES[runtime]
    lang = lang or langs[0]
    if lang not in langs:
        raise ConfigError(
            f"--lang {lang} does not go with --runtime {runtime}; use "
            f"{' or '.join(langs)} (for runtime {runtime})"
        )
    return _LAYOUTS[(runtime, lang)]


def _templates(lang: str) -> list[tuple[str, str]]:
    """(output path, template text) for the common templates and the language's own."""
    root = resources.files(__package__).joinpath("templates")
    out: dict[str, str] = {}
    for part in ("common", lang):
        _collect(root.joinpath(part), "", out)
    return sorted(out.items())


def _collect(node: Traversable, prefix: str, out: dict[str, str]) -> None:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            _collect(child, f"{prefix}{child.name}/", out)
        elif child.name.endswith(".tmpl"):
            name = child.name.removesuffix(".tmpl")
            if name.startswith("dot-"):
                name = "." + name.removeprefix("dot-")
            out[prefix + name] = child.read_text(encoding="utf-8")


def _render(text: str, values: dict[str, str], template: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ConfigError(f"template {template}: unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(replace, text)


def scaffold(
    name: str,
    destination: Path,
    *,
    runtime: str = "wasm",
    lang: str | None = None,
    description: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write a new plugin called ``name`` into ``destination``; return the files written.

    ``destination`` must not exist or be empty (unless ``force``: existing files are then
    overwritten). Raises :class:`~goatkit_asgi.errors.ConfigError` for a bad name or option.
    """
    if not NAME_RE.match(name):
        raise ConfigError(
            f"{name!r} is not a valid plugin name: use 1 to 64 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    layout = layout_for(runtime, lang)
    description = description if description is not None else f"The {name} plugin."
    if not _DESCRIPTION_RE.match(description):
        raise ConfigError(
            "--description: use up to 200 characters without quotes, backslashes, braces, "
            "backticks or angle brackets"
        )
    destination = Path(destination)
    if destination.exists() and not destination.is_dir():
        raise ConfigError(f"{destination} exists and is not a directory")
    if destination.is_dir() and any(destination.iterdir()) and not force:
        raise ConfigError(
            f"{destination} already exists and is not empty; choose another directory or pass "
            "--force to overwrite the plugin's files"
        )
    values = {
        "name": name,
        "description": description,
        "source": layout.source,
        "runtime_label": layout.runtime_label,
        "build_steps": layout.build_steps,
        "runtime_notes": layout.runtime_notes,
    }
    written: list[Path] = []
    for rel, text in _templates(layout.lang):
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_render(text, values, rel), encoding="utf-8")
        if rel.endswith(".sh"):
            os.chmod(target, 0o755)
        written.append(target)
    return written
