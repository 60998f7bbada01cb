"""User tokens: Courier's ``POST /auth/issue-token`` JWTs, for calling user-facing routes (the
inbox) from a browser or app without the workspace key.

A token is an HS256 JWT signed with the workspace's own key (made on first use and kept in the
database's server secrets, so every process and every restart accepts it) and carries the
workspace, the space separated ``scope`` (``user_id:<id> inbox:read:messages
inbox:write:events`` …) and ``exp``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from relaybox.clock import Clock
from relaybox.domain.delays import parse_duration
from relaybox.errors import AuthenticationError, PermissionDenied, ValidationError
from relaybox.storage.base import Store

_ALGORITHM = "HS256"
#: ``server_secrets`` row name (then ``:<workspace>``) of a workspace's token signing key.
KEY_NAME = "user-token-key"
#: Longest lifetime a token may be issued for.
MAX_LIFETIME = 366 * 86400.0


@dataclass(frozen=True)
class UserToken:
    workspace_id: str
    scopes: frozenset[str]
    expires_at: float

    def require(self, user_id: str, scope: str) -> None:
        """Raise PermissionDenied unless the token is for ``user_id`` and grants ``scope``."""
        if f"user_id:{user_id}" not in self.scopes:
            raise PermissionDenied(f"This token is not for user {user_id}")
        if scope not in self.scopes:
            raise PermissionDenied(f"This token lacks the {scope} scope")


class TokenService:
    def __init__(self, *, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._keys: dict[str, bytes] = {}

    async def issue(self, workspace_id: str, body: dict[str, Any]) -> dict[str, str]:
        scope = body.get("scope")
        if not isinstance(scope, str) or not scope.split():
            raise ValidationError("scope: a space-separated list of scopes is required")
        expires_in = body.get("expires_in")
        if not isinstance(expires_in, str):
            raise ValidationError('expires_in: a duration such as "2 days" is required')
        try:
            lifetime = parse_duration(expires_in)
        except ValidationError as exc:
            raise ValidationError(f"expires_in: {exc.message}") from None
        if not 0 < lifetime <= MAX_LIFETIME:
            raise ValidationError("expires_in: must be more than 0 and at most a year")
        now = self._clock.now()
        claims = {
            "iss": "relaybox",
            "ws": workspace_id,
            "scope": " ".join(scope.split()),
            "iat": int(now),
            "exp": int(now + lifetime),
        }
        key = await self._key(workspace_id, create=True)
        assert key is not None
        return {"token": jwt.encode(claims, key, algorithm=_ALGORITHM)}

    async def verify(self, token: str) -> UserToken:
        """The token's claims; AuthenticationError if malformed, forged or expired."""
        invalid = AuthenticationError("Unauthorized: not a valid token")
        try:
            # The workspace names the key to check the signature with, so it is read first.
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise invalid from None
        workspace = unverified.get("ws")
        if not isinstance(workspace, str):
            raise invalid
        key = await self._key(workspace, create=False)
        if key is None:
            raise invalid
        try:
            # Expiry is checked below against the injected clock, not the wall clock.
            claims = jwt.decode(token, key, algorithms=[_ALGORITHM], options={"verify_exp": False})
        except jwt.InvalidTokenError:
            raise invalid from None
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires <= self._clock.now():
            raise AuthenticationError("Unauthorized: the token has expired")
        return UserToken(workspace, frozenset(str(claims.get("scope", "")).split()), expires)

    async def _key(self, workspace_id: str, *, create: bool) -> bytes | None:
        key = self._keys.get(workspace_id)
        if key is None:
            candidate = secrets.token_urlsafe(32) if create else None
            stored = await self._store.server_secret(
                f"{KEY_NAME}:{workspace_id}", candidate, self._clock.now()
            )
            if stored is None:
                return None
            if len(self._keys) > 4096:
                self._keys.clear()
            key = self._keys[workspace_id] = stored.encode()
        return key


def looks_like_token(credential: str) -> bool:
    """API keys have no dots; JWTs have exactly two."""
    return credential.count(".") == 2
