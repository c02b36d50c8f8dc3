from __future__ import annotations

import dataclasses
import logging
import os
import textwrap
from pathlib import Path

import pytest

from goatkit_asgi.errors import ManifestError
from goatkit_asgi.packaging.manifest import (
    MANIFEST_NAMES,
    MAX_MANIFEST_BYTES,
    Capabilities,
    Manifest,
    Resources,
    load_manifest,
    parse_manifest,
)
from goatkit_asgi.specs import ArgSpec, FunctionSpec


def write_plugin(
    root: Path, text: str, *, file: str = "manifest.yaml", name: str = "stats"
) -> Path:
    directory = root / name
    directory.mkdir(exist_ok=True)
    (directory / file).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def fail_with(root: Path, text: str) -> ManifestError:
    directory = write_plugin(root, text)
    with pytest.raises(ManifestError) as info:
        load_manifest(directory)
    return info.value


FULL_WASM = """
    name: stats
    version: 1.2.0-rc.1+build.7
    runtime: wasm
    description: Ticket statistics
    author: Example Team
    license: Apache-2.0
    homepage: https://example.com/stats
    wasm: build/stats.wasm
    exports:
      - ticket_counts
      - name: top_queues
        args: [days, {name: limit, type: int, required: true, description: How many}]
        returns: list
        description: Busiest queues
    min_host_version: "0.7"
    resources:
      memory_mb: 32
      call_timeout: 500ms
      max_instances: 4
      fuel: 1000000
    capabilities:
      db: {read: [tickets, queues], write: [stats_cache]}
      http: {hosts: [API.example.com, "*.example.org"]}
      email: true
      jobs: true
      plugins: [other-plugin]
      events: true
      log: true
      cache: true
    permissions:
      - stats.view
      - {name: stats.export, description: Export reports}
    config:
      days: 7
      title: Statistics
      ratio: 0.5
      enabled: true
      unset:
"""


def test_full_wasm_manifest_reads_every_field(tmp_path: Path) -> None:
    directory = write_plugin(tmp_path, FULL_WASM)
    manifest = load_manifest(directory)
    assert manifest == Manifest(
        name="stats",
        version="1.2.0-rc.1+build.7",
        runtime="wasm",
        description="Ticket statistics",
        author="Example Team",
        license="Apache-2.0",
        homepage="https://example.com/stats",
        wasm="build/stats.wasm",
        exports=(
            FunctionSpec("ticket_counts"),
            FunctionSpec(
                "top_queues",
                (ArgSpec("days"), ArgSpec("limit", "int", True, "How many")),
                "list",
                "Busiest queues",
            ),
        ),
        min_host_version="0.7",
        resources=Resources(memory_mb=32, call_timeout=0.5, max_instances=4, fuel=1_000_000),
        capabilities=Capabilities(
            db_read=("tickets", "queues"),
            db_write=("stats_cache",),
            http_hosts=("api.example.com", "*.example.org"),
            email=True,
            jobs=True,
            plugins=("other-plugin",),
            events=True,
        ),
        permissions=("stats.view", "stats.export"),
        permission_descriptions=(("stats.export", "Export reports"),),
        config={"days": 7, "title": "Statistics", "ratio": 0.5, "enabled": True, "unset": None},
        source=directory / "manifest.yaml",
        directory=directory,
        warnings=(),
    )
    assert manifest.export("top_queues") is manifest.exports[1]
    assert manifest.export("missing") is None


def test_grpc_manifest_with_command_string_and_tls(tmp_path: Path) -> None:
    directory = write_plugin(
        tmp_path,
        """
        name: native
        runtime: grpc
        command: python3 "my plugin.py" --port=0
        tls: {ca: certs/ca.pem, cert: certs/client.pem, key: certs/client.key}
        """,
    )
    manifest = load_manifest(directory)
    assert manifest.runtime == "grpc"
    assert manifest.command == ("python3", "my plugin.py", "--port=0")
    assert manifest.wasm is None and manifest.binary is None and manifest.endpoint is None
    assert dict(manifest.tls or {}) == {
        "ca": "certs/ca.pem",
        "cert": "certs/client.pem",
        "key": "certs/client.key",
    }


def test_grpc_manifest_with_command_list_keeps_a_relative_program_as_written(
    tmp_path: Path,
) -> None:
    directory = write_plugin(
        tmp_path, 'name: native\nruntime: grpc\ncommand: ["./run", "--verbose"]\n'
    )
    assert load_manifest(directory).command == ("./run", "--verbose")


def test_grpc_manifest_with_binary_goatkit_style(tmp_path: Path) -> None:
    directory = write_plugin(
        tmp_path,
        'name: hello-grpc\nversion: "1.0.0"\nruntime: grpc\nbinary: ./hello-grpc\n',
        file="plugin.yaml",
        name="hello-grpc",
    )
    manifest = load_manifest(directory)
    assert (manifest.binary, manifest.command, manifest.endpoint) == ("hello-grpc", None, None)
    assert manifest.source.name == "plugin.yaml"


@pytest.mark.parametrize("endpoint", ["127.0.0.1:50051", "plugins.internal:443", "[::1]:9000"])
def test_grpc_manifest_with_endpoint(tmp_path: Path, endpoint: str) -> None:
    directory = write_plugin(tmp_path, f'name: remote\nruntime: grpc\nendpoint: "{endpoint}"\n')
    manifest = load_manifest(directory)
    assert manifest.endpoint == endpoint
    assert manifest.command is None and manifest.binary is None


def test_minimal_manifest_gets_the_defaults(tmp_path: Path) -> None:
    directory = write_plugin(tmp_path, "name: stats\n")
    manifest = load_manifest(directory)
    assert manifest == Manifest(
        name="stats", source=directory / "manifest.yaml", directory=directory
    )
    assert (manifest.version, manifest.runtime, manifest.wasm) == ("0.0.0", "wasm", "plugin.wasm")
    assert manifest.resources == Resources()
    assert manifest.capabilities.is_empty()
    assert manifest.exports == () and manifest.permissions == () and dict(manifest.config) == {}
    assert manifest.tls is None and manifest.min_host_version is None


def test_plugin_yaml_is_read_when_there_is_no_manifest_yaml(tmp_path: Path) -> None:
    directory = write_plugin(tmp_path, "name: stats\nversion: 2.0.0\n", file="plugin.yaml")
    manifest = load_manifest(directory)
    assert (manifest.name, manifest.version) == ("stats", "2.0.0")
    assert manifest.source == directory / "plugin.yaml"
    assert MANIFEST_NAMES == ("manifest.yaml", "plugin.yaml")


def test_manifest_yaml_wins_over_plugin_yaml_with_a_warning(tmp_path: Path) -> None:
    directory = write_plugin(tmp_path, "name: stats\nversion: 1.0.0\n")
    (directory / "plugin.yaml").write_text("name: other\nversion: 9.9.9\n", encoding="utf-8")
    manifest = load_manifest(directory)
    assert (manifest.name, manifest.version) == ("stats", "1.0.0")
    assert manifest.warnings == (
        "top level: plugin.yaml is ignored because manifest.yaml is present; remove one",
    )


def test_missing_manifest_is_a_manifest_error(tmp_path: Path) -> None:
    directory = tmp_path / "empty"
    directory.mkdir()
    with pytest.raises(ManifestError) as info:
        load_manifest(directory)
    assert str(info.value).startswith("empty: no manifest.yaml or plugin.yaml found;")
    assert info.value.plugin == "empty"


def test_unknown_keys_are_warnings_not_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = write_plugin(
        tmp_path,
        """
        name: stats
        colour: blue
        exports: [{name: f, cached: true}]
        resources: {memory_mb: 8, init_timeout: 10s, permissions: [{type: db}]}
        capabilities: {db: {read: [t], delete: [t]}, telepathy: true, log: true, cache: true}
        """,
    )
    with caplog.at_level(logging.WARNING, logger="goatkit"):
        manifest = load_manifest(directory)
    assert manifest.resources.memory_mb == 8
    assert manifest.capabilities.db_read == ("t",)
    assert manifest.warnings == (
        "colour: unknown key, ignored; check its spelling",
        "exports[0].cached: unknown key, ignored; check its spelling",
        "resources.init_timeout: unknown key, ignored; check its spelling",
        "resources.permissions: GoatKit-style permission requests are not read, ignored; "
        "declare what the plugin needs under `capabilities:`",
        "capabilities.telepathy: unknown key, ignored; check its spelling",
        "capabilities.db.delete: unknown key, ignored; check its spelling",
    )
    logged = [r.getMessage() for r in caplog.records if r.name == "goatkit"]
    assert logged == [f"stats/manifest.yaml: {w}" for w in manifest.warnings]


# --- bad input: each names the file and the key path ---------------------------------------------

BAD = [
    # (manifest text, start of the message after "stats/manifest.yaml: ")
    ("version: 1.0.0\n", "name: is missing;"),
    ("name: 5\n", "name: expected a string, got 5;"),
    ('name: ""\n', "name: must not be empty;"),
    ("name: Bad Name\n", 'name: "Bad Name" is not a valid plugin name;'),
    (
        "name: x\nversion: 1.0\n",
        "version: expected a semantic version x.y.z such as 1.0.0 as a "
        'string, got 1.0; quote it, e.g. "1.0.0"',
    ),
    (
        "name: x\nversion: '1.0'\n",
        'version: expected a semantic version x.y.z such as 1.0.0, got "1.0";',
    ),
    (
        "name: x\nruntime: docker\n",
        'runtime: expected wasm or grpc, got "docker"; use wasm or grpc',
    ),
    ("name: x\nruntime: [wasm]\n", "runtime: expected a string, got a list;"),
    ("name: x\ndescription: [a]\n", "description: expected a string, got a list;"),
    ("name: x\nauthor: {a: 1}\n", "author: expected a string, got a mapping;"),
    ("name: x\nlicense: 2\n", "license: expected a string, got 2;"),
    ("name: x\nhomepage: true\n", "homepage: expected a string, got true;"),
    (
        "name: x\nwasm: ../other/plugin.wasm\n",
        "wasm: \"../other/plugin.wasm\" leaves the plugin directory ('..');",
    ),
    ("name: x\nwasm: build/../../x.wasm\n", 'wasm: "build/../../x.wasm" leaves the plugin'),
    ("name: x\nwasm: /etc/plugin.wasm\n", 'wasm: "/etc/plugin.wasm" is an absolute path;'),
    ("name: x\nwasm: 'C:/x.wasm'\n", 'wasm: "C:/x.wasm" is an absolute path;'),
    ("name: x\nwasm: 'build\\x.wasm'\n", 'wasm: "build\\\\x.wasm" contains a backslash'),
    ("name: x\nwasm: .\n", 'wasm: "." names the plugin directory itself;'),
    ("name: x\nruntime: grpc\nbinary: ../bin/x\n", 'binary: "../bin/x" leaves the plugin'),
    ("name: x\nruntime: grpc\nbinary: /usr/bin/x\n", 'binary: "/usr/bin/x" is an absolute path;'),
    ("name: x\nruntime: grpc\ncommand: [../x]\n", 'command[0]: "../x" leaves the plugin'),
    ("name: x\nruntime: grpc\ncommand: [python, 3]\n", "command[1]: expected a string, got 3;"),
    ("name: x\nruntime: grpc\ncommand: []\n", "command: names no program;"),
    ("name: x\nruntime: grpc\ncommand: 'python \"x'\n", "command: cannot be split into arguments"),
    (
        "name: x\nruntime: grpc\n",
        "runtime: runtime grpc needs one of command, binary or endpoint, and none is set;",
    ),
    (
        "name: x\nruntime: grpc\ncommand: [x]\nendpoint: 'h:1'\n",
        "endpoint: command and endpoint "
        "are set, but a plugin has exactly one of them; keep only one",
    ),
    ("name: x\nruntime: grpc\nbinary: x\ncommand: [x]\n", "binary: command and binary are set,"),
    (
        "name: x\ncommand: [node, x.js]\n",
        "command: command is for runtime grpc, but runtime is "
        "wasm; remove it, or set `runtime: grpc`",
    ),
    ("name: x\nendpoint: 'h:1'\n", "endpoint: endpoint is for runtime grpc, but runtime is wasm;"),
    ("name: x\nruntime: grpc\nbinary: x\nwasm: p.wasm\n", "wasm: wasm is for runtime wasm,"),
    (
        "name: x\nruntime: grpc\nendpoint: localhost\n",
        'endpoint: expected host:port with a port from 1 to 65535, got "localhost";',
    ),
    ("name: x\nruntime: grpc\nendpoint: 'h:0'\n", "endpoint: expected host:port"),
    ("name: x\nruntime: grpc\nendpoint: 'h:70000'\n", "endpoint: expected host:port"),
    ("name: x\nruntime: grpc\nendpoint: 'http://h:80'\n", "endpoint: expected host:port"),
    ("name: x\nruntime: grpc\nendpoint: 5\n", "endpoint: expected a string, got 5;"),
    (
        "name: x\nruntime: grpc\nbinary: x\ntls: {ca: /etc/ca.pem}\n",
        'tls.ca: "/etc/ca.pem" is an absolute path;',
    ),
    (
        "name: x\nruntime: grpc\nbinary: x\ntls: {cert: c.pem}\n",
        "tls.key: a client certificate needs both cert and key;",
    ),
    ("name: x\ntls: {ca: ca.pem}\n", "tls: tls is for runtime grpc only;"),
    ("name: x\ntls: ca.pem\n", 'tls: expected a mapping, got "ca.pem";'),
    (
        "name: x\nresources: {memory_mb: true}\n",
        "resources.memory_mb: expected a positive whole number (megabytes), got true;",
    ),
    ("name: x\nresources: {memory_mb: 0}\n", "resources.memory_mb: expected a positive whole"),
    (
        "name: x\nresources: {memory_mb: '32'}\n",
        'resources.memory_mb: expected a positive whole number (megabytes), got "32";',
    ),
    (
        "name: x\nresources: {call_timeout: soon}\n",
        "resources.call_timeout: expected seconds as a "
        'number or a string like "500ms" or "2s", got "soon";',
    ),
    (
        "name: x\nresources: {call_timeout: -1}\n",
        "resources.call_timeout: must be more than 0 seconds, got -1;",
    ),
    ("name: x\nresources: {call_timeout: '-2s'}\n", "resources.call_timeout: must be more than 0"),
    ("name: x\nresources: {call_timeout: 0}\n", "resources.call_timeout: must be more than 0"),
    (
        "name: x\nresources: {max_instances: 65}\n",
        "resources.max_instances: expected a whole number from 1 to 64, got 65;",
    ),
    ("name: x\nresources: {max_instances: 0}\n", "resources.max_instances: expected a whole"),
    ("name: x\nresources: {fuel: 1.5}\n", "resources.fuel: expected a positive whole number,"),
    ("name: x\nresources: 32\n", "resources: expected a mapping, got 32;"),
    ("name: x\nexports: [a, b, a]\n", 'exports[2]: duplicate export "a" (already at exports[0]);'),
    ("name: x\nexports: [a, {name: a}]\n", 'exports[1]: duplicate export "a"'),
    ("name: x\nexports: a\n", 'exports: expected a list, got "a";'),
    ("name: x\nexports: [5]\n", "exports[0]: expected a function name or a mapping"),
    (
        "name: x\nexports: [{name: f, args: [{name: 1}]}]\n",
        "exports[0].args[0].name: expected an argument name, got 1;",
    ),
    (
        "name: x\nmin_host_version: latest\n",
        'min_host_version: expected a version such as 0.7.0, got "latest";',
    ),
    ("name: x\npermissions: stats.view\n", 'permissions: expected a list, got "stats.view";'),
    ("name: x\npermissions: ['']\n", 'permissions[0]: expected a permission name, got "";'),
    (
        "name: x\npermissions: [{description: d}]\n",
        "permissions[0].name: expected a permission name, got null;",
    ),
    ("name: x\npermissions: [a.view, a.view]\n", 'permissions[1]: duplicate permission "a.view"'),
    ("name: x\nconfig: [a]\n", "config: expected a mapping, got a list;"),
    (
        "name: x\nconfig: {a: [1, 2]}\n",
        "config.a: expected a single value (string, number or true/false), got a list;",
    ),
    ("name: x\nconfig: {1: a}\n", "config.1: keys must be strings, got 1; quote the key"),
    ("name: x\ncapabilities: [db]\n", "capabilities: expected a mapping, got a list;"),
    (
        "name: x\ncapabilities: {db: {read: [5]}}\n",
        "capabilities.db.read[0]: expected a table name, got 5;",
    ),
    (
        "name: x\ncapabilities: {db: {write: tickets}}\n",
        'capabilities.db.write: expected a list, got "tickets";',
    ),
    (
        "name: x\ncapabilities: {email: 'yes'}\n",
        'capabilities.email: expected true or false, got "yes";',
    ),
    (
        "name: x\ncapabilities: {http: {hosts: ['https://x.com/']}}\n",
        "capabilities.http.hosts[0]: "
        'expected a host name such as "api.example.com" or "*.example.org", got "https://x.com/";',
    ),
    (
        "name: x\ncapabilities: {plugins: [Other]}\n",
        'capabilities.plugins[0]: expected a plugin name, got "Other";',
    ),
    ("name: x\ncapabilities: {jobs: 1}\n", "capabilities.jobs: expected true or false, got 1;"),
    ("- name: x\n", "top level: expected a mapping, got a list;"),
    ("just a string\n", 'top level: expected a mapping, got "just a string";'),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_manifest_is_refused_naming_file_and_key_path(
    tmp_path: Path, text: str, message: str
) -> None:
    error = fail_with(tmp_path, text)
    assert str(error).startswith(f"stats/manifest.yaml: {message}")
    # "<file>: <key path>: <what is wrong>; <what to do>"
    assert "; " in str(error)
    assert str(error).split("; ", 1)[1].strip()
    assert error.code == "manifest_error"


def test_error_names_the_plugin_once_its_name_is_known(tmp_path: Path) -> None:
    assert fail_with(tmp_path, "name: real-name\nruntime: docker\n").plugin == "real-name"
    assert fail_with(tmp_path, "name: Bad Name\n").plugin == "stats"
    assert fail_with(tmp_path, "[1, 2]\n").plugin == "stats"


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    error = fail_with(tmp_path, "name: stats\nversion: 1.0.0\nexports: [a, b\n")
    assert str(error).startswith("stats/manifest.yaml: line 4, column 1: invalid YAML (")
    assert error.plugin == "stats"
    assert isinstance(error.__cause__, Exception)


def test_yaml_tab_indentation_error_has_a_line_number(tmp_path: Path) -> None:
    error = fail_with(tmp_path, "name: stats\nresources:\n\tmemory_mb: 8\n")
    assert str(error).startswith("stats/manifest.yaml: line 3, column 1: invalid YAML")


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    error = fail_with(tmp_path, "name: stats\nversion: 1.0.0\nname: other\n")
    assert str(error).startswith("stats/manifest.yaml: line 3, column 1: invalid YAML (")
    assert "found the key 'name' twice" in str(error)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    directory = write_plugin(
        tmp_path,
        """
        name: stats
        x-defaults: &defaults {memory_mb: 8, max_instances: 2}
        resources:
          <<: *defaults
          memory_mb: 16
        """,
    )
    manifest = load_manifest(directory)
    assert manifest.resources == Resources(memory_mb=16, max_instances=2)
    assert manifest.warnings == ("x-defaults: unknown key, ignored; check its spelling",)


def test_oversized_manifest_is_refused_unread(tmp_path: Path) -> None:
    padding = "# " + "x" * 1000 + "\n"
    text = "name: stats\n" + padding * (MAX_MANIFEST_BYTES // len(padding) + 1)
    error = fail_with(tmp_path, text)
    assert str(error).startswith("stats/manifest.yaml: the file is larger than 256 KiB;")
    assert error.plugin == "stats"


def test_manifest_just_under_the_limit_is_read(tmp_path: Path) -> None:
    head = "name: stats\n"
    text = head + "#" * (MAX_MANIFEST_BYTES - len(head) - 1) + "\n"
    assert len(text.encode()) == MAX_MANIFEST_BYTES
    assert load_manifest(write_plugin(tmp_path, text)).name == "stats"


def test_empty_manifest_is_refused(tmp_path: Path) -> None:
    error = fail_with(tmp_path, "# nothing here\n")
    assert str(error) == "stats/manifest.yaml: the file is empty; add at least `name: stats`"


def test_non_utf8_manifest_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "stats"
    directory.mkdir()
    (directory / "manifest.yaml").write_bytes(b"name: stats\ndescription: caf\xe9\n")
    with pytest.raises(ManifestError, match=r"^stats/manifest\.yaml: is not UTF-8 text"):
        load_manifest(directory)


def test_only_regular_files_count_as_manifests(tmp_path: Path) -> None:
    directory = tmp_path / "stats"
    (directory / "manifest.yaml").mkdir(parents=True)
    (directory / "plugin.yaml").symlink_to(directory / "missing.yaml")
    with pytest.raises(ManifestError, match=r"^stats: no manifest\.yaml or plugin\.yaml found"):
        load_manifest(directory)


def test_read_error_is_a_manifest_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = write_plugin(tmp_path, "name: stats\n")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ManifestError) as info:
        load_manifest(directory)
    assert str(info.value) == (
        "stats/manifest.yaml: cannot be read (Permission denied); check that the file is readable"
    )
    assert isinstance(info.value.__cause__, PermissionError)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_symlink_pointing_outside_the_plugin_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.wasm"
    outside.write_bytes(b"\0asm")
    directory = write_plugin(tmp_path, "name: stats\nwasm: plugin.wasm\n")
    (directory / "plugin.wasm").symlink_to(outside)
    error = fail_with(tmp_path, "name: stats\nwasm: plugin.wasm\n")
    assert str(error).startswith(
        'stats/manifest.yaml: wasm: "plugin.wasm" resolves outside the plugin directory;'
    )


def test_parse_manifest_validates_loaded_data(tmp_path: Path) -> None:
    manifest = parse_manifest(
        {"name": "stats", "exports": ["a"]},
        source=tmp_path / "stats" / "plugin.yaml",
        directory=tmp_path / "stats",
    )
    assert manifest.exports == (FunctionSpec("a"),)
    with pytest.raises(ManifestError, match=r"^stats/plugin\.yaml: exports\[0\]: expected"):
        parse_manifest(
            {"name": "stats", "exports": [None]},
            source=tmp_path / "stats" / "plugin.yaml",
            directory=tmp_path / "stats",
        )


def test_manifest_is_immutable(tmp_path: Path) -> None:
    manifest = load_manifest(write_plugin(tmp_path, "name: stats\nconfig: {days: 7}\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.config["days"] = 8  # type: ignore[index]
    assert hash(manifest.resources) == hash(Resources())
    assert hash(manifest.capabilities) == hash(Capabilities())


# --- capabilities ------------------------------------------------------------------------------


def _fail(message: str) -> ManifestError:
    return ManifestError(message)


def test_capabilities_round_trip_through_to_dict() -> None:
    caps = Capabilities(
        db_read=("tickets",),
        db_write=("faq",),
        http_hosts=("api.example.com",),
        email=True,
        jobs=True,
        plugins=("other",),
        events=True,
    )
    assert caps.to_dict() == {
        "db": {"read": ["tickets"], "write": ["faq"]},
        "http": {"hosts": ["api.example.com"]},
        "email": True,
        "jobs": True,
        "plugins": ["other"],
        "events": True,
    }
    assert Capabilities.from_dict(caps.to_dict(), "grants.stats", _fail) == caps
    assert not caps.is_empty()


def test_capabilities_to_dict_leaves_out_empty_parts() -> None:
    assert Capabilities().to_dict() == {}
    assert Capabilities(db_write=("t",)).to_dict() == {"db": {"write": ["t"]}}
    assert Capabilities(email=True).to_dict() == {"email": True}


def test_capabilities_from_dict_accepts_log_and_cache_silently() -> None:
    seen: list[str] = []
    caps = Capabilities.from_dict(
        {"log": True, "cache": {"ttl": 5}}, "caps", _fail, warn=seen.append
    )
    assert caps.is_empty()
    assert seen == []
    assert Capabilities.from_dict(None, "caps", _fail) == Capabilities()


def test_capabilities_from_dict_removes_duplicates_and_lowercases_hosts() -> None:
    caps = Capabilities.from_dict(
        {"db": {"read": ["a", "b", "a"]}, "http": {"hosts": ["X.com", "x.com"]}}, "caps", _fail
    )
    assert caps.db_read == ("a", "b")
    assert caps.http_hosts == ("x.com",)


def test_capabilities_from_dict_errors_use_the_given_path() -> None:
    with pytest.raises(ManifestError, match=r"^grants\.stats\.db\.read\[0\]: expected a table"):
        Capabilities.from_dict({"db": {"read": [""]}}, "grants.stats", _fail)


def test_warnings_of_a_refused_manifest_are_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="goatkit"):
        error = fail_with(tmp_path, "name: stats\ncolour: blue\nruntime: docker\n")
    assert str(error).startswith("stats/manifest.yaml: runtime: expected wasm or grpc")
    assert [r for r in caplog.records if r.name == "goatkit"] == []
