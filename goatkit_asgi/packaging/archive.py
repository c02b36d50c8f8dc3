"""Safe extraction of plugin packages (.zip).

Everything that can be checked from the central directory is checked before a byte is written:
the entry count, names, file types, encryption, compression methods and declared sizes. What cannot
be checked there, the bytes an entry really inflates to, is counted while streaming, and extraction
stops as soon as an entry produces more than it declared. A package is extracted into a temporary
directory beside its final one and renamed into place, so a package directory is either complete or
absent, and a refused package leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackageError

__all__ = ["ArchiveLimits", "extract_package"]

_MANIFEST_NAMES = ("manifest.yaml", "plugin.yaml")
# Written last into an extraction, so an extraction holding it is complete. It contains the plugin
# root relative to the extraction directory ("" when the manifest is at the top of the package).
_MARKER = ".goatkit-extracted"
_CHUNK = 64 * 1024
_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
# General purpose flag bits 0 (encrypted) and 6 (strong encryption).
_ENCRYPTED = 0x0001 | 0x0040
_DRIVE = re.compile(r"[A-Za-z]:")
# Modes in the archive are never trusted: nothing extracted is executable.
_FILE_MODE = 0o644
_DIR_MODE = 0o755
# What zipfile raises for a corrupt entry: bad CRC, truncated or invalid data, unsupported features.
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


@dataclass(frozen=True)
class ArchiveLimits:
    """What a package may hold; sizes count uncompressed bytes."""

    max_entries: int = 1000
    max_file_size: int = 100 * 1024 * 1024
    max_total_size: int = 500 * 1024 * 1024


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    name: str
    parts: tuple[str, ...]
    is_dir: bool


def extract_package(
    zip_path: Path, packages_root: Path, *, limits: ArchiveLimits = ArchiveLimits()
) -> Path:
    """Safely extract a plugin package and return the plugin's root directory.

    The package goes to ``packages_root / "<stem>-<first 16 hex digits of its SHA-256>"``; a
    complete earlier extraction of the same bytes is reused. The plugin root is that directory when
    the manifest (``manifest.yaml`` or ``plugin.yaml``) is at the top of the archive, or the
    archive's single top-level folder when the manifest is there.

    Raises :class:`~goatkit_asgi.errors.PackageError` when the package is unsafe, broken or over
    ``limits``; nothing is then left in ``packages_root``.
    """
    with _open_package(zip_path) as (zf, digest):
        entries = _check_entries(zf, zip_path, limits)
        root_name = _plugin_root_name(entries, zip_path)
        final = packages_root / f"{zip_path.stem}-{digest[:16]}"
        done = _completed_root(final)
        if done is not None:
            return done
        return _install(zf, entries, root_name, final, zip_path, limits)


def _refuse(zip_path: Path, problem: str, advice: str) -> PackageError:
    return PackageError(f"package {zip_path.name}: {problem}; {advice}", plugin=zip_path.stem)


@contextmanager
def _open_package(zip_path: Path) -> Iterator[tuple[zipfile.ZipFile, str]]:
    # One open file for the digest and the extraction, so both see the same bytes.
    try:
        fh = zip_path.open("rb")
    except OSError as exc:
        raise _refuse(
            zip_path,
            f"cannot be opened ({exc.strerror or exc})",
            "check that the file exists and is readable",
        ) from exc
    with fh:
        try:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            fh.seek(0)
            zf = zipfile.ZipFile(fh)
        except (OSError, *_CORRUPT) as exc:
            raise _refuse(
                zip_path,
                f"is not a readable zip archive ({exc})",
                "rebuild the package with a zip tool or download it again",
            ) from exc
        with zf:
            yield zf, digest


def _check_entries(zf: zipfile.ZipFile, zip_path: Path, limits: ArchiveLimits) -> list[_Entry]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        first_over = infos[max(limits.max_entries, 0)].orig_filename
        raise _refuse(
            zip_path,
            f"has {len(infos)} entries, more than the limit of {limits.max_entries} "
            f"(the first entry over it is {first_over!r})",
            "remove files from the package or raise ArchiveLimits.max_entries",
        )
    entries: list[_Entry] = []
    seen: dict[str, str] = {}
    total = 0
    for info in infos:
        entry = _check_entry(info, zip_path, limits)
        key = _collision_key(entry.parts)
        if key in seen:
            raise _refuse(
                zip_path,
                f"entry {entry.name!r} collides with entry {seen[key]!r} (names that differ only "
                "in case or Unicode normalization are the same file on some file systems)",
                "keep only one of them in the package",
            )
        seen[key] = entry.name
        total += info.file_size
        if total > limits.max_total_size:
            raise _refuse(
                zip_path,
                f"entries declare more than {limits.max_total_size} bytes uncompressed in all, "
                f"going over the limit at entry {entry.name!r}",
                "make the package smaller or raise ArchiveLimits.max_total_size",
            )
        entries.append(entry)
    _check_file_dir_conflicts(entries, zip_path)
    return entries


def _check_entry(info: zipfile.ZipInfo, zip_path: Path, limits: ArchiveLimits) -> _Entry:
    # orig_filename is the name as stored: zipfile's filename is cut at the first NUL.
    name = info.orig_filename

    def refuse(problem: str, advice: str) -> PackageError:
        return _refuse(zip_path, f"entry {name!r} {problem}", advice)

    if any(unicodedata.category(char) == "Cc" for char in name):
        raise refuse("contains a control character", "rename the file in the package")
    if name.startswith("/") or _DRIVE.match(name):
        raise refuse("is an absolute path", "store paths relative to the top of the package")
    if "\\" in name:
        raise refuse("contains a backslash", "use '/' as the path separator")
    is_dir = name.endswith("/")
    parts = tuple((name[:-1] if is_dir else name).split("/"))
    if "" in parts:
        raise refuse("has an empty path component", "remove the empty or doubled '/' from the path")
    if ".." in parts or "." in parts:
        raise refuse(
            "has a '.' or '..' path component",
            "store paths relative to the top of the package without '.' or '..'",
        )
    if len(parts) == 1 and parts[0].casefold() == _MARKER:
        raise refuse("uses a name reserved by the package extractor", "rename or remove it")
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise refuse("is a symbolic link", "replace the link with a copy of the file it points to")
    # 0: no Unix mode recorded (archives made on Windows); the trailing '/' says what it is.
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise refuse(
            f"is not a regular file or directory (file type {file_type:#o})",
            "package only regular files and directories",
        )
    if file_type == stat.S_IFDIR and not is_dir:
        raise refuse(
            "is marked as a directory but its name does not end in '/'",
            "rebuild the package with a zip tool",
        )
    if is_dir and info.file_size:
        raise refuse("is a directory but declares content", "rebuild the package with a zip tool")
    if info.flag_bits & _ENCRYPTED:
        raise refuse("is encrypted", "build the package without a password")
    if info.compress_type not in _METHODS:
        raise refuse(
            f"uses compression method {info.compress_type}",
            "rebuild the package with deflate compression or none",
        )
    if info.file_size > limits.max_file_size:
        raise refuse(
            f"declares {info.file_size} bytes uncompressed, more than the limit of "
            f"{limits.max_file_size} per file",
            "remove it from the package or raise ArchiveLimits.max_file_size",
        )
    return _Entry(info=info, name=name, parts=parts, is_dir=is_dir)


def _collision_key(parts: tuple[str, ...]) -> str:
    # Canonical caseless form: names equal under it are one file on macOS and Windows.
    return "/".join(
        unicodedata.normalize("NFD", unicodedata.normalize("NFD", part).casefold())
        for part in parts
    )


def _check_file_dir_conflicts(entries: list[_Entry], zip_path: Path) -> None:
    files = {_collision_key(e.parts): e.name for e in entries if not e.is_dir}
    for entry in entries:
        for depth in range(1, len(entry.parts)):
            file_name = files.get(_collision_key(entry.parts[:depth]))
            if file_name is not None:
                raise _refuse(
                    zip_path,
                    f"entry {entry.name!r} needs {file_name!r} to be a directory, but the "
                    "package also stores it as a file",
                    "keep only one of them in the package",
                )


def _plugin_root_name(entries: list[_Entry], zip_path: Path) -> str:
    files = {e.parts for e in entries if not e.is_dir}
    if any((manifest,) in files for manifest in _MANIFEST_NAMES):
        return ""
    tops = {e.parts[0] for e in entries}
    if len(tops) == 1:
        (top,) = tops
        if any((top, manifest) in files for manifest in _MANIFEST_NAMES):
            return top
    raise _refuse(
        zip_path,
        "no manifest.yaml or plugin.yaml at the top of the package (nor in a single top-level "
        "folder holding everything)",
        "put the manifest at the top of the zip",
    )


def _completed_root(final: Path) -> Path | None:
    """The plugin root inside ``final`` if ``final`` is a complete extraction, else None."""
    try:
        if final.is_symlink() or not final.is_dir():
            return None
        root_name = (final / _MARKER).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if root_name and (root_name in (".", "..") or any(c in root_name for c in "/\\\0")):
        return None
    root = final / root_name
    if not any((root / manifest).is_file() for manifest in _MANIFEST_NAMES):
        return None
    return root


def _install(
    zf: zipfile.ZipFile,
    entries: list[_Entry],
    root_name: str,
    final: Path,
    zip_path: Path,
    limits: ArchiveLimits,
) -> Path:
    packages_root = final.parent
    try:
        packages_root.mkdir(parents=True, exist_ok=True)
        # Inside packages_root, so the final rename stays on one file system and is atomic.
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=packages_root))
    except OSError as exc:
        raise _refuse(
            zip_path,
            f"cannot be extracted into {packages_root} ({exc.strerror or exc})",
            "check that the directory is writable",
        ) from exc
    try:
        _extract(zf, entries, tmp, zip_path, limits)
        try:
            marker = tmp / _MARKER
            marker.write_text(root_name, encoding="utf-8")
            os.chmod(marker, _FILE_MODE)
            os.chmod(tmp, _DIR_MODE)
            _rename_into_place(tmp, final)
        except OSError as exc:
            raise _refuse(
                zip_path,
                f"could not be installed into {packages_root} ({exc.strerror or exc})",
                "check free space and permissions of that directory",
            ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / root_name


def _extract(
    zf: zipfile.ZipFile, entries: list[_Entry], tmp: Path, zip_path: Path, limits: ArchiveLimits
) -> None:
    total = 0
    for entry in entries:
        try:
            parent = _make_dirs(tmp, entry.parts if entry.is_dir else entry.parts[:-1])
            if not entry.is_dir:
                total += _copy(zf, entry, parent / entry.parts[-1], zip_path, limits, total)
        except _CORRUPT as exc:
            raise _refuse(
                zip_path,
                f"entry {entry.name!r} could not be extracted ({exc})",
                "the package is corrupt: rebuild it or download it again",
            ) from exc
        except OSError as exc:
            raise _refuse(
                zip_path,
                f"entry {entry.name!r} could not be written ({exc.strerror or exc})",
                "check free space and permissions of the packages directory",
            ) from exc


def _make_dirs(tmp: Path, parts: tuple[str, ...]) -> Path:
    path = tmp
    for part in parts:
        path = path / part
        try:
            os.mkdir(path, _DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(path, _DIR_MODE)  # mkdir's mode went through the umask
    return path


def _copy(
    zf: zipfile.ZipFile,
    entry: _Entry,
    dest: Path,
    zip_path: Path,
    limits: ArchiveLimits,
    total_before: int,
) -> int:
    declared = entry.info.file_size
    produced = 0
    with zf.open(entry.info) as src, open(dest, "xb") as out:
        # Count what the stream really produces: the declared size, checked against the limits
        # before extraction, is only what the archive claims.
        while chunk := src.read(_CHUNK):
            produced += len(chunk)
            if produced > declared:
                raise _refuse(
                    zip_path,
                    f"entry {entry.name!r} inflates to more than the {declared} bytes it declares",
                    "the package is corrupt or malicious: do not install it",
                )
            if total_before + produced > limits.max_total_size:
                raise _refuse(
                    zip_path,
                    f"entries inflate to more than {limits.max_total_size} bytes in all, going "
                    f"over the limit at entry {entry.name!r}",
                    "make the package smaller or raise ArchiveLimits.max_total_size",
                )
            out.write(chunk)
    if produced != declared:
        raise _refuse(
            zip_path,
            f"entry {entry.name!r} inflates to {produced} bytes but declares {declared}",
            "the package is corrupt: rebuild it or download it again",
        )
    os.chmod(dest, _FILE_MODE)
    return produced


def _rename_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; if a complete copy got there first, drop ``tmp`` and keep it."""
    for attempt in (1, 2):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if _completed_root(final) is not None:
                # Another extractor of the same package finished first.
                shutil.rmtree(tmp, ignore_errors=True)
                return
            if attempt == 2:
                raise
            # An incomplete leftover (its marker removed by hand, say): move it out of the way.
            _discard(final)


def _discard(path: Path) -> None:
    # Renamed away first, so a concurrent extractor never sees it half-deleted under its name.
    trash = path.with_name(f".{path.name}.{secrets.token_hex(8)}.stale")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)
