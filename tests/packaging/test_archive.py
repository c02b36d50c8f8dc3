"""Safe extraction of plugin packages: every refusal, the size limits, atomic install and reuse."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from goatkit_asgi.errors import PackageError
from goatkit_asgi.packaging import archive
from goatkit_asgi.packaging.archive import ArchiveLimits, extract_package

MANIFEST = b"name: demo\nversion: 1.0.0\n"
MARKER = ".goatkit-extracted"
MiB = 1024 * 1024

Entry = tuple[str | zipfile.ZipInfo, bytes]


# --- helpers ---------------------------------------------------------------------------------


def make_zip(path: Path, entries: Iterable[Entry], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        # Some tests write duplicate names on purpose.
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
        with zipfile.ZipFile(path, "w", method) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def plugin_entries(prefix: str = "") -> list[Entry]:
    windows_made = zipfile.ZipInfo(f"{prefix}static/app.js")  # no Unix mode recorded
    return [
        (f"{prefix}manifest.yaml", MANIFEST),
        (f"{prefix}templates/page.html", b"<p>hello</p>"),
        (windows_made, b"console.log('hi');"),
    ]


def sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def snapshot(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (-1 for directories)."""
    return {
        p.relative_to(root).as_posix(): -1 if p.is_dir() else p.stat().st_size
        for p in root.rglob("*")
    }


# Field offsets in a local file header and in a central directory record.
_LOCAL = {"flags": (6, "<H"), "crc": (14, "<I"), "file_size": (22, "<I")}
_CENTRAL = {"flags": (8, "<H"), "crc": (16, "<I"), "file_size": (24, "<I")}


def patch_headers(path: Path, name: str, **fields: int) -> None:
    """Rewrite fields of entry ``name`` in its local header and its central directory record."""
    data = bytearray(path.read_bytes())
    eocd = data.rfind(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", data, eocd + 12)
    pos, found = cd_offset, False
    while pos < cd_offset + cd_size:
        assert data[pos : pos + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        (local,) = struct.unpack_from("<I", data, pos + 42)
        if data[pos + 46 : pos + 46 + name_len] == name.encode():
            assert data[local : local + 4] == b"PK\x03\x04"
            for key, value in fields.items():
                offset, fmt = _CENTRAL[key]
                struct.pack_into(fmt, data, pos + offset, value)
                offset, fmt = _LOCAL[key]
                struct.pack_into(fmt, data, local + offset, value)
            found = True
        pos += 46 + name_len + extra_len + comment_len
    assert found, name
    path.write_bytes(data)


def rename_entry_bytes(path: Path, old: bytes, new: bytes) -> None:
    """Replace an entry's name in place (same length), for names zipfile will not write."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert data.count(old) == 2  # local header and central directory
    path.write_bytes(data.replace(old, new))


@dataclass
class Workspace:
    base: Path
    packages: Path

    def zip(self, entries: Iterable[Entry], name: str = "demo.zip", **kw: Any) -> Path:
        return make_zip(self.base / "src" / name, entries, **kw)


@dataclass
class Spy:
    """What the extractor did: entries read, temp dirs made, trees removed (with their sizes)."""

    opened: list[str] = field(default_factory=list)
    temp_dirs: list[str] = field(default_factory=list)
    removed: list[dict[str, int]] = field(default_factory=list)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "src").mkdir()
    packages = tmp_path / "state" / "packages"
    packages.mkdir(parents=True)
    return Workspace(base=tmp_path, packages=packages)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    seen = Spy()
    real_open = zipfile.ZipFile.open
    real_mkdtemp = tempfile.mkdtemp
    real_rmtree = shutil.rmtree

    def open_(self: zipfile.ZipFile, name: Any, mode: str = "r", *a: Any, **kw: Any) -> IO[bytes]:
        if mode == "r":
            seen.opened.append(getattr(name, "filename", name))
        return real_open(self, name, mode, *a, **kw)

    def mkdtemp(*a: Any, **kw: Any) -> str:
        path = real_mkdtemp(*a, **kw)
        seen.temp_dirs.append(path)
        return path

    def rmtree(path: Any, *a: Any, **kw: Any) -> None:
        seen.removed.append(snapshot(Path(path)) if Path(path).is_dir() else {})
        real_rmtree(path, *a, **kw)

    monkeypatch.setattr(zipfile.ZipFile, "open", open_)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    return seen


def assert_refused(
    ws: Workspace,
    spy: Spy,
    zip_path: Path,
    entry: str | None,
    *,
    limits: ArchiveLimits | None = None,
    before_writing: bool = True,
) -> PackageError:
    """Extraction fails with a PackageError naming the package and ``entry``, leaving no trace."""
    before = snapshot(ws.base)
    with pytest.raises(PackageError) as caught:
        extract_package(zip_path, ws.packages, limits=limits or ArchiveLimits())
    err = caught.value
    message = str(err)
    assert zip_path.name in message
    if entry is not None:
        assert repr(entry) in message
    assert err.plugin == zip_path.stem
    assert "; " in message  # the advice follows the problem
    assert list(ws.packages.iterdir()) == []  # no temp dir, no partial install
    assert snapshot(ws.base) == before  # nothing written anywhere else either
    if before_writing:
        assert spy.temp_dirs == []
        assert spy.opened == []
    return err


# --- good packages ---------------------------------------------------------------------------


def test_extracts_a_package_with_the_manifest_at_the_top(ws: Workspace) -> None:
    zip_path = ws.zip(plugin_entries())

    root = extract_package(zip_path, ws.packages)

    assert root == ws.packages / f"demo-{sha16(zip_path)}"
    assert (root / "manifest.yaml").read_bytes() == MANIFEST
    assert (root / "templates" / "page.html").read_bytes() == b"<p>hello</p>"
    assert (root / "static" / "app.js").read_bytes() == b"console.log('hi');"
    assert (root / MARKER).is_file()
    assert [p.name for p in ws.packages.iterdir()] == [root.name]  # no temp dir left


def test_accepts_plugin_yaml_as_the_manifest(ws: Workspace) -> None:
    zip_path = ws.zip([("plugin.yaml", MANIFEST), ("plugin.wasm", b"\0asm")])

    root = extract_package(zip_path, ws.packages)

    assert root == ws.packages / f"demo-{sha16(zip_path)}"
    assert (root / "plugin.wasm").read_bytes() == b"\0asm"


@pytest.mark.parametrize("with_dir_entries", [False, True], ids=["implicit-dirs", "dir-entries"])
def test_plugin_root_is_the_single_top_level_folder_holding_the_manifest(
    ws: Workspace, with_dir_entries: bool
) -> None:
    dirs: list[Entry] = [("my-plugin/", b""), ("my-plugin/templates/", b"")]
    entries = (dirs if with_dir_entries else []) + plugin_entries("my-plugin/")
    zip_path = ws.zip(entries, name="my-plugin-1.0.zip")

    root = extract_package(zip_path, ws.packages)

    extraction = ws.packages / f"my-plugin-1.0-{sha16(zip_path)}"
    assert root == extraction / "my-plugin"
    assert (root / "manifest.yaml").read_bytes() == MANIFEST
    assert (root / "templates" / "page.html").is_file()
    assert (extraction / MARKER).is_file()


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # With umask 0 a created file gets whatever mode is asked for: the modes must be set explicitly.
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("permissive_umask")
def test_archive_modes_are_ignored_and_nothing_is_executable(ws: Workspace) -> None:
    script = zipfile.ZipInfo("bin/run.sh")
    script.external_attr = (stat.S_IFREG | 0o4777) << 16
    folder = zipfile.ZipInfo("open/")
    folder.external_attr = (stat.S_IFDIR | 0o777) << 16
    zip_path = ws.zip([("manifest.yaml", MANIFEST), (script, b"#!/bin/sh\n"), (folder, b"")])

    root = extract_package(zip_path, ws.packages)

    assert stat.S_IMODE((root / "bin" / "run.sh").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "manifest.yaml").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "open").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "bin").stat().st_mode) == 0o755
    assert stat.S_IMODE(root.stat().st_mode) == 0o755


def test_a_second_call_reuses_the_extraction(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.zip(plugin_entries())
    root = extract_package(zip_path, ws.packages)
    inode = (root / "manifest.yaml").stat().st_ino
    marker_mtime = (root / MARKER).stat().st_mtime_ns
    spy.opened.clear()

    again = extract_package(zip_path, ws.packages)

    assert again == root
    assert (root / "manifest.yaml").stat().st_ino == inode
    assert (root / MARKER).stat().st_mtime_ns == marker_mtime
    assert spy.opened == []  # no entry was read again
    assert [p.name for p in ws.packages.iterdir()] == [root.name]


def test_changed_package_bytes_get_a_new_directory(ws: Workspace) -> None:
    first = extract_package(ws.zip(plugin_entries()), ws.packages)
    second = extract_package(ws.zip([*plugin_entries(), ("extra.txt", b"x")]), ws.packages)

    assert first != second
    assert (second / "extra.txt").is_file()
    assert not (first / "extra.txt").exists()


def test_an_incomplete_directory_in_the_way_is_replaced(ws: Workspace) -> None:
    zip_path = ws.zip(plugin_entries())
    final = ws.packages / f"demo-{sha16(zip_path)}"
    final.mkdir()
    (final / "manifest.yaml").write_bytes(b"name: half-written\n")  # no marker: incomplete

    root = extract_package(zip_path, ws.packages)

    assert root == final
    assert (root / "manifest.yaml").read_bytes() == MANIFEST
    assert (root / MARKER).is_file()
    assert [p.name for p in ws.packages.iterdir()] == [final.name]


def test_a_concurrent_extractor_that_finishes_first_wins(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    zip_path = ws.zip(plugin_entries())
    real_rename = os.rename
    theirs: list[Path] = []
    their_inodes: list[int] = []

    def rename_after_someone_else(src: Any, dst: Any) -> None:
        # Just before our rename, another extractor of the same package completes.
        monkeypatch.setattr(os, "rename", real_rename)
        theirs.append(extract_package(zip_path, ws.packages))
        their_inodes.append((theirs[0] / "manifest.yaml").stat().st_ino)
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_after_someone_else)

    root = extract_package(zip_path, ws.packages)

    assert theirs == [root]
    assert [(root / "manifest.yaml").stat().st_ino] == their_inodes  # theirs was kept
    assert [p.name for p in ws.packages.iterdir()] == [root.name]  # our copy was discarded


def test_limits_are_configurable(ws: Workspace, spy: Spy) -> None:
    entries: list[Entry] = [
        ("manifest.yaml", MANIFEST),
        ("a.txt", b"a" * 100),
        ("b.txt", b"b" * 100),
    ]
    zip_path = ws.zip(entries)
    assert extract_package(zip_path, ws.base / "elsewhere").is_dir()  # the defaults accept it
    spy.temp_dirs.clear()
    spy.opened.clear()

    err = assert_refused(ws, spy, zip_path, "b.txt", limits=ArchiveLimits(max_entries=2))
    assert "3 entries" in str(err)
    assert "max_entries" in str(err)
    err = assert_refused(ws, spy, zip_path, "a.txt", limits=ArchiveLimits(max_file_size=99))
    assert "max_file_size" in str(err)
    err = assert_refused(ws, spy, zip_path, "b.txt", limits=ArchiveLimits(max_total_size=199))
    assert "max_total_size" in str(err)


# --- refused before anything is written ------------------------------------------------------


def test_refuses_a_file_that_is_not_a_zip(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.base / "src" / "demo.zip"
    zip_path.write_bytes(b"this is not a zip archive")

    err = assert_refused(ws, spy, zip_path, None)
    assert "not a readable zip archive" in str(err)
    assert isinstance(err.__cause__, zipfile.BadZipFile)


def test_refuses_a_truncated_zip(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.zip(plugin_entries())
    zip_path.write_bytes(zip_path.read_bytes()[:-30])  # the end of the central directory is gone

    err = assert_refused(ws, spy, zip_path, None)
    assert "not a readable zip archive" in str(err)


def test_refuses_a_missing_file(ws: Workspace, spy: Spy) -> None:
    err = assert_refused(ws, spy, ws.base / "src" / "demo.zip", None)
    assert isinstance(err.__cause__, FileNotFoundError)


@pytest.mark.parametrize(
    "entries",
    [
        [("readme.txt", b"no manifest")],
        [("a/manifest.yaml", MANIFEST), ("b/manifest.yaml", MANIFEST)],
        [("top/inner/manifest.yaml", MANIFEST)],
        [("top/manifest.yaml", MANIFEST), ("stray.txt", b"")],
        [("manifest.yaml/", b""), ("manifest.yaml/x", b"")],
    ],
    ids=["none", "two-folders", "too-deep", "folder-and-file", "manifest-is-a-dir"],
)
def test_refuses_a_package_without_a_manifest_at_its_top(
    ws: Workspace, spy: Spy, entries: list[Entry]
) -> None:
    err = assert_refused(ws, spy, ws.zip(entries), None)
    assert "no manifest.yaml or plugin.yaml at the top of the package" in str(err)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("/{base}/escape.txt", "absolute path"),
        ("/escape.txt", "absolute path"),
        ("C:\\escape.txt", "absolute path"),
        ("C:/escape.txt", "absolute path"),
        ("c:escape.txt", "absolute path"),
        ("../escape.txt", "'..'"),
        ("templates/../../escape.txt", "'..'"),
        ("templates/..", "'..'"),
        ("./manifest.yaml", "'.'"),
        ("..\\escape.txt", "backslash"),
        ("templates\\page.html", "backslash"),
        ("templates//page.html", "empty path component"),
        ("a\x01b.txt", "control character"),
        ("a\nb.txt", "control character"),
        ("a\x7fb.txt", "control character"),
        ("a\x85b.txt", "control character"),
    ],
)
def test_refuses_unsafe_names(ws: Workspace, spy: Spy, name: str, problem: str) -> None:
    name = name.replace("/{base}", ws.base.as_posix())  # an absolute path that would land in view
    zip_path = ws.zip([*plugin_entries(), (name, b"gotcha")])

    err = assert_refused(ws, spy, zip_path, name)
    assert problem in str(err)


def test_refuses_a_nul_in_a_name(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.zip([*plugin_entries(), ("evilXbad.txt", b"gotcha")])
    rename_entry_bytes(zip_path, b"evilXbad.txt", b"evil\0bad.txt")
    assert zipfile.ZipFile(zip_path).infolist()[-1].filename == "evil"  # zipfile truncates it

    err = assert_refused(ws, spy, zip_path, "evil\0bad.txt")
    assert "control character" in str(err)


def test_refuses_the_name_reserved_for_the_marker(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.zip([*plugin_entries(), (MARKER, b"templates")])

    err = assert_refused(ws, spy, zip_path, MARKER)
    assert "reserved" in str(err)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("templates/page.html", "templates/page.html"),
        ("templates/page.html", "templates/PAGE.html"),
        ("templates/page.html", "Templates/page.html"),
        ("caf\u00e9.txt", "cafe\u0301.txt"),  # composed and decomposed forms
        ("static/", "STATIC/"),
        ("templates/page.html", "templates/page.html/"),
    ],
    ids=["exact", "case", "case-in-folder", "unicode-form", "dir-entries", "file-and-dir-entry"],
)
def test_refuses_duplicate_names(ws: Workspace, spy: Spy, first: str, second: str) -> None:
    data = b"" if first.endswith("/") else b"one"
    entries: list[Entry] = [("manifest.yaml", MANIFEST), (first, data), (second, b"")]
    zip_path = ws.zip(entries)

    err = assert_refused(ws, spy, zip_path, second)
    assert "collides with" in str(err)
    assert repr(first) in str(err)


def test_refuses_a_name_that_is_both_a_file_and_a_folder(ws: Workspace, spy: Spy) -> None:
    entries: list[Entry] = [("manifest.yaml", MANIFEST), ("lib", b"file"), ("LIB/x.txt", b"x")]
    zip_path = ws.zip(entries)

    err = assert_refused(ws, spy, zip_path, "LIB/x.txt")
    assert repr("lib") in str(err)


@pytest.mark.parametrize(
    "file_type",
    [stat.S_IFLNK, stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK],
    ids=["symlink", "fifo", "char-device", "block-device", "socket"],
)
def test_refuses_entries_that_are_not_regular_files_or_dirs(
    ws: Workspace, spy: Spy, file_type: int
) -> None:
    special = zipfile.ZipInfo("templates/link")
    special.external_attr = (file_type | 0o777) << 16
    zip_path = ws.zip([*plugin_entries(), (special, b"/etc/passwd")])

    err = assert_refused(ws, spy, zip_path, "templates/link")
    expected = "symbolic link" if file_type == stat.S_IFLNK else "not a regular file or directory"
    assert expected in str(err)


def test_refuses_a_directory_mode_on_a_file_name(ws: Workspace, spy: Spy) -> None:
    odd = zipfile.ZipInfo("templates")
    odd.external_attr = (stat.S_IFDIR | 0o755) << 16
    zip_path = ws.zip([("manifest.yaml", MANIFEST), (odd, b"")])

    err = assert_refused(ws, spy, zip_path, "templates")
    assert "marked as a directory" in str(err)


def test_refuses_a_directory_entry_with_content(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.zip([*plugin_entries(), ("assets/", b"hidden payload")])

    err = assert_refused(ws, spy, zip_path, "assets/")
    assert "directory but declares content" in str(err)


def test_refuses_encrypted_entries(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.zip([*plugin_entries(), ("secret.txt", b"hidden")])
    patch_headers(zip_path, "secret.txt", flags=0x1)

    err = assert_refused(ws, spy, zip_path, "secret.txt")
    assert "encrypted" in str(err)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_refuses_compression_methods_other_than_stored_and_deflated(
    ws: Workspace, spy: Spy, method: int
) -> None:
    zip_path = ws.zip(plugin_entries(), method=method)

    err = assert_refused(ws, spy, zip_path, "manifest.yaml")
    assert f"compression method {method}" in str(err)


def test_stored_entries_are_accepted(ws: Workspace) -> None:
    root = extract_package(ws.zip(plugin_entries(), method=zipfile.ZIP_STORED), ws.packages)

    assert (root / "manifest.yaml").read_bytes() == MANIFEST


def test_refuses_too_many_entries_with_the_defaults(ws: Workspace, spy: Spy) -> None:
    extra: list[Entry] = [(f"static/{i}.txt", b"") for i in range(1000)]
    zip_path = ws.zip([("manifest.yaml", MANIFEST), *extra])

    err = assert_refused(ws, spy, zip_path, "static/999.txt")
    assert "1001 entries, more than the limit of 1000" in str(err)


# --- size limits and lying headers -----------------------------------------------------------


@pytest.fixture(scope="session")
def zeros_600mb_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package with a 600 MiB zero-filled entry: a real deflate stream of about 600 KB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    chunk = bytes(MiB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.yaml", MANIFEST)
        with zf.open("zeros.bin", "w", force_zip64=True) as out:
            for _ in range(600):
                out.write(chunk)
    return path


def test_refuses_a_600mb_entry_by_its_declared_size(
    ws: Workspace, spy: Spy, zeros_600mb_zip: Path
) -> None:
    info = zipfile.ZipFile(zeros_600mb_zip).getinfo("zeros.bin")
    assert info.file_size == 600 * MiB
    assert info.compress_size < 2 * MiB
    zip_path = ws.base / "src" / "bomb.zip"
    shutil.copyfile(zeros_600mb_zip, zip_path)

    err = assert_refused(ws, spy, zip_path, "zeros.bin")
    assert f"declares {600 * MiB} bytes" in str(err)
    assert "max_file_size" in str(err)
    assert not any(p.name == "zeros.bin" for p in ws.base.rglob("*"))


def test_refuses_entries_over_the_total_size_with_the_defaults(ws: Workspace, spy: Spy) -> None:
    # Six entries of 90 MiB each: every one under the per-file limit, 540 MiB in all.
    zip_path = ws.zip([("manifest.yaml", MANIFEST), *[(f"part{i}.bin", b"") for i in range(6)]])
    for i in range(6):
        patch_headers(zip_path, f"part{i}.bin", file_size=90 * MiB)

    err = assert_refused(ws, spy, zip_path, "part5.bin")
    assert "max_total_size" in str(err)


def test_aborts_an_entry_that_inflates_past_its_declared_size(ws: Workspace, spy: Spy) -> None:
    # Declares 1 KiB, really holds 10 MiB of zeros.
    zip_path = ws.zip([*plugin_entries(), ("payload.bin", bytes(10 * MiB))])
    patch_headers(zip_path, "payload.bin", file_size=1024)

    err = assert_refused(ws, spy, zip_path, "payload.bin", before_writing=False)

    assert isinstance(err.__cause__, zipfile.BadZipFile)  # zipfile stops at the declared size
    assert spy.removed, "the temp dir was removed"
    assert all(tree.get("payload.bin", 0) <= 1024 + archive._CHUNK for tree in spy.removed)


def test_stops_a_stream_that_produces_more_than_declared(
    ws: Workspace, spy: Spy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # zipfile itself truncates at the declared size; the extractor does not rely on that.
    zip_path = ws.zip([*plugin_entries(), ("payload.bin", bytes(1000))])
    real_open = zipfile.ZipFile.open

    def endless_open(self: zipfile.ZipFile, name: Any, *a: Any, **kw: Any) -> IO[bytes]:
        if getattr(name, "filename", name) == "payload.bin":
            return io.BytesIO(bytes(1000 + 10 * archive._CHUNK))
        return real_open(self, name, *a, **kw)

    monkeypatch.setattr(zipfile.ZipFile, "open", endless_open)

    err = assert_refused(ws, spy, zip_path, "payload.bin", before_writing=False)

    assert "inflates to more than the 1000 bytes it declares" in str(err)
    assert all(tree.get("payload.bin", 0) <= 1000 + archive._CHUNK for tree in spy.removed)


def test_refuses_an_entry_that_inflates_to_less_than_declared(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.zip([*plugin_entries(), ("payload.bin", bytes(1000))])
    patch_headers(zip_path, "payload.bin", file_size=2000)

    err = assert_refused(ws, spy, zip_path, "payload.bin", before_writing=False)
    assert "inflates to 1000 bytes but declares 2000" in str(err)


def test_a_bad_crc_after_good_entries_leaves_nothing_behind(ws: Workspace, spy: Spy) -> None:
    zip_path = ws.zip([*plugin_entries(), ("zz-last.bin", b"data " * 100)])
    crc = zipfile.ZipFile(zip_path).getinfo("zz-last.bin").CRC
    patch_headers(zip_path, "zz-last.bin", crc=crc ^ 0xFFFF)

    err = assert_refused(ws, spy, zip_path, "zz-last.bin", before_writing=False)

    assert isinstance(err.__cause__, zipfile.BadZipFile)
    # The good entries had been written to the temp dir before it was removed.
    assert any("manifest.yaml" in tree and "templates/page.html" in tree for tree in spy.removed)


# --- the header patching the tests rely on ---------------------------------------------------


def test_patch_headers_changes_what_zipfile_reads(ws: Workspace) -> None:
    zip_path = ws.zip([("a.txt", b"abc")])
    patch_headers(zip_path, "a.txt", file_size=7, flags=0x1)
    info = zipfile.ZipFile(zip_path).getinfo("a.txt")
    assert (info.file_size, info.flag_bits & 0x1) == (7, 1)
