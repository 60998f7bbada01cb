"""One exception tree for Relaybox; the HTTP layer maps it to Courier's error envelope.

    RelayboxError
    ├── ValidationError          400 — the request (or a stored definition) is malformed
    ├── AuthenticationError      401 — missing or unknown API key
    ├── NotFound                 404 — the addressed object does not exist in this workspace
    ├── ConflictError            409 — the request conflicts with the object's current state
    ├── PayloadTooLarge          413 — request body over the configured cap
    ├── UnprocessableError       422 — well-formed but semantically refused
    ├── StorageError             500 — the database failed; nothing was acknowledged
    ├── StaleLease               the worker lost its claim on a run; its write was refused
    └── DeliveryError            a provider could not deliver
        ├── RetryableDeliveryError   try again later (timeouts, 408/429/5xx, connection refused)
        └── PermanentDeliveryError   retrying cannot help (bad address, 4xx, auth)

Each exception's docstring is its default message.
"""

from __future__ import annotations


class RelayboxError(Exception):
    """Relaybox failed."""

    status_code = 500

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class ValidationError(RelayboxError):
    """The request is malformed."""

    status_code = 400


class AuthenticationError(RelayboxError):
    """Unauthorized."""

    status_code = 401


class PermissionDenied(RelayboxError):
    """Authenticated, but the credentials do not cover this request (e.g. a token's scope)."""

    status_code = 403


class NotFound(RelayboxError):
    """Not found."""

    status_code = 404


class ConflictError(RelayboxError):
    """The request conflicts with the current state."""

    status_code = 409


class PayloadTooLarge(RelayboxError):
    """Request body too large."""

    status_code = 413


class UnprocessableError(RelayboxError):
    """The request cannot be processed."""

    status_code = 422


class StorageError(RelayboxError):
    """The database failed."""


class StaleLease(RelayboxError):
    """The worker no longer holds the lease on this run."""


class DeliveryError(RelayboxError):
    """The provider could not deliver the message."""

    def __init__(
        self,
        message: str | None = None,
        *,
        response: dict[str, object] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response or {}
        self.retry_after = retry_after


class RetryableDeliveryError(DeliveryError):
    """The provider failed transiently; the delivery may be retried."""


class DeliveryTimeout(RetryableDeliveryError):
    """The provider call outlived the send's provider timeout; the send fails over."""


class PermanentDeliveryError(DeliveryError):
    """The provider refused the message; retrying cannot help."""
