"""Provider secrets at rest, on every backend: the stored row never holds a secret in plain
text, rows written before encryption stay readable, and the server key is agreed once."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from relaybox.clock import FrozenClock
from relaybox.engine.providers import PROVIDER_KIND, ProviderPool
from relaybox.errors import PermanentDeliveryError
from relaybox.providers import registry
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.secrets import SEALED_PREFIX, SecretBox, server_keys
from relaybox.providers.twilio import TwilioProvider
from relaybox.services.providers import ProviderService
from relaybox.storage.base import Resource, Store

WS = "ws_secrets"
TOKEN = "twilio-token-THAT-MUST-NOT-LEAK"
SETTINGS = {"account_sid": "AC123", "auth_token": TOKEN, "from_number": "+15005550006"}


def raw_published(store: Store, provider_id: str) -> str:
    """The ``published`` column exactly as the database holds it."""
    dialect: Any = store.dialect  # type: ignore[attr-defined]
    conn = dialect.connect()
    try:
        row = conn.execute(
            dialect.sql("SELECT published FROM resources WHERE workspace_id = ? AND id = ?"),
            (WS, provider_id),
        ).fetchone()
    finally:
        conn.close()
    assert row is not None
    return str(row[0])


async def service_for(
    store: Store, configured_key: str | None = None
) -> tuple[ProviderService, ProviderPool, httpx.AsyncClient]:
    """The /providers service and provider pool as bootstrap wires them."""
    clock = FrozenClock()
    box = SecretBox()
    box.install(
        await server_keys(
            configured_key, lambda name, cand: store.server_secret(name, cand, clock.now())
        )
    )
    catalog = registry.Catalog(box)
    http = httpx.AsyncClient()
    factory = functools.partial(catalog.build, http_client=http, guard=OutboundGuard())
    pool = ProviderPool(store=store, factory=factory, clock=clock)
    service = ProviderService(store=store, clock=clock, catalog=catalog, pool=pool)
    return service, pool, http


async def built(pool: ProviderPool) -> Any:
    (configured,) = await pool.configured(WS)
    return configured.provider


async def test_server_secret_is_stored_once_and_the_first_writer_wins(store: Store) -> None:
    """server_secret inserts only when absent; racing candidates all get one value."""
    assert await store.server_secret("k", None, 1.0) is None
    assert await store.server_secret("k", "first", 1.0) == "first"
    assert await store.server_secret("k", "second", 2.0) == "first"
    assert await store.server_secret("k", None, 3.0) == "first"
    raced = await asyncio.gather(*(store.server_secret("r", f"v{i}", 1.0) for i in range(8)))
    assert len(set(raced)) == 1


async def test_secrets_are_encrypted_in_the_stored_row(store: Store) -> None:
    """The raw row holds a sealed token, the API a mask, the provider the real token."""
    service, pool, http = await service_for(store)
    try:
        created = await service.create(WS, {"provider": "twilio", "settings": SETTINGS})
        raw = raw_published(store, created["id"])
        assert TOKEN not in raw
        assert SEALED_PREFIX in raw
        assert "AC123" in raw  # only secrets are sealed
        assert created["settings"]["auth_token"] == "********"
        assert (await service.retrieve(WS, created["id"]))["settings"]["auth_token"] == "********"
        provider = await built(pool)
        assert isinstance(provider, TwilioProvider)
        assert provider.settings.auth_token == TOKEN
    finally:
        await http.aclose()


async def test_plaintext_rows_from_before_stay_readable_and_are_sealed_on_write(
    store: Store,
) -> None:
    """A row stored in plain text (before encryption) works and is sealed by the next write."""
    resource = Resource(
        workspace_id=WS,
        kind=PROVIDER_KIND,
        id="prv_old",
        alias=None,
        name="Old",
        published={"provider": "twilio", "title": "Old", "alias": None, "settings": SETTINGS},
        published_version=1,
        published_at=1.0,
        created_at=1.0,
        updated_at=1.0,
    )
    await store.put_resource(resource)
    assert TOKEN in raw_published(store, "prv_old")
    service, pool, http = await service_for(store)
    try:
        assert (await built(pool)).settings.auth_token == TOKEN
        assert (await service.retrieve(WS, "prv_old"))["settings"]["auth_token"] == "********"

        await service.patch(WS, "prv_old", {"title": "Renamed"})

        assert TOKEN not in raw_published(store, "prv_old")
        assert (await built(pool)).settings.auth_token == TOKEN
    finally:
        await http.aclose()


async def test_a_masked_secret_sent_back_keeps_the_stored_one(store: Store) -> None:
    """PUT/PATCH with the mask the API showed keeps the secret; a new value replaces it."""
    service, pool, http = await service_for(store)
    try:
        created = await service.create(WS, {"provider": "twilio", "settings": SETTINGS})
        shown = await service.retrieve(WS, created["id"])
        await service.replace(
            WS, created["id"], {"provider": "twilio", "title": "T2", "settings": shown["settings"]}
        )
        assert (await built(pool)).settings.auth_token == TOKEN
        await service.patch(WS, created["id"], {"settings": {"auth_token": "********"}})
        assert (await built(pool)).settings.auth_token == TOKEN
        await service.patch(WS, created["id"], {"settings": {"auth_token": "new-token"}})
        assert (await built(pool)).settings.auth_token == "new-token"
    finally:
        await http.aclose()


async def test_a_configured_key_still_opens_values_sealed_with_the_stored_one(
    store: Store,
) -> None:
    """Setting RELAYBOX_SECRET_KEY later loses nothing; a server with neither key cannot open."""
    service, _pool, http = await service_for(store)
    created = await service.create(WS, {"provider": "twilio", "settings": SETTINGS})
    await http.aclose()

    service, pool, http = await service_for(store, configured_key="operator-key")
    try:
        assert (await built(pool)).settings.auth_token == TOKEN
        await service.patch(WS, created["id"], {"title": "Resealed"})
        assert TOKEN not in raw_published(store, created["id"])
    finally:
        await http.aclose()

    # Sealed with the configured key now: a box with only some other key cannot open it, and
    # the provider reports that on send instead of breaking the workspace's other providers.
    stranger = registry.Catalog(SecretBox([Fernet.generate_key()]))
    resource = await store.get_resource(WS, PROVIDER_KIND, created["id"])
    assert resource is not None
    assert resource.published is not None
    async with httpx.AsyncClient() as client:
        broken = stranger.build(
            "twilio", resource.published["settings"], http_client=client, guard=OutboundGuard()
        )
    assert broken.channel == "sms"
    with pytest.raises(PermanentDeliveryError, match="sealed with another server key"):
        await broken.send(None)  # type: ignore[arg-type]
