"""Package signatures: Ed25519 over the manifest and every file of a plugin.

A signed plugin carries ``SIGNATURE.json`` at its top (beside the manifest)::

    {
      "format": "goatkit-signature-v1",
      "key_id": "3f0c9a1b2c4d5e6f",
      "files": {"manifest.yaml": "<sha256 hex>", "plugin.wasm": "<sha256 hex>", ...},
      "signature": "<base64 Ed25519 signature>"
    }

``files`` lists every file of the plugin (POSIX paths relative to the plugin's top, sorted)
except ``SIGNATURE.json`` itself and the marker the package extractor writes
(``.goatkit-extracted``). The signature is over the canonical JSON of ``format``, ``key_id`` and
``files`` (sorted keys, no spaces, UTF-8), so changing any file, adding one or removing one after
signing, including the manifest and the capabilities it asks for, is detected. ``key_id`` is the
first 16 hex digits of the SHA-256 of the raw 32-byte public key; it says which trusted key to
check with.

GoatKit's own format is also read: ``plugin.wasm.sig`` holding the hex Ed25519 signature over
the raw SHA-256 digest of the module. It covers the module only, not the manifest.

Public keys are written ``ed25519:<base64 of the raw 32 bytes>``; :func:`load_public_key` also
takes 64 hex digits, bare base64 or a PEM ``PUBLIC KEY``. Private keys are PKCS#8 PEM files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConfigError, SignatureError

__all__ = [
    "EXTRACTION_MARKER",
    "FORMAT",
    "GOATKIT_FORMAT",
    "SIGNATURE_FILE",
    "SignatureStatus",
    "check_directory",
    "digest_files",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "plugin_files",
    "public_key_text",
    "require",
    "sign_directory",
    "sign_goatkit",
    "verify_directory",
    "verify_goatkit_sig",
]

SIGNATURE_FILE = "SIGNATURE.json"
"""The signature of a plugin, at its top beside the manifest."""

FORMAT = "goatkit-signature-v1"
"""The ``format`` of :data:`SIGNATURE_FILE`."""

GOATKIT_FORMAT = "goatkit-sig"
"""The scheme name reported for GoatKit's ``<file>.sig`` signatures."""

EXTRACTION_MARKER = ".goatkit-extracted"
"""Written by the package extractor into an extraction; never part of a package."""

_KEY_PREFIX = "ed25519:"
_MAX_SIGNATURE_BYTES = 16 * 1024 * 1024

#: What a signature status can be.
STATES = ("unsigned", "valid", "tampered", "untrusted", "invalid")

#: The SignatureError code raised by :func:`require` for each refused state.
ERROR_CODES = {
    "unsigned": "unsigned",
    "tampered": "tampered",
    "untrusted": "untrusted_key",
    "invalid": "bad_signature",
}


@dataclass(frozen=True)
class SignatureStatus:
    """What the signature of a plugin directory says.

    ``state``: ``unsigned`` (no signature), ``valid``, ``tampered`` (a file changed, was added
    or is missing after signing; ``changed`` names them), ``untrusted`` (signed by a key that is
    not trusted) or ``invalid`` (the signature itself does not verify or cannot be read).
    ``scheme`` is :data:`FORMAT` or :data:`GOATKIT_FORMAT` (None when unsigned); ``files`` are
    the files the signature covers.
    """

    state: str
    key_id: str | None = None
    detail: str = ""
    scheme: str | None = None
    files: tuple[str, ...] = ()
    changed: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.state == "valid"

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form (for ``--json`` output and the admin API)."""
        return {
            "state": self.state,
            "key_id": self.key_id,
            "scheme": self.scheme,
            "detail": self.detail,
            "files": list(self.files),
            "changed": list(self.changed),
        }


# --- keys ---------------------------------------------------------------------------------------


def generate_keypair() -> tuple[bytes, str]:
    """A new Ed25519 key pair: the private key as PKCS#8 PEM, the public key as text.

    The public key text (``ed25519:<base64>``) is what platforms list in ``trusted_keys``.
    """
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, public_key_text(private.public_key())


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(public: Ed25519PublicKey) -> str:
    """``ed25519:<base64 of the raw 32-byte key>``."""
    return _KEY_PREFIX + base64.b64encode(_raw(public)).decode("ascii")


def key_id(public: Ed25519PublicKey | str) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    if isinstance(public, str):
        public = load_public_key(public)
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def load_public_key(text: str) -> Ed25519PublicKey:
    """Read a public key: ``ed25519:<base64>``, 64 hex digits, base64 of 32 bytes, or PEM.

    Raises :class:`~goatkit_asgi.errors.ConfigError` for anything else.
    """
    value = text.strip() if isinstance(text, str) else ""
    shown = value[:24] + ("…" if len(value) > 24 else "")
    try:
        if value.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(value.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        body = value.removeprefix(_KEY_PREFIX)
        if len(body) == 64 and all(c in "0123456789abcdefABCDEF" for c in body):
            raw = bytes.fromhex(body)
        else:
            raw = base64.b64decode(body, validate=True)
        if len(raw) != 32:
            raise ValueError(f"{len(raw)} bytes instead of 32")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, TypeError, UnicodeEncodeError) as exc:
        raise ConfigError(
            f"trusted key {shown!r} is not an Ed25519 public key ({exc}); give it as "
            "ed25519:<base64> as printed by `gk plugin keygen`"
        ) from exc


def load_private_key(pem: bytes | str) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from PKCS#8 PEM (as written by :func:`generate_keypair`).

    Raises :class:`~goatkit_asgi.errors.SignatureError` (code ``bad_key``) for anything else.
    """
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else bytes(pem)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(
            f"the signing key is not a readable PEM private key ({exc}); create one with "
            "`gk plugin keygen`",
            code="bad_key",
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(
            "the signing key is not an Ed25519 key; create one with `gk plugin keygen`",
            code="bad_key",
        )
    return key


def _trusted(keys: Iterable[str | Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    out: dict[str, Ed25519PublicKey] = {}
    for item in keys:
        public = item if isinstance(item, Ed25519PublicKey) else load_public_key(item)
        out[key_id(public)] = public
    return out


# --- files --------------------------------------------------------------------------------------


def plugin_files(directory: Path) -> list[str]:
    """Every file of the plugin in ``directory`` as sorted POSIX paths, without the signature
    and the extractor's marker.

    Raises :class:`~goatkit_asgi.errors.SignatureError` (code ``unsupported_file``) for a
    symbolic link or anything else that is not a regular file or directory, and for a name
    that is not UTF-8.
    """
    directory = Path(directory)
    found: list[str] = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        here = Path(root)
        for name in sorted(dirs):
            if (here / name).is_symlink():
                raise _unsupported(directory, here / name, "is a symbolic link")
        dirs.sort()
        for name in files:
            path = here / name
            rel = path.relative_to(directory).as_posix()
            if rel in (SIGNATURE_FILE, EXTRACTION_MARKER):
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise _unsupported(directory, path, "is a symbolic link")
            if not stat.S_ISREG(mode):
                raise _unsupported(directory, path, "is not a regular file")
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise _unsupported(directory, path, "has a name that is not UTF-8") from exc
            found.append(rel)
    return sorted(found)


def _unsupported(directory: Path, path: Path, problem: str) -> SignatureError:
    rel = path.relative_to(directory).as_posix()
    return SignatureError(
        f"{directory.name}: {rel} {problem}; a signed plugin holds only regular files",
        plugin=directory.name,
        code="unsupported_file",
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def digest_files(directory: Path, files: Iterable[str]) -> dict[str, str]:
    """SHA-256 (hex) of each of ``files`` (POSIX paths relative to ``directory``), sorted."""
    return {rel: _sha256(Path(directory) / PurePosixPath(rel)) for rel in sorted(files)}


def _canonical(fmt: str, kid: str, files: Mapping[str, str]) -> bytes:
    doc = {"format": fmt, "key_id": kid, "files": dict(sorted(files.items()))}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- signing ------------------------------------------------------------------------------------


def sign_directory(
    directory: Path, private_key_pem: bytes | str, *, files: Iterable[str] | None = None
) -> Path:
    """Sign the plugin in ``directory``: write its ``SIGNATURE.json`` and return its path.

    The signature covers every file (:func:`plugin_files`), or exactly ``files`` when given
    (``gk plugin sign`` passes what ``gk plugin pack`` would put in the package).
    """
    directory = Path(directory)
    key = load_private_key(private_key_pem)
    names = plugin_files(directory) if files is None else sorted(set(files))
    for rel in names:
        if rel in (SIGNATURE_FILE, EXTRACTION_MARKER):
            raise SignatureError(f"{directory.name}: {rel} cannot be signed", code="bad_file")
    digests = digest_files(directory, names)
    kid = key_id(key.public_key())
    signature = key.sign(_canonical(FORMAT, kid, digests))
    doc = {
        "format": FORMAT,
        "key_id": kid,
        "files": digests,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    target = directory / SIGNATURE_FILE
    tmp = target.with_name(f".{SIGNATURE_FILE}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def sign_goatkit(file: Path, private_key_pem: bytes | str) -> Path:
    """Write GoatKit's ``<file>.sig``: hex Ed25519 over the raw SHA-256 digest of ``file``."""
    file = Path(file)
    key = load_private_key(private_key_pem)
    with file.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").digest()
    sig_file = file.with_name(file.name + ".sig")
    sig_file.write_text(key.sign(digest).hex() + "\n", encoding="ascii")
    return sig_file


# --- verifying ----------------------------------------------------------------------------------


def verify_goatkit_sig(
    file: Path, sig_file: Path, public_keys: Iterable[str | Ed25519PublicKey]
) -> bool:
    """Whether GoatKit's ``sig_file`` (hex Ed25519 over the raw SHA-256 of ``file``) verifies
    with one of ``public_keys``. An unreadable or malformed signature is False."""
    key = _goatkit_signer(Path(file), Path(sig_file), _trusted(public_keys))
    return key is not None


def _goatkit_signer(
    file: Path, sig_file: Path, trusted: Mapping[str, Ed25519PublicKey]
) -> str | None:
    """The id of the trusted key that made ``sig_file`` for ``file``, or None."""
    try:
        text = sig_file.read_text(encoding="ascii").strip()
        signature = bytes.fromhex(text)
        with file.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").digest()
    except (OSError, ValueError):
        return None
    if len(signature) != 64:
        return None
    for kid, public in trusted.items():
        try:
            public.verify(signature, digest)
        except InvalidSignature:
            continue
        return kid
    return None


def verify_directory(
    directory: Path,
    trusted_keys: Sequence[str | Ed25519PublicKey],
    *,
    module: str = "plugin.wasm",
    files: Iterable[str] | None = None,
) -> SignatureStatus:
    """Check the signature of the plugin in ``directory`` against ``trusted_keys``.

    ``SIGNATURE.json`` is checked when present; otherwise GoatKit's ``<module>.sig`` (``module``
    is the manifest's ``wasm:``); otherwise the plugin is ``unsigned``. ``files`` replaces the
    list of the directory's files (``gk plugin verify`` on a source directory passes what
    ``gk plugin pack`` would package). Never raises for a bad signature: that is a state. A
    trusted key that cannot be read raises :class:`~goatkit_asgi.errors.ConfigError`.
    """
    directory = Path(directory)
    trusted = _trusted(trusted_keys)
    if (directory / SIGNATURE_FILE).exists():
        return _verify_signature_file(directory, trusted, files)
    sig = directory / PurePosixPath(module + ".sig")
    if sig.is_file():
        return _verify_goatkit(directory, module, sig, trusted)
    return SignatureStatus("unsigned", detail=f"no {SIGNATURE_FILE} or {module}.sig")


def _invalid(detail: str, *, kid: str | None = None) -> SignatureStatus:
    return SignatureStatus("invalid", key_id=kid, detail=detail, scheme=FORMAT)


def _verify_signature_file(
    directory: Path, trusted: Mapping[str, Ed25519PublicKey], files: Iterable[str] | None
) -> SignatureStatus:
    path = directory / SIGNATURE_FILE
    try:
        if not path.is_file() or path.is_symlink():
            return _invalid(f"{SIGNATURE_FILE} is not a regular file")
        if path.stat().st_size > _MAX_SIGNATURE_BYTES:
            return _invalid(f"{SIGNATURE_FILE} is too large")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return _invalid(f"{SIGNATURE_FILE} cannot be read ({exc})")
    if not isinstance(doc, dict):
        return _invalid(f"{SIGNATURE_FILE} is not a JSON object")
    fmt, kid, listed, sig_text = (
        doc.get("format"),
        doc.get("key_id"),
        doc.get("files"),
        doc.get("signature"),
    )
    if fmt != FORMAT:
        return _invalid(f"{SIGNATURE_FILE} has format {fmt!r}; expected {FORMAT!r}")
    if not isinstance(kid, str) or not kid:
        return _invalid(f"{SIGNATURE_FILE} has no key_id")
    if (
        not isinstance(listed, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in listed.items())
        or not isinstance(sig_text, str)
    ):
        return _invalid(f"{SIGNATURE_FILE} needs files (path to sha256) and signature", kid=kid)
    covered = tuple(sorted(listed))
    public = trusted.get(kid)
    if public is not None:
        try:
            signature = base64.b64decode(sig_text, validate=True)
            public.verify(signature, _canonical(fmt, kid, listed))
        except (ValueError, binascii.Error, InvalidSignature):
            return SignatureStatus(
                "invalid",
                key_id=kid,
                detail=f"the signature in {SIGNATURE_FILE} does not verify with trusted key "
                f"{kid}: the signature file was altered",
                scheme=FORMAT,
                files=covered,
            )
    try:
        if files is None:
            present = plugin_files(directory)
        else:
            present = sorted(f for f in set(files) if (directory / PurePosixPath(f)).is_file())
        actual = digest_files(directory, present)
    except SignatureError as exc:
        return SignatureStatus(
            "tampered", key_id=kid, detail=exc.message, scheme=FORMAT, files=covered
        )
    except OSError as exc:
        return SignatureStatus(
            "tampered",
            key_id=kid,
            detail=f"a file cannot be read ({exc.strerror or exc})",
            scheme=FORMAT,
            files=covered,
        )
    changed = sorted(name for name in listed.keys() & actual.keys() if listed[name] != actual[name])
    added = sorted(actual.keys() - listed.keys())
    missing = sorted(listed.keys() - actual.keys())
    if changed or added or missing:
        parts = [f"{n} changed" for n in changed]
        parts += [f"{n} was added" for n in added]
        parts += [f"{n} is missing" for n in missing]
        return SignatureStatus(
            "tampered",
            key_id=kid,
            detail=", ".join(parts) + " since the package was signed",
            scheme=FORMAT,
            files=covered,
            changed=tuple(sorted([*changed, *added, *missing])),
        )
    if public is None:
        return SignatureStatus(
            "untrusted",
            key_id=kid,
            detail=f"signed with key {kid}, which is not among the trusted keys",
            scheme=FORMAT,
            files=covered,
        )
    return SignatureStatus(
        "valid",
        key_id=kid,
        detail=f"{len(covered)} files signed with trusted key {kid}",
        scheme=FORMAT,
        files=covered,
    )


def _verify_goatkit(
    directory: Path, module: str, sig: Path, trusted: Mapping[str, Ed25519PublicKey]
) -> SignatureStatus:
    sig_name = PurePosixPath(module + ".sig").as_posix()
    covered = (module,)
    if not trusted:
        return SignatureStatus(
            "untrusted",
            detail=f"{sig_name} (GoatKit format) cannot be checked: no trusted keys",
            scheme=GOATKIT_FORMAT,
            files=covered,
        )
    target = directory / PurePosixPath(module)
    if not target.is_file():
        return SignatureStatus(
            "tampered",
            detail=f"{module} is missing",
            scheme=GOATKIT_FORMAT,
            files=covered,
            changed=covered,
        )
    kid = _goatkit_signer(target, sig, trusted)
    if kid is None:
        return SignatureStatus(
            "invalid",
            detail=f"{sig_name} (GoatKit format) does not verify with any trusted key: {module} "
            "changed after signing, or a key that is not trusted signed it",
            scheme=GOATKIT_FORMAT,
            files=covered,
        )
    return SignatureStatus(
        "valid",
        key_id=kid,
        detail=f"{module} signed with trusted key {kid} (GoatKit format: the manifest is not "
        "covered)",
        scheme=GOATKIT_FORMAT,
        files=covered,
    )


def require(status: SignatureStatus, *, plugin: str) -> None:
    """Raise :class:`~goatkit_asgi.errors.SignatureError` unless ``status`` is valid.

    Codes: ``unsigned``, ``tampered`` (the message names the files), ``untrusted_key``,
    ``bad_signature``.
    """
    if status.ok:
        return
    code = ERROR_CODES.get(status.state, "bad_signature")
    if status.state == "unsigned":
        message = (
            f"{plugin}: the package is not signed and signatures are required; sign it with "
            "`gk plugin sign --key <private key>` using a key the platform trusts"
        )
    elif status.state == "tampered":
        message = (
            f"{plugin}: the package was modified after it was signed ({status.detail}); "
            "rebuild and sign it again, or reinstall the original"
        )
    elif status.state == "untrusted":
        message = (
            f"{plugin}: {status.detail}; add its public key to trusted_keys if you trust the "
            "signer, or install a package signed with a trusted key"
        )
    else:
        message = (
            f"{plugin}: the signature is invalid ({status.detail}); sign the package again "
            "with `gk plugin sign`"
        )
    raise SignatureError(message, plugin=plugin, code=code)


def check_directory(
    directory: Path,
    trusted_keys: Sequence[str | Ed25519PublicKey],
    *,
    plugin: str,
    required: bool,
    module: str = "plugin.wasm",
) -> SignatureStatus:
    """:func:`verify_directory`, then :func:`require` when ``required``; returns the status."""
    status = verify_directory(directory, trusted_keys, module=module)
    if required:
        require(status, plugin=plugin)
    return status
