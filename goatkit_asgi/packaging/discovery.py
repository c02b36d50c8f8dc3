"""Discovery: scan ``plugins_dir`` for plugin directories and ``.zip`` packages.

Reads manifests only; nothing is compiled or instantiated. A broken plugin or package becomes a
:class:`Discovered` entry with its error, so it is listed (as ``failed``) and never stops the
others from loading.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import GoatKitError, ManifestError, PackageError
from ..specs import table_conflict
from .archive import ArchiveLimits, extract_package
from .manifest import MANIFEST_NAMES, Manifest, load_manifest
from .signing import SignatureStatus, require, verify_directory

logger = logging.getLogger("goatkit")


@dataclass(frozen=True)
class Discovered:
    """One plugin found on disk: its manifest, or the error that stopped it."""

    name: str
    source: Path
    directory: Path | None
    manifest: Manifest | None
    error: GoatKitError | None = None
    signature: SignatureStatus | None = None

    @property
    def package(self) -> Path | None:
        """The ``.zip`` this plugin came from, if it came from one."""
        return self.source if self.source.suffix == ".zip" else None


def discover(
    plugins_dir: Path,
    packages_root: Path,
    *,
    limits: ArchiveLimits | None = None,
    trusted_keys: Sequence[str] = (),
    require_signatures: bool = False,
) -> list[Discovered]:
    """Every plugin in ``plugins_dir``, sorted by name; failures included with their error."""
    limits = limits or ArchiveLimits()
    found: list[Discovered] = []
    if not plugins_dir.is_dir():
        return found
    for entry in sorted(plugins_dir.iterdir()):
        item = discover_one(
            entry,
            packages_root,
            limits=limits,
            trusted_keys=trusted_keys,
            require_signatures=require_signatures,
        )
        if item is not None:
            found.append(item)
    return _refuse_duplicates(found)


def is_candidate(entry: Path) -> bool:
    """Whether ``entry`` in a plugins directory can be a plugin (not hidden, a dir or a .zip)."""
    if entry.name.startswith((".", "_")):
        return False
    return entry.is_dir() or (entry.suffix == ".zip" and entry.is_file())


def discover_one(
    entry: Path,
    packages_root: Path,
    *,
    limits: ArchiveLimits | None = None,
    trusted_keys: Sequence[str] = (),
    require_signatures: bool = False,
) -> Discovered | None:
    """The plugin at ``entry`` (a directory or a ``.zip``), or None when it is not a candidate."""
    if not is_candidate(entry):
        return None
    trust = (tuple(trusted_keys), require_signatures)
    if entry.is_dir():
        return _from_directory(entry, entry, trust)
    try:
        root = extract_package(entry, packages_root, limits=limits or ArchiveLimits())
    except PackageError as exc:
        logger.error("%s", exc)
        return Discovered(entry.stem, entry, None, None, exc)
    return _from_directory(root, entry, trust)


def _from_directory(
    directory: Path, source: Path, trust: tuple[tuple[str, ...], bool] = ((), False)
) -> Discovered:
    if not any((directory / name).is_file() for name in MANIFEST_NAMES):
        error = ManifestError(
            f"{source.name}: no {' or '.join(MANIFEST_NAMES)} in the plugin directory; add a "
            "manifest with at least a name",
            plugin=source.stem,
        )
        return Discovered(source.stem, source, directory, None, error)
    try:
        manifest = load_manifest(directory)
    except ManifestError as exc:
        logger.error("%s", exc)
        return Discovered(source.stem, source, directory, None, exc)
    keys, required = trust
    try:
        # Computed once per plugin directory; a refused plugin keeps no manifest.
        status = verify_directory(directory, keys, module=manifest.wasm or "plugin.wasm")
        if required:
            require(status, plugin=manifest.name)
    except GoatKitError as exc:  # SignatureError, or a file that cannot be read
        logger.error("%s", exc)
        return Discovered(manifest.name, source, directory, None, exc)
    return Discovered(manifest.name, source, directory, manifest, signature=status)


def _refuse_duplicates(found: list[Discovered]) -> list[Discovered]:
    seen: dict[str, Discovered] = {}
    out: list[Discovered] = []
    for item in found:
        first = seen.get(item.name)
        conflict = None if item.error else table_conflict(item.name, seen)
        if conflict is not None:
            error = ManifestError(f"{item.source.name}: {conflict}", plugin=item.name)
            logger.error("%s", error)
            out.append(Discovered(item.source.name, item.source, item.directory, None, error))
            continue
        if first is None:
            if item.error is None:
                seen[item.name] = item
            out.append(item)
            continue
        # Keyed by source so both stay visible; the first one found keeps the name.
        error = ManifestError(
            f"{item.source.name}: another plugin named {item.name!r} is already installed from "
            f"{first.source.name}; remove one of them or rename it",
            plugin=item.name,
        )
        logger.error("%s", error)
        out.append(Discovered(item.source.name, item.source, item.directory, None, error))
    return sorted(out, key=lambda d: d.name)
