"""The wire contract: ``proto/goatkit/v1/plugin.proto`` is DESIGN §5 exactly, every part of it is
documented, and the committed Python code is what the documented command generates."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from goatkit_asgi._proto.goatkit.v1 import plugin_pb2

ROOT = Path(__file__).parents[2]
PROTO = ROOT / "proto" / "goatkit" / "v1" / "plugin.proto"
GENERATED = ROOT / "goatkit_asgi" / "_proto" / "goatkit" / "v1"
GRPC_TOOLS_VERSION = "1.85.1"  # the version that generated the committed files

# DESIGN §5, field by field: (name, number, type, label); "map" marks map<string, string>.
CONTRACT: dict[str, list[tuple[str, int, str]]] = {
    "Error": [("code", 1, "string"), ("message", 2, "string")],
    "RegisterRequest": [("host_version", 1, "string")],
    "RegisterResponse": [("registration_json", 1, "bytes")],
    "InitRequest": [
        ("plugin_name", 1, "string"),
        ("host_version", 2, "string"),
        ("host_address", 3, "string"),
        ("host_token", 4, "string"),
        ("config", 5, "map"),
    ],
    "InitResponse": [],
    "CallRequest": [
        ("function", 1, "string"),
        ("args_json", 2, "bytes"),
        ("timeout_seconds", 3, "double"),
    ],
    "CallResponse": [("result_json", 1, "bytes"), ("error", 2, "Error")],
    "HookRequest": [("hook", 1, "string"), ("payload_json", 2, "bytes")],
    "HookResponse": [("result_json", 1, "bytes"), ("error", 2, "Error")],
    "ShutdownRequest": [],
    "ShutdownResponse": [],
    "HostCallRequest": [("method", 1, "string"), ("args_json", 2, "bytes")],
    "HostCallResponse": [("result_json", 1, "bytes"), ("error", 2, "Error")],
}
SERVICES = {
    "Plugin": [
        ("Register", "RegisterRequest", "RegisterResponse"),
        ("Init", "InitRequest", "InitResponse"),
        ("Call", "CallRequest", "CallResponse"),
        ("Hook", "HookRequest", "HookResponse"),
        ("Shutdown", "ShutdownRequest", "ShutdownResponse"),
    ],
    "Host": [("Call", "HostCallRequest", "HostCallResponse")],
}
_TYPES = {9: "string", 12: "bytes", 1: "double"}


def _descriptor_set(tmp_path: Path) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path / "plugin.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            "proto/goatkit/v1/plugin.proto",
        ],
        cwd=ROOT,
        check=True,
    )
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def test_the_proto_is_the_design_contract_exactly() -> None:
    file = plugin_pb2.DESCRIPTOR
    assert file.package == "goatkit.v1"
    messages = {name: msg for name, msg in file.message_types_by_name.items()}
    assert set(messages) == set(CONTRACT)
    for name, fields in CONTRACT.items():
        actual = []
        for field in messages[name].fields:
            if field.message_type is not None:
                kind = (
                    "map" if field.message_type.GetOptions().map_entry else field.message_type.name
                )
            else:
                kind = _TYPES[field.type]
            actual.append((field.name, field.number, kind))
        assert actual == fields, name
    assert set(file.services_by_name) == set(SERVICES)
    for service, methods in SERVICES.items():
        actual_methods = [
            (m.name, m.input_type.name, m.output_type.name)
            for m in file.services_by_name[service].methods
        ]
        assert actual_methods == methods


def test_every_message_field_service_and_method_is_documented(tmp_path: Path) -> None:
    file = _descriptor_set(tmp_path).file[0]
    comments = {
        tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location
    }
    missing = []
    for i, message in enumerate(file.message_type):
        for j, field in enumerate(message.field):
            if not comments.get((4, i, 2, j)):
                missing.append(f"{message.name}.{field.name}")
    for i, service in enumerate(file.service):
        if not comments.get((6, i)):
            missing.append(service.name)
        for j, method in enumerate(service.method):
            if not comments.get((6, i, 2, j)):
                missing.append(f"{service.name}.{method.name}")
    assert missing == []
    # the file says which protocol version it is and how versions change
    text = PROTO.read_text()
    assert "The protocol version is 1" in text and "goatkit.v2" in text


@pytest.mark.skipif(
    importlib.metadata.version("grpcio-tools") != GRPC_TOOLS_VERSION,
    reason=f"the committed code was generated with grpcio-tools {GRPC_TOOLS_VERSION}",
)
def test_regenerating_the_python_code_changes_nothing(tmp_path: Path) -> None:
    # The command documented in goatkit_asgi/_proto/README.md, writing into a temp directory.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Igoatkit_asgi/_proto=proto",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            "proto/goatkit/v1/plugin.proto",
        ],
        cwd=ROOT,
        check=True,
    )
    fresh = tmp_path / "goatkit_asgi" / "_proto" / "goatkit" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == ["plugin_pb2.py", "plugin_pb2.pyi", "plugin_pb2_grpc.py"]
    for name in names:
        assert (fresh / name).read_bytes() == (GENERATED / name).read_bytes(), name
    readme = (ROOT / "goatkit_asgi" / "_proto" / "README.md").read_text()
    assert "python -m grpc_tools.protoc -Igoatkit_asgi/_proto=proto \\" in readme
