"""Firebase Cloud Messaging provider (provider key ``fcm``), speaking the HTTP v1 API.

Auth is Google's service-account flow: a JWT signed RS256 with the service account's private
key (``iss`` = ``client_email``, ``scope`` = firebase.messaging, ``aud`` = the token URI) is
exchanged at the token URI (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``) for
an OAuth2 access token, cached until a minute before it expires. Each message is then
``POST {base_url}/v1/projects/{project_id}/messages:send`` with
``{"message": {"token", "notification": {"title", "body"}, "data"}}`` (data values are
strings, as FCM requires).

Settings: ``service_account`` (the JSON key file, as an object or a string; encrypted at
rest), ``project_id`` (default: the key file's), ``token_uri`` (default: the key file's
``token_uri``), ``base_url`` (default ``https://fcm.googleapis.com``) and ``timeout``.

Device tokens: the routed ``push_token``, else the profile's ``firebaseToken`` (a string or a
list; each token gets its own request and the send succeeds if any device accepted it).
``UNREGISTERED``, ``INVALID_ARGUMENT``, ``SENDER_ID_MISMATCH`` and ``THIRD_PARTY_AUTH_ERROR``
are permanent; ``UNAVAILABLE``, ``INTERNAL``, ``QUOTA_EXCEEDED``/429 and 5xx are retried; a 401
drops the cached access token and is retried. FCM has no idempotency key, so
``supports_idempotency`` is False.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from relaybox.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from relaybox.providers import calls, content, override
from relaybox.providers.base import DeliveryResult, RenderedMessage
from relaybox.providers.fields import Fields
from relaybox.providers.outbound import OutboundGuard, OutboundResponse

DEFAULT_BASE_URL = "https://fcm.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Renew the access token this long before Google says it expires.
EXPIRY_MARGIN = 60.0
_FIELDS = frozenset({"service_account", "project_id", "token_uri", "base_url", "timeout"})
_PERMANENT = frozenset(
    {"UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR"}
)
_RETRYABLE = frozenset({"UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED"})


@dataclass(frozen=True)
class FcmSettings:
    service_account: Mapping[str, Any]
    project_id: str
    client_email: str
    private_key: str
    private_key_id: str | None
    token_uri: str
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0
    #: Only what was configured, for storing back (defaults stay defaults).
    stored: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> FcmSettings:
        """Validate stored or submitted settings; raises ValidationError naming the field."""
        f = Fields("fcm", raw, _FIELDS)
        account = f.json_object("service_account")
        key = account.get("private_key")
        if not isinstance(key, str) or not key.strip():
            raise f.invalid("service_account", "has no private_key")
        try:
            load_pem_private_key(key.encode("utf-8"), password=None)
        except (ValueError, TypeError) as exc:
            raise f.invalid("service_account", f"has an unreadable private_key: {exc}") from exc
        email = account.get("client_email")
        if not isinstance(email, str) or not email:
            raise f.invalid("service_account", "has no client_email")
        project = f.text("project_id") or account.get("project_id")
        if not isinstance(project, str) or not project:
            raise f.invalid("project_id", "is required (or project_id in the service account)")
        token_uri = f.url("token_uri", account.get("token_uri") or DEFAULT_TOKEN_URI)
        key_id = account.get("private_key_id")
        base_url = f.url("base_url", DEFAULT_BASE_URL)
        timeout = f.timeout()
        # Overrides are stored only when given, so a key file replaced later brings its own.
        stored: dict[str, Any] = {"service_account": account}
        for name in ("project_id", "token_uri"):
            if f.text(name):
                stored[name] = f.text(name)
        stored |= {"base_url": base_url, "timeout": timeout}
        return cls(
            service_account=account,
            project_id=project,
            client_email=email,
            private_key=key,
            private_key_id=key_id if isinstance(key_id, str) and key_id else None,
            token_uri=token_uri,
            base_url=base_url,
            timeout=timeout,
            stored=stored,
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.stored)


def device_tokens(message: RenderedMessage) -> list[str]:
    """The FCM registration tokens to send to, in order, without duplicates."""
    found: list[str] = []
    for value in (
        message.to.get("push_token"),
        message.profile.get("firebaseToken"),
        message.profile.get("push_token"),
    ):
        items = value if isinstance(value, list) else [value]
        found.extend(t for t in items if isinstance(t, str) and t and t not in found)
    return found


def _stringify(data: Mapping[str, Any]) -> dict[str, str]:
    # FCM's data is a map of strings; other values travel as JSON.
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in data.items()
    }


def fcm_error(answer: Any) -> tuple[str, str]:
    """(error code, message) from an FCM error body; the code is the FcmError ``errorCode``
    when given, else the Google API ``status``."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code = str(error.get("status") or "")
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = str(detail["errorCode"])
    return code, str(error.get("message") or "")


class FcmProvider:
    """Sends push notifications through FCM HTTP v1."""

    key = "fcm"
    channel = "push"
    supports_idempotency = False

    def __init__(
        self,
        settings: FcmSettings,
        *,
        client: httpx.AsyncClient,
        guard: OutboundGuard,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._client = client
        self._guard = guard
        self._clock = clock
        self._token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()

    def reachable(self, profile: Mapping[str, Any]) -> bool:
        return bool(profile.get("firebaseToken") or profile.get("push_token"))

    def assertion(self, now: float) -> str:
        """The signed JWT exchanged for an access token."""
        s = self.settings
        claims = {
            "iss": s.client_email,
            "scope": SCOPE,
            "aud": s.token_uri,
            "iat": int(now),
            "exp": int(now) + 3600,
        }
        headers = {"kid": s.private_key_id} if s.private_key_id else None
        return jwt.encode(claims, s.private_key, algorithm="RS256", headers=headers)

    async def access_token(self) -> str:
        """A cached OAuth2 access token, fetched again a minute before it expires."""
        async with self._token_lock:
            now = self._clock()
            if self._token is not None and now < self._token[1]:
                return self._token[0]
            form = urlencode({"grant_type": JWT_BEARER, "assertion": self.assertion(now)})
            response = await self._call(
                self.settings.token_uri,
                "fcm token exchange",
                {"Content-Type": "application/x-www-form-urlencoded"},
                form.encode("ascii"),
            )
            answer = calls.json_body(response)
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if response.status_code != 200 or not isinstance(token, str) or not token:
                error = answer.get("error") if isinstance(answer, dict) else None
                raise calls.failure(
                    f"fcm token exchange failed ({response.status_code}): {error or 'no token'}",
                    response,
                    retryable=calls.retryable_status(response.status_code),
                )
            lifetime = answer.get("expires_in", 3600)
            if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
                lifetime = 3600
            self._token = (token, now + max(0.0, float(lifetime) - EXPIRY_MARGIN))
            return token

    async def _call(
        self, url: str, what: str, headers: Mapping[str, str], body: bytes
    ) -> OutboundResponse:
        return await calls.exchange(
            self._guard,
            self._client,
            "POST",
            url,
            what=what,
            headers=headers,
            content=body,
            time_limit=self.settings.timeout,
        )

    def payload(self, message: RenderedMessage, token: str) -> dict[str, Any]:
        inner: dict[str, Any] = {
            "token": token,
            "notification": {"title": content.title(message), "body": content.body(message)},
        }
        data = content.data(message)
        if data:
            inner["data"] = _stringify(data)
        # A send's override.body is merged into the v1 ``message`` (android, apns, webpush...).
        return {"message": override.body(message, inner)}

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        tokens = device_tokens(message)
        if not tokens:
            raise PermanentDeliveryError("message has no FCM device token (firebaseToken)")
        names: list[str] = []
        errors: list[DeliveryError] = []
        for token in tokens:
            try:
                names.append(await self._send_one(message, token))
            except DeliveryError as exc:
                errors.append(exc)
        if names:
            response: dict[str, Any] = {"name": names[0]}
            if len(tokens) > 1:
                response |= {"names": names, "failed": [e.message for e in errors]}
            return DeliveryResult(provider_message_id=names[0], response=response)
        retryable = [e for e in errors if isinstance(e, RetryableDeliveryError)]
        raise (retryable or errors)[0]

    async def _send_one(self, message: RenderedMessage, token: str) -> str:
        access = await self.access_token()
        project = quote(self.settings.project_id, safe="")
        url = f"{self.settings.base_url}/v1/projects/{project}/messages:send"
        body = json.dumps(self.payload(message, token), ensure_ascii=False).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {access}",
            "Content-Type": "application/json; charset=utf-8",
        }
        response = await self._call(url, "fcm", headers, body)
        answer = calls.json_body(response)
        status = response.status_code
        if 200 <= status < 300:
            name = answer.get("name") if isinstance(answer, dict) else None
            return str(name or "")
        code, text = fcm_error(answer)
        what = f"fcm answered {status}: {code or 'error'} {text}".rstrip()
        detail = {"error_code": code, "error": text}
        if status == 401:
            # An access token revoked or expired early: fetch a new one on the retry.
            self._token = None
            raise calls.failure(what, response, retryable=True, detail=detail)
        if code in _PERMANENT:
            raise calls.failure(what, response, retryable=False, detail=detail)
        retryable = code in _RETRYABLE or calls.retryable_status(status)
        raise calls.failure(what, response, retryable=retryable, detail=detail)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to whoever injected it."""
