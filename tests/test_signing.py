"""Package signatures: keys, SIGNATURE.json over every file, GoatKit's <file>.sig, and the
platform's signature policy (require_signatures, trusted_keys)."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from goatkit_asgi import Platform, PluginState
from goatkit_asgi.errors import ConfigError, PackageError, SignatureError
from goatkit_asgi.packaging.archive import extract_package
from goatkit_asgi.packaging.signing import (
    EXTRACTION_MARKER,
    FORMAT,
    GOATKIT_FORMAT,
    SIGNATURE_FILE,
    SignatureStatus,
    check_directory,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    plugin_files,
    require,
    sign_directory,
    sign_goatkit,
    verify_directory,
    verify_goatkit_sig,
)
from tests.fixtures.wat import make_plugin

Keys = tuple[bytes, str]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return generate_keypair()


@pytest.fixture(scope="module")
def other_keys() -> Keys:
    return generate_keypair()


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    directory = make_plugin(tmp_path / "src", "signed", manifest={"version": "1.0.0"})
    (directory / "static").mkdir()
    (directory / "static" / "site.css").write_text("body { color: teal }\n")
    (directory / "README.md").write_text("# signed\n")
    return directory


def raw_public(public_text: str) -> bytes:
    return base64.b64decode(public_text.removeprefix("ed25519:"))


# --- keys ---------------------------------------------------------------------------------------


def test_generated_keys_are_ed25519_pem_and_public_text(keys: Keys) -> None:
    pem, public = keys
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.startswith("ed25519:") and len(raw_public(public)) == 32
    private = load_private_key(pem)
    derived = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert derived == raw_public(public)
    assert key_id(public) == hashlib.sha256(derived).hexdigest()[:16]


def test_public_keys_are_read_in_every_documented_form(keys: Keys) -> None:
    _, public = keys
    raw = raw_public(public)
    pem = load_public_key(public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for form in (public, raw.hex(), base64.b64encode(raw).decode(), pem.decode()):
        assert key_id(load_public_key(form)) == key_id(public)


@pytest.mark.parametrize("bad", ["", "ed25519:abc", "ed25519:" + "A" * 40, "zz" * 32, "-----BEGIN"])
def test_a_bad_public_key_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="not an Ed25519 public key"):
        load_public_key(bad)


def test_a_bad_private_key_is_a_signature_error() -> None:
    with pytest.raises(SignatureError) as info:
        load_private_key(b"not a key")
    assert info.value.code == "bad_key"


# --- SIGNATURE.json -----------------------------------------------------------------------------


def test_signature_file_lists_every_file_and_verifies(plugin: Path, keys: Keys) -> None:
    pem, public = keys
    path = sign_directory(plugin, pem)
    assert path == plugin / SIGNATURE_FILE
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT and doc["key_id"] == key_id(public)
    assert list(doc["files"]) == ["README.md", "manifest.yaml", "plugin.wasm", "static/site.css"]
    assert (
        doc["files"]["plugin.wasm"]
        == hashlib.sha256((plugin / "plugin.wasm").read_bytes()).hexdigest()
    )
    # the signature is over the canonical JSON of format, key_id and files
    canonical = json.dumps(
        {"format": doc["format"], "key_id": doc["key_id"], "files": doc["files"]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    load_public_key(public).verify(base64.b64decode(doc["signature"]), canonical)

    status = verify_directory(plugin, [public])
    assert status == SignatureStatus(
        "valid",
        key_id=key_id(public),
        detail=status.detail,
        scheme=FORMAT,
        files=("README.md", "manifest.yaml", "plugin.wasm", "static/site.css"),
    )
    assert status.ok and "trusted key" in status.detail
    require(status, plugin="signed")  # does not raise


def test_the_extraction_marker_is_not_part_of_the_package(plugin: Path, keys: Keys) -> None:
    pem, public = keys
    (plugin / EXTRACTION_MARKER).write_text("")
    sign_directory(plugin, pem)
    assert EXTRACTION_MARKER not in json.loads((plugin / SIGNATURE_FILE).read_text())["files"]
    assert EXTRACTION_MARKER not in plugin_files(plugin)
    (plugin / EXTRACTION_MARKER).write_text("changed by the extractor")
    assert verify_directory(plugin, [public]).ok


def test_a_signed_package_verifies_after_safe_extraction(
    plugin: Path, keys: Keys, tmp_path: Path
) -> None:
    pem, public = keys
    sign_directory(plugin, pem)
    package = tmp_path / "signed-1.0.0.zip"
    with zipfile.ZipFile(package, "w") as zf:
        for rel in [*plugin_files(plugin), SIGNATURE_FILE]:
            zf.write(plugin / rel, rel)
    root = extract_package(package, tmp_path / "packages")
    assert (root / EXTRACTION_MARKER).exists()  # written by the extractor, skipped by digests
    assert verify_directory(root, [public]).ok


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda d: (d / "plugin.wasm").write_bytes((d / "plugin.wasm").read_bytes() + b"\0"),
            "plugin.wasm changed",
        ),
        (
            lambda d: (d / "static" / "site.css").write_text("body { color: red }\n"),
            "static/site.css changed",
        ),
        (lambda d: (d / "README.md").unlink(), "README.md is missing"),
        (lambda d: (d / "static" / "evil.js").write_text("alert(1)"), "static/evil.js was added"),
    ],
    ids=["module", "static-file", "removed", "added"],
)
def test_any_change_after_signing_is_tampering_and_names_the_file(
    plugin: Path, keys: Keys, edit: Callable[[Path], object], named: str
) -> None:
    pem, public = keys
    sign_directory(plugin, pem)
    edit(plugin)
    status = verify_directory(plugin, [public])
    assert status.state == "tampered" and named in status.detail
    with pytest.raises(SignatureError) as info:
        require(status, plugin="signed")
    assert info.value.code == "tampered" and named in info.value.message


def test_editing_the_permissions_in_the_manifest_after_signing_is_caught(
    plugin: Path, keys: Keys
) -> None:
    pem, public = keys
    sign_directory(plugin, pem)
    manifest = yaml.safe_load((plugin / "manifest.yaml").read_text())
    manifest["capabilities"] = {"db": {"read": ["users"]}, "email": True}
    (plugin / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    status = verify_directory(plugin, [public])
    assert status.state == "tampered" and status.changed == ("manifest.yaml",)
    assert "manifest.yaml changed" in status.detail


def test_updating_the_digest_list_breaks_the_signature(plugin: Path, keys: Keys) -> None:
    pem, public = keys
    sign_directory(plugin, pem)
    (plugin / "README.md").write_text("# changed\n")
    doc = json.loads((plugin / SIGNATURE_FILE).read_text())
    doc["files"]["README.md"] = hashlib.sha256(b"# changed\n").hexdigest()
    (plugin / SIGNATURE_FILE).write_text(json.dumps(doc))
    status = verify_directory(plugin, [public])
    assert status.state == "invalid" and "does not verify" in status.detail
    with pytest.raises(SignatureError) as info:
        require(status, plugin="signed")
    assert info.value.code == "bad_signature"


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", json.dumps({"format": "other"}), json.dumps({"format": FORMAT})],
)
def test_an_unreadable_signature_file_is_invalid(plugin: Path, keys: Keys, content: str) -> None:
    (plugin / SIGNATURE_FILE).write_text(content)
    assert verify_directory(plugin, [keys[1]]).state == "invalid"


def test_a_key_that_is_not_trusted_is_untrusted(plugin: Path, keys: Keys, other_keys: Keys) -> None:
    pem, public = keys
    sign_directory(plugin, pem)
    for trusted in ([other_keys[1]], []):
        status = verify_directory(plugin, trusted)
        assert status.state == "untrusted" and status.key_id == key_id(public)
        with pytest.raises(SignatureError) as info:
            require(status, plugin="signed")
        assert info.value.code == "untrusted_key"
    # several trusted keys: the one named by key_id is used
    assert verify_directory(plugin, [other_keys[1], public]).ok


def test_unsigned_and_the_distinct_error_codes(plugin: Path, keys: Keys) -> None:
    status = verify_directory(plugin, [keys[1]])
    assert status.state == "unsigned" and status.scheme is None
    codes = set()
    for state in ("unsigned", "tampered", "untrusted", "invalid"):
        with pytest.raises(SignatureError) as info:
            require(SignatureStatus(state, detail="x"), plugin="p")
        assert info.value.plugin == "p" and isinstance(info.value, PackageError)
        codes.add(info.value.code)
    assert codes == {"unsigned", "tampered", "untrusted_key", "bad_signature"}
    assert check_directory(plugin, [keys[1]], plugin="p", required=False).state == "unsigned"
    with pytest.raises(SignatureError, match="not signed"):
        check_directory(plugin, [keys[1]], plugin="p", required=True)


def test_symbolic_links_are_refused(plugin: Path, keys: Keys, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (plugin / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(SignatureError) as info:
        sign_directory(plugin, keys[0])
    assert info.value.code == "unsupported_file" and "link.txt" in info.value.message
    (plugin / "link.txt").unlink()
    sign_directory(plugin, keys[0])
    (plugin / "link.txt").symlink_to(tmp_path / "outside.txt")
    assert verify_directory(plugin, [keys[1]]).state == "tampered"


# --- GoatKit's <file>.sig -----------------------------------------------------------------------


def goatkit_signature(private: Ed25519PrivateKey, data: bytes) -> str:
    """GoatKit's format, written independently of the code under test."""
    return private.sign(hashlib.sha256(data).digest()).hex()


def test_goatkit_sig_is_hex_ed25519_over_the_raw_sha256(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    module = tmp_path / "plugin.wasm"
    module.write_bytes(b"\0asm\1\0\0\0 module bytes")
    sig = tmp_path / "plugin.wasm.sig"
    sig.write_text(goatkit_signature(private, module.read_bytes()) + "\n")
    assert verify_goatkit_sig(module, sig, [public.hex()])
    assert verify_goatkit_sig(module, sig, ["ed25519:" + base64.b64encode(public).decode()])
    assert not verify_goatkit_sig(module, sig, [generate_keypair()[1]])
    assert not verify_goatkit_sig(module, sig, [])
    module.write_bytes(module.read_bytes() + b"!")
    assert not verify_goatkit_sig(module, sig, [public.hex()])
    for junk in ("zz", "00" * 10, ""):
        sig.write_text(junk)
        assert not verify_goatkit_sig(module, sig, [public.hex()])


def test_sign_goatkit_writes_that_format(tmp_path: Path, keys: Keys) -> None:
    pem, public = keys
    module = tmp_path / "plugin.wasm"
    module.write_bytes(b"module")
    sig = sign_goatkit(module, pem)
    assert sig.name == "plugin.wasm.sig"
    signature = bytes.fromhex(sig.read_text().strip())
    load_public_key(public).verify(signature, hashlib.sha256(b"module").digest())


def test_a_goatkit_signed_plugin_covers_the_module_only(plugin: Path, keys: Keys) -> None:
    pem, public = keys
    sign_goatkit(plugin / "plugin.wasm", pem)
    status = verify_directory(plugin, [public])
    assert status.state == "valid" and status.scheme == GOATKIT_FORMAT
    assert status.key_id == key_id(public) and "not covered" in status.detail
    # GoatKit's format does not cover the manifest: a changed manifest still verifies
    (plugin / "manifest.yaml").write_text((plugin / "manifest.yaml").read_text() + "\n")
    assert verify_directory(plugin, [public]).ok
    assert verify_directory(plugin, []).state == "untrusted"
    assert verify_directory(plugin, [generate_keypair()[1]]).state == "invalid"
    (plugin / "plugin.wasm").write_bytes((plugin / "plugin.wasm").read_bytes() + b"\0")
    status = verify_directory(plugin, [public])
    assert status.state == "invalid" and "changed after signing" in status.detail


def test_signature_json_takes_precedence_over_goatkit_sig(plugin: Path, keys: Keys) -> None:
    pem, public = keys
    sign_goatkit(plugin / "plugin.wasm", pem)
    sign_directory(plugin, pem)  # covers plugin.wasm.sig as one of the files
    status = verify_directory(plugin, [public])
    assert status.ok and status.scheme == FORMAT and "plugin.wasm.sig" in status.files


# --- the platform's policy ----------------------------------------------------------------------

WIRED = "require_signatures" in inspect.signature(Platform.__init__).parameters
needs_policy = pytest.mark.skipif(
    not WIRED, reason="Platform(require_signatures=, trusted_keys=) is not wired in yet"
)


def _zip(directory: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for rel in [
            *plugin_files(directory),
            *([SIGNATURE_FILE] if (directory / SIGNATURE_FILE).exists() else []),
        ]:
            zf.write(directory / rel, rel)
    return target


@pytest.fixture
def signed_plugins(plugins_dir: Path, tmp_path: Path, keys: Keys, other_keys: Keys) -> Path:
    """good (signed, trusted), unsigned, tampered (edited after signing), stranger (signed by
    an untrusted key), legacy (GoatKit .sig) — as packages in plugins_dir."""
    src = tmp_path / "sources"
    for name in ("good", "unsigned", "tampered", "stranger", "legacy"):
        make_plugin(src, name)
    sign_directory(src / "good", keys[0])
    sign_directory(src / "tampered", keys[0])
    manifest = yaml.safe_load((src / "tampered" / "manifest.yaml").read_text())
    manifest["capabilities"] = {"email": True}
    (src / "tampered" / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    sign_directory(src / "stranger", other_keys[0])
    sign_goatkit(src / "legacy" / "plugin.wasm", keys[0])
    for name in ("good", "unsigned", "tampered", "stranger", "legacy"):
        _zip(src / name, plugins_dir / f"{name}.zip")
    return src


@needs_policy
@pytest.mark.anyio
async def test_require_signatures_refuses_with_distinct_errors(
    signed_plugins: Path, make_platform: Callable[..., Platform], keys: Keys
) -> None:
    async with make_platform(require_signatures=True, trusted_keys=[keys[1]]) as platform:
        plugins = platform.plugins
        assert plugins["good"].state is PluginState.DISCOVERED
        assert plugins["good"].signature is not None and plugins["good"].signature.ok
        assert plugins["legacy"].signature is not None
        assert plugins["legacy"].signature.scheme == GOATKIT_FORMAT
        assert (await platform.call("good", "maybe")) == {"ok": True}
        expected = {"unsigned": "unsigned", "tampered": "tampered", "stranger": "untrusted_key"}
        for name, code in expected.items():
            info = plugins[name]
            assert info.state is PluginState.FAILED, name
            assert isinstance(info.error, SignatureError) and info.error.code == code, name
            with pytest.raises(SignatureError) as raised:
                await platform.call(name, "maybe")
            assert raised.value.code == code
        assert "manifest.yaml changed" in str(plugins["tampered"].error)


@needs_policy
@pytest.mark.anyio
async def test_without_the_requirement_the_status_is_shown_and_plugins_load(
    signed_plugins: Path, make_platform: Callable[..., Platform], keys: Keys
) -> None:
    async with make_platform(trusted_keys=[keys[1]]) as platform:
        states = {n: i.signature.state for n, i in platform.plugins.items() if i.signature}
        assert states == {
            "good": "valid",
            "legacy": "valid",
            "unsigned": "unsigned",
            "tampered": "tampered",
            "stranger": "untrusted",
        }
        assert (await platform.call("tampered", "maybe")) == {"ok": True}


@needs_policy
@pytest.mark.anyio
async def test_install_refuses_an_unsigned_package_when_signatures_are_required(
    make_platform: Callable[..., Platform], keys: Keys, tmp_path: Path
) -> None:
    src = make_plugin(tmp_path / "src", "late")
    unsigned = _zip(src, tmp_path / "late.zip").read_bytes()
    async with make_platform(require_signatures=True, trusted_keys=[keys[1]]) as platform:
        with pytest.raises(SignatureError) as info:
            await platform.install("late.zip", unsigned)
        assert info.value.code == "unsigned"
        sign_directory(src, keys[0])
        info_ok = await platform.install("late.zip", _zip(src, tmp_path / "late2.zip").read_bytes())
        assert info_ok.signature is not None and info_ok.signature.ok


@needs_policy
def test_require_signatures_needs_valid_trusted_keys(
    make_platform: Callable[..., Platform],
) -> None:
    with pytest.raises(ConfigError):
        make_platform(require_signatures=True, trusted_keys=["not a key"])
