"""What the admin can tell about a plugin's files: its module's interface and its signature.

Both are read from the plugin's directory (never by loading the plugin), off the event loop,
and the module interface is cached by file identity, so a detail page stays cheap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread

from ...platform import PluginInfo
from .wasm_interface import WasmInterface, read_interface

__all__ = ["ModuleReport", "SignatureReport", "inspect_module", "signature_report"]

#: Modules larger than this are not read for the admin (the interface is then "not shown").
MAX_INSPECTED_MODULE = 64 * 1024 * 1024


@dataclass(frozen=True)
class ModuleReport:
    """The plugin's WASM module as the admin shows it."""

    file: str | None = None
    size: int | None = None
    sha256: str | None = None
    interface: WasmInterface | None = None
    error: str | None = None


@dataclass(frozen=True)
class SignatureReport:
    """``status`` is ``unsigned``, or ``present`` (signature files found, not verified here)."""

    status: str
    detail: str
    files: tuple[str, ...] = field(default_factory=tuple)


class ModuleCache:
    """Module reports by (path, size, mtime): a changed file is read again."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: dict[tuple[str, int, int], ModuleReport] = {}

    def get(self, key: tuple[str, int, int]) -> ModuleReport | None:
        return self._items.get(key)

    def put(self, key: tuple[str, int, int], report: ModuleReport) -> None:
        if len(self._items) >= self._size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = report


def _module_path(info: PluginInfo) -> Path | None:
    manifest = info.manifest
    if manifest is None or manifest.runtime != "wasm" or info.directory is None:
        return None
    return info.directory / (manifest.wasm or "plugin.wasm")


def _read_module(path: Path, cache: ModuleCache) -> ModuleReport:
    try:
        stat = path.stat()
    except OSError as exc:
        return ModuleReport(file=path.name, error=f"cannot read {path.name}: {exc.strerror}")
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    cached = cache.get(key)
    if cached is not None:
        return cached
    if stat.st_size > MAX_INSPECTED_MODULE:
        report = ModuleReport(
            file=path.name, size=stat.st_size, error="the module is too large to inspect here"
        )
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return ModuleReport(file=path.name, error=f"cannot read {path.name}: {exc.strerror}")
        digest = hashlib.sha256(data).hexdigest()
        try:
            report = ModuleReport(path.name, len(data), digest, read_interface(data))
        except ValueError as exc:
            report = ModuleReport(path.name, len(data), digest, error=str(exc))
    cache.put(key, report)
    return report


async def inspect_module(info: PluginInfo, cache: ModuleCache) -> ModuleReport | None:
    """The module's file, size, digest, imports and exports; None for a plugin without one."""
    path = _module_path(info)
    if path is None:
        return None
    return await anyio.to_thread.run_sync(_read_module, path, cache)


def _signature_files(directory: Path | None) -> tuple[str, ...]:
    if directory is None or not directory.is_dir():
        return ()
    return tuple(
        sorted(
            p.name
            for p in directory.iterdir()
            if p.is_file() and (p.suffix in (".sig", ".minisig") or p.name.startswith("SIGNATURE"))
        )
    )


async def signature_report(info: PluginInfo) -> SignatureReport:
    """The platform's verdict on the plugin's signature (checked at discovery against the
    platform's ``trusted_keys``), and the signature files it found."""
    files = await anyio.to_thread.run_sync(_signature_files, info.directory)
    status = info.signature
    if status is None:
        if not files:
            return SignatureReport("unsigned", "no signature files in the plugin")
        return SignatureReport("not checked", "the plugin was refused before its signature", files)
    detail = status.detail or ""
    if status.key_id:
        detail = f"key {status.key_id}" + (f": {detail}" if detail else "")
    return SignatureReport(status.state, detail, files)
