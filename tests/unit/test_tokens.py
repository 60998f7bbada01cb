"""User tokens (POST /auth/issue-token) over a real SQLite store and an injected clock."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaybox.clock import FrozenClock
from relaybox.errors import AuthenticationError, PermissionDenied, ValidationError
from relaybox.services.tokens import TokenService
from relaybox.storage.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "tokens.db"))
    await opened.open()
    yield opened
    await opened.close()


async def test_a_token_grants_its_scopes_until_it_expires(store: SqliteStore) -> None:
    clock = FrozenClock()
    tokens = TokenService(store=store, clock=clock)
    issued = await tokens.issue(
        "ws_a", {"scope": "user_id:u1 inbox:read:messages", "expires_in": "2 days"}
    )
    token = await tokens.verify(issued["token"])
    assert token.workspace_id == "ws_a"
    token.require("u1", "inbox:read:messages")
    with pytest.raises(PermissionDenied, match="not for user u2"):
        token.require("u2", "inbox:read:messages")
    with pytest.raises(PermissionDenied, match="inbox:write:events"):
        token.require("u1", "inbox:write:events")
    # Another service over the same database (another process, a restart) accepts it.
    assert (
        await TokenService(store=store, clock=clock).verify(issued["token"])
    ).scopes == token.scopes
    clock.advance(2 * 86400)
    with pytest.raises(AuthenticationError, match="expired"):
        await tokens.verify(issued["token"])


async def test_forged_and_foreign_tokens_are_refused(store: SqliteStore) -> None:
    tokens = TokenService(store=store, clock=FrozenClock())
    good = (await tokens.issue("ws_a", {"scope": "user_id:u1", "expires_in": "1h"}))["token"]
    header, claims, signature = good.split(".")
    other = (await tokens.issue("ws_b", {"scope": "user_id:u1", "expires_in": "1h"}))["token"]
    for forged in (
        f"{header}.{other.split('.')[1]}.{signature}",  # ws_b's claims under ws_a's signature
        f"{header}.{claims}.{other.split('.')[2]}",
        f"{header}.{claims}.",
        "a.b.c",
        "not-a-token",
    ):
        with pytest.raises(AuthenticationError):
            await tokens.verify(forged)
    # A token naming a workspace that never issued one is refused, and no key is made for it.
    foreign = base64.urlsafe_b64encode(
        json.dumps({"ws": "ws_never", "scope": "user_id:u1", "exp": 2_000_000_000}).encode()
    )
    with pytest.raises(AuthenticationError):
        await tokens.verify(f"{header}.{foreign.decode().rstrip('=')}.{signature}")
    assert await store.server_secret("user-token-key:ws_never", None, 0.0) is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"expires_in": "1h"}, "scope"),
        ({"scope": "  ", "expires_in": "1h"}, "scope"),
        ({"scope": "user_id:u1"}, "expires_in"),
        ({"scope": "user_id:u1", "expires_in": "soon"}, "expires_in"),
        ({"scope": "user_id:u1", "expires_in": "0s"}, "expires_in"),
        ({"scope": "user_id:u1", "expires_in": "2y"}, "expires_in"),
    ],
)
async def test_bad_requests_name_the_field(
    store: SqliteStore, body: dict[str, str], why: str
) -> None:
    with pytest.raises(ValidationError, match=why):
        await TokenService(store=store, clock=FrozenClock()).issue("ws_a", body)
