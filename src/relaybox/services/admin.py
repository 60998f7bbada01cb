"""Console sign-in with the operator's admin password, checked in constant time, rate-limited.

The password is configured as plain text (``RELAYBOX_ADMIN_PASSWORD``) or as a PBKDF2 hash
(``RELAYBOX_ADMIN_PASSWORD_HASH``, made by ``relaybox hash-password``). Failed attempts are
counted per client in a sliding window; past the limit every attempt from that client is
refused without checking until the window has passed, so guessing costs real time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections import deque

from relaybox.clock import Clock
from relaybox.errors import ValidationError

_HASH = re.compile(r"^pbkdf2_sha256\$(\d+)\$([A-Za-z0-9_\-]+)\$([A-Za-z0-9_\-]+)$")
_ITERATIONS = 600_000
_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")


def hash_password(
    password: str, *, iterations: int = _ITERATIONS, salt: bytes | None = None
) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<digest>`` (base64url), for the hash setting."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, *, plain: str | None, hashed: str | None) -> bool:
    """True if ``password`` is the configured one; always False when none is configured."""
    if hashed:
        match = _HASH.match(hashed)
        if match is None:
            return False
        iterations, salt, digest = int(match[1]), match[2], match[3]
        try:
            expected = _unb64(digest)
            tried = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), iterations)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(tried, expected)
    if plain:
        # Compare digests, not the strings: compare_digest leaks the length of its inputs.
        a = hashlib.sha256(password.encode()).digest()
        return hmac.compare_digest(a, hashlib.sha256(plain.encode()).digest())
    return False


def valid_hash(hashed: str) -> bool:
    return _HASH.match(hashed) is not None


class FailureLimiter:
    """At most ``limit`` failures per client in ``window`` seconds; then refuse until one ages out.

    Memory is bounded: the oldest client is forgotten past ``max_clients``.
    """

    def __init__(
        self, *, clock: Clock, limit: int = 5, window: float = 300.0, max_clients: int = 10_000
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        failures = self._recent(client)
        if len(failures) < self._limit:
            return 0.0
        return max(0.0, failures[0] + self._window - self._clock.now())

    def failed(self, client: str) -> None:
        failures = self._recent(client)
        failures.append(self._clock.now())
        self._failures[client] = failures
        if len(self._failures) > self._max_clients:
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client) or deque()
        horizon = self._clock.now() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


class TooManyAttempts(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed sign-ins; retry in {retry_after:.0f} s")
        self.retry_after = retry_after


class AdminSignIn:
    """Checks the admin password for one client and names the workspace to open."""

    def __init__(
        self,
        *,
        clock: Clock,
        password: str | None = None,
        password_hash: str | None = None,
        limiter: FailureLimiter | None = None,
    ) -> None:
        if password_hash and not valid_hash(password_hash):
            raise ValueError(
                "admin password hash: expected pbkdf2_sha256$<iterations>$<salt>$<digest> "
                "(see `relaybox hash-password`)"
            )
        self._plain = password or None
        self._hashed = password_hash or None
        self._limiter = limiter or FailureLimiter(clock=clock)

    @property
    def enabled(self) -> bool:
        return bool(self._plain or self._hashed)

    def sign_in(self, client: str, password: str, workspace: str) -> bool:
        """True if the password is right; the workspace name is checked first.

        Raises:
            TooManyAttempts: the client failed too often recently (nothing was checked).
            ValidationError: the workspace name is malformed.
        """
        wait = self._limiter.retry_after(client)
        if wait > 0:
            raise TooManyAttempts(wait)
        if not _WORKSPACE.match(workspace):
            raise ValidationError("workspace: use 1-128 letters, digits, '.', '_', ':' or '-'")
        if self.enabled and check_password(password, plain=self._plain, hashed=self._hashed):
            self._limiter.succeeded(client)
            return True
        self._limiter.failed(client)
        return False


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
