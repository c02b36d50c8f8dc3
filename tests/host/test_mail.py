"""``send_email`` against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import datetime
import email
import email.policy
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from goatkit_asgi.errors import HostCallError
from goatkit_asgi.host.mail import PluginMailer, SmtpSettings, html_to_text

pytestmark = pytest.mark.anyio

PLUGIN = "notifier"
SENDER = "goatkit@example.test"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool
    authenticated: bool


class Collector:
    """An aiosmtpd handler that keeps what it receives and can refuse or stall on request."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.refuse: set[str] = set()
        self.stall = False

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.stall:
            await asyncio.sleep(10)
        assert isinstance(envelope.content, bytes)
        # The wire form has CRLF line ends; the email package keeps them in decoded text.
        wire = envelope.content.replace(b"\r\n", b"\n")
        parsed = email.message_from_bytes(wire, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(
            Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                parsed,
                envelope.content,
                session.ssl is not None,
                bool(session.authenticated),
            )
        )
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Collector, int]]:
    handler = Collector()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _settings(port: int, **kwargs: Any) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1", port=port, sender=SENDER, local_hostname="localhost", **kwargs
    )


@pytest.fixture
def mailer(smtp: tuple[Collector, int]) -> PluginMailer:
    return PluginMailer(_settings(smtp[1]))


async def _send(mailer: PluginMailer, **args: Any) -> dict[str, Any]:
    args.setdefault("to", "alice@example.com")
    args.setdefault("subject", "Hello")
    args.setdefault("body", "Hi Alice")
    return await mailer.send(PLUGIN, args, timeout=10)


async def _error(mailer: PluginMailer, code: str, **args: Any) -> HostCallError:
    with pytest.raises(HostCallError) as info:
        await _send(mailer, **args)
    assert info.value.code == code
    assert info.value.plugin == PLUGIN
    assert info.value.function == "send_email"
    assert str(info.value).startswith("send_email: ")
    assert "Traceback" not in str(info.value)
    return info.value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- success ---------------------------------------------------------------------------------


async def test_plain_text_message(smtp: tuple[Collector, int], mailer: PluginMailer) -> None:
    collector, _ = smtp
    body = "Hi Alice\nGrüße aus Köln\n"
    assert await _send(mailer, subject="Grüße", body=body) == {"ok": True}
    [got] = collector.messages
    assert got.mail_from == SENDER
    assert got.rcpt_tos == ["alice@example.com"]
    msg = got.message
    assert msg["From"] == SENDER
    assert msg["To"] == "alice@example.com"
    assert msg["Subject"] == "Grüße"
    assert msg["X-GoatKit-Plugin"] == PLUGIN
    assert msg["Message-ID"].endswith("@example.test>")
    assert msg["Date"] is not None
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == body
    assert msg["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert got.raw.isascii()
    assert not got.tls
    assert not got.authenticated


async def test_html_message_gets_a_text_alternative(
    smtp: tuple[Collector, int], mailer: PluginMailer
) -> None:
    collector, _ = smtp
    html = "<html><head><style>p{}</style></head><body><p>Hello <b>world</b> &amp; co</p>"
    html += "<script>alert(1)</script><ul><li>one</li><li>two</li></ul></body></html>"
    await _send(mailer, body=html, html=True)
    msg = collector.messages[0].message
    assert msg.get_content_type() == "multipart/alternative"
    text, rich = msg.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content() == "Hello world & co\n\none\ntwo\n"
    assert rich.get_content_type() == "text/html"
    assert rich.get_content() == html + "\n"


async def test_attachments(smtp: tuple[Collector, int], mailer: PluginMailer) -> None:
    collector, _ = smtp
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 4
    await _send(
        mailer,
        body="<p>See attached</p>",
        html=True,
        attachments=[
            {"name": "report.pdf", "content": _b64(pdf), "type": "application/pdf"},
            {"name": "data.csv", "content": _b64(b"a,b\n1,2\n"), "type": "text/csv"},
            {"name": "blob", "content": _b64(b"\x00\x01")},
        ],
    )
    msg = collector.messages[0].message
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content() == "See attached\n"
    found = {
        part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
        for part in msg.iter_attachments()
    }
    assert found == {
        "report.pdf": ("application/pdf", pdf),
        "data.csv": ("text/csv", b"a,b\n1,2\n"),
        "blob": ("application/octet-stream", b"\x00\x01"),
    }


async def test_cc_bcc_and_reply_to(smtp: tuple[Collector, int], mailer: PluginMailer) -> None:
    collector, _ = smtp
    await _send(
        mailer,
        to=["alice@example.com", "bob@example.com"],
        cc=["carol@example.com"],
        bcc="dave@example.com",
        reply_to="support@example.com",
    )
    [got] = collector.messages
    assert got.rcpt_tos == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    assert got.message["To"] == "alice@example.com, bob@example.com"
    assert got.message["Cc"] == "carol@example.com"
    assert got.message["Reply-To"] == "support@example.com"
    assert got.message["Bcc"] is None  # blind copies are envelope-only


async def test_partly_refused_recipients_are_reported(
    smtp: tuple[Collector, int], mailer: PluginMailer
) -> None:
    collector, _ = smtp
    collector.refuse = {"nobody@example.com"}
    result = await _send(mailer, to=["alice@example.com", "nobody@example.com"])
    assert result == {
        "ok": True,
        "refused": {"nobody@example.com": "550 5.1.1 no such user here"},
    }
    assert collector.messages[0].rcpt_tos == ["alice@example.com"]


# -- refused input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, '"subject" contains CR, LF or NUL'),
        ({"subject": "Hi\nX-Evil: 1"}, '"subject" contains CR, LF or NUL'),
        ({"subject": "Hi\x00"}, '"subject" contains CR, LF or NUL'),
        ({"to": "alice@example.com\r\nBcc: victim@example.com"}, '"to" contains CR, LF or NUL'),
        ({"to": ["ok@example.com", "a@example.com\nCc: v@example.com"]}, '"to" contains'),
        ({"cc": ["carol@example.com\r\n"]}, '"cc" contains CR, LF or NUL'),
        ({"bcc": ["x@example.com\r\nSubject: spoof"]}, '"bcc" contains CR, LF or NUL'),
        ({"reply_to": "r@example.com\r\nX: y"}, '"reply_to" contains CR, LF or NUL'),
        (
            {"attachments": [{"name": "a.pdf\r\nX-Evil: 1", "content": "", "type": "text/plain"}]},
            '"attachments[0].name" contains CR, LF or NUL',
        ),
    ],
)
async def test_header_injection_is_refused(
    smtp: tuple[Collector, int], mailer: PluginMailer, args: dict[str, Any], field: str
) -> None:
    error = await _error(mailer, "bad_request", **args)
    assert field in str(error)
    assert "header injection" in str(error)
    assert smtp[0].messages == []


@pytest.mark.parametrize(
    "address",
    [
        "",
        "alice",
        "@example.com",
        "alice@",
        "Alice <alice@example.com>",
        "<alice@example.com>",
        "alice@example.com, mallory@example.com",
        "alice@example.com;mallory@example.com",
        "alice@example.com (comment)",
        "alice@example.com(comment)",
        "alice@[127.0.0.1]",
        "alice@exa_mple.com",
        "jörg@example.com",
        "alice @example.com",
        "a" * 250 + "@example.com",
    ],
)
async def test_invalid_addresses_are_refused(
    smtp: tuple[Collector, int], mailer: PluginMailer, address: str
) -> None:
    error = await _error(mailer, "bad_request", to=[address])
    assert str(error).startswith('send_email: "to"')
    assert smtp[0].messages == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"to": []}, '"to" must name at least one address'),
        ({"to": None}, '"to" must name at least one address'),
        ({"to": 5}, '"to" must be an address or a list'),
        ({"cc": [5]}, '"cc" must be an address or a list'),
        ({"from": "ceo@example.com"}, '"from" is always the platform sender'),
        ({"subject": None}, '"subject" must be a string'),
        ({"subject": "x" * 999}, '"subject" is longer than 998'),
        ({"body": b"bytes"}, '"body" must be a string'),
        ({"html": "yes"}, '"html" must be true or false'),
        ({"attachments": {"name": "a"}}, '"attachments" must be a list'),
        ({"attachments": ["a"]}, '"attachments[0]" must be an object'),
        ({"attachments": [{"content": ""}]}, '"attachments[0].name" must be a non-empty string'),
        (
            {"attachments": [{"name": "../etc/passwd", "content": ""}]},
            "\"attachments[0].name\" '../etc/passwd' must be a plain file name",
        ),
        (
            {"attachments": [{"name": "dir/a.pdf", "content": ""}]},
            "must be a plain file name",
        ),
        ({"attachments": [{"name": "a\\b.pdf", "content": ""}]}, "must be a plain file name"),
        ({"attachments": [{"name": "..", "content": ""}]}, "must be a plain file name"),
        ({"attachments": [{"name": "a\tb", "content": ""}]}, "must be a plain file name"),
        (
            {"attachments": [{"name": "a.pdf", "content": "", "type": "pdf"}]},
            '"attachments[0].type" must be a MIME type',
        ),
        (
            {"attachments": [{"name": "a.pdf", "content": "", "type": "text/plain\r\nX: y"}]},
            '"attachments[0].type" must be a MIME type',
        ),
        (
            {"attachments": [{"name": "a.pdf", "content": "not base64!"}]},
            '"attachments[0].content" is not valid base64',
        ),
    ],
)
async def test_bad_arguments_are_refused(
    smtp: tuple[Collector, int], mailer: PluginMailer, args: dict[str, Any], message: str
) -> None:
    error = await _error(mailer, "bad_request", **args)
    assert message in str(error)
    assert smtp[0].messages == []


async def test_too_many_recipients(smtp: tuple[Collector, int]) -> None:
    mailer = PluginMailer(_settings(smtp[1]), max_recipients=3)
    error = await _error(
        mailer,
        "bad_request",
        to=["a@example.com", "b@example.com"],
        cc=["c@example.com"],
        bcc=["d@example.com"],
    )
    assert "4 recipients (to, cc and bcc) are more than the limit of 3" in str(error)
    # The same address twice is one recipient.
    await _send(
        mailer, to=["a@example.com", "b@example.com"], cc=["a@example.com", "c@example.com"]
    )
    assert smtp[0].messages[0].rcpt_tos == ["a@example.com", "b@example.com", "c@example.com"]


@pytest.mark.parametrize("size", [2000, 900])
async def test_message_size_cap(smtp: tuple[Collector, int], size: int) -> None:
    # 2000 raw bytes are over the cap before encoding; 900 only once base64 and headers count.
    mailer = PluginMailer(_settings(smtp[1]), max_message_bytes=1000)
    error = await _error(
        mailer, "too_large", attachments=[{"name": "big.bin", "content": _b64(b"x" * size)}]
    )
    assert "larger than 1000 bytes" in str(error)
    assert smtp[0].messages == []


async def test_rate_limit_is_a_sliding_minute_per_plugin(smtp: tuple[Collector, int]) -> None:
    now = [1000.0]
    mailer = PluginMailer(_settings(smtp[1]), rate_per_minute=2, clock=lambda: now[0])
    await _send(mailer)
    now[0] += 30
    await _send(mailer)
    error = await _error(mailer, "rate_limited")
    assert "more than 2 messages in a minute; try again in 30s" in str(error)
    # Another plugin has its own window.
    assert await mailer.send(
        "other", {"to": "a@example.com", "subject": "s", "body": "b"}, timeout=5
    )
    now[0] += 30.5  # the first message left the window
    await _send(mailer)
    assert len(smtp[0].messages) == 4


# -- SMTP failures ---------------------------------------------------------------------------


async def test_server_down_is_an_smtp_error() -> None:
    mailer = PluginMailer(_settings(_free_port()))
    error = await _error(mailer, "smtp_error")
    assert "could not be reached" in str(error)
    assert "127.0.0.1" not in str(error)  # the platform's mail setup is not the plugin's business


async def test_every_recipient_refused_is_an_smtp_error_with_the_reply(
    smtp: tuple[Collector, int], mailer: PluginMailer
) -> None:
    smtp[0].refuse = {"nobody@example.com"}
    error = await _error(mailer, "smtp_error", to="nobody@example.com")
    assert "nobody@example.com: 550 5.1.1 no such user here" in str(error)


async def test_slow_server_times_out(smtp: tuple[Collector, int], mailer: PluginMailer) -> None:
    smtp[0].stall = True
    with pytest.raises(HostCallError) as info:
        await mailer.send(PLUGIN, {"to": "a@example.com", "subject": "s", "body": "b"}, timeout=0.3)
    assert info.value.code == "timeout"
    assert "within 0.3s" in str(info.value)


def _authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"s3cret",
    )
    # handled=False: aiosmtpd then sends the 535 reply itself.
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def auth_smtp() -> Iterator[tuple[Collector, int]]:
    handler = Collector()
    port = _free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
        authenticator=_authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


async def test_smtp_auth(auth_smtp: tuple[Collector, int]) -> None:
    collector, port = auth_smtp
    good = PluginMailer(_settings(port, username="mailer", password="s3cret"))
    assert await _send(good) == {"ok": True}
    assert collector.messages[0].authenticated
    bad = PluginMailer(_settings(port, username="mailer", password="wrong"))
    error = await _error(bad, "smtp_error")
    assert "the server replied 535" in str(error)
    assert len(collector.messages) == 1


# -- STARTTLS --------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Iterator[tuple[Collector, int]]:
    handler = Collector()
    port = _free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
        tls_context=_self_signed(tmp_path),
        require_starttls=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("make", "tls"),
    [
        (lambda port: _settings(port), False),  # offered, but not used on loopback by default
        (lambda port: _settings(port, start_tls=True, validate_certs=False), True),
    ],
)
async def test_starttls_is_off_by_default_on_loopback(
    tls_smtp: tuple[Collector, int], make: Callable[[int], SmtpSettings], tls: bool
) -> None:
    collector, port = tls_smtp
    assert await _send(PluginMailer(make(port))) == {"ok": True}
    assert collector.messages[0].tls is tls


async def test_required_starttls_with_an_unverifiable_certificate_fails(
    tls_smtp: tuple[Collector, int],
) -> None:
    mailer = PluginMailer(_settings(tls_smtp[1], start_tls=True))
    error = await _error(mailer, "smtp_error")
    assert "certificate" in str(error).lower()
    assert tls_smtp[0].messages == []


def test_html_to_text() -> None:
    assert html_to_text("<p>a&nbsp;b</p><div>c  <i>d</i></div>") == "a b\n\nc d\n"
    assert html_to_text("<div>x</div><div>y<br>z<br><br>w</div>") == "x\ny\nz\n\nw\n"
    assert html_to_text("<b>two</b> <i>words</i>\n<p>\n  para\n</p>") == "two words\n\npara\n"
    assert html_to_text("plain") == "plain\n"
