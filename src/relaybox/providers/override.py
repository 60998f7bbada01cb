"""A send's provider ``override``: Courier's ``message.providers.<provider>.override`` over
``message.channels.<channel>.override``, already merged into ``RenderedMessage.override``.

As in Courier, ``body`` is merged deeply into what the provider sends its API (the webhook's
JSON, Twilio's form fields, Slack's message, FCM's ``message``, the APNs payload) and
``headers`` are added to the HTTP request, for providers whose API takes custom headers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from relaybox.domain.merge import deep_merge
from relaybox.errors import PermanentDeliveryError, ValidationError
from relaybox.providers.base import RenderedMessage


def body(message: RenderedMessage, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with the override's ``body`` merged deeply over it."""
    extra = message.override.get("body")
    if extra is None:
        return dict(payload)
    if not isinstance(extra, Mapping):
        raise PermanentDeliveryError("override.body: Expected object")
    return deep_merge(payload, extra)


def headers(message: RenderedMessage, reserved: Collection[str]) -> dict[str, str]:
    """The override's ``headers``; ones in ``reserved`` (lowercase) belong to the provider."""
    try:
        return check_headers(message.override.get("headers"), "override.headers", reserved)
    except ValidationError as exc:
        raise PermanentDeliveryError(exc.message) from exc


def check_headers(value: Any, where: str, reserved: Collection[str]) -> dict[str, str]:
    """``value`` as request headers, or a ValidationError naming ``where``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(f"{where} must map header names to string values")
    taken = sorted(k for k in value if k.lower() in reserved)
    if taken:
        raise ValidationError(f"{where} may not set {', '.join(taken)}")
    # CR/LF would let a header smuggle extra headers into the request.
    if any("\r" in s or "\n" in s for kv in value.items() for s in kv):
        raise ValidationError(f"{where} may not contain line breaks")
    return dict(value)
