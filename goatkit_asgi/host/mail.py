"""``send_email``: mail from plugins through the platform's SMTP server (aiosmtplib).

The platform owns the SMTP settings and the sender: a plugin names recipients, a subject, a body
(plain text, or HTML with a generated text alternative) and attachments, and never the ``From``.
Every address is one bare ``addr-spec`` (``name@example.com``: no display names, comments or
lists) and no header value may carry CR, LF or NUL, so a plugin cannot inject headers or extra
recipients. Each message carries ``X-GoatKit-Plugin: <plugin>`` so operators can trace it, and
each plugin may send at most ``rate_per_minute`` messages in any sliding minute.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import email.utils
import ipaddress
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import aiosmtplib
import anyio

from ..errors import HostCallError

__all__ = ["PluginMailer", "SmtpSettings", "html_to_text"]

FUNCTION = "send_email"
MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_ADDRESS = 254
MAX_ATTACHMENT_NAME = 255
WINDOW = 60.0

_CONTROL = re.compile(r"[\r\n\x00]")
_WHITESPACE = re.compile(r"\s+")
# CRLF line ends and 7-bit transfer encodings: deliverable through any server, 8BITMIME or not.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\]")
_DOMAIN = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_MIME_TYPE = re.compile(r"([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*)/([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*)")


@dataclass(frozen=True)
class SmtpSettings:
    """How the platform reaches its SMTP server.

    ``use_tls`` connects with implicit TLS (port 465 style); ``start_tls`` ``True`` requires
    STARTTLS, ``False`` never upgrades, ``None`` upgrades when the server offers it, except on a
    loopback server (a local MTA rarely has a certificate that verifies). ``sender`` is the
    envelope and ``From`` address of every plugin's mail. ``local_hostname`` is the name sent in
    EHLO (default: the machine's fully qualified name).
    """

    host: str = "localhost"
    port: int = 25
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None
    sender: str = "goatkit@localhost"
    timeout: float = 30.0
    validate_certs: bool = True
    local_hostname: str | None = None


@dataclass(frozen=True)
class _Attachment:
    name: str
    maintype: str
    subtype: str
    content: bytes


class _TextExtractor(HTMLParser):
    # Line breaks owed at a block boundary: boundaries next to each other do not add up.
    _BREAKS = {
        **dict.fromkeys(("div", "li", "tr", "ul", "ol", "table", "section", "article"), 1),
        **dict.fromkeys(("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"), 2),
    }
    _SKIP = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._pending = 0
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag == "br":
            self.parts.append("\n" * self._pending + "\n")
            self._pending = 0
        else:
            self._pending = max(self._pending, self._BREAKS.get(tag, 0))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        else:
            self._pending = max(self._pending, self._BREAKS.get(tag, 0))

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if not data.strip():
            # Whitespace between inline elements still separates words.
            if self.parts and not self._pending:
                self.parts.append(" ")
            return
        if self.parts and self._pending:
            self.parts.append("\n" * self._pending)
        self._pending = 0
        # Line breaks in HTML source are spaces; only block boundaries and <br> end lines.
        self.parts.append(_WHITESPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    """A plain-text rendering of ``html`` for the text/plain alternative: tags stripped,
    entities decoded, block elements on their own lines, scripts and styles dropped."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PluginMailer:
    """The ``send_email`` backend: one per platform, with a rate window per plugin.

    Errors are :class:`HostCallError` with code ``bad_request`` (naming the field),
    ``too_large``, ``rate_limited``, ``timeout`` or ``smtp_error`` (with the server's reply).
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        rate_per_minute: int = 30,
        max_recipients: int = 50,
        max_message_bytes: int = 10 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.rate_per_minute = rate_per_minute
        self.max_recipients = max_recipients
        self.max_message_bytes = max_message_bytes
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        # ``sender`` may carry a display name for the From header; the envelope needs the address.
        self._envelope_sender = email.utils.parseaddr(settings.sender)[1] or settings.sender
        self._msgid_domain = self._envelope_sender.rpartition("@")[2] or "localhost"

    async def send(self, plugin: str, args: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Validate, build and send one message for ``plugin``; ``timeout`` is the time left.

        Returns ``{"ok": true}``, plus ``"refused": {address: reply}`` when the server refused
        some (not all) recipients.
        """
        message, recipients = self._build(plugin, args)
        data = message.as_bytes()
        if len(data) > self.max_message_bytes:
            raise self._too_large(plugin)
        if timeout <= 0:
            raise self._timeout(plugin, timeout)
        self._take_rate_slot(plugin)
        settings = self.settings
        start_tls = False if settings.use_tls else settings.start_tls
        if start_tls is None and _is_loopback(settings.host):
            start_tls = False
        try:
            with anyio.fail_after(timeout):
                refused, _ = await aiosmtplib.send(
                    data,
                    sender=self._envelope_sender,
                    recipients=recipients,
                    hostname=settings.host,
                    port=settings.port,
                    username=settings.username,
                    password=settings.password,
                    use_tls=settings.use_tls,
                    start_tls=start_tls,
                    validate_certs=settings.validate_certs,
                    local_hostname=settings.local_hostname,
                    timeout=min(settings.timeout, timeout),
                )
        except TimeoutError as exc:  # also aiosmtplib.SMTPTimeoutError
            raise self._timeout(plugin, timeout) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            replies = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            raise self._smtp_error(plugin, f"every recipient was refused ({replies})") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise self._smtp_error(plugin, f"the server replied {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPConnectError as exc:
            raise self._smtp_error(
                plugin,
                "the mail server could not be reached; an administrator should check "
                "the platform's SMTP settings",
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise self._smtp_error(plugin, f"sending failed: {exc}") from exc
        result: dict[str, Any] = {"ok": True}
        if refused:
            result["refused"] = {addr: f"{r.code} {r.message}" for addr, r in refused.items()}
        return result

    # -- validation and building ---------------------------------------------------------------

    def _build(self, plugin: str, args: dict[str, Any]) -> tuple[EmailMessage, list[str]]:
        if "from" in args or "sender" in args:
            raise self._bad(plugin, '"from" is always the platform sender and may not be set')
        to = self._addresses(plugin, args, "to", required=True)
        cc = self._addresses(plugin, args, "cc")
        bcc = self._addresses(plugin, args, "bcc")
        reply_to = self._addresses(plugin, args, "reply_to")
        recipients = list(dict.fromkeys([*to, *cc, *bcc]))
        if len(recipients) > self.max_recipients:
            raise self._bad(
                plugin,
                f"{len(recipients)} recipients (to, cc and bcc) are more than the limit of "
                f"{self.max_recipients}; send several messages",
            )

        subject = args.get("subject")
        if not isinstance(subject, str):
            raise self._bad(plugin, '"subject" must be a string')
        if _CONTROL.search(subject):
            raise self._bad(plugin, '"subject" contains CR, LF or NUL (header injection)')
        if len(subject) > MAX_SUBJECT:
            raise self._bad(plugin, f'"subject" is longer than {MAX_SUBJECT} characters')
        body = args.get("body", "")
        if not isinstance(body, str):
            raise self._bad(plugin, '"body" must be a string')
        html = args.get("html", False)
        if not isinstance(html, bool):
            raise self._bad(plugin, '"html" must be true or false')
        attachments = self._attachments(plugin, args.get("attachments"))
        raw_size = len(body.encode()) + sum(len(a.content) for a in attachments)
        if raw_size > self.max_message_bytes:
            raise self._too_large(plugin)

        message = EmailMessage(policy=_POLICY)
        message["From"] = self.settings.sender
        message["To"] = ", ".join(to)
        if cc:
            message["Cc"] = ", ".join(cc)
        if reply_to:
            message["Reply-To"] = ", ".join(reply_to)
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = email.utils.make_msgid(domain=self._msgid_domain)
        message["X-GoatKit-Plugin"] = plugin
        if html:
            message.set_content(html_to_text(body))
            message.add_alternative(body, subtype="html")
        else:
            message.set_content(body)
        for item in attachments:
            message.add_attachment(
                item.content, maintype=item.maintype, subtype=item.subtype, filename=item.name
            )
        return message, recipients

    def _addresses(
        self, plugin: str, args: dict[str, Any], field: str, *, required: bool = False
    ) -> list[str]:
        value = args.get(field)
        items = [value] if isinstance(value, str) else value
        if items is None or items == []:
            if required:
                raise self._bad(plugin, f'"{field}" must name at least one address')
            return []
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise self._bad(plugin, f'"{field}" must be an address or a list of addresses')
        return [self._address(plugin, field, item) for item in items]

    def _address(self, plugin: str, field: str, value: str) -> str:
        if _CONTROL.search(value):
            raise self._bad(plugin, f'"{field}" contains CR, LF or NUL (header injection)')
        hint = "expected one bare address like name@example.com (no display name, no list)"
        if len(value) > MAX_ADDRESS or not value.isascii():
            raise self._bad(plugin, f'"{field}": {value!r} is not a valid address; {hint} in ASCII')
        try:
            address = Address(addr_spec=value)
        except (ValueError, IndexError, HeaderParseError) as exc:
            raise self._bad(plugin, f'"{field}": {value!r} is not a valid address; {hint}') from exc
        # Round-trip equality refuses comments and other forms the parser quietly normalises.
        if (
            address.addr_spec != value
            or not address.username
            or not _DOMAIN.fullmatch(address.domain)
        ):
            raise self._bad(plugin, f'"{field}": {value!r} is not a valid address; {hint}')
        return value

    def _attachments(self, plugin: str, value: Any) -> list[_Attachment]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad(plugin, '"attachments" must be a list of {name, content, type}')
        out: list[_Attachment] = []
        for index, item in enumerate(value):
            where = f'"attachments[{index}]'
            if not isinstance(item, dict):
                raise self._bad(plugin, f'{where}" must be an object with name, content, type')
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise self._bad(plugin, f'{where}.name" must be a non-empty string')
            if _CONTROL.search(name):
                raise self._bad(plugin, f'{where}.name" contains CR, LF or NUL (header injection)')
            if (
                _NAME_FORBIDDEN.search(name)
                or name in (".", "..")
                or len(name) > MAX_ATTACHMENT_NAME
            ):
                raise self._bad(
                    plugin,
                    f'{where}.name" {name!r} must be a plain file name (no path separators or '
                    f"control characters, at most {MAX_ATTACHMENT_NAME} characters)",
                )
            mime = item.get("type", "application/octet-stream")
            match = _MIME_TYPE.fullmatch(mime) if isinstance(mime, str) else None
            if match is None:
                raise self._bad(plugin, f'{where}.type" must be a MIME type like application/pdf')
            content = item.get("content")
            if not isinstance(content, str):
                raise self._bad(plugin, f'{where}.content" must be a base64 string')
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise self._bad(plugin, f'{where}.content" is not valid base64') from exc
            out.append(_Attachment(name, match[1].lower(), match[2].lower(), data))
        return out

    def _take_rate_slot(self, plugin: str) -> None:
        now = self._clock()
        window = self._sent.setdefault(plugin, deque())
        while window and window[0] <= now - WINDOW:
            window.popleft()
        if len(window) >= self.rate_per_minute:
            wait = window[0] + WINDOW - now
            raise HostCallError(
                f"{FUNCTION}: more than {self.rate_per_minute} messages in a minute; "
                f"try again in {wait:.0f}s",
                plugin=plugin,
                function=FUNCTION,
                code="rate_limited",
            )
        window.append(now)

    # -- errors --------------------------------------------------------------------------------

    @staticmethod
    def _error(plugin: str, message: str, code: str) -> HostCallError:
        return HostCallError(f"{FUNCTION}: {message}", plugin=plugin, function=FUNCTION, code=code)

    def _bad(self, plugin: str, message: str) -> HostCallError:
        return self._error(plugin, message, "bad_request")

    def _too_large(self, plugin: str) -> HostCallError:
        return self._error(
            plugin,
            f"the message is larger than {self.max_message_bytes} bytes; "
            "send smaller attachments or a link",
            "too_large",
        )

    def _timeout(self, plugin: str, timeout: float) -> HostCallError:
        return self._error(
            plugin, f"the mail server did not accept the message within {timeout:g}s", "timeout"
        )

    def _smtp_error(self, plugin: str, message: str) -> HostCallError:
        return self._error(plugin, message, "smtp_error")
