"""``http_request`` against a real HTTP server on 127.0.0.1.

Every request in these tests goes to loopback. Names such as ``app.test`` or
``evil.example.org`` are mapped by a fake resolver; a refused request is checked to have made no
connection at all (transport spy and the server's connection count).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from goatkit_asgi.errors import CapabilityDenied, HostCallError
from goatkit_asgi.host.http import PluginHttp, default_resolver

pytestmark = pytest.mark.anyio

PLUGIN = "fetcher"
LARGE = 64 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._lock:
            self.connections += 1
        return True

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = {
            "method": self.command,
            "path": url.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("latin-1"),
        }
        self.server.requests.append(seen)
        if url.path == "/json":
            self._send(
                200,
                json.dumps(seen).encode(),
                (("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b")),
            )
        elif url.path == "/large":
            self._send(200, b"x" * LARGE)
        elif url.path == "/large-stream":
            # No Content-Length: the body runs until the connection closes.
            self.send_response(200)
            self.end_headers()
            for _ in range(LARGE // 1024):
                self.wfile.write(b"y" * 1024)
        elif url.path == "/slow":
            self.server.release.wait(10)
            self._send(200, b"late")
        elif url.path == "/redirect":
            self._send(int(query.get("status", "302")), b"", (("Location", query["to"]),))
        elif url.path == "/status":
            self._send(int(query["code"]), b"moved, somewhere")
        elif url.path.startswith("/loop/"):
            n = int(url.path.rsplit("/", 1)[1])
            self._send(302, b"", (("Location", f"/loop/{n + 1}"),))
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_HEAD = _handle


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


class FakeResolver:
    """Maps names to fixed answers (a list per call, or one list for every call)."""

    def __init__(self, answers: Mapping[str, list[str] | list[list[str]]] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.answers.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if answer and isinstance(answer[0], list):
            per_call = [a for a in answer if isinstance(a, list)]
            return per_call[min(len(self.calls), len(per_call)) - 1]
        return [a for a in answer if isinstance(a, str)]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Every request handed to an httpx transport (the only way out of PluginHttp)."""
    requests: list[httpx.Request] = []
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def spy(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return await original(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", spy)
    return requests


def _body(result: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(result["body"]))


async def _refused(
    http: PluginHttp, hosts: tuple[str, ...], url: str, **args: Any
) -> CapabilityDenied:
    with pytest.raises(CapabilityDenied) as info:
        await http.request(PLUGIN, hosts, {"url": url, **args}, timeout=5)
    assert info.value.plugin == PLUGIN
    assert info.value.function == "http_request"
    return info.value


async def _host_error(
    http: PluginHttp, hosts: tuple[str, ...], args: dict[str, Any], *, timeout: float = 5
) -> HostCallError:
    with pytest.raises(HostCallError) as info:
        await http.request(PLUGIN, hosts, args, timeout=timeout)
    assert info.value.plugin == PLUGIN
    assert info.value.function == "http_request"
    return info.value


# -- success ---------------------------------------------------------------------------------


async def test_get_with_exact_ip_grant(server: _Server, sent: list[httpx.Request]) -> None:
    resolver = FakeResolver()
    http = PluginHttp(resolver=resolver)
    result = await http.request(
        PLUGIN,
        ("127.0.0.1",),
        {"url": f"http://127.0.0.1:{server.port}/json?q=1", "headers": {"X-Test": "yes"}},
        timeout=5,
    )
    assert result["status"] == 200
    assert result["headers"]["content-type"] == "application/json"
    assert result["headers"]["x-multi"] == "a, b"
    assert all(name == name.lower() for name in result["headers"])
    seen = _body(result)
    assert seen["method"] == "GET"
    assert seen["headers"]["host"] == f"127.0.0.1:{server.port}"
    assert seen["headers"]["x-test"] == "yes"
    assert seen["headers"]["user-agent"] == "goatkit-asgi"
    assert seen["headers"]["accept-encoding"] == "identity"
    assert resolver.calls == []  # an IP literal is not resolved
    assert len(sent) == 1


async def test_post_sends_the_decoded_body(server: _Server) -> None:
    http = PluginHttp(resolver=FakeResolver())
    result = await http.request(
        PLUGIN,
        ("127.0.0.1",),
        {
            "method": "post",
            "url": f"http://127.0.0.1:{server.port}/json",
            "headers": {"Content-Type": "text/plain"},
            "body": base64.b64encode(b"hello body").decode(),
        },
        timeout=5,
    )
    seen = _body(result)
    assert seen["method"] == "POST"
    assert seen["body"] == "hello body"
    assert seen["headers"]["content-type"] == "text/plain"
    assert seen["headers"]["content-length"] == "10"


async def test_binary_body_is_returned_as_base64(server: _Server) -> None:
    http = PluginHttp(resolver=FakeResolver())
    result = await http.request(
        PLUGIN, ("127.0.0.1",), {"url": f"http://127.0.0.1:{server.port}/large"}, timeout=5
    )
    assert base64.b64decode(result["body"]) == b"x" * LARGE
    assert result["headers"]["content-length"] == str(LARGE)


async def test_grant_with_port_matches_that_port_only(
    server: _Server, sent: list[httpx.Request]
) -> None:
    http = PluginHttp(resolver=FakeResolver())
    url = f"http://127.0.0.1:{server.port}/json"
    result = await http.request(PLUGIN, (f"127.0.0.1:{server.port}",), {"url": url}, timeout=5)
    assert result["status"] == 200
    error = await _refused(http, (f"127.0.0.1:{server.port + 1}",), url)
    assert f"127.0.0.1:{server.port} is not allowed" in str(error)
    assert len(sent) == 1


async def test_exact_name_grant_reaches_loopback_pinned_to_the_checked_address(
    server: _Server, sent: list[httpx.Request]
) -> None:
    # The second answer would move the name to a private address (DNS rebinding): it is
    # never asked for, because the connection goes to the address that was checked.
    resolver = FakeResolver({"app.test": [["127.0.0.1"], ["10.0.0.1"]]})
    http = PluginHttp(resolver=resolver)
    result = await http.request(
        PLUGIN, ("APP.test",), {"url": f"http://App.Test:{server.port}/json"}, timeout=5
    )
    assert result["status"] == 200
    assert _body(result)["headers"]["host"] == f"app.test:{server.port}"
    assert resolver.calls == [("app.test", server.port)]
    assert [(r.url.host, r.url.port) for r in sent] == [("127.0.0.1", server.port)]
    assert sent[0].headers["host"] == f"app.test:{server.port}"


async def test_tls_requests_carry_the_name_for_sni() -> None:
    # No TLS server here: this checks how the pinned request is built, not a handshake.
    captured: list[httpx.Request] = []

    async def fake_send(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(204, stream=httpx.ByteStream(b""))

    http = PluginHttp(resolver=FakeResolver({"app.test": ["127.0.0.1"]}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(httpx.AsyncHTTPTransport, "handle_async_request", fake_send)
        result = await http.request(PLUGIN, ("app.test",), {"url": "https://app.test/x"}, timeout=5)
    assert result == {"status": 204, "headers": {}, "body": ""}
    [request] = captured
    assert str(request.url) == "https://127.0.0.1/x"
    assert request.headers["host"] == "app.test"
    assert request.extensions["sni_hostname"] == "app.test"


@pytest.mark.parametrize(
    ("grant", "url", "allowed"),
    [
        ("API.Example.com", "http://api.example.COM./v1", True),
        ("api.example.com", "https://api.example.com:8443/", True),
        ("api.example.com:8443", "https://api.example.com:8443/", True),
        ("api.example.com:8443", "https://api.example.com/", False),
        ("api.example.com:443", "https://api.example.com/", True),
        ("*.example.org", "http://a.b.example.org/", True),
        ("*.example.org:8080", "http://a.example.org:8080/", True),
        ("*.example.org:8080", "http://a.example.org/", False),
        ("bücher.de", "http://xn--bcher-kva.de/", True),
        ("xn--bcher-kva.de", "http://bücher.de/", True),
        ("::1", "http://[::1]:8080/", True),
        ("[::1]:8080", "http://[0:0::1]:8080/", True),
        ("[::1]:8081", "http://[::1]:8080/", False),
        ("127.0.0.1", "http://127.0.0.1:9/", True),
        ("*", "http://api.example.com/", False),  # only "*.domain" wildcards exist
        ("*.*.example.org", "http://a.b.example.org/", False),
        ("api.example.com:http", "http://api.example.com/", False),
    ],
)
async def test_grant_patterns(grant: str, url: str, allowed: bool) -> None:
    # The transport is faked: nothing leaves the process, whatever the address.
    async def fake_send(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        return httpx.Response(204, stream=httpx.ByteStream(b""))

    resolver = FakeResolver(
        {"api.example.com": ["93.184.216.34"], "a.b.example.org": ["93.184.216.34"]}
        | {"a.example.org": ["93.184.216.34"], "xn--bcher-kva.de": ["93.184.216.34"]}
    )
    http = PluginHttp(resolver=resolver)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(httpx.AsyncHTTPTransport, "handle_async_request", fake_send)
        if allowed:
            result = await http.request(PLUGIN, (grant,), {"url": url}, timeout=5)
            assert result["status"] == 204
        else:
            await _refused(http, (grant,), url)


async def test_default_resolver_and_exact_localhost_grant(server: _Server) -> None:
    assert "127.0.0.1" in await default_resolver("localhost", server.port)
    http = PluginHttp()
    result = await http.request(
        PLUGIN, ("localhost",), {"url": f"http://localhost:{server.port}/json"}, timeout=5
    )
    assert result["status"] == 200
    assert _body(result)["headers"]["host"] == f"localhost:{server.port}"


# -- grants ----------------------------------------------------------------------------------


async def test_ungranted_host_is_denied_before_any_connection(
    server: _Server, sent: list[httpx.Request]
) -> None:
    resolver = FakeResolver({"other.example.com": ["127.0.0.1"]})
    http = PluginHttp(resolver=resolver)
    hosts = ("api.example.com", "*.example.org")
    error = await _refused(http, hosts, f"http://other.example.com:{server.port}/json")
    assert str(error).startswith(f"{PLUGIN}: http_request to other.example.com:{server.port}")
    assert "api.example.com, *.example.org" in str(error)
    assert "http.hosts" in str(error)
    await _refused(http, (), f"http://127.0.0.1:{server.port}/json")
    assert resolver.calls == []
    assert sent == []
    assert server.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/",  # a wildcard covers subdomains, not the domain itself
        "http://notexample.org/",
        "http://example.org.evil.com/",
        "http://a.example.org.evil.com/",
    ],
)
async def test_wildcard_matches_subdomains_only(url: str, sent: list[httpx.Request]) -> None:
    resolver = FakeResolver()
    await _refused(PluginHttp(resolver=resolver), ("*.example.org",), url)
    assert resolver.calls == []
    assert sent == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "169.254.169.254",
        "10.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "[::ffff:127.0.0.1]",
        "[fd00:ec2::254]",
    ],
)
async def test_ip_literals_need_an_exact_grant(
    host: str, server: _Server, sent: list[httpx.Request]
) -> None:
    resolver = FakeResolver()
    http = PluginHttp(resolver=resolver)
    # Wildcards never match an IP literal, not even one that "ends with" the pattern.
    hosts = ("*.example.org", "*.0.0.1", "api.example.com")
    await _refused(http, hosts, f"http://{host}:{server.port}/json")
    assert resolver.calls == []
    assert sent == []
    assert server.connections == 0


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback address embedded in an IPv6"),
        ("::ffff:169.254.169.254", "metadata address embedded in an IPv6"),
        ("64:ff9b::a00:1", "private address embedded in an IPv6"),
        ("2002:a00:1::", "private address embedded in an IPv6"),
    ],
)
async def test_names_resolving_to_internal_addresses_are_refused_before_connecting(
    address: str, reason: str, sent: list[httpx.Request]
) -> None:
    resolver = FakeResolver({"evil.example.org": [address]})
    http = PluginHttp(resolver=resolver)
    error = await _refused(http, ("*.example.org",), "http://evil.example.org/")
    assert f"resolves to {address}" in str(error)
    assert reason in str(error)
    assert "exactly" in str(error)
    assert resolver.calls == [("evil.example.org", 80)]
    assert sent == []


async def test_one_internal_address_among_public_ones_is_enough_to_refuse(
    sent: list[httpx.Request],
) -> None:
    resolver = FakeResolver({"mixed.example.org": ["93.184.216.34", "127.0.0.1"]})
    error = await _refused(
        PluginHttp(resolver=resolver), ("*.example.org",), "http://mixed.example.org/"
    )
    assert "resolves to 127.0.0.1, a loopback address" in str(error)
    assert sent == []


async def test_dns_failures_are_host_call_errors(sent: list[httpx.Request]) -> None:
    http = PluginHttp(resolver=FakeResolver({"empty.example.org": []}))
    error = await _host_error(http, ("*.example.org",), {"url": "http://missing.example.org/"})
    assert error.code == "dns_error"
    assert "could not resolve missing.example.org" in str(error)
    error = await _host_error(http, ("*.example.org",), {"url": "http://empty.example.org/"})
    assert error.code == "dns_error"
    assert sent == []


# -- redirects -------------------------------------------------------------------------------


async def test_redirect_to_a_granted_host_is_followed(server: _Server) -> None:
    resolver = FakeResolver({"app.test": ["127.0.0.1"]})
    http = PluginHttp(resolver=resolver)
    target = f"http://app.test:{server.port}/json"
    result = await http.request(
        PLUGIN,
        ("127.0.0.1", "app.test"),
        {"url": f"http://127.0.0.1:{server.port}/redirect?to={target}"},
        timeout=5,
    )
    assert result["status"] == 200
    assert _body(result)["headers"]["host"] == f"app.test:{server.port}"
    assert [r["path"] for r in server.requests] == ["/redirect", "/json"]
    assert resolver.calls == [("app.test", server.port)]


async def test_redirect_to_loopback_under_a_wildcard_name_is_refused(
    server: _Server, sent: list[httpx.Request]
) -> None:
    resolver = FakeResolver({"loop.example.org": ["127.0.0.1"]})
    http = PluginHttp(resolver=resolver)
    target = f"http://loop.example.org:{server.port}/json"
    error = await _refused(
        http,
        ("127.0.0.1", "*.example.org"),
        f"http://127.0.0.1:{server.port}/redirect?to={target}",
    )
    assert "loop.example.org refused: it resolves to 127.0.0.1, a loopback address" in str(error)
    assert [r["path"] for r in server.requests] == ["/redirect"]
    assert len(sent) == 1
    assert resolver.calls == [("loop.example.org", server.port)]


async def test_redirect_to_an_ungranted_loopback_literal_is_refused(
    server: _Server, sent: list[httpx.Request]
) -> None:
    resolver = FakeResolver({"app.test": ["127.0.0.1"]})
    http = PluginHttp(resolver=resolver)
    target = f"http://127.0.0.1:{server.port}/json"
    error = await _refused(
        http, ("app.test",), f"http://app.test:{server.port}/redirect?to={target}"
    )
    assert f"127.0.0.1:{server.port} is not allowed" in str(error)
    assert [r["path"] for r in server.requests] == ["/redirect"]
    assert len(sent) == 1


async def test_redirect_to_an_ungranted_host_is_refused_without_resolving_it(
    server: _Server,
) -> None:
    resolver = FakeResolver({"other.test": ["127.0.0.1"]})
    http = PluginHttp(resolver=resolver)
    await _refused(
        http,
        ("127.0.0.1",),
        f"http://127.0.0.1:{server.port}/redirect?to=http://other.test:{server.port}/json",
    )
    assert resolver.calls == []
    assert [r["path"] for r in server.requests] == ["/redirect"]


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:70/"])
async def test_redirect_to_another_scheme_is_refused(server: _Server, location: str) -> None:
    http = PluginHttp(resolver=FakeResolver())
    error = await _host_error(
        http, ("127.0.0.1",), {"url": f"http://127.0.0.1:{server.port}/redirect?to={location}"}
    )
    assert error.code == "bad_request"
    assert "redirect Location" in str(error)
    assert "only http and https" in str(error)
    assert [r["path"] for r in server.requests] == ["/redirect"]


async def test_too_many_redirects(server: _Server) -> None:
    http = PluginHttp(max_redirects=3, resolver=FakeResolver())
    error = await _host_error(
        http, ("127.0.0.1",), {"url": f"http://127.0.0.1:{server.port}/loop/0"}
    )
    assert error.code == "too_many_redirects"
    assert f"more than 3 redirects (the last to http://127.0.0.1:{server.port})" in str(error)
    assert [r["path"] for r in server.requests] == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


@pytest.mark.parametrize(
    ("status", "method", "body"), [(303, "GET", ""), (302, "GET", ""), (307, "POST", "data")]
)
async def test_redirect_method_rules(server: _Server, status: int, method: str, body: str) -> None:
    http = PluginHttp(resolver=FakeResolver())
    result = await http.request(
        PLUGIN,
        ("127.0.0.1",),
        {
            "method": "POST",
            "url": f"http://127.0.0.1:{server.port}/redirect?status={status}&to=/json",
            "headers": {"Content-Type": "text/plain"},
            "body": base64.b64encode(b"data").decode(),
        },
        timeout=5,
    )
    seen = _body(result)
    assert (seen["method"], seen["body"]) == (method, body)
    assert ("content-type" in seen["headers"]) == (method == "POST")


async def test_authorization_is_dropped_on_a_cross_origin_redirect(server: _Server) -> None:
    http = PluginHttp(resolver=FakeResolver({"app.test": ["127.0.0.1"]}))
    hosts = ("127.0.0.1", "app.test")
    base = f"http://127.0.0.1:{server.port}"
    args = {"headers": {"Authorization": "Bearer secret", "X-Keep": "1"}}
    same = await http.request(
        PLUGIN, hosts, {**args, "url": f"{base}/redirect?to=/json"}, timeout=5
    )
    assert _body(same)["headers"]["authorization"] == "Bearer secret"
    other = await http.request(
        PLUGIN,
        hosts,
        {**args, "url": f"{base}/redirect?to=http://app.test:{server.port}/json"},
        timeout=5,
    )
    assert "authorization" not in _body(other)["headers"]
    assert _body(other)["headers"]["x-keep"] == "1"


async def test_redirect_status_without_location_is_returned(server: _Server) -> None:
    http = PluginHttp(resolver=FakeResolver())
    result = await http.request(
        PLUGIN,
        ("127.0.0.1",),
        {"url": f"http://127.0.0.1:{server.port}/status?code=302"},
        timeout=5,
    )
    assert result["status"] == 302
    assert base64.b64decode(result["body"]) == b"moved, somewhere"


# -- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/large", "/large-stream"])
async def test_response_size_cap(server: _Server, path: str) -> None:
    http = PluginHttp(max_response_bytes=LARGE - 1, resolver=FakeResolver())
    error = await _host_error(
        http, ("127.0.0.1",), {"url": f"http://127.0.0.1:{server.port}{path}"}
    )
    assert error.code == "too_large"
    assert f"larger than {LARGE - 1} bytes" in str(error)
    exact = PluginHttp(max_response_bytes=LARGE, resolver=FakeResolver())
    result = await exact.request(
        PLUGIN, ("127.0.0.1",), {"url": f"http://127.0.0.1:{server.port}{path}"}, timeout=5
    )
    assert len(base64.b64decode(result["body"])) == LARGE


async def test_timeout_covers_the_whole_exchange(server: _Server) -> None:
    http = PluginHttp(resolver=FakeResolver())
    started = time.monotonic()
    error = await _host_error(
        http, ("127.0.0.1",), {"url": f"http://127.0.0.1:{server.port}/slow"}, timeout=0.3
    )
    assert time.monotonic() - started < 3
    assert error.code == "timeout"
    assert "within 0.3s" in str(error)


async def test_no_time_left_means_no_request(sent: list[httpx.Request]) -> None:
    http = PluginHttp(resolver=FakeResolver())
    error = await _host_error(http, ("127.0.0.1",), {"url": "http://127.0.0.1/"}, timeout=0)
    assert error.code == "timeout"
    assert sent == []


async def test_connection_refused_is_an_http_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = PluginHttp(resolver=FakeResolver())
    error = await _host_error(http, ("127.0.0.1",), {"url": f"http://127.0.0.1:{port}/"})
    assert error.code == "http_error"
    assert "request to 127.0.0.1 failed" in str(error)


async def test_closed_client_refuses_requests(sent: list[httpx.Request]) -> None:
    http = PluginHttp(resolver=FakeResolver())
    await http.aclose()
    error = await _host_error(http, ("127.0.0.1",), {"url": "http://127.0.0.1/"})
    assert error.code == "closed"
    assert sent == []


# -- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Evil": "a\r\nX-Injected: 1"}, "'X-Evil' contains CR, LF or NUL"),
        ({"X-Evil": "a\nb"}, "'X-Evil' contains CR, LF or NUL"),
        ({"X-Evil": "a\x00b"}, "'X-Evil' contains CR, LF or NUL"),
        ({"X-Evil\r\nX-Injected": "1"}, "is not a valid HTTP token"),
        ({"X Space": "1"}, "is not a valid HTTP token"),
        ({"Host": "internal"}, "'Host' is set by the host"),
        ({"Content-Length": "5"}, "'Content-Length' is set by the host"),
        ({"Transfer-Encoding": "chunked"}, "'Transfer-Encoding' is set by the host"),
        ({"Connection": "close"}, "'Connection' is set by the host"),
        ({"Proxy-Authorization": "x"}, "'Proxy-Authorization' is set by the host"),
        ({"X-Number": 5}, "'X-Number' must have a string value"),
    ],
)
async def test_bad_request_headers_are_refused(
    headers: dict[str, Any], message: str, server: _Server, sent: list[httpx.Request]
) -> None:
    http = PluginHttp(resolver=FakeResolver())
    error = await _host_error(
        http, ("127.0.0.1",), {"url": f"http://127.0.0.1:{server.port}/json", "headers": headers}
    )
    assert error.code == "bad_request"
    assert message in str(error)
    assert sent == []
    assert server.connections == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://127.0.0.1/", "only http and https"),
        ("gopher://127.0.0.1:70/_", "only http and https"),
        ("data:text/plain,hi", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("/relative", "only http and https"),
        ("http:///nohost", "no valid host name"),
        ("http://exa mple.org/", "no valid host name"),
        ("http://user:pw@127.0.0.1/", "credentials in the URL"),
        ("http://127.0.0.1/\r\nX: y", "CR/LF/NUL"),
        ("", '"url" must be a non-empty string'),
    ],
)
async def test_bad_urls_are_refused(url: str, message: str, sent: list[httpx.Request]) -> None:
    http = PluginHttp(resolver=FakeResolver())
    error = await _host_error(http, ("127.0.0.1", "*.example.org"), {"url": url})
    assert error.code == "bad_request"
    assert message in str(error)
    assert sent == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"method": "CONNECT"}, '"method" must be one of'),
        ({"method": "TRACE"}, '"method" must be one of'),
        ({"method": 1}, '"method" must be one of'),
        ({"headers": ["X-A: 1"]}, '"headers" must be an object'),
        ({"body": "not base64!"}, '"body" is not valid base64'),
        ({"body": 12}, '"body" must be a base64 string'),
    ],
)
async def test_bad_arguments_are_refused(
    args: dict[str, Any], message: str, sent: list[httpx.Request]
) -> None:
    http = PluginHttp(resolver=FakeResolver())
    error = await _host_error(http, ("127.0.0.1",), {"url": "http://127.0.0.1/", **args})
    assert error.code == "bad_request"
    assert message in str(error)
    assert sent == []
