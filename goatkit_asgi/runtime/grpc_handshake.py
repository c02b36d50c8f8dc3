"""The go-plugin handshake: the one line a local gRPC plugin prints on stdout when it is ready.

::

    CORE-VERSION|PROTOCOL-VERSION|NETWORK|ADDRESS|PROTOCOL
    1|1|unix|/tmp/gk-x/plugin.sock|grpc
    1|1|tcp|127.0.0.1:41234|grpc

The platform starts the plugin with ``GOATKIT_PLUGIN=goatkit-v1`` in its environment (the magic
cookie: a program started by hand without it can say so and exit), reads this line and connects
to the address. Only loopback TCP addresses are accepted: a local plugin must not listen where
other machines can reach it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import PluginLoadError

__all__ = [
    "APP_PROTOCOL_VERSION",
    "CORE_PROTOCOL_VERSION",
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "Handshake",
    "parse_handshake",
]

CORE_PROTOCOL_VERSION = 1
"""go-plugin's own protocol version (the first field)."""

APP_PROTOCOL_VERSION = 1
"""The goatkit protocol version (the second field): ``goatkit.v1`` in ``plugin.proto``."""

MAGIC_COOKIE_KEY = "GOATKIT_PLUGIN"
MAGIC_COOKIE_VALUE = "goatkit-v1"

_FORMAT = (
    "CORE-VERSION|PROTOCOL-VERSION|NETWORK|ADDRESS|PROTOCOL, e.g. 1|1|unix|/path/plugin.sock|grpc"
)
_SHOWN = 120  # characters of a bad line quoted in an error message


@dataclass(frozen=True, slots=True)
class Handshake:
    """Where a local plugin serves gRPC."""

    network: str  # "unix" or "tcp"
    address: str  # a socket path, or "127.0.0.1:port" / "[::1]:port"

    @property
    def target(self) -> str:
        """The gRPC channel target for the address."""
        return f"unix:{self.address}" if self.network == "unix" else self.address

    def line(self) -> str:
        """The handshake line, as a plugin prints it (without the newline)."""
        return f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|{self.network}|{self.address}|grpc"


def parse_handshake(line: str, plugin: str) -> Handshake:
    """Validate one handshake line; :class:`PluginLoadError` says what is wrong with it."""
    text = line.strip()

    def bad(what: str, fix: str) -> PluginLoadError:
        return PluginLoadError(
            f"{plugin}: bad handshake line {_quote(text)}: {what}; {fix}", plugin=plugin
        )

    fields = text.split("|")
    if len(fields) == 6 and not fields[5]:  # go-plugin's optional sixth field, left empty
        fields = fields[:5]
    if len(fields) != 5:
        raise bad(
            f"expected 5 fields separated by '|', got {len(fields)}",
            f"the first line on stdout must be {_FORMAT}",
        )
    core, app, network, address, protocol = fields
    if core != str(CORE_PROTOCOL_VERSION):
        raise bad(
            f"core protocol version {_quote(core)}, but this host speaks {CORE_PROTOCOL_VERSION}",
            f"print {CORE_PROTOCOL_VERSION} as the first field",
        )
    if app != str(APP_PROTOCOL_VERSION):
        raise bad(
            f"plugin protocol version {_quote(app)}, but this host speaks goatkit protocol "
            f"{APP_PROTOCOL_VERSION} (goatkit.v1)",
            "build the plugin against goatkit.v1, or upgrade the host",
        )
    if protocol != "grpc":
        raise bad(f"protocol {_quote(protocol)} is not supported", "serve and announce grpc")
    if network == "unix":
        if not address.startswith("/"):
            raise bad("a unix socket address must be an absolute path", "print the full path")
    elif network == "tcp":
        if not _is_loopback(address):
            raise bad(
                f"tcp address {_quote(address)} is not on the loopback interface",
                "listen on 127.0.0.1:PORT or [::1]:PORT (remote plugins use endpoint: instead)",
            )
    else:
        raise bad(f"network {_quote(network)} is not supported", "use unix or tcp")
    return Handshake(network, address)


def _is_loopback(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quote(text: str) -> str:
    shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
    return repr(shown)
