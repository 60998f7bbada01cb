"""Apple Push Notification service provider (provider key ``apn``): HTTP/2 with token auth.

``POST {base_url}/3/device/{device token}`` over HTTP/2 (APNs accepts nothing else) with

``authorization: bearer <JWT>`` — ES256, header ``kid`` = ``key_id``, claims ``iss`` =
    ``team_id`` and ``iat``; reused for 50 minutes (Apple refuses tokens older than an hour
    and throttles ones renewed more often than every 20 minutes);
``apns-topic`` = ``bundle_id``, ``apns-push-type: alert``, ``apns-priority`` (10 default),
``apns-id`` — the message's idempotency key when it is a UUID, else a UUID derived from it
    (uuid5), so every attempt of one message carries the same id;

and the JSON payload ``{"aps": {"alert": {"title", "body"}}, ...data}``.

Settings: ``key_id``, ``team_id``, ``bundle_id`` and ``private_key`` (the .p8 PEM; encrypted
at rest) are required; ``base_url`` (default ``https://api.push.apple.com``, or the sandbox
``https://api.sandbox.push.apple.com``), ``priority`` (5 or 10), ``ca_cert`` (PEM of an extra
trusted CA, for a gateway or test server with its own certificate) and ``timeout``.

The device token is the routed ``push_token``, else the profile's ``apn`` (Courier's field).
410 (``Unregistered``) and 400 (``BadDeviceToken`` and other request errors) are permanent;
429 and 5xx are retried; 403 ``ExpiredProviderToken`` renews the JWT and is retried, other
403s (bad key, team or topic) are permanent.

``supports_idempotency`` is False: APNs uses ``apns-id`` only to name the notification in its
answers and error reports and does not deduplicate on it, so a repeated request can alert
the device twice. A stable ``apns-id`` still lets the attempts of one message be correlated.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from relaybox.errors import PermanentDeliveryError
from relaybox.providers import calls, content, override
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.providers.fields import Fields
from relaybox.providers.outbound import OutboundGuard

DEFAULT_BASE_URL = "https://api.push.apple.com"
#: Renew the provider token after this long (Apple: no older than 60 min, no more than every 20).
TOKEN_LIFETIME = 50 * 60.0
#: Request headers a send's override may not set: the credentials and the idempotency id.
RESERVED_HEADERS = frozenset({"authorization", "apns-id", "content-type", "content-length"})

#: Namespace for apns-ids derived from idempotency keys that are not UUIDs themselves.
APNS_ID_NAMESPACE = uuid.UUID("6f1d6a52-6a0e-4b0e-9a51-2f6f5b0e6a11")
_FIELDS = frozenset(
    {"key_id", "team_id", "bundle_id", "private_key", "base_url", "priority", "ca_cert", "timeout"}
)


@dataclass(frozen=True)
class ApnSettings:
    key_id: str
    team_id: str
    bundle_id: str
    private_key: str
    base_url: str = DEFAULT_BASE_URL
    priority: int = 10
    ca_cert: str | None = None
    timeout: float = 10.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> ApnSettings:
        """Validate stored or submitted settings; raises ValidationError naming the field."""
        f = Fields("apn", raw, _FIELDS)
        key = raw.get("private_key")
        if not isinstance(key, str) or not key.strip():
            raise f.invalid("private_key", "is required (the .p8 key in PEM form)")
        try:
            loaded = load_pem_private_key(key.encode("utf-8"), password=None)
        except (ValueError, TypeError) as exc:
            raise f.invalid("private_key", f"is not a readable PEM private key: {exc}") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise f.invalid("private_key", "must be an elliptic-curve (P-256) key for ES256")
        priority = raw.get("priority", 10)
        if priority not in (5, 10) or isinstance(priority, bool):
            raise f.invalid("priority", "must be 5 or 10")
        ca_cert = raw.get("ca_cert")
        if ca_cert is not None and not isinstance(ca_cert, str):
            raise f.invalid("ca_cert", "must be a PEM string")
        if ca_cert:
            try:
                ssl.create_default_context(cadata=ca_cert)
            except (ssl.SSLError, ValueError) as exc:
                raise f.invalid("ca_cert", f"is not a readable PEM certificate: {exc}") from exc
        return cls(
            key_id=f.required("key_id"),
            team_id=f.required("team_id"),
            bundle_id=f.required("bundle_id"),
            private_key=key,
            base_url=f.url("base_url", DEFAULT_BASE_URL),
            priority=int(priority),
            ca_cert=ca_cert or None,
            timeout=f.timeout(),
        )

    def as_dict(self) -> dict[str, Any]:
        out = {
            "key_id": self.key_id,
            "team_id": self.team_id,
            "bundle_id": self.bundle_id,
            "private_key": self.private_key,
            "base_url": self.base_url,
            "priority": self.priority,
            "ca_cert": self.ca_cert,
            "timeout": self.timeout,
        }
        return {k: v for k, v in out.items() if v is not None}


def apns_id(idempotency_key: str) -> str:
    """The ``apns-id`` for a message: its key if that is a UUID, else one derived from it."""
    try:
        return str(uuid.UUID(idempotency_key))
    except ValueError:
        return str(uuid.uuid5(APNS_ID_NAMESPACE, idempotency_key))


def device_token(message: RenderedMessage) -> str | None:
    for value in (message.to.get("push_token"), message.profile.get("apn")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _http2_client(settings: ApnSettings) -> httpx.AsyncClient:
    context = ssl.create_default_context()
    if settings.ca_cert:
        context.load_verify_locations(cadata=settings.ca_cert)
    # Own client: APNs needs HTTP/2 (the shared client speaks HTTP/1.1) and keeps the
    # connection open between pushes, as Apple asks. trust_env=False: no ambient proxy.
    return httpx.AsyncClient(http2=True, verify=context, trust_env=False, follow_redirects=False)


class ApnProvider:
    """Sends push notifications to Apple devices."""

    key = "apn"
    channel = "push"
    supports_idempotency = False

    def __init__(
        self,
        settings: ApnSettings,
        *,
        guard: OutboundGuard,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._guard = guard
        self._client = client or _http2_client(settings)
        self._clock = clock
        self._token: tuple[str, float] | None = None

    def reachable(self, profile: Mapping[str, Any]) -> bool:
        return bool(profile.get("apn") or profile.get("push_token"))

    def provider_token(self) -> str:
        """The ES256 JWT for ``authorization``, renewed after ``TOKEN_LIFETIME``."""
        now = self._clock()
        if self._token is not None and now - self._token[1] < TOKEN_LIFETIME:
            return self._token[0]
        s = self.settings
        token = jwt.encode(
            {"iss": s.team_id, "iat": int(now)},
            s.private_key,
            algorithm="ES256",
            headers={"kid": s.key_id},
        )
        self._token = (token, now)
        return token

    def payload(self, message: RenderedMessage) -> dict[str, Any]:
        # Custom keys sit beside "aps"; a data key called "aps" must not replace Apple's.
        extra = {k: v for k, v in content.data(message).items() if k != "aps"}
        alert = {"title": content.title(message), "body": content.body(message)}
        # A send's override.body is merged into the payload ("aps": {"sound": ...}, ...).
        return override.body(message, {**extra, "aps": {"alert": alert}})

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        token = device_token(message)
        if token is None:
            raise PermanentDeliveryError("message has no APNs device token (apn)")
        s = self.settings
        ident = apns_id(message.idempotency_key)
        headers = {
            "apns-topic": s.bundle_id,
            "apns-push-type": "alert",
            "apns-priority": str(s.priority),
            # A send's override.headers (apns-priority, apns-collapse-id...) win over those.
            **{k.lower(): v for k, v in override.headers(message, RESERVED_HEADERS).items()},
            "authorization": f"bearer {self.provider_token()}",
            "apns-id": ident,
            "content-type": "application/json",
        }
        body = json.dumps(self.payload(message), ensure_ascii=False, default=str)
        response = await calls.exchange(
            self._guard,
            self._client,
            "POST",
            f"{s.base_url}/3/device/{quote(token, safe='')}",
            what="apn",
            headers=headers,
            content=body.encode("utf-8"),
            time_limit=s.timeout,
        )
        status = response.status_code
        if status == 200:
            returned = response.headers.get("apns-id") or ident
            return DeliveryResult(
                provider_message_id=returned, response={"status": status, "apns_id": returned}
            )
        answer = calls.json_body(response)
        reason = str(answer.get("reason") or "") if isinstance(answer, dict) else ""
        what = f"apn answered {status}: {reason or 'error'}"
        detail = {"reason": reason, "apns_id": ident}
        if status == 403 and reason == "ExpiredProviderToken":
            self._token = None
            raise calls.failure(what, response, retryable=True, detail=detail)
        retryable = calls.retryable_status(status)
        raise calls.failure(what, response, retryable=retryable, detail=detail)

    async def aclose(self) -> None:
        await self._client.aclose()
