"""Composition root: builds the store, providers, engine, services and app from Settings.

The only module that imports concrete storage and provider backends.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI

from relaybox.api.app import create_app
from relaybox.clock import Clock, SystemClock
from relaybox.engine.engine import Engine
from relaybox.engine.expressions import Sandbox
from relaybox.engine.messaging import Messenger
from relaybox.engine.providers import ProviderPool
from relaybox.engine.steps.add_to_batch import AddToBatchStep
from relaybox.engine.steps.fetch_data import FetchDataStep
from relaybox.engine.steps.invoke import InvokeStep
from relaybox.engine.steps.people import GetProfileStep, SubscribeStep, UpdateProfileStep
from relaybox.engine.steps.send import SendStep
from relaybox.engine.steps.send_list import SendListStep
from relaybox.engine.steps.throttle import ThrottleStep
from relaybox.errors import ValidationError
from relaybox.providers import registry, webhook
from relaybox.providers.outbound import OutboundGuard
from relaybox.providers.secrets import SecretBox, server_keys
from relaybox.scheduler.timers import TimerLoop
from relaybox.services.audiences import AudienceService
from relaybox.services.automations import AutomationService
from relaybox.services.brands import BrandService
from relaybox.services.container import Services
from relaybox.services.event_dispatch import EventDispatcher
from relaybox.services.idempotency import IdempotencyService
from relaybox.services.inbox import InboxService
from relaybox.services.keys import DEFAULT_WORKSPACE, KeyService
from relaybox.services.lists import ListService
from relaybox.services.messages import MessageService
from relaybox.services.notifications import NotificationService
from relaybox.services.preferences import PreferenceService
from relaybox.services.profiles import ProfileService
from relaybox.services.providers import ProviderService
from relaybox.services.sending import SendService
from relaybox.services.tokens import TokenService
from relaybox.services.webhooks import WebhookService
from relaybox.settings import Settings
from relaybox.storage.base import Store
from relaybox.storage.sqlite import SqliteStore, path_from_url
from relaybox.templates.render import validate_content, validate_template
from relaybox.ui.app import create_console

log = logging.getLogger("relaybox")


def create_store(url: str) -> Store:
    if url.startswith("sqlite:"):
        return SqliteStore(path_from_url(url))
    if url.startswith(("postgresql:", "postgres:")):
        from relaybox.storage.postgres import PostgresStore

        return PostgresStore(url)
    raise ValidationError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.db or "
        "postgresql://user@host:5432/dbname"
    )


@dataclass
class Runtime:
    settings: Settings
    store: Store
    services: Services
    engine: Engine | None
    timers: TimerLoop | None
    pool: ProviderPool
    http: httpx.AsyncClient
    app: FastAPI
    #: Encrypts provider secrets; its keys are installed once the store is open.
    secrets: SecretBox = field(default_factory=SecretBox)
    #: Called once started, with the key created on this start (if none existed), so the
    #: CLI can print it exactly once.
    on_started: Callable[[str | None], None] | None = None
    #: Posts queued delivery events to webhook endpoints (with the engine).
    dispatcher: EventDispatcher | None = None

    async def start(self) -> None:
        await self.store.open(migrate=self.settings.migrate)
        now = self.services.clock.now()
        self.secrets.install(
            await server_keys(
                self.settings.secret_key,
                lambda name, candidate: self.store.server_secret(name, candidate, now),
            )
        )
        if self.settings.api_key:
            await self.services.keys.register(self.settings.api_key, DEFAULT_WORKSPACE)
        created = None
        if not self.settings.api_key and await self.services.keys.count() == 0:
            created = await self.services.keys.create(DEFAULT_WORKSPACE)
        if self.engine is not None:
            if self.store.exclusive:
                # One process owns the database, so runs claimed by an earlier (crashed)
                # process can be resumed at once instead of after their lease expires.
                await self.store.release_leases(self.services.clock.now())
            self.engine.start()
        if self.timers is not None:
            self.timers.start()
        if self.dispatcher is not None:
            if self.store.exclusive:
                await self.store.release_webhook_leases(self.services.clock.now())
            self.dispatcher.start()
        if self.on_started is not None:
            self.on_started(created)

    async def stop(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.timers is not None:
            await self.timers.stop()
        if self.engine is not None:
            await self.engine.stop()
        await self.pool.aclose()
        await self.http.aclose()
        await self.store.close()


def build(settings: Settings, *, clock: Clock | None = None, run_engine: bool = True) -> Runtime:
    clock = clock or SystemClock()
    store = create_store(settings.database_url)
    # trust_env=False: an ambient proxy must not carry traffic the outbound guard has vetted.
    # A bounded pool: httpcore scans every pooled connection per request, so a huge pool
    # costs more CPU than the occasional wait for a free connection.
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    http = httpx.AsyncClient(follow_redirects=False, trust_env=False, limits=limits)
    guard = OutboundGuard(allow=settings.outbound_allow)
    box = SecretBox()
    catalog = registry.Catalog(box)
    factory = functools.partial(catalog.build, http_client=http, guard=guard, inbox_store=store)
    pool = ProviderPool(store=store, factory=factory, clock=clock)
    direct = functools.partial(
        catalog.build_direct,
        http_client=http,
        guard=guard,
        slack_api_base=settings.slack_api_base,
        pagerduty_api_base=settings.pagerduty_api_base,
    )
    messenger = Messenger(store=store, providers=pool, clock=clock, direct=direct)
    engine = None
    timers = None
    sandbox = Sandbox()
    if run_engine:
        engine = Engine(
            store=store,
            clock=clock,
            executors={
                "send": SendStep(store=store, messenger=messenger, sandbox=sandbox),
                "send-list": SendListStep(store=store, http=http, guard=guard),
                "throttle": ThrottleStep(store=store),
                "add-to-batch": AddToBatchStep(store=store),
                "update-profile": UpdateProfileStep(store=store),
                "get-profile": GetProfileStep(store=store),
                "subscribe": SubscribeStep(store=store),
                "fetch-data": FetchDataStep(http=http, guard=guard),
                "invoke": InvokeStep(store=store, sandbox=sandbox),
            },
            sandbox=sandbox,
            lease_seconds=settings.lease_seconds,
            concurrency=settings.concurrency,
        )
        # On a shared database other processes' writes arrive as NOTIFY hints; the idle check
        # bounds the delay should a hint be lost (correctness never depends on hints).
        idle = 30.0 if store.exclusive else 2.0
        timers = TimerLoop(engine=engine, clock=clock, idle_check=idle)
    dispatcher = EventDispatcher(
        store=store,
        clock=clock,
        post=webhook.event_poster(http, guard, reveal=box.open),
        lease_seconds=settings.lease_seconds,
        idle_check=30.0 if store.exclusive else 2.0,
    )
    services = Services(
        clock=clock,
        keys=KeyService(store=store, clock=clock),
        idempotency=IdempotencyService(store=store, clock=clock),
        automations=AutomationService(store=store, clock=clock, engine=engine, sandbox=sandbox),
        notifications=NotificationService(
            store=store,
            clock=clock,
            validate_content=validate_content,
            on_change=messenger.forget_templates,
        ),
        providers=ProviderService(store=store, clock=clock, catalog=catalog, pool=pool),
        profiles=ProfileService(store=store, clock=clock),
        lists=ListService(store=store, clock=clock),
        audiences=AudienceService(store=store, clock=clock),
        preferences=PreferenceService(store=store, clock=clock),
        messages=MessageService(store=store, clock=clock),
        sending=SendService(store=store, clock=clock, engine=engine, seal=box.seal),
        brands=BrandService(
            store=store,
            clock=clock,
            validate_template=validate_template,
            on_change=messenger.forget_brands,
        ),
        webhooks=WebhookService(
            store=store, clock=clock, check_url=webhook.check_url, seal=box.seal, reveal=box.open
        ),
        inbox=InboxService(store=store, clock=clock),
        tokens=TokenService(store=store, clock=clock),
    )
    runtime = Runtime(
        settings=settings,
        store=store,
        services=services,
        engine=engine,
        timers=timers,
        pool=pool,
        http=http,
        app=FastAPI(),
        secrets=box,
        dispatcher=None if engine is None else dispatcher,
    )
    runtime.app = create_app(
        services,
        max_body_bytes=settings.max_body_bytes,
        base_path=settings.base_path,
        on_startup=runtime.start,
        on_shutdown=runtime.stop,
    )
    # The web console: the same services behind a session cookie instead of a bearer key.
    console = create_console(
        services,
        secret=settings.secret_key,
        admin_password=settings.admin_password,
        admin_password_hash=settings.admin_password_hash,
    )
    runtime.app.mount("/console", console)
    return runtime
