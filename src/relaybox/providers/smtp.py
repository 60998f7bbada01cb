"""SMTP email provider (Courier provider key ``smtp``).

Settings (validated by ``SmtpSettings.parse``):

``host`` (required), ``port`` (default 25 for ``security: none``, 587 for ``starttls``, 465 for
``tls``), ``from_address`` (required), ``username`` and ``password`` (both or neither),
``security`` (``none`` | ``starttls`` | ``tls``, default ``none``), ``timeout`` seconds
(default 30) and ``tls_verify`` (default true).

Each send opens one connection, so ``aclose`` has nothing to release. The ``Message-ID`` is
derived from the message's idempotency key: SMTP has no idempotency protocol, but a resend
after a crash carries the same Message-ID, which lets receiving systems and people spot it.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal, cast

import aiosmtplib

from relaybox.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    ValidationError,
)
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.providers.fields import Fields

Security = Literal["none", "starttls", "tls"]

DEFAULT_PORTS: Mapping[str, int] = {"none": 25, "starttls": 587, "tls": 465}
DEFAULT_TIMEOUT = 30.0
_FIELDS = frozenset(
    {"host", "port", "from_address", "username", "password", "security", "timeout", "tls_verify"}
)


def _optional_str(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(f"smtp setting {name!r} must be a string")
    return value


def _required_str(raw: Mapping[str, Any], name: str) -> str:
    value = _optional_str(raw, name)
    if value is None or not value.strip():
        raise ValidationError(f"smtp setting {name!r} is required")
    return value.strip()


def _parse_port(value: Any, security: str) -> int:
    if value is None:
        return DEFAULT_PORTS[security]
    # JSON clients often send ports as strings; bool is an int subclass and never a port.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValidationError("smtp setting 'port' must be an integer between 1 and 65535")
    return value


@dataclass(frozen=True)
class SmtpSettings:
    """Validated SMTP settings with defaults applied."""

    host: str
    port: int
    from_address: str
    username: str | None = None
    password: str | None = None
    security: Security = "none"
    timeout: float = DEFAULT_TIMEOUT
    tls_verify: bool = True

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SmtpSettings:
        """Validate stored or submitted settings; raises ValidationError naming the field."""
        f = Fields("smtp", raw, _FIELDS)
        security = raw.get("security") or "none"
        if security not in DEFAULT_PORTS:
            raise ValidationError("smtp setting 'security' must be one of none, starttls, tls")
        from_address = _required_str(raw, "from_address")
        if "@" not in from_address:
            raise ValidationError("smtp setting 'from_address' must be an email address")
        username = _optional_str(raw, "username")
        password = _optional_str(raw, "password")
        if (username is None) != (password is None):
            raise ValidationError("smtp settings 'username' and 'password' go together")
        tls_verify = raw.get("tls_verify", True)
        if not isinstance(tls_verify, bool):
            raise ValidationError("smtp setting 'tls_verify' must be true or false")
        return cls(
            host=_required_str(raw, "host"),
            port=_parse_port(raw.get("port"), security),
            from_address=from_address,
            username=username,
            password=password,
            security=cast(Security, security),
            timeout=f.timeout(default=DEFAULT_TIMEOUT),
            tls_verify=tls_verify,
        )

    def as_dict(self) -> dict[str, Any]:
        """The normalised settings to store; unset credentials are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def message_id_for(idempotency_key: str) -> str:
    """The deterministic Message-ID header value for an idempotency key."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return f"<{digest[:32]}@relaybox>"


def _reply(exc: aiosmtplib.SMTPResponseException) -> dict[str, object]:
    return {"smtp": f"{exc.code} {exc.message}"}


def _by_code(code: int, what: str, response: dict[str, object]) -> DeliveryError:
    # SMTP's own split: 4xx means "try again later", 5xx means "do not try again".
    error = PermanentDeliveryError if 500 <= code < 600 else RetryableDeliveryError
    return error(f"{what}: {response['smtp']}", response=response)


def _translate(exc: Exception) -> DeliveryError | None:
    """Map an aiosmtplib/network exception to the delivery error the engine acts on."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        # One recipient per message, so "the" code; 451 if the server named none.
        code = max((r.code for r in exc.recipients), default=451)
        return _by_code(code, "recipient refused", {"smtp": detail})
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # Even a 4xx AUTH reply almost always means bad credentials; retrying just locks accounts.
        return PermanentDeliveryError(
            f"SMTP authentication failed: {exc.code} {exc.message}", response=_reply(exc)
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        # aiosmtplib reports a missing STARTTLS or AUTH extension as a bare SMTPException.
        type(exc) is aiosmtplib.SMTPException and "not supported" in exc.message
    ):
        # e.g. security=starttls against a server without STARTTLS: a configuration problem.
        return PermanentDeliveryError(f"SMTP server lacks a required feature: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, "SMTP server refused", _reply(exc))
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        exc.__cause__, ssl.SSLCertVerificationError
    ):
        return PermanentDeliveryError(f"SMTP server certificate rejected: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        # Timeouts, refused connections and dropped sessions; OSError covers TimeoutError.
        return RetryableDeliveryError(f"SMTP connection failed: {exc}")
    return None


@contextmanager
def map_smtp_errors() -> Iterator[None]:
    """Turn SMTP and network failures inside the block into Retryable/PermanentDeliveryError.

    Connection refused, timeouts, dropped connections and 4xx replies are retryable; 5xx replies
    (e.g. 550 recipient refused), authentication failures, missing server features and rejected
    TLS certificates are permanent.
    """
    try:
        yield
    except DeliveryError:
        raise
    except Exception as exc:
        mapped = _translate(exc)
        if mapped is None:
            raise
        raise mapped from exc


class SmtpProvider:
    """Delivers email through one SMTP server."""

    key = "smtp"
    channel = "email"
    supports_idempotency = False

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def build_email(self, message: RenderedMessage) -> EmailMessage:
        """The MIME message for ``message``: text, plus an HTML alternative when present."""
        to = message.to.get("email")
        if not isinstance(to, str) or not to.strip():
            raise PermanentDeliveryError("message has no recipient email address (to.email)")
        # A send's override (``providers.smtp.override.body``) replaces rendered parts.
        body = message.override.get("body")
        body = body if isinstance(body, Mapping) else {}
        subject, text, html = (
            body[k] if isinstance(body.get(k), str) else getattr(message, k)
            for k in ("subject", "text", "html")
        )
        email = EmailMessage()
        try:
            email["From"] = self.settings.from_address
            email["To"] = to.strip()
            email["Subject"] = subject or ""
            email["Date"] = formatdate(usegmt=True)
            email["Message-ID"] = message_id_for(message.idempotency_key)
            email["X-Relaybox-Message-Id"] = message.message_id
            email.set_content(text or "")
            if html:
                email.add_alternative(html, subtype="html")
        except (ValueError, TypeError) as exc:
            # Header injection attempts (CR/LF in subject or address) and malformed addresses.
            raise PermanentDeliveryError(f"cannot build email: {exc}") from exc
        return email

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        """Send ``message`` and return the server's final reply."""
        email = self.build_email(message)
        message_id = message_id_for(message.idempotency_key)
        s = self.settings
        with map_smtp_errors():
            _refused, reply = await aiosmtplib.send(
                email,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                use_tls=s.security == "tls",
                # False, not None: "none" must not silently upgrade (and then fail on a bad cert).
                start_tls=s.security == "starttls",
                timeout=s.timeout,
                validate_certs=s.tls_verify,
            )
        return DeliveryResult(provider_message_id=message_id, response={"smtp": reply})

    async def aclose(self) -> None:
        """Nothing to release: every send uses its own connection."""
