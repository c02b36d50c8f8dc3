"""The go-plugin handshake line: what is accepted, and the message for each thing refused."""

from __future__ import annotations

import pytest

from goatkit_asgi.errors import PluginLoadError
from goatkit_asgi.runtime.grpc_handshake import Handshake, parse_handshake


@pytest.mark.parametrize(
    ("line", "network", "address", "target"),
    [
        (
            "1|1|unix|/tmp/p/plugin.sock|grpc\n",
            "unix",
            "/tmp/p/plugin.sock",
            "unix:/tmp/p/plugin.sock",
        ),
        ("1|1|tcp|127.0.0.1:41234|grpc", "tcp", "127.0.0.1:41234", "127.0.0.1:41234"),
        ("1|1|tcp|[::1]:5000|grpc", "tcp", "[::1]:5000", "[::1]:5000"),
        ("1|1|tcp|localhost:5000|grpc|", "tcp", "localhost:5000", "localhost:5000"),
    ],
)
def test_valid_handshake_lines(line: str, network: str, address: str, target: str) -> None:
    handshake = parse_handshake(line, "p")
    assert handshake == Handshake(network, address)
    assert handshake.target == target
    assert parse_handshake(handshake.line(), "p") == handshake


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", "expected 5 fields separated by '|', got 1"),
        ("1|1|unix|/x.sock", "expected 5 fields separated by '|', got 4"),
        ("1|1|unix|/x.sock|grpc|cert", "expected 5 fields separated by '|', got 6"),
        ("2|1|unix|/x.sock|grpc", "core protocol version '2', but this host speaks 1"),
        (
            "1|7|unix|/x.sock|grpc",
            "plugin protocol version '7', but this host speaks goatkit protocol 1",
        ),
        ("1|1|unix|/x.sock|netrpc", "protocol 'netrpc' is not supported; serve and announce grpc"),
        ("1|1|udp|127.0.0.1:1|grpc", "network 'udp' is not supported; use unix or tcp"),
        ("1|1|unix|relative.sock|grpc", "a unix socket address must be an absolute path"),
        (
            "1|1|tcp|0.0.0.0:5000|grpc",
            "tcp address '0.0.0.0:5000' is not on the loopback interface",
        ),
        ("1|1|tcp|example.com:5000|grpc", "tcp address 'example.com:5000' is not on the loopback"),
        ("1|1|tcp|127.0.0.1|grpc", "tcp address '127.0.0.1' is not on the loopback interface"),
        ("1|1|tcp|127.0.0.1:99999|grpc", "tcp address '127.0.0.1:99999' is not on the loopback"),
    ],
)
def test_bad_handshake_lines_are_refused_with_the_reason(line: str, problem: str) -> None:
    with pytest.raises(PluginLoadError) as info:
        parse_handshake(line, "native")
    assert info.value.plugin == "native"
    assert info.value.message.startswith(f"native: bad handshake line {line!r}: ")
    assert problem in info.value.message


def test_a_long_garbage_line_is_quoted_shortened() -> None:
    with pytest.raises(PluginLoadError) as info:
        parse_handshake("x" * 5000, "p")
    assert "'" + "x" * 120 + "...'" in info.value.message
    assert len(info.value.message) < 400
