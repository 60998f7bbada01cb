"""Console sessions: a signed cookie holding the workspace and a CSRF token.

The cookie is ``base64url(json).base64url(hmac-sha256)``. Signing (not encrypting) is
enough: it carries no secret besides the CSRF token, which the page shows anyway. A
standard-library HMAC keeps the console free of another dependency.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

import orjson

COOKIE = "relaybox_console"
#: Sessions end after this long even if the browser keeps the cookie.
MAX_AGE_SECONDS = 12 * 3600


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    """One browser's state. ``workspace`` is None until the user signs in."""

    csrf: str = field(default_factory=new_token)
    workspace: str | None = None
    issued_at: float = 0.0
    #: Set when the cookie must be (re)sent with the response.
    dirty: bool = False

    def check_csrf(self, submitted: str | None) -> bool:
        # compare_digest: the comparison time must not reveal how much of a guess matched.
        return bool(submitted) and hmac.compare_digest(self.csrf, submitted or "")


class Signer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("console secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def dump(self, session: Session) -> str:
        payload = orjson.dumps(
            {"csrf": session.csrf, "ws": session.workspace, "iat": session.issued_at}
        )
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def load(self, cookie: str | None, now: float) -> Session | None:
        """The session in a cookie, or None if it is missing, tampered with or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, mac = cookie.split(".")
        try:
            payload = _unb64(encoded)
            if not hmac.compare_digest(self._mac(payload), _unb64(mac)):
                return None
            data = orjson.loads(payload)
        except (binascii.Error, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        issued = data.get("iat")
        if not isinstance(issued, int | float) or now - issued > MAX_AGE_SECONDS:
            return None
        workspace = data.get("ws")
        return Session(
            csrf=data["csrf"],
            workspace=workspace if isinstance(workspace, str) else None,
            issued_at=float(issued),
        )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
