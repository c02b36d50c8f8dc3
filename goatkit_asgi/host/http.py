"""``http_request``: outbound HTTP for plugins, limited to the hosts an administrator granted.

A plugin's ``http`` capability lists host patterns (DESIGN §3)::

    http: {hosts: ["api.example.com", "*.example.org", "127.0.0.1:8080"]}

- ``api.example.com`` names that host exactly (case-insensitive), on any port;
  ``api.example.com:8443`` names it on that port only. IP literals are reached only when granted
  exactly in this way (``127.0.0.1``, ``[::1]:8080`` or ``::1``).
- ``*.example.org`` matches every subdomain of ``example.org`` (``a.example.org``,
  ``a.b.example.org``), never ``example.org`` itself and never an IP literal.

Server-side request forgery is stopped after DNS resolution: if *any* address a name resolves to
is loopback, private (RFC 1918, ULA), link-local, multicast, unspecified, reserved, shared
(100.64.0.0/10), a cloud metadata address, or an IPv6 form embedding one of those (IPv4-mapped,
6to4, Teredo, NAT64), the request is refused before a connection is attempted. The only way to
such an address is a grant that names the host or IP *exactly*: a wildcard never does.

The checked address is pinned for the connection, so a second DNS answer (DNS rebinding) cannot
move the request elsewhere: the request URL given to the httpx transport carries the IP, while
the ``Host`` header carries the name and the ``sni_hostname`` request extension makes TLS send the
name as SNI and verify the certificate against it. This uses public httpx API only. Because
httpx pools connections by (scheme, IP, port), a shared pool could carry a request for one name
over a TLS session verified for another name at the same IP; each hop therefore gets its own
transport and connection, and no connection outlives the call that checked it.

Redirects are followed here, not by httpx, up to ``max_redirects``: each hop is checked again
(grant, resolution, addresses). The body is the bytes the server sent (no implicit decompression:
``Accept-Encoding: identity`` unless the plugin asks otherwise), read up to
``max_response_bytes``. The whole exchange, DNS included, runs under the call's remaining time.
Environment proxy settings are ignored: a proxy would resolve names itself, past these checks.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from ..errors import CapabilityDenied, HostCallError

__all__ = ["MAX_REQUEST_BYTES", "PluginHttp", "Resolver", "default_resolver", "forbidden_reason"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FUNCTION = "http_request"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_URL_LENGTH = 8192
USER_AGENT = "goatkit-asgi"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Set by the host (Host, framing) or meaningful only to the hop between us and the server.
_FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
    }
)
_CROSS_ORIGIN_DROP = ("authorization", "cookie")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOSTNAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_BAD_VALUE_CHARS = re.compile(r"[\r\n\x00]")

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


async def default_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``anyio.getaddrinfo``), without duplicates."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class _Grant:
    host: str  # normalised; for a wildcard, the parent domain without "*."
    port: int | None
    wildcard: bool


@dataclass(frozen=True)
class _Hop:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    location: str | None


def _ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _normalise_host(host: str) -> str | None:
    """Lower-case ASCII (IDNA) name without a trailing dot, or a canonical IP; None if invalid."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ip = _ip(host)
    if ip is not None:
        return str(ip)
    host = host.removesuffix(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host if _HOSTNAME.fullmatch(host) else None


def _parse_grant(pattern: str) -> _Grant | None:
    """``host``, ``host:port``, ``*.domain[:port]``, ``ip``, ``[ipv6]:port``; None if invalid."""
    pattern = pattern.strip()
    port: int | None = None
    if pattern.startswith("["):
        host, sep, rest = pattern[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif pattern.count(":") == 1:
        host, _, port_text = pattern.partition(":")
    else:
        host, port_text = pattern, None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    wildcard = host.startswith("*.")
    normalised = _normalise_host(host[2:] if wildcard else host)
    if normalised is None or (wildcard and _ip(normalised) is not None):
        return None
    return _Grant(normalised, port, wildcard)


def _grant_match(hosts: Sequence[str], host: str, port: int) -> str | None:
    """``"exact"``, ``"wildcard"`` or None: how the granted patterns cover ``host:port``."""
    grants = [g for g in map(_parse_grant, hosts) if g is not None and g.port in (None, port)]
    if any(not g.wildcard and g.host == host for g in grants):
        return "exact"
    if _ip(host) is None and any(g.wildcard and host.endswith("." + g.host) for g in grants):
        return "wildcard"
    return None


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def forbidden_reason(addr: IPAddress) -> str | None:
    """Why a plugin may not reach ``addr`` without an exact grant; None for a public address."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            addr = ipaddress.IPv6Address(str(addr).partition("%")[0])
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            if inner is not None:
                return f"{inner} embedded in an IPv6 address"
    checks: tuple[tuple[bool, str], ...] = (
        (addr in _METADATA, "a cloud metadata address"),
        (addr.is_loopback, "a loopback address"),
        (addr.is_unspecified, "the unspecified address"),
        (addr.is_link_local, "a link-local address"),
        (addr.is_multicast, "a multicast address"),
        (isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT, "a shared (CGNAT) address"),
        (addr.is_reserved, "a reserved address"),
        (addr.is_private, "a private address"),
        (not addr.is_global, "a special-purpose address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _host_header(url: httpx.URL, host: str) -> str:
    name = f"[{host}]" if ":" in host else host
    port = url.port
    return name if port is None or port == _DEFAULT_PORTS[url.scheme] else f"{name}:{port}"


class PluginHttp:
    """The ``http_request`` backend: one per platform, shared by every plugin.

    ``resolver`` maps ``(host, port)`` to IP address strings (default: :func:`default_resolver`);
    tests inject a fake one. Errors: :class:`CapabilityDenied` for a host or address outside the
    grant, :class:`HostCallError` with code ``bad_request``, ``too_large``, ``timeout``,
    ``too_many_redirects``, ``dns_error`` or ``http_error`` otherwise.
    """

    def __init__(
        self,
        *,
        max_response_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = 5,
        resolver: Resolver | None = None,
    ) -> None:
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        self._resolver: Resolver = resolver or default_resolver
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def aclose(self) -> None:
        """Refuse further requests. Requests in flight own their connections and finish."""
        self._closed = True

    async def request(
        self, plugin: str, hosts: tuple[str, ...], args: dict[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        """Perform one ``http_request`` host call for ``plugin`` granted ``hosts``.

        ``args`` is the decoded call JSON; ``timeout`` the seconds left for the whole exchange.
        Returns ``{"status", "headers", "body"}`` (headers lower-cased, repeats joined with
        ``", "``; body base64).
        """
        if self._closed:
            raise self._error(plugin, "the platform is shutting down; try again later", "closed")
        method, url, headers, body = self._parse(plugin, args)
        if timeout <= 0:
            raise self._timeout(plugin, timeout)
        try:
            with anyio.fail_after(timeout):
                hop = await self._follow(plugin, hosts, method, url, headers, body, timeout)
        except TimeoutError as exc:
            raise self._timeout(plugin, timeout) from exc
        joined: dict[str, str] = {}
        for name, value in hop.headers:
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        return {
            "status": hop.status,
            "headers": joined,
            "body": base64.b64encode(hop.body).decode("ascii"),
        }

    # -- arguments -----------------------------------------------------------------------------

    def _parse(
        self, plugin: str, args: dict[str, Any]
    ) -> tuple[str, httpx.URL, list[tuple[str, str]], bytes | None]:
        method = args.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise self._bad(plugin, f'"method" must be one of {", ".join(sorted(_METHODS))}')
        method = method.upper()

        raw_url = args.get("url")
        if not isinstance(raw_url, str) or not raw_url:
            raise self._bad(plugin, '"url" must be a non-empty string')
        if len(raw_url) > MAX_URL_LENGTH or _BAD_VALUE_CHARS.search(raw_url):
            raise self._bad(plugin, f'"url" is longer than {MAX_URL_LENGTH} or contains CR/LF/NUL')
        url = self._check_url(plugin, raw_url, None)

        raw_headers = args.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise self._bad(plugin, '"headers" must be an object of header names to strings')
        headers: list[tuple[str, str]] = []
        for name, value in raw_headers.items():
            if not _TOKEN.fullmatch(name):
                raise self._bad(plugin, f"header name {name!r} is not a valid HTTP token")
            lower = name.lower()
            if lower in _FORBIDDEN_HEADERS or lower.startswith("proxy-"):
                raise self._bad(plugin, f"header {name!r} is set by the host and may not be sent")
            if not isinstance(value, str):
                raise self._bad(plugin, f"header {name!r} must have a string value")
            if _BAD_VALUE_CHARS.search(value):
                raise self._bad(
                    plugin, f"header {name!r} contains CR, LF or NUL (header injection)"
                )
            headers.append((lower, value))
        names = {name for name, _ in headers}
        if "user-agent" not in names:
            headers.append(("user-agent", USER_AGENT))
        if "accept-encoding" not in names:
            headers.append(("accept-encoding", "identity"))

        raw_body = args.get("body")
        body: bytes | None = None
        if raw_body is not None and raw_body != "":
            if not isinstance(raw_body, str):
                raise self._bad(plugin, '"body" must be a base64 string')
            try:
                body = base64.b64decode(raw_body, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise self._bad(plugin, '"body" is not valid base64') from exc
            if len(body) > MAX_REQUEST_BYTES:
                raise self._bad(plugin, f'"body" is larger than {MAX_REQUEST_BYTES} bytes')
        return method, url, headers, body

    def _check_url(self, plugin: str, raw: str, base: httpx.URL | None) -> httpx.URL:
        where = "redirect Location" if base is not None else '"url"'
        try:
            url = base.join(raw) if base is not None else httpx.URL(raw)
        except httpx.InvalidURL as exc:
            raise self._bad(plugin, f"{where} {raw!r} is not a valid URL ({exc})") from exc
        if url.scheme not in _DEFAULT_PORTS:
            raise self._bad(plugin, f"{where} {raw!r}: only http and https URLs are allowed")
        if url.userinfo:
            raise self._bad(
                plugin,
                f"{where}: credentials in the URL are not allowed; send an Authorization header",
            )
        host = _normalise_host(url.raw_host.decode("ascii"))
        if host is None:
            raise self._bad(plugin, f"{where} {raw!r} has no valid host name")
        return url.copy_with(fragment=None)

    # -- the exchange --------------------------------------------------------------------------

    async def _follow(
        self,
        plugin: str,
        hosts: tuple[str, ...],
        method: str,
        url: httpx.URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: float,
    ) -> _Hop:
        for _ in range(self.max_redirects + 1):
            host, addresses = await self._check_target(plugin, hosts, url)
            hop = await self._exchange(plugin, method, url, host, addresses, headers, body, timeout)
            if hop.status not in _REDIRECTS or hop.location is None:
                return hop
            next_url = self._check_url(plugin, hop.location, url)
            if (hop.status == 303 and method != "HEAD") or (
                hop.status in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
                headers = [(n, v) for n, v in headers if n != "content-type"]
            if (next_url.scheme, next_url.raw_host, next_url.port) != (
                url.scheme,
                url.raw_host,
                url.port,
            ):
                headers = [(n, v) for n, v in headers if n not in _CROSS_ORIGIN_DROP]
            url = next_url
        raise HostCallError(
            f"{FUNCTION}: more than {self.max_redirects} redirects (the last to "
            f"{url.scheme}://{url.netloc.decode('ascii')}); request the final URL directly",
            plugin=plugin,
            function=FUNCTION,
            code="too_many_redirects",
        )

    async def _check_target(
        self, plugin: str, hosts: tuple[str, ...], url: httpx.URL
    ) -> tuple[str, list[str]]:
        """Grant check, then resolution and address check: the addresses to connect to."""
        host = _normalise_host(url.raw_host.decode("ascii"))
        assert host is not None  # _check_url refused the rest
        port = url.port or _DEFAULT_PORTS[url.scheme]
        match = _grant_match(hosts, host, port)
        if match is None:
            raise CapabilityDenied(
                f"{plugin}: {FUNCTION} to {host}:{port} is not allowed; granted hosts: "
                f"{', '.join(hosts) or 'none'}. An administrator can grant it under "
                "capabilities http.hosts",
                plugin=plugin,
                function=FUNCTION,
            )
        literal = _ip(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = list(dict.fromkeys(await self._resolver(host, port)))
            except OSError as exc:
                raise HostCallError(
                    f"{FUNCTION}: could not resolve {host} ({exc})",
                    plugin=plugin,
                    function=FUNCTION,
                    code="dns_error",
                ) from exc
            if not addresses:
                raise HostCallError(
                    f"{FUNCTION}: {host} resolves to no address",
                    plugin=plugin,
                    function=FUNCTION,
                    code="dns_error",
                )
        checked: list[str] = []
        for address in addresses:
            ip = _ip(address)
            if ip is None:
                raise HostCallError(
                    f"{FUNCTION}: the resolver returned {address!r} for {host}, not an IP address",
                    plugin=plugin,
                    function=FUNCTION,
                    code="dns_error",
                )
            reason = forbidden_reason(ip)
            if reason is not None and match != "exact":
                raise CapabilityDenied(
                    f"{plugin}: {FUNCTION} to {host} refused: it resolves to {address}, {reason}. "
                    f"Only a grant naming {host!r} exactly (not a wildcard) allows that",
                    plugin=plugin,
                    function=FUNCTION,
                )
            checked.append(str(ip))
        return host, checked

    async def _exchange(
        self,
        plugin: str,
        method: str,
        url: httpx.URL,
        host: str,
        addresses: list[str],
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: float,
    ) -> _Hop:
        """One request to the first reachable checked address; the body only if not a redirect."""
        extensions: dict[str, Any] = {
            "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        }
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        all_headers = [("host", _host_header(url, host)), *headers]
        last: httpx.ConnectError | None = None
        async with httpx.AsyncHTTPTransport(
            verify=self._ssl_context(), trust_env=False, retries=0
        ) as transport:
            for address in addresses:
                try:
                    request = httpx.Request(
                        method,
                        url.copy_with(host=address),
                        headers=all_headers,
                        content=body,
                        extensions=extensions,
                    )
                    response = await transport.handle_async_request(request)
                except httpx.ConnectError as exc:
                    # Nothing was sent yet: the next checked address may answer.
                    last = exc
                    continue
                except httpx.TimeoutException as exc:
                    raise self._timeout(plugin, timeout) from exc
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    raise self._transport_error(plugin, host, exc) from exc
                try:
                    return await self._read(plugin, host, response)
                finally:
                    await response.aclose()
        assert last is not None
        raise self._transport_error(plugin, host, last) from last

    async def _read(self, plugin: str, host: str, response: httpx.Response) -> _Hop:
        headers = response.headers.multi_items()
        location = response.headers.get("location")
        if response.status_code in _REDIRECTS and location is not None:
            return _Hop(response.status_code, headers, b"", location)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise self._too_large(plugin, host)
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise self._too_large(plugin, host)
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise self._timeout(plugin, None) from exc
        except httpx.HTTPError as exc:
            raise self._transport_error(plugin, host, exc) from exc
        return _Hop(response.status_code, headers, b"".join(chunks), None)

    def _ssl_context(self) -> ssl.SSLContext:
        # Built once: loading the CA bundle costs milliseconds, too much for every request.
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    # -- errors --------------------------------------------------------------------------------

    @staticmethod
    def _error(plugin: str, message: str, code: str) -> HostCallError:
        return HostCallError(f"{FUNCTION}: {message}", plugin=plugin, function=FUNCTION, code=code)

    def _bad(self, plugin: str, message: str) -> HostCallError:
        return self._error(plugin, message, "bad_request")

    def _timeout(self, plugin: str, timeout: float | None) -> HostCallError:
        within = f" within {timeout:g}s" if timeout is not None else ""
        return self._error(
            plugin,
            f"no complete response{within}, the time left for this call; "
            "raise the plugin's call_timeout or use a faster endpoint",
            "timeout",
        )

    def _too_large(self, plugin: str, host: str) -> HostCallError:
        return self._error(
            plugin,
            f"the response from {host} is larger than {self.max_response_bytes} bytes; "
            "request less (paging, ranges)",
            "too_large",
        )

    def _transport_error(self, plugin: str, host: str, exc: Exception) -> HostCallError:
        detail = str(exc) or type(exc).__name__
        return self._error(plugin, f"request to {host} failed: {detail}", "http_error")
