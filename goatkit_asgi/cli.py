"""The ``gk`` command line.

``gk demo`` runs the example helpdesk; ``gk dev`` runs an app with hot reload for plugin work;
``gk plugin ...`` creates, builds, packs, signs, verifies, inspects, calls, lists and pushes
plugins. Errors are one line on stderr and a non-zero exit code (1: the command failed, 2: it was
used wrongly); ``--help`` on every command says what it takes, and ``--json`` makes the result a
JSON document on stdout for scripts. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import importlib
import importlib.util
import inspect
import json
import logging
import os
import queue
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, GoatKitError, HostCallError
from .packaging.manifest import MANIFEST_NAMES, Manifest, load_manifest
from .packaging.signing import (
    EXTRACTION_MARKER,
    FORMAT,
    SIGNATURE_FILE,
    SignatureStatus,
    generate_keypair,
    key_id,
    load_private_key,
    plugin_files,
    sign_directory,
    sign_goatkit,
    verify_directory,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from .platform import Platform

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: Fixed timestamp of every entry of a packed plugin (the earliest a zip can hold).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

#: Never packed: build artefacts, caches, VCS data, local databases, keys, packages.
EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".zig-cache",
        "zig-cache",
        "zig-out",
        "node_modules",
        ".venv",
        "venv",
        ".goatkit",
        ".idea",
        ".vscode",
    }
)
EXCLUDED_FILES = (
    "*.o",
    "*.obj",
    "*.a",
    "*.pyc",
    "*.pyo",
    "*.db",
    "*.db-journal",
    "*.db-wal",
    "*.db-shm",
    "*.sqlite",
    "*.sqlite3",
    "*.key",
    "*.zip",
    "*.swp",
    "*~",
    ".DS_Store",
    ".gitignore",
    ".gkignore",
    EXTRACTION_MARKER,
)
IGNORE_FILE = ".gkignore"
BUILD_SCRIPT = "build.sh"
TOKEN_ENV = "GOATKIT_ADMIN_TOKEN"
_PRIVATE_KEY_MARK = b"PRIVATE KEY-----"
_SCAN_LIMIT = 256 * 1024


def _usage(message: str) -> GoatKitError:
    """An error in how the command was used (exit code 2)."""
    return GoatKitError(message, code="usage")


def _failed(message: str, *, code: str = "failed") -> GoatKitError:
    """The command could not do its job (exit code 1)."""
    return GoatKitError(message, code=code)


# --- output ------------------------------------------------------------------------------------


def _emit(args: argparse.Namespace, data: Any, text: str | None) -> None:
    """The command's result: ``data`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str), flush=True)
    elif text:
        print(text, flush=True)


def _progress(args: argparse.Namespace, message: str) -> None:
    """A progress line on stderr (quiet with ``--quiet``)."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def _size(n: int) -> str:
    if n < 10 * 1024:
        return f"{n} bytes"
    if n < 10 * 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


# --- gk demo -----------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    import uvicorn

    from .demo.app import build_app

    data_dir = Path(args.dir).resolve()
    app = build_app(data_dir, debug=True, base_url=f"http://{args.host}:{args.port}")
    url = f"http://{args.host}:{args.port}/"
    print(f"goatkit demo: {url}  (data in {data_dir}; Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


# --- plugin directories ------------------------------------------------------------------------


def _plugin_dir(path: str | Path) -> tuple[Path, Manifest]:
    directory = Path(path)
    if not directory.is_dir():
        raise _failed(f"{path}: no such directory")
    return directory, load_manifest(directory)


def _module_path(manifest: Manifest) -> Path | None:
    if manifest.runtime != "wasm":
        return None
    return manifest.directory / (manifest.wasm or "plugin.wasm")


class _Selection:
    """Which files of a plugin directory go into its package."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.patterns: list[str] = []
        ignore = root / IGNORE_FILE
        if ignore.is_file():
            for line in ignore.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    self.patterns.append(line)

    def excluded(self, rel: str, *, is_dir: bool) -> bool:
        parts = PurePosixPath(rel).parts
        if any(part in EXCLUDED_DIRS for part in (parts if is_dir else parts[:-1])):
            return True
        name = parts[-1]
        if not is_dir and any(fnmatch.fnmatchcase(name, p) for p in EXCLUDED_FILES):
            return True
        for pattern in self.patterns:
            dir_only = pattern.endswith("/")
            pat = pattern.strip("/")
            if dir_only and not is_dir:
                # a file is excluded when a directory above it matches
                if any(self._match(pat, "/".join(parts[: i + 1])) for i in range(len(parts) - 1)):
                    return True
                continue
            if self._match(pat, rel):
                return True
        return False

    @staticmethod
    def _match(pattern: str, rel: str) -> bool:
        if "/" in pattern:
            return fnmatch.fnmatchcase(rel, pattern)
        return fnmatch.fnmatchcase(PurePosixPath(rel).name, pattern)

    def files(self, *, skip: Path | None = None) -> list[str]:
        """The files to package, as sorted POSIX paths (``SIGNATURE.json`` included)."""
        out: list[str] = []
        skip_resolved = skip.resolve() if skip is not None else None
        for current, dirs, files in os.walk(self.root, followlinks=False):
            here = Path(current)
            rel_here = here.relative_to(self.root).as_posix()
            prefix = "" if rel_here == "." else rel_here + "/"
            kept = []
            for d in sorted(dirs):
                if self.excluded(prefix + d, is_dir=True):
                    continue
                if (here / d).is_symlink():
                    raise _failed(
                        f"{prefix}{d} is a symbolic link; a package holds only regular files "
                        f"(replace it with a copy, or list it in {IGNORE_FILE})"
                    )
                kept.append(d)
            dirs[:] = kept
            for f in sorted(files):
                rel = prefix + f
                if self.excluded(rel, is_dir=False):
                    continue
                path = here / f
                if skip_resolved is not None and path.resolve() == skip_resolved:
                    continue
                mode = path.lstat().st_mode
                if not stat.S_ISREG(mode):
                    raise _failed(
                        f"{rel} is a symbolic link or special file; a package holds only "
                        f"regular files (replace it with a copy, or list it in {IGNORE_FILE})"
                    )
                out.append(rel)
        return sorted(out)


def _check_no_private_keys(root: Path, files: Sequence[str]) -> None:
    for rel in files:
        path = root / rel
        try:
            with path.open("rb") as fh:
                head = fh.read(_SCAN_LIMIT)
        except OSError:
            continue
        if _PRIVATE_KEY_MARK in head:
            raise _failed(
                f"{rel} looks like a private key and is not packed; move it out of the plugin "
                f"or list it in {IGNORE_FILE}"
            )


def _write_zip(dest: Path, entries: Sequence[tuple[str, Path]]) -> tuple[int, str]:
    """Write a reproducible zip of ``entries`` (name, file) to ``dest``; return size, sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as zf:
            for name, path in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, so the mode below is read as such
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(info, path.read_bytes(), compresslevel=9)
        data = tmp.read_bytes()
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(data), hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PackResult:
    """What ``gk plugin pack`` made."""

    path: Path
    name: str
    version: str
    files: tuple[str, ...]
    size: int
    sha256: str
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": str(self.path),
            "name": self.name,
            "version": self.version,
            "files": list(self.files),
            "size": self.size,
            "sha256": self.sha256,
            "signed": self.signed,
        }


def pack_plugin(directory: Path, output: Path) -> PackResult:
    """Pack the plugin in ``directory`` into the reproducible zip ``output``.

    Entries are sorted, dated 1980-01-01, mode 0644, with no directory entries; build artefacts,
    caches, VCS data, local databases, keys and whatever ``.gkignore`` lists are left out. A
    signed directory (``SIGNATURE.json``) is packed exactly as signed: a file changed, added or
    removed since is an error.
    """
    directory, manifest = _plugin_dir(directory)
    module = _module_path(manifest)
    if module is not None and not module.is_file():
        raise _failed(
            f"{manifest.name}: {module.name} does not exist; build the plugin first "
            "(gk plugin build)"
        )
    files = _Selection(directory).files(skip=output)
    signed = SIGNATURE_FILE in files
    if signed:
        files = _signed_selection(directory, manifest, files)
    _check_no_private_keys(directory, files)
    size, digest = _write_zip(output, [(rel, directory / rel) for rel in files])
    return PackResult(output, manifest.name, manifest.version, tuple(files), size, digest, signed)


def _signed_selection(directory: Path, manifest: Manifest, selection: Sequence[str]) -> list[str]:
    """The files of a signed directory's package: exactly the signed ones, unchanged, and no
    file that a package would hold besides them."""
    status = verify_directory(directory, (), module=manifest.wasm or "plugin.wasm")
    if status.state == "invalid":
        raise _failed(f"{manifest.name}: {status.detail}")
    listed = set(status.files)
    if status.scheme != FORMAT:
        return list(selection)
    wanted = (listed | set(selection)) - {SIGNATURE_FILE}
    status = verify_directory(
        directory, (), module=manifest.wasm or "plugin.wasm", files=sorted(wanted)
    )
    if status.state == "tampered":
        raise _failed(
            f"{manifest.name}: {status.detail}; sign it again (gk plugin sign) or remove "
            f"{SIGNATURE_FILE}"
        )
    return sorted({*listed, SIGNATURE_FILE})


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[Path, int]]:
    """The plugin root of a directory, or of a package extracted safely into a temporary
    directory; and the size of the package (or of the directory's files)."""
    if path.is_dir():
        size = sum((path / rel).stat().st_size for rel in plugin_files(path))
        yield path, size
        return
    if not path.is_file():
        raise _failed(f"{path}: no such file or directory")
    from .packaging.archive import extract_package

    with tempfile.TemporaryDirectory(prefix="gk-") as tmp:
        root = extract_package(path, Path(tmp))
        yield root, path.stat().st_size


# --- gk plugin init ----------------------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    from .scaffold import LANGUAGES, layout_for, scaffold

    runtime = args.runtime
    if runtime is None:
        runtime = next((r for r, langs in LANGUAGES.items() if args.lang in langs), "wasm")
    try:
        layout = layout_for(runtime, args.lang)
    except ConfigError as exc:
        raise _usage(exc.message) from exc
    destination = Path(args.dir) if args.dir else Path(args.name)
    try:
        written = scaffold(
            args.name,
            destination,
            runtime=runtime,
            lang=layout.lang,
            description=args.description,
            force=args.force,
        )
    except ConfigError as exc:
        raise _usage(exc.message) from exc
    rel = [p.relative_to(destination).as_posix() for p in written]
    steps = [f"cd {destination}"]
    if layout.build:
        steps.append("gk plugin build")
    steps.append("pytest")
    _emit(
        args,
        {
            "name": args.name,
            "runtime": runtime,
            "lang": layout.lang,
            "directory": str(destination),
            "files": rel,
        },
        f"created {args.name} ({runtime}, {layout.lang}) in {destination}: {', '.join(rel)}\n"
        f"next: {' && '.join(steps)}",
    )
    return EXIT_OK


# --- gk plugin build ---------------------------------------------------------------------------


def _sdk_include_dir() -> Path:
    return Path(__file__).resolve().parent / "sdk" / "c"


def build_plugin(
    directory: Path,
    *,
    report: Callable[[str], None],
    echo: Callable[[str], None] | None,
    tick: float = 10.0,
) -> dict[str, Any]:
    """Run the plugin's ``build.sh``; check the module it makes. Returns what was built."""
    directory, manifest = _plugin_dir(directory)
    script = directory / BUILD_SCRIPT
    module = _module_path(manifest)
    if not script.is_file():
        if module is None or module.is_file():
            return {"plugin": manifest.name, "built": False, "module": None, "seconds": 0.0}
        raise _failed(
            f"{manifest.name}: no {BUILD_SCRIPT} in {directory} and no {module.name}; add a "
            f"{BUILD_SCRIPT} that writes {module.name}"
        )
    shell = shutil.which("sh")
    if shell is None:
        raise _failed("no POSIX shell (sh) to run build.sh with")
    if "ziglang" in script.read_text(encoding="utf-8", errors="replace") and (
        importlib.util.find_spec("ziglang") is None and "PYTHON" not in os.environ
    ):
        raise _failed(
            f"{manifest.name}: {BUILD_SCRIPT} compiles with zig, which is not installed here; "
            "pip install ziglang"
        )
    env = dict(os.environ)
    env.setdefault("PYTHON", sys.executable)
    env.setdefault("GOATKIT_SDK_C", str(_sdk_include_dir()))
    first = not _zig_cache_warm()
    report(
        f"building {manifest.name} ({BUILD_SCRIPT})"
        + (" - the first zig build compiles its C library, about 20 s" if first else "")
    )
    started = time.monotonic()
    code, tail = _run_streaming(
        [shell, BUILD_SCRIPT],
        directory,
        env,
        echo=echo,
        on_silence=lambda elapsed: report(f"  still building {manifest.name}... {elapsed:.0f}s"),
        tick=tick,
    )
    seconds = time.monotonic() - started
    if code != 0:
        shown = "" if echo is not None else ": " + " / ".join(x.strip() for x in tail[-5:])
        raise _failed(f"{manifest.name}: {BUILD_SCRIPT} failed with exit code {code}{shown}")
    result: dict[str, Any] = {"plugin": manifest.name, "built": True, "seconds": round(seconds, 2)}
    if module is not None:
        if not module.is_file():
            raise _failed(f"{manifest.name}: {BUILD_SCRIPT} finished but wrote no {module.name}")
        data = module.read_bytes()
        _check_module(manifest, data)
        result.update(module=module.name, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return result


def _run_streaming(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    *,
    echo: Callable[[str], None] | None,
    on_silence: Callable[[float], None],
    tick: float,
) -> tuple[int, list[str]]:
    """Run ``argv``, passing each output line to ``echo`` and calling ``on_silence`` after
    every ``tick`` seconds without output. Returns the exit code and the last lines."""
    started = time.monotonic()
    lines: queue.Queue[str | None] = queue.Queue()
    tail: list[str] = []
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    ) as proc:

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
            lines.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        quiet_since = started
        try:
            while True:
                try:
                    line = lines.get(timeout=min(1.0, tick))
                except queue.Empty:
                    now = time.monotonic()
                    if now - quiet_since >= tick:
                        quiet_since = now
                        on_silence(now - started)
                    continue
                if line is None:
                    break
                quiet_since = time.monotonic()
                tail = [*tail[-29:], line]
                if echo is not None:
                    echo(f"  | {line}")
        except BaseException:
            proc.kill()
            raise
        code = proc.wait()
        reader.join()
    return code, tail


def _zig_cache_warm() -> bool:
    home = os.environ.get("ZIG_GLOBAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zig"
    )
    return os.path.isdir(home)


def _check_module(manifest: Manifest, data: bytes) -> Any:
    from .runtime.wasm import WasmEngine

    engine = WasmEngine()
    try:
        return engine.compile(data, plugin=manifest.name, source=manifest.wasm or "plugin.wasm")
    finally:
        engine.close()


def _cmd_build(args: argparse.Namespace) -> int:
    quiet = args.quiet
    result = build_plugin(
        Path(args.dir),
        report=lambda m: _progress(args, m),
        echo=None if quiet else (lambda line: print(line, file=sys.stderr, flush=True)),
    )
    if not result["built"]:
        text = f"nothing to build for {result['plugin']}"
    elif result.get("module"):
        text = (
            f"built {result['plugin']}: {result['module']} ({_size(result['size'])}) "
            f"in {result['seconds']:.1f}s"
        )
    else:
        text = f"built {result['plugin']} in {result['seconds']:.1f}s"
    _emit(args, result, text)
    return EXIT_OK


# --- gk plugin pack ----------------------------------------------------------------------------


def _default_package_name(manifest: Manifest) -> str:
    return f"{manifest.name}-{manifest.version}.zip"


def _cmd_pack(args: argparse.Namespace) -> int:
    directory, manifest = _plugin_dir(args.dir)
    output = Path(args.output) if args.output else Path(_default_package_name(manifest))
    result = pack_plugin(directory, output)
    _emit(
        args,
        result.to_dict(),
        f"packed {result.name} {result.version}: {output} ({len(result.files)} files, "
        f"{_size(result.size)}{', signed' if result.signed else ''})",
    )
    return EXIT_OK


# --- keys, signing, verifying ------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    prefix = Path(args.out)
    private_file = prefix.with_name(prefix.name + ".key")
    public_file = prefix.with_name(prefix.name + ".pub")
    for path in (private_file, public_file):
        if path.exists() and not args.force:
            raise _failed(f"{path} exists; choose another --out or pass --force to replace it")
    pem, public = generate_keypair()
    private_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private_file, 0o600)
    public_file.write_text(public + "\n", encoding="ascii")
    kid = key_id(public)
    _emit(
        args,
        {
            "private_key_file": str(private_file),
            "public_key_file": str(public_file),
            "public_key": public,
            "key_id": kid,
        },
        f"wrote {private_file} (private: keep it secret) and {public_file}\n"
        f"key id {kid}; trust it with trusted_keys=[{public!r}]",
    )
    return EXIT_OK


def _read_private_key(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _usage(f"--key {path}: cannot be read ({exc.strerror or exc})") from exc
    load_private_key(data)  # a readable message now rather than later
    return data


def _read_public_keys(values: Sequence[str] | None) -> list[str]:
    """Keys from ``--key`` values: key text, or files of keys (one per line, # comments)."""
    keys: list[str] = []
    for value in values or ():
        path = Path(value)
        text = value
        if not value.startswith(("ed25519:", "-----BEGIN")) and path.is_file():
            text = path.read_text(encoding="utf-8")
            if "-----BEGIN" in text:
                keys.append(text)
                continue
            keys.extend(
                line.strip()
                for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")
            )
            continue
        keys.append(text)
    from .packaging.signing import load_public_key

    for key in keys:
        try:
            load_public_key(key)
        except ConfigError as exc:
            raise _usage(exc.message) from exc
    return keys


def _sign_zip(package: Path, pem: bytes) -> tuple[list[str], str]:
    """Sign a package in place: extract it safely, sign every file, write it back."""
    with tempfile.TemporaryDirectory(prefix="gk-") as tmp:
        from .packaging.archive import extract_package

        root = extract_package(package, Path(tmp))
        if (root / SIGNATURE_FILE).exists():
            (root / SIGNATURE_FILE).unlink()
        sign_directory(root, pem)
        files = [*plugin_files(root), SIGNATURE_FILE]
        _write_zip(package, [(rel, root / rel) for rel in files])
    kid = key_id(load_private_key(pem).public_key())
    return files, kid


def _cmd_sign(args: argparse.Namespace) -> int:
    pem = _read_private_key(args.key)
    target = Path(args.path)
    kid = key_id(load_private_key(pem).public_key())
    if args.goatkit:
        if target.is_dir():
            _, manifest = _plugin_dir(target)
            module = _module_path(manifest)
            if module is None or not module.is_file():
                raise _failed(f"{manifest.name}: no module to sign; build the plugin first")
            target = module
        elif target.suffix == ".zip":
            raise _usage("--goatkit signs a module file or a plugin directory, not a package")
        sig = sign_goatkit(target, pem)
        _emit(
            args,
            {"file": str(target), "signature_file": str(sig), "key_id": kid, "format": "goatkit"},
            f"signed {target.name} (GoatKit format, module only): {sig} with key {kid}",
        )
        return EXIT_OK
    if target.is_dir():
        _, manifest = _plugin_dir(target)
        sign_directory(target, pem)
        files = [*plugin_files(target), SIGNATURE_FILE]
        selection = _Selection(target)
        extra = [rel for rel in files if selection.excluded(rel, is_dir=False)]
        if extra:
            _progress(
                args,
                f"note: the signature covers files that packages leave out ({', '.join(extra[:5])}"
                f"{', ...' if len(extra) > 5 else ''}); `gk plugin pack` refuses such a "
                "directory: sign the package instead (gk plugin pack, then gk plugin sign X.zip)",
            )
    elif target.is_file():
        files, kid = _sign_zip(target, pem)
    else:
        raise _failed(f"{target}: no such file or directory")
    _emit(
        args,
        {"path": str(target), "key_id": kid, "files": files},
        f"signed {target}: {len(files) - 1} files with key {kid} ({SIGNATURE_FILE})",
    )
    return EXIT_OK


def _signature_text(status: SignatureStatus) -> str:
    return f"{status.state}" + (f" ({status.detail})" if status.detail else "")


def _cmd_verify(args: argparse.Namespace) -> int:
    keys = _read_public_keys(args.key)
    target = Path(args.path)
    with _opened(target) as (root, _size_bytes):
        module = "plugin.wasm"
        with contextlib.suppress(GoatKitError):
            module = load_manifest(root).wasm or module
        status = verify_directory(root, keys, module=module)
    data = {"path": str(target), **status.to_dict()}
    _emit(args, data, f"{target}: {_signature_text(status)}")
    if not status.ok and not args.json:
        print(
            f"gk plugin verify: {target}: signature {status.state}: {status.detail}",
            file=sys.stderr,
        )
    return EXIT_OK if status.ok else EXIT_FAILED


# --- gk plugin inspect -------------------------------------------------------------------------


class _NoHost:
    """The host of ``inspect``: registration needs none; every host call is refused."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def host_call(self, plugin: str, function: str, args: bytes, deadline: float) -> bytes:
        raise HostCallError(
            f"{plugin}: {function}: no host functions while inspecting",
            plugin=plugin,
            function=function,
            code="unavailable",
        )

    def log(self, plugin: str, level: str, message: str) -> None:
        self.logs.append(f"{level}: {message}")


def _describe_type(ty: Any) -> str:
    import wasmtime

    if isinstance(ty, wasmtime.FuncType):
        params = ", ".join(str(p) for p in ty.params)
        results = ", ".join(str(r) for r in ty.results)
        return f"func ({params}) -> ({results})"
    if isinstance(ty, wasmtime.MemoryType):
        limits = ty.limits
        top = "" if limits.max is None else f"..{limits.max}"
        return f"memory {limits.min}{top} pages"
    if isinstance(ty, wasmtime.GlobalType):
        return f"global {'mut ' if ty.mutable else ''}{ty.content}"
    if isinstance(ty, wasmtime.TableType):
        return f"table {ty.element}"
    return type(ty).__name__


def _registration_summary(reg: Any) -> dict[str, Any]:
    return {
        "name": reg.name,
        "version": reg.version,
        "functions": [f.name for f in reg.functions],
        "routes": [f"{r.method} {r.path} -> {r.handler}" for r in reg.routes],
        "menu_items": [m.label for m in reg.menu_items],
        "hooks": [h.name for h in reg.hooks],
        "jobs": [j.id for j in reg.jobs],
        "permissions": list(reg.permissions),
    }


def inspect_plugin(path: Path, keys: Sequence[str]) -> dict[str, Any]:
    """Everything ``gk plugin inspect`` reports about a plugin directory or package."""
    import wasmtime

    from .registration import parse_registration
    from .runtime.wasm import WasmEngine

    report: dict[str, Any] = {"path": str(path), "problems": []}
    with _opened(path) as (root, size):
        report["size"] = size
        manifest = load_manifest(root)
        report["manifest"] = {
            "name": manifest.name,
            "version": manifest.version,
            "runtime": manifest.runtime,
            "description": manifest.description,
            "author": manifest.author,
            "license": manifest.license,
            "module": manifest.wasm if manifest.runtime == "wasm" else None,
            "command": list(manifest.command) if manifest.command else None,
            "exports": [spec.name for spec in manifest.exports],
            "resources": {
                "memory_mb": manifest.resources.memory_mb,
                "call_timeout": manifest.resources.call_timeout,
                "max_instances": manifest.resources.max_instances,
            },
            "warnings": list(manifest.warnings),
        }
        report["capabilities"] = manifest.capabilities.to_dict()
        report["permissions"] = list(manifest.permissions)
        status = verify_directory(root, keys, module=manifest.wasm or "plugin.wasm")
        report["signature"] = status.to_dict()
        report["module"] = None
        report["registration"] = None
        module_path = _module_path(manifest)
        if module_path is None:
            report["registration_note"] = (
                f"runtime {manifest.runtime}: the registration is read when the plugin runs"
            )
            return report
        try:
            data = module_path.read_bytes()
        except OSError as exc:
            report["problems"].append(
                f"{module_path.name} cannot be read ({exc.strerror or exc}); build the plugin"
            )
            return report
        try:
            raw_module = wasmtime.Module(wasmtime.Engine(), data)
        except wasmtime.WasmtimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            report["problems"].append(
                f"{module_path.name} is not a valid WebAssembly module ({first}); rebuild it"
            )
            return report
        report["module"] = {
            "file": module_path.name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "imports": [
                {"module": i.module, "name": i.name, "type": _describe_type(i.type)}
                for i in raw_module.imports
            ],
            "exports": [
                {"name": e.name, "type": _describe_type(e.type)} for e in raw_module.exports
            ],
        }
        engine = WasmEngine()
        engine.ticker.start()
        host = _NoHost()
        try:
            module = engine.compile(data, plugin=manifest.name, source=module_path.name)
            memory = (manifest.resources.memory_mb or 16) * 1024 * 1024
            timeout = manifest.resources.call_timeout or 5.0
            instance = module.instantiate(host, memory_limit=memory, init_timeout=timeout)
            reg = parse_registration(instance.register(timeout), plugin=manifest.name)
            report["registration"] = _registration_summary(reg)
        except GoatKitError as exc:
            report["problems"].append(exc.message)
        finally:
            engine.close()
        if host.logs:
            report["log"] = host.logs
    return report


def _inspect_text(report: dict[str, Any]) -> str:
    m = report["manifest"]
    lines = [
        f"{m['name']} {m['version']} ({m['runtime']}) - {report['path']}, {_size(report['size'])}",
    ]
    if m["description"]:
        lines.append(f"  {m['description']}")
    mod = report.get("module")
    if mod:
        lines.append(f"module: {mod['file']}, {_size(mod['size'])}, sha256 {mod['sha256'][:16]}")
        imports = ", ".join(f"{i['module']}.{i['name']}" for i in mod["imports"]) or "none"
        lines.append(f"  imports: {imports}")
        lines.append(f"  exports: {', '.join(e['name'] for e in mod['exports'])}")
    reg = report.get("registration")
    if reg:
        lines.append(f"registration: functions {', '.join(reg['functions']) or 'none'}")
        for key in ("routes", "menu_items", "hooks", "jobs", "permissions"):
            if reg[key]:
                lines.append(f"  {key.replace('_', ' ')}: {', '.join(reg[key])}")
    elif report.get("registration_note"):
        lines.append(f"registration: {report['registration_note']}")
    caps = report["capabilities"]
    lines.append(
        "capabilities requested: "
        + (json.dumps(caps, separators=(", ", ": ")) if caps else "none (log and cache only)")
    )
    sig = report["signature"]
    lines.append(f"signature: {sig['state']}" + (f" ({sig['detail']})" if sig["detail"] else ""))
    for problem in report["problems"]:
        lines.append(f"problem: {problem}")
    return "\n".join(lines)


def _cmd_inspect(args: argparse.Namespace) -> int:
    keys = _read_public_keys(args.key)
    report = inspect_plugin(Path(args.path), keys)
    _emit(args, report, _inspect_text(report))
    if report["problems"]:
        if args.json:
            print(f"gk plugin inspect: {report['problems'][0]}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


# --- running plugins locally: call, list -------------------------------------------------------


def _plugins_root(value: str | None, stack: contextlib.ExitStack) -> Path:
    """The plugins directory to run: ``--plugins`` (a plugins directory, or one plugin's
    directory), else ``./plugins``, else the current directory when it is a plugin."""
    if value is None:
        if Path("plugins").is_dir():
            return Path("plugins")
        if any(Path(name).is_file() for name in MANIFEST_NAMES):
            value = "."
        else:
            raise _usage(
                "no plugins here: run it in a plugin's directory or beside plugins/, or give "
                "--plugins DIR"
            )
    path = Path(value)
    if not path.is_dir():
        raise _usage(f"--plugins {value}: no such directory")
    if not any((path / name).is_file() for name in MANIFEST_NAMES):
        return path
    manifest = load_manifest(path)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gk-plugins-")))
    link = tmp / manifest.name
    try:
        link.symlink_to(path.resolve(), target_is_directory=True)
    except OSError:
        shutil.copytree(path, link, ignore=shutil.ignore_patterns(*EXCLUDED_DIRS, "*.db"))
    return tmp


def _signature_options(args: argparse.Namespace) -> dict[str, Any]:
    from .platform import Platform

    keys = _read_public_keys(getattr(args, "trusted_key", None))
    required = bool(getattr(args, "require_signatures", False))
    if not keys and not required:
        return {}
    accepted = inspect.signature(Platform.__init__).parameters
    if "trusted_keys" not in accepted or "require_signatures" not in accepted:
        raise _usage("this version of goatkit_asgi has no signature policy on the platform")
    return {"trusted_keys": keys, "require_signatures": required}


def _plugin_config(values: Sequence[str] | None, plugin: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise _usage(f"--config {item!r}: use KEY=VALUE (VALUE is JSON, or text)")
        try:
            config[key] = json.loads(raw)
        except ValueError:
            config[key] = raw
    return {plugin: config} if config and plugin else {}


def _platform(
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    *,
    database_url: str | None,
    plugin: str | None = None,
) -> Platform:
    from .platform import Platform

    plugins = _plugins_root(args.plugins, stack)
    state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gk-state-")))
    if database_url is None:
        database_url = f"sqlite:///{(state / 'goatkit.db').as_posix()}"
    return Platform(
        plugins,
        state_dir=state / "state",
        database_url=database_url,
        auto_grant=bool(getattr(args, "grant_all", False)),
        plugin_config=_plugin_config(getattr(args, "config", None), plugin),
        hot_reload=False,
        **_signature_options(args),
    )


def _json_argument(text: str | None) -> Any:
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise _usage(f"{text}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _usage(
            f'the arguments are not valid JSON ({exc}); e.g. \'{{"name": "Ada"}}\''
        ) from exc


def _cmd_call(args: argparse.Namespace) -> int:
    import anyio

    call_args = _json_argument(args.args)
    logs: list[dict[str, Any]] = []

    async def run() -> tuple[Any, float]:
        with contextlib.ExitStack() as stack:
            platform = _platform(args, stack, database_url=args.db, plugin=args.name)
            async with platform:
                started = time.perf_counter()
                try:
                    result = await platform.call(
                        args.name, args.function, call_args, timeout=args.timeout
                    )
                finally:
                    for record in platform.logs.records(args.name):
                        logs.append({"level": record.level, "message": record.message})
                return result, time.perf_counter() - started

    try:
        result, seconds = anyio.run(run)
    except GoatKitError as exc:
        if exc.code == "usage":
            raise
        _show_logs(args, logs)
        if args.json:
            _emit(args, {"ok": False, "error": exc.to_dict(), "logs": logs}, None)
        raise
    _show_logs(args, logs)
    _emit(
        args,
        {"ok": True, "result": result, "seconds": round(seconds, 6), "logs": logs},
        json.dumps(result, indent=2, ensure_ascii=False),
    )
    return EXIT_OK


def _show_logs(args: argparse.Namespace, logs: list[dict[str, Any]]) -> None:
    if args.json or args.quiet:
        return
    for record in logs:
        print(f"[{args.name}] {record['level']}: {record['message']}", file=sys.stderr)


def _plugin_row(info: Any) -> dict[str, Any]:
    manifest = info.manifest
    signature = getattr(info, "signature", None)
    return {
        "name": info.name,
        "state": str(info.state),
        "version": manifest.version if manifest else None,
        "runtime": manifest.runtime if manifest else None,
        "source": info.source.name,
        "functions": sorted(info.registration.callable_names()) if info.registration else [],
        "signature": signature.to_dict() if signature is not None else None,
        "error": info.error.message if info.error else None,
    }


def _cmd_list(args: argparse.Namespace) -> int:
    import anyio

    async def run() -> list[dict[str, Any]]:
        with contextlib.ExitStack() as stack:
            async with _platform(args, stack, database_url=args.db) as platform:
                return [_plugin_row(info) for info in platform.plugins.values()]

    rows = anyio.run(run)
    lines = []
    for row in rows:
        line = f"{row['name']:<24} {row['version'] or '-':<10} {row['state']:<10}"
        if row["signature"]:
            line += f" signature {row['signature']['state']}"
        if row["error"]:
            line += f"  {row['error']}"
        lines.append(line.rstrip())
    _emit(args, {"plugins": rows}, "\n".join(lines) if lines else "no plugins")
    return EXIT_OK


# --- gk plugin push ----------------------------------------------------------------------------


def _needs_build(directory: Path, manifest: Manifest) -> bool:
    if not (directory / BUILD_SCRIPT).is_file():
        return False
    module = _module_path(manifest)
    if module is None:
        return False
    if not module.is_file():
        return True
    built = module.stat().st_mtime_ns
    selection = _Selection(directory)
    for rel in selection.files():
        if rel in (module.name, SIGNATURE_FILE):
            continue
        if (directory / rel).stat().st_mtime_ns > built:
            return True
    return False


class _Pusher:
    """Build (when sources changed), pack, optionally sign, and upload to the admin API."""

    def __init__(self, args: argparse.Namespace, token: str) -> None:
        self.args = args
        self.directory = Path(args.dir)
        self.url = args.url.rstrip("/") + "/api/plugins"
        self.token = token
        self.key = _read_private_key(args.sign_key) if args.sign_key else None
        self.last_digest: str | None = None

    def push(self) -> dict[str, Any] | None:
        """Push the current state; None when the package did not change since the last push."""
        import httpx

        args = self.args
        directory, manifest = _plugin_dir(self.directory)
        if not args.no_build and _needs_build(directory, manifest):
            build_plugin(
                directory,
                report=lambda m: _progress(args, m),
                echo=None if args.quiet else (lambda line: _progress(args, line)),
            )
            manifest = load_manifest(directory)
        filename = f"{manifest.name}.zip"
        with tempfile.TemporaryDirectory(prefix="gk-push-") as tmp:
            package = Path(tmp) / filename
            pack_plugin(directory, package)
            if self.key is not None:
                _sign_zip(package, self.key)
            data = package.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.last_digest:
            return None
        _progress(args, f"pushing {manifest.name} {manifest.version} ({_size(len(data))})")
        try:
            response = httpx.post(
                self.url,
                files={"package": (filename, data, "application/zip")},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=args.timeout,
            )
        except httpx.HTTPError as exc:
            raise _failed(f"cannot reach {self.url} ({exc})") from exc
        body = _json_body(response)
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            message = (
                error.get("message") if isinstance(error, dict) else response.text[:200].strip()
            )
            raise _failed(f"{self.url} answered {response.status_code}: {message}")
        self.last_digest = digest
        return {
            "plugin": manifest.name,
            "version": manifest.version,
            "url": self.url,
            "status": response.status_code,
            "sha256": digest,
            "size": len(data),
            "response": body,
        }


def _json_body(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _cmd_push(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise _usage(f"give the admin API token with --token or the {TOKEN_ENV} variable")
    pusher = _Pusher(args, token)
    result = pusher.push()
    assert result is not None
    _report_push(args, result)
    if not args.watch:
        return EXIT_OK
    import watchfiles

    directory = Path(args.dir).resolve()
    selection = _Selection(directory)

    def wanted(change: watchfiles.Change, path: str) -> bool:
        try:
            rel = Path(path).resolve().relative_to(directory).as_posix()
        except ValueError:
            return False
        if rel == ".":
            return False
        return not selection.excluded(rel, is_dir=Path(path).is_dir())

    _progress(args, f"watching {args.dir} for changes (Ctrl+C stops)")
    for _changes in watchfiles.watch(
        directory, watch_filter=wanted, debounce=300, step=50, raise_interrupt=False
    ):
        try:
            result = pusher.push()
        except GoatKitError as exc:
            print(f"gk plugin push: {exc.message}", file=sys.stderr, flush=True)
            continue
        if result is None:
            continue
        _report_push(args, result)
        if args.once:
            break
    return EXIT_OK


def _report_push(args: argparse.Namespace, result: dict[str, Any]) -> None:
    message = ""
    if isinstance(result.get("response"), dict):
        message = str(result["response"].get("message") or "")
    _emit(
        args,
        result,
        f"pushed {result['plugin']} {result['version']} to {args.url}"
        + (f": {message}" if message else ""),
    )


# --- gk dev ------------------------------------------------------------------------------------

_DEV_APP_ENV = "GOATKIT_DEV_APP"
_DEV_PLUGINS_ENV = "GOATKIT_DEV_PLUGINS"
_DEV_STATE_ENV = "GOATKIT_DEV_STATE"


def dev_app() -> ASGIApp:
    """The app ``gk dev`` serves (a uvicorn factory; configured through the environment).

    With an app (``module:attr``): that app, with hot reload turned on for every
    :class:`~goatkit_asgi.Platform` found in its module (or as its ``platform`` attribute).
    Without: a small development host over the plugins directory (see ``gk dev --help``).
    """
    target = os.environ.get(_DEV_APP_ENV)
    if target:
        return _load_dev_app(target)
    return _default_dev_app(
        Path(os.environ.get(_DEV_PLUGINS_ENV, "plugins")),
        Path(os.environ.get(_DEV_STATE_ENV, ".goatkit-dev")),
        os.environ.get(TOKEN_ENV, ""),
    )


def _load_dev_app(target: str) -> ASGIApp:
    import dataclasses

    from .platform import Platform

    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    app: Any = module
    for part in (attr or "app").split("."):
        app = getattr(app, part)
    found: list[Platform] = [v for v in vars(module).values() if isinstance(v, Platform)]
    candidate = getattr(app, "platform", None)
    if isinstance(candidate, Platform) and candidate not in found:
        found.append(candidate)
    for platform in found:
        platform.settings = dataclasses.replace(platform.settings, hot_reload=True)
    logger = logging.getLogger("goatkit")
    if found:
        dirs = ", ".join(str(p.settings.plugins_dir) for p in found)
        logger.warning("gk dev: plugin hot reload is on (%s)", dirs)
    else:
        logger.warning(
            "gk dev: no Platform found in %s; plugins reload only if your Platform has "
            "hot_reload=True",
            module_name,
        )
    return app  # type: ignore[no-any-return]


def _default_dev_app(plugins: Path, state: Path, token: str) -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route

    from .platform import Platform
    from .web.admin import create_admin_app
    from .web.middleware import GoatKitMiddleware

    platform = Platform(
        plugins,
        state_dir=state / "state",
        database_url=f"sqlite:///{(state / 'dev.db').as_posix()}",
        auto_grant=True,
        debug=True,
        hot_reload=True,
        has_permission=lambda request, permission: True,
    )

    async def home(request: Request) -> Response:
        return JSONResponse({"plugins": [_plugin_row(i) for i in platform.plugins.values()]})

    async def call(request: Request) -> Response:
        body = await request.body()
        try:
            args = json.loads(body) if body.strip() else None
        except ValueError:
            return JSONResponse({"error": {"code": "bad_request", "message": "not JSON"}}, 400)
        name, function = request.path_params["plugin"], request.path_params["function"]
        try:
            return JSONResponse({"result": await platform.call(name, function, args)})
        except GoatKitError as exc:
            status = exc.http_status if exc.http_status >= 400 else 500
            return JSONResponse({"error": exc.to_dict()}, status)

    state.mkdir(parents=True, exist_ok=True)
    admin = create_admin_app(
        platform, None, secret_key=secrets.token_urlsafe(32), token=token or None
    )
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/_gk/call/{plugin}/{function}", call, methods=["POST"]),
            Mount("/admin/plugins", admin),
        ]
    )
    return GoatKitMiddleware(app, platform=platform)


def _cmd_dev(args: argparse.Namespace) -> int:
    import uvicorn

    cwd = Path.cwd()
    env_updates: dict[str, str] = {}
    excludes = [".goatkit*", "*.db"]
    if args.app:
        if ":" not in args.app:
            raise _usage(f"{args.app!r}: give the app as module:attribute, e.g. myapp:app")
        env_updates[_DEV_APP_ENV] = args.app
        plugins = Path(args.plugins) if args.plugins else Path("plugins")
        message = f"gk dev: {args.app} on http://{args.host}:{args.port}/ (Ctrl+C stops it)"
    else:
        if args.plugins:
            plugins = Path(args.plugins)
        elif any(Path(n).is_file() for n in MANIFEST_NAMES):
            raise _usage(
                "run gk dev beside a plugins/ directory (or give --plugins DIR); for one "
                "plugin, use `gk plugin call` or push it to a running app"
            )
        else:
            plugins = Path("plugins")
        plugins.mkdir(parents=True, exist_ok=True)
        token = args.token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
        env_updates.update(
            {
                _DEV_PLUGINS_ENV: str(plugins.resolve()),
                _DEV_STATE_ENV: str((cwd / ".goatkit-dev").resolve()),
                TOKEN_ENV: token,
            }
        )
        message = (
            f"gk dev: plugins in {plugins} on http://{args.host}:{args.port}/ (Ctrl+C stops it)\n"
            f"  admin API: http://{args.host}:{args.port}/admin/plugins  token: {token}\n"
            f"  call: POST http://{args.host}:{args.port}/_gk/call/PLUGIN/FUNCTION"
        )
    if plugins.is_dir():
        excludes.append(str(plugins.resolve()))
    os.environ.update(env_updates)
    print(message, flush=True)
    uvicorn.run(
        "goatkit_asgi.cli:dev_app",
        factory=True,
        host=args.host,
        port=args.port,
        reload=not args.no_reload,
        reload_dirs=[str(cwd)] if not args.no_reload else None,
        reload_excludes=excludes if not args.no_reload else None,
        log_level=args.log_level,
        app_dir=str(cwd),
    )
    return EXIT_OK


# --- the parser --------------------------------------------------------------------------------


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _add_key_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--key", action="append", metavar="KEY", help=help_text)


def _add_platform_options(parser: argparse.ArgumentParser, *, db_default: str | None) -> None:
    parser.add_argument(
        "--plugins",
        metavar="DIR",
        help="plugins directory, or one plugin's directory (default: ./plugins, or the "
        "current directory when it is a plugin)",
    )
    parser.add_argument(
        "--db",
        default=db_default,
        metavar="URL",
        help=f"database of the host API (default: {db_default or 'a temporary SQLite file'})",
    )
    parser.add_argument(
        "--trusted-key",
        action="append",
        metavar="KEY",
        help="a trusted public key (text or a file of keys); repeatable",
    )
    parser.add_argument(
        "--require-signatures",
        action="store_true",
        help="refuse plugins without a valid signature from a trusted key",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gk", description="goatkit_asgi: plugins for ASGI apps")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the example helpdesk with its plugins on SQLite")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    demo.add_argument(
        "--dir", default=".goatkit-demo", help="where the demo keeps its data (.goatkit-demo)"
    )
    demo.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    demo.set_defaults(func=_cmd_demo)

    dev = sub.add_parser(
        "dev",
        help="run an app with reload for plugin development",
        description="Run APP (module:attribute) under uvicorn, restarting on Python changes, "
        "with hot reload on for its plugins (every Platform found in the app's module). "
        "Without APP: a development host over ./plugins (or --plugins) with the admin API at "
        "/admin/plugins (for gk plugin push), POST /_gk/call/PLUGIN/FUNCTION, every "
        "capability granted and data in .goatkit-dev/.",
    )
    dev.add_argument("app", nargs="?", help="the ASGI app as module:attribute")
    dev.add_argument("--plugins", metavar="DIR", help="plugins directory (default: ./plugins)")
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    dev.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    dev.add_argument(
        "--token", help=f"admin API token of the default host (default: ${TOKEN_ENV} or new)"
    )
    dev.add_argument("--no-reload", action="store_true", help="do not restart on code changes")
    dev.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    dev.set_defaults(func=_cmd_dev)

    plugin = sub.add_parser("plugin", help="create, build, pack, sign and run plugins")
    psub = plugin.add_subparsers(dest="plugin_command", metavar="COMMAND")
    plugin.set_defaults(func=None, parser=plugin)

    init = psub.add_parser("init", help="create a new plugin that builds and passes its test")
    init.add_argument("name", help="plugin name (lowercase letters, digits, - and _)")
    init.add_argument("--runtime", choices=["wasm", "grpc"], help="wasm (default) or grpc")
    init.add_argument(
        "--lang", choices=["c", "zig", "python"], help="c (default for wasm), zig, python (grpc)"
    )
    init.add_argument("--dir", help="where to create it (default: ./NAME)")
    init.add_argument("--description", help="one line about the plugin")
    init.add_argument("--force", action="store_true", help="write into a non-empty directory")
    _add_json(init)
    init.set_defaults(func=_cmd_init)

    build = psub.add_parser("build", help="compile the plugin (runs its build.sh)")
    build.add_argument("dir", nargs="?", default=".", help="plugin directory (default: .)")
    _add_json(build)
    _add_quiet(build)
    build.set_defaults(func=_cmd_build)

    pack = psub.add_parser("pack", help="make a reproducible .zip package")
    pack.add_argument("dir", help="plugin directory")
    pack.add_argument("-o", "--output", help="package file (default: NAME-VERSION.zip)")
    _add_json(pack)
    pack.set_defaults(func=_cmd_pack)

    keygen = psub.add_parser("keygen", help="create an Ed25519 signing key pair")
    keygen.add_argument(
        "--out", default="goatkit-signing", help="file prefix: PREFIX.key and PREFIX.pub"
    )
    keygen.add_argument("--force", action="store_true", help="replace existing key files")
    _add_json(keygen)
    keygen.set_defaults(func=_cmd_keygen)

    sign = psub.add_parser("sign", help="sign a package or plugin directory")
    sign.add_argument("path", help="a .zip package or a plugin directory")
    sign.add_argument("--key", required=True, help="private key file (from gk plugin keygen)")
    sign.add_argument(
        "--goatkit",
        action="store_true",
        help="write GoatKit's <module>.sig instead (covers the module only)",
    )
    _add_json(sign)
    sign.set_defaults(func=_cmd_sign)

    verify = psub.add_parser("verify", help="check a signature (exit 1 unless valid)")
    verify.add_argument("path", help="a .zip package or a plugin directory")
    _add_key_option(verify, "a trusted public key (text or a file of keys); repeatable")
    _add_json(verify)
    verify.set_defaults(func=_cmd_verify)

    insp = psub.add_parser(
        "inspect", help="manifest, registration, imports/exports, capabilities, signature"
    )
    insp.add_argument("path", help="a .zip package or a plugin directory")
    _add_key_option(insp, "a trusted public key for the signature check; repeatable")
    _add_json(insp)
    insp.set_defaults(func=_cmd_inspect)

    call = psub.add_parser("call", help="run a function locally with the real host API")
    call.add_argument("name", help="plugin name")
    call.add_argument("function", help="function name")
    call.add_argument("args", nargs="?", help="JSON arguments ('-': stdin, @FILE: a file)")
    _add_platform_options(call, db_default="sqlite:///local.db")
    call.add_argument(
        "--grant-all",
        action="store_true",
        help="grant every capability the manifests ask for (development only)",
    )
    call.add_argument(
        "--config", action="append", metavar="KEY=VALUE", help="a config_get value; repeatable"
    )
    call.add_argument("--timeout", type=float, help="seconds (default: the manifest's or 5)")
    _add_json(call)
    _add_quiet(call)
    call.set_defaults(func=_cmd_call)

    lst = psub.add_parser("list", help="the plugins found, with state and version")
    _add_platform_options(lst, db_default=None)
    _add_json(lst)
    lst.set_defaults(func=_cmd_list)

    push = psub.add_parser("push", help="build, pack and upload to a running instance's admin API")
    push.add_argument("dir", help="plugin directory")
    push.add_argument(
        "--url", required=True, help="the admin's URL, e.g. http://127.0.0.1:8000/admin/plugins"
    )
    push.add_argument("--token", help=f"admin API token (default: ${TOKEN_ENV})")
    push.add_argument("--watch", action="store_true", help="push again after every change")
    push.add_argument("--once", action="store_true", help="with --watch: stop after one push")
    push.add_argument("--no-build", action="store_true", help="never run build.sh")
    push.add_argument("--sign-key", metavar="KEY", help="sign the package with this private key")
    push.add_argument("--timeout", type=float, default=60.0, help="upload timeout (60 s)")
    _add_json(push)
    _add_quiet(push)
    push.set_defaults(func=_cmd_push)
    return parser


@contextlib.contextmanager
def _cli_logging(quiet: bool) -> Iterator[None]:
    """Platform warnings as ``gk: warning: ...`` lines on stderr while a command runs."""
    logger = logging.getLogger("goatkit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gk: %(levelname)s: %(message)s"))
    handler.setLevel(logging.ERROR if quiet else logging.WARNING)
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "func", None):
        (getattr(args, "parser", None) or parser).print_help(sys.stderr)
        return EXIT_USAGE
    name = args.command + (
        f" {args.plugin_command}" if getattr(args, "plugin_command", None) else ""
    )
    quiet = bool(getattr(args, "quiet", False) or getattr(args, "json", False))
    try:
        with _cli_logging(quiet) if args.command == "plugin" else contextlib.nullcontext():
            return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except GoatKitError as exc:
        print(f"gk {name}: {_one_line(exc.message)}", file=sys.stderr)
        return EXIT_USAGE if exc.code == "usage" else EXIT_FAILED
    except OSError as exc:
        print(f"gk {name}: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_FAILED


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
