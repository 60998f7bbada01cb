"""The storage interface: domain verbs every backend implements, plus the records they move.

Backends (``storage.sqlite``, later ``storage.postgres``) are adapters; the engine, services
and API see only this module. Every record is scoped to a workspace and no verb reads or
writes across workspaces, except the claim/timer verbs that serve the engine as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from relaybox.domain.run import Run


@dataclass(frozen=True)
class Resource:
    """A versioned configuration object: saved automation, notification template, provider.

    ``draft`` is the editable body; ``published`` the immutable body of the latest published
    version (None until the first publish). Kinds without drafts write ``published`` only.
    """

    workspace_id: str
    kind: str
    id: str
    created_at: float
    updated_at: float
    alias: str | None = None
    name: str | None = None
    draft: dict[str, Any] | None = None
    published: dict[str, Any] | None = None
    published_version: int = 0
    published_at: float | None = None
    #: Set when archived: still readable by id, invisible to sends, listings and aliases.
    archived_at: float | None = None


@dataclass(frozen=True)
class ResourceVersion:
    """One immutable published version of a resource (``version`` counts from 1)."""

    version: int
    body: dict[str, Any]
    published_at: float


@dataclass(frozen=True)
class Message:
    """One message produced by a send: its routing, rendered output and delivery state."""

    workspace_id: str
    id: str
    status: str
    enqueued_at: float
    updated_at: float
    recipient: str | None = None
    notification: str | None = None
    event: str | None = None
    run_id: str | None = None
    channel: str | None = None
    provider: str | None = None
    idempotency_key: str | None = None
    #: Provider attempts started so far.
    attempts: int = 0
    #: "in_flight" between recording an attempt and recording its outcome: a message found
    #: in this state after a crash may or may not have reached the provider.
    attempt_state: str | None = None
    sent_at: float | None = None
    delivered_at: float | None = None
    error: str | None = None
    reason: str | None = None
    #: Rendered output per channel: {"email": {"subject", "text", "html"}}.
    content: dict[str, Any] = field(default_factory=dict)
    #: Provider responses, one per attempt outcome.
    providers: list[dict[str, Any]] = field(default_factory=list)
    #: Courier's ``metadata.tags`` and ``metadata.trace_id`` (filters of GET /messages).
    tags: tuple[str, ...] = ()
    trace_id: str | None = None
    #: The /send request (or send-list step) this message is one of; GET /messages?messageId=
    #: with it lists them all.
    request_id: str | None = None


@dataclass(frozen=True)
class MessageEvent:
    message_id: str
    ts: float
    type: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubscriptionList:
    """A named list of subscribers; ``deleted_at`` is set while soft-deleted (restorable)."""

    workspace_id: str
    id: str
    name: str
    created_at: float
    updated_at: float
    preferences: dict[str, Any] | None = None
    deleted_at: float | None = None


@dataclass(frozen=True)
class Subscription:
    """One user's subscription to one list, with its own preferences."""

    workspace_id: str
    list_id: str
    user_id: str
    created_at: float
    preferences: dict[str, Any] | None = None


@dataclass(frozen=True)
class Preference:
    """A user's choice for one subscription topic (OPTED_IN / OPTED_OUT / REQUIRED)."""

    workspace_id: str
    user_id: str
    topic_id: str
    status: str
    updated_at: float
    has_custom_routing: bool = False
    custom_routing: tuple[str, ...] = ()


#: Computes a profile's new value from its current one (None = absent) inside the write's
#: transaction; returning None leaves the row as it is. May raise to abort the write.
ProfileChange = Callable[[dict[str, Any] | None], dict[str, Any] | None]


@dataclass(frozen=True)
class MessageFilter:
    """GET /messages filters; every given filter must match (lists match any of their items)."""

    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    recipient: str | None = None
    notification: str | None = None
    message_id: str | None = None
    trace_id: str | None = None
    enqueued_after: float | None = None


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]
    next_cursor: str | None


@dataclass(frozen=True)
class StoredResponse:
    """The saved first response for an idempotency key."""

    status_code: int
    body: bytes
    fingerprint: str
    expires_at: float


@dataclass(frozen=True)
class IdempotencyWrite:
    key: str
    fingerprint: str
    status_code: int
    body: bytes
    expires_at: float


@dataclass(frozen=True)
class ApiKey:
    """A key as listings show it: never the key, only its hash and first characters."""

    key_hash: str
    prefix: str
    mode: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class RunFilter:
    statuses: tuple[str, ...] = ()
    template_ids: tuple[str, ...] = ()
    start: float | None = None
    end: float | None = None
    #: Exact ``context.recipient``.
    recipient: str | None = None


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    next_cursor: str | None


@dataclass(frozen=True)
class CreatedRun:
    """Result of ``create_run``: the new run, or the response saved by an earlier request."""

    run: Run | None = None
    replay: StoredResponse | None = None


@dataclass(frozen=True)
class BatchItem:
    seq: int
    category: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class BatchJoin:
    """Where ``add_to_batch`` put a run's item (the same answer when the step is re-run)."""

    batch_id: str
    carrier_run_id: str
    #: The item's position in its batch (1 = it opened the batch).
    seq: int
    #: "open", "full" (max_items reached: release at once) or "released".
    status: str
    due_at: float


@dataclass(frozen=True)
class Purge:
    """One ``purge_expired`` call: whether this caller ran the round, and what it deleted."""

    ran: bool
    #: When the purge is due next (now again while expired rows are left over).
    next_due: float
    throttle_windows: int = 0
    batches: int = 0


@dataclass(frozen=True)
class BatchRelease:
    """``release_batch``'s answer: the items once released, else when to look again."""

    released: bool
    due_at: float
    count: int = 0
    items: list[BatchItem] = field(default_factory=list)


@dataclass(frozen=True)
class WebhookEndpoint:
    """A URL a workspace registered for delivery events; ``events`` None means every status."""

    workspace_id: str
    id: str
    url: str
    secret: str
    created_at: float
    events: tuple[str, ...] | None = None
    description: str | None = None


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery event for one endpoint (an outbox row).

    ``message`` is the message as committed with the status change (rendered content left
    out). ``status`` is "pending", "delivered", "failed" or "canceled" (endpoint deleted).
    Claimed deliveries carry their endpoint's ``url`` and ``secret`` as read at claim time.
    """

    seq: int
    id: str
    workspace_id: str
    endpoint_id: str
    message_id: str
    event_type: str
    event_ts: float
    message: Message
    status: str
    attempts: int
    created_at: float
    lease_token: int = 0
    due_at: float | None = None
    last_error: str | None = None
    last_status: int | None = None
    delivered_at: float | None = None
    url: str = ""
    secret: str = ""


@dataclass(frozen=True)
class InboxMessage:
    """An in-app message stored for one user by the inbox provider (id = the message id)."""

    workspace_id: str
    id: str
    user_id: str
    created_at: float
    updated_at: float
    title: str | None = None
    body: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    read_at: float | None = None
    archived_at: float | None = None


@dataclass(frozen=True)
class InboxPage:
    messages: list[InboxMessage]
    next_cursor: str | None


#: Topics of ``Store.watch``: delivery events queued, and a user's inbox changed.
WEBHOOK_TOPIC = "webhooks"
INBOX_TOPIC = "inbox"


class Store(Protocol):
    #: True when one process owns the database (embedded SQLite): leases left behind by a
    #: crashed process may be released at start instead of waiting for them to expire.
    exclusive: bool

    # --- lifecycle -----------------------------------------------------------------------
    async def open(self, *, migrate: bool = True) -> None:
        """Connect, applying pending migrations first unless told not to."""
        ...

    async def close(self) -> None: ...

    def migrate(self) -> list[int]:
        """Apply pending migrations (blocking); returns the versions applied."""
        ...

    def listen(self, on_wake: Callable[[], None]) -> None:
        """Call ``on_wake`` (from any thread) when another process makes a run due.

        Only a hint for waking early: callers must not depend on it for correctness.
        """
        ...

    # --- workspaces and keys ----------------------------------------------------------------
    async def ensure_workspace(self, workspace_id: str, now: float) -> None: ...

    async def add_api_key(
        self, workspace_id: str, key_hash: str, prefix: str, now: float, *, mode: str = "live"
    ) -> None:
        """``mode`` is "live" or "test" (test keys' sends end SIMULATED)."""
        ...

    async def key_mode(self, key_hash: str) -> str | None:
        """The mode of an unrevoked key ("live" or "test"), or None for an unknown key."""
        ...

    async def workspace_for_key(self, key_hash: str) -> str | None: ...

    async def count_api_keys(self) -> int: ...

    async def server_secret(self, name: str, candidate: str | None, now: float) -> str | None:
        """The server-wide secret ``name``; with ``candidate``, stores it first if absent.

        Insert-if-absent in one transaction, so processes starting together agree on one value.
        """
        ...

    async def list_api_keys(self, workspace_id: str) -> list[ApiKey]:
        """The workspace's keys, revoked ones included, oldest first."""
        ...

    async def revoke_api_key(self, workspace_id: str, key_hash: str, now: float) -> bool:
        """Revoke an unrevoked key of the workspace; False if there is no such key."""
        ...

    # --- versioned configuration -----------------------------------------------------------
    async def put_resource(self, resource: Resource) -> Resource:
        """Create or replace (by workspace, kind, id).

        Raises:
            ConflictError: the alias belongs to another object of the same kind.
        """
        ...

    async def get_resource(
        self, workspace_id: str, kind: str, id_or_alias: str, *, include_archived: bool = False
    ) -> Resource | None:
        """An object by id or alias; archived ones only with ``include_archived`` (by id)."""
        ...

    async def list_resources(
        self, workspace_id: str, kind: str, *, after: str | None, limit: int
    ) -> list[Resource]:
        """Ordered by id, archived objects left out; ``after`` is the last id of the previous
        page."""
        ...

    async def delete_resource(self, workspace_id: str, kind: str, id: str) -> bool: ...

    async def archive_resource(
        self, workspace_id: str, kind: str, id: str, now: float
    ) -> Resource | None:
        """Mark an object archived (kept with its versions); None if there is no such object."""
        ...

    async def publish_resource(
        self, workspace_id: str, kind: str, id: str, now: float, *, version: int | None = None
    ) -> Resource | None:
        """Freeze the draft as a new published version numbered after every earlier one, or,
        with ``version``, make that earlier version the published one again (a rollback; the
        draft is left alone). None if there is no such object or version."""
        ...

    async def list_resource_versions(
        self,
        workspace_id: str,
        kind: str,
        id: str,
        *,
        before: int | None = None,
        limit: int = 2**31 - 1,
    ) -> list[ResourceVersion]:
        """Published versions, newest first; ``before`` is the last version of the previous
        page."""
        ...

    async def get_resource_version(
        self, workspace_id: str, kind: str, id: str, version: int
    ) -> ResourceVersion | None: ...

    # --- profiles ----------------------------------------------------------------------------
    async def get_profile(self, workspace_id: str, user_id: str) -> dict[str, Any] | None: ...

    async def put_profile(
        self, workspace_id: str, user_id: str, profile: dict[str, Any], now: float
    ) -> None: ...

    async def update_profile(
        self, workspace_id: str, user_id: str, change: ProfileChange, now: float
    ) -> dict[str, Any] | None:
        """Read-modify-write one profile atomically (no lost updates between writers).

        Returns the profile as stored afterwards (None if absent). Exceptions raised by
        ``change`` propagate and nothing is written.
        """
        ...

    async def delete_profile(self, workspace_id: str, user_id: str) -> bool: ...

    async def list_profiles(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """(user id, profile) ordered by user id, after ``after``; for audience scans."""
        ...

    # --- lists and subscriptions -------------------------------------------------------
    async def put_list(
        self,
        workspace_id: str,
        list_id: str,
        name: str,
        preferences: dict[str, Any] | None,
        now: float,
    ) -> None:
        """Create or replace a list's name and preferences (a soft-deleted list starts anew)."""
        ...

    async def get_list(self, workspace_id: str, list_id: str) -> SubscriptionList | None:
        """The list, unless absent or soft-deleted."""
        ...

    async def list_lists(
        self, workspace_id: str, *, prefix: str, after: str | None, limit: int
    ) -> list[SubscriptionList]:
        """Live lists whose id starts with ``prefix``, ordered by id, after id ``after``."""
        ...

    async def delete_list(self, workspace_id: str, list_id: str, now: float) -> bool:
        """Soft-delete (subscribers are kept for restore); False if no live list."""
        ...

    async def restore_list(self, workspace_id: str, list_id: str, now: float) -> bool:
        """Undo a soft delete, subscribers included; False if there is no such list."""
        ...

    async def subscribe(
        self, subscriptions: Sequence[Subscription], *, update_existing: bool
    ) -> None:
        """Add subscriptions, creating missing lists (named after their id).

        With ``update_existing`` an existing subscription takes the new preferences;
        otherwise it is left untouched.
        """
        ...

    async def replace_subscribers(
        self, workspace_id: str, list_id: str, subscriptions: Sequence[Subscription], now: float
    ) -> None:
        """Make ``subscriptions`` the list's only subscribers (creating the list if needed)."""
        ...

    async def unsubscribe(self, workspace_id: str, list_id: str, user_id: str) -> bool: ...

    async def unsubscribe_all(self, workspace_id: str, user_id: str) -> int: ...

    async def list_subscribers(
        self, workspace_id: str, list_id: str, *, after: str | None, limit: int
    ) -> list[Subscription]:
        """Ordered by user id, after user id ``after``."""
        ...

    async def user_subscriptions(
        self, workspace_id: str, user_id: str, *, after: str | None, limit: int
    ) -> list[tuple[SubscriptionList, Subscription]]:
        """The user's subscriptions to live lists, ordered by list id, after ``after``."""
        ...

    # --- preferences ---------------------------------------------------------------------
    async def put_preference(self, preference: Preference) -> None: ...

    async def get_preference(
        self, workspace_id: str, user_id: str, topic_id: str
    ) -> Preference | None: ...

    async def list_preferences(self, workspace_id: str, user_id: str) -> list[Preference]:
        """Ordered by topic id."""
        ...

    async def delete_preference(self, workspace_id: str, user_id: str, topic_id: str) -> bool: ...

    async def replace_preferences(
        self, workspace_id: str, user_id: str, preferences: Sequence[Preference]
    ) -> list[str]:
        """Make ``preferences`` the user's only topic choices, in one transaction.

        Returns the topic ids whose choice was removed, in topic order.
        """
        ...

    # --- runs -------------------------------------------------------------------------------
    async def create_run(
        self,
        run: Run,
        *,
        lease_owner: str | None,
        merge_profile: bool,
        idempotency: IdempotencyWrite | None = None,
    ) -> CreatedRun:
        """Durably store a new run (committed, fsync'd) before returning.

        With ``merge_profile`` the invoke-time profile is merged into the recipient's stored
        profile and the run's context carries the merged result. With ``lease_owner`` the run
        is created already claimed by that worker (the caller will execute it at once).
        With ``idempotency`` the saved response is written in the same transaction; if the key
        already has an unexpired response, nothing is created and that response is returned.
        """
        ...

    async def get_run(self, workspace_id: str, run_id: str) -> Run | None: ...

    async def list_runs(
        self, workspace_id: str, flt: RunFilter, *, cursor: str | None, limit: int
    ) -> RunPage:
        """Newest first.

        Raises:
            ValidationError: the cursor is not one this store issued.
        """
        ...

    async def claim_due_runs(
        self, owner: str, now: float, *, limit: int, lease_seconds: float
    ) -> list[Run]:
        """Claim active runs whose due time has passed; each claim bumps the fencing token."""
        ...

    async def next_due_at(self) -> float | None:
        """The earliest due time of any active run (for the timer loop's sleep)."""
        ...

    async def commit_run(
        self,
        run: Run,
        *,
        messages: Sequence[Message] = (),
        events: Sequence[MessageEvent] = (),
        cancel_token: str | None = None,
        keep_lease: bool = False,
    ) -> list[str]:
        """Persist the run's new state plus the messages it produced, in one transaction.

        ``keep_lease`` keeps the caller's claim (it goes on working on the run); otherwise the
        run is released and becomes claimable again at ``run.due_at`` (None once finished).

        The write is fenced: it succeeds only while the stored ``lease_token`` still equals
        ``run.lease_token``. With ``cancel_token``, every other active run of the workspace
        carrying that token is canceled in the same transaction; their ids are returned.

        Raises:
            StaleLease: the run was re-claimed or canceled since this worker claimed it.
        """
        ...

    async def cancel_run(self, workspace_id: str, run_id: str, now: float) -> Run | None:
        """Cancel one active run (fencing any worker holding it); returns the run as stored."""
        ...

    async def release_leases(self, now: float, owner: str | None = None) -> int:
        """Make runs claimed by ``owner`` (every owner if None) due again at ``now``."""
        ...

    # --- messages ---------------------------------------------------------------------------
    async def save_message(self, message: Message, events: Sequence[MessageEvent] = ()) -> None: ...

    async def get_message(self, workspace_id: str, message_id: str) -> Message | None: ...

    async def message_events(self, workspace_id: str, message_id: str) -> list[MessageEvent]: ...

    async def list_messages(
        self, workspace_id: str, flt: MessageFilter, *, cursor: str | None, limit: int
    ) -> MessagePage:
        """Newest first (by enqueue time).

        Raises:
            ValidationError: the cursor is not one this store issued.
        """
        ...

    async def create_runs(
        self,
        runs: Sequence[Run],
        *,
        messages: Sequence[Message],
        events: Sequence[MessageEvent],
        lease_owner: str | None,
        idempotency: IdempotencyWrite | None = None,
    ) -> StoredResponse | None:
        """Store several new runs and the messages they will send in one transaction.

        Used by POST /send: the request is acknowledged only once all of it is committed.
        ``lease_owner`` owns only the runs created leased (``lease_token`` > 0); the others
        are left for whichever worker claims them when due. With ``idempotency``, an
        unexpired saved response wins: nothing is created and it is returned; otherwise None.
        """
        ...

    # --- throttles and batches ----------------------------------------------------------------
    async def throttle_hit(
        self,
        workspace_id: str,
        key: str,
        window_start: float,
        run_id: str,
        step_index: int,
        window_end: float | None = None,
    ) -> int:
        """Count the step in the key's window; its 1-based position there.

        One atomic upsert per window row, so concurrent hits get distinct positions on every
        backend. Idempotent per (run, step): a re-run step gets its first position again.
        """
        ...

    async def add_to_batch(
        self,
        workspace_id: str,
        batch_key: str,
        run_id: str,
        step_index: int,
        *,
        data: dict[str, Any],
        category: str | None,
        now: float,
        wait_seconds: float,
        max_wait_seconds: float,
        max_items: int | None,
    ) -> BatchJoin:
        """Add the run's item to the key's open batch, opening one (this run its carrier) if none.

        One transaction: exactly one of several racing runs opens a key's batch. The due time
        is min(last item + wait, opened + max wait). The item that reaches ``max_items``
        marks the batch full, closes it to new items and makes the carrier run due now
        (fencing a worker holding it). An open batch whose carrier run has finished without
        releasing it (canceled, failed) is marked abandoned and the key's next batch opened.
        Idempotent per (run, step).
        """
        ...

    async def release_batch(self, workspace_id: str, batch_id: str, now: float) -> BatchRelease:
        """Release the batch if full or due (idempotent once released) and return its items.

        Items are in arrival order. Not yet due: ``released`` is False with the due time.
        """
        ...

    async def purge_expired(
        self, now: float, *, retention: float, every: float, limit: int
    ) -> Purge:
        """Delete throttle windows that ended, and batches released or abandoned, more than
        ``retention`` seconds before ``now``: at most ``limit`` of each, in one transaction.

        A durable due-time row decides who runs a round: a call before the task is due does
        nothing; the one call that moves the due time forward (by ``every``, or to ``now``
        while rows are left over) runs it, however many workers try at once.
        """
        ...

    # --- idempotency ----------------------------------------------------------------------
    async def get_response(
        self, workspace_id: str, key: str, now: float
    ) -> StoredResponse | None: ...

    async def save_response(
        self, workspace_id: str, write: IdempotencyWrite, now: float
    ) -> None: ...

    # --- change hints -----------------------------------------------------------------------
    def watch(self, topic: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(payload)`` (from any thread) when ``topic`` may have changed.

        ``WEBHOOK_TOPIC``: delivery events were queued (payload empty). ``INBOX_TOPIC``: a
        user's inbox changed (payload ``inbox_key(workspace, user)``). Writes made by this
        process and, on a shared database, by others are signalled. Only a hint: callers
        re-read the store and poll now and then, since a hint may be lost.
        """
        ...

    # --- delivery-event webhooks -------------------------------------------------------------
    async def put_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    async def get_webhook_endpoint(
        self, workspace_id: str, endpoint_id: str
    ) -> WebhookEndpoint | None: ...

    async def list_webhook_endpoints(
        self, workspace_id: str, *, after: str | None, limit: int
    ) -> list[WebhookEndpoint]:
        """Ordered by id, after id ``after``."""
        ...

    async def delete_webhook_endpoint(self, workspace_id: str, endpoint_id: str) -> bool:
        """Delete the endpoint; its pending deliveries end "canceled" in the same transaction."""
        ...

    async def claim_webhook_deliveries(
        self, owner: str, now: float, *, limit: int, lease_seconds: float
    ) -> list[WebhookDelivery]:
        """Lease due deliveries, in queue order, of endpoints no other dispatcher holds.

        The claim leases the endpoints too (until the lease's end, renewed by each later
        claim of the same owner), so one dispatcher at a time delivers an endpoint's events
        and its receiver sees them in order. Each claim bumps the delivery's fencing token and
        pushes its due time to the lease's end, so a dispatcher that dies mid-delivery leaves
        it (and its endpoint) to be claimed again.
        """
        ...

    async def finish_webhook_delivery(
        self,
        delivery: WebhookDelivery,
        *,
        now: float,
        status: str,
        retry_at: float | None = None,
        attempted: bool = True,
        error: str | None = None,
        status_code: int | None = None,
    ) -> bool:
        """Record an outcome: "delivered", "failed", or "pending" again until ``retry_at``.

        ``attempted`` False puts a delivery back without counting an attempt (it waited
        behind a failed one of the same endpoint). Fenced by the claim's token: False when
        the delivery was claimed by someone else since.
        """
        ...

    async def next_webhook_due_at(self, owner: str | None = None) -> float | None:
        """When ``owner`` could next claim a delivery: the earliest due time, or the end of
        the lease of another dispatcher holding that delivery's endpoint, if later."""
        ...

    async def release_webhook_leases(self, now: float, owner: str | None = None) -> int:
        """Make leased deliveries due at ``now`` and free leased endpoints: ``owner``'s (it
        stops), or everyone's (a process owning the database restarted). Returns how many
        deliveries were released."""
        ...

    async def list_webhook_deliveries(
        self, workspace_id: str, endpoint_id: str, *, before: int | None, limit: int
    ) -> list[WebhookDelivery]:
        """The endpoint's deliveries, newest first; ``before`` is the last ``seq`` seen."""
        ...

    async def redeliver_webhook_delivery(
        self, workspace_id: str, endpoint_id: str, delivery_id: str, now: float
    ) -> WebhookDelivery | None:
        """Queue a failed or delivered event again (due now, attempts from zero).

        Returns the delivery as stored afterwards, or None if the endpoint has no such
        delivery.

        Raises:
            ConflictError: the delivery is pending or canceled.
        """
        ...

    async def purge_webhook_deliveries(self, before: float, *, limit: int) -> int:
        """Delete up to ``limit`` finished deliveries (not pending) created before ``before``."""
        ...

    # --- inbox -------------------------------------------------------------------------------
    async def message_workspace(self, message_id: str) -> str | None:
        """The workspace of a stored message (message ids are unique across workspaces)."""
        ...

    async def put_inbox_message(self, message: InboxMessage) -> bool:
        """Store the message unless its id is already stored; True if it was new."""
        ...

    async def list_inbox(
        self,
        workspace_id: str,
        user_id: str,
        *,
        archived: bool | None,
        cursor: str | None,
        limit: int,
    ) -> InboxPage:
        """Newest first; ``archived`` True/False keeps only (un)archived messages.

        Raises:
            ValidationError: the cursor is not one this store issued.
        """
        ...

    async def inbox_unread_count(self, workspace_id: str, user_id: str) -> int:
        """Messages neither read nor archived."""
        ...

    async def update_inbox_message(
        self,
        workspace_id: str,
        user_id: str,
        message_id: str,
        *,
        read: bool | None,
        archived: bool | None,
        now: float,
    ) -> InboxMessage | None:
        """Mark read/unread and/or archived/unarchived (None leaves that state as is).

        Marking an already read (archived) message read (archived) keeps its first time.
        The first read also marks the message OPENED (with a history event, hence a delivery
        event) if it was SENT or DELIVERED. None when the user has no such message.
        """
        ...


def inbox_key(workspace_id: str, user_id: str) -> str:
    """The ``INBOX_TOPIC`` payload naming one user's inbox."""
    return f"{workspace_id}\x1f{user_id}"
