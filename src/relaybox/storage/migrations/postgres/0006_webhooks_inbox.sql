-- Outbound delivery-event webhooks and the in-app inbox. Every table is keyed by workspace.

-- Endpoints a workspace registered; ``events`` is a JSON list of statuses (NULL: all).
CREATE TABLE webhook_endpoints (
    workspace_id  TEXT NOT NULL,
    id            TEXT NOT NULL,
    url           TEXT NOT NULL,
    events        TEXT,
    description   TEXT,
    secret        TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

-- The transactional outbox: one row per (status change, endpoint), written in the commit
-- that changed the message. ``due_at`` is non-null exactly while the delivery is pending:
-- its next attempt time or the expiry of the lease of the dispatcher attempting it.
CREATE TABLE webhook_deliveries (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    workspace_id  TEXT NOT NULL,
    endpoint_id   TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    event_ts      DOUBLE PRECISION NOT NULL,
    message       TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    due_at        DOUBLE PRECISION,
    lease_owner   TEXT,
    lease_token   INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    last_status   INTEGER,
    created_at    DOUBLE PRECISION NOT NULL,
    delivered_at  DOUBLE PRECISION
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at, seq) WHERE due_at IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (workspace_id, endpoint_id, seq);

-- In-app messages stored by the inbox provider, one per message id.
CREATE TABLE inbox_messages (
    workspace_id  TEXT NOT NULL,
    id            TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    title         TEXT,
    body          TEXT,
    actions       TEXT NOT NULL DEFAULT '[]',
    data          TEXT NOT NULL DEFAULT '{}',
    created_at    DOUBLE PRECISION NOT NULL,
    read_at       DOUBLE PRECISION,
    archived_at   DOUBLE PRECISION,
    updated_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX inbox_messages_user ON inbox_messages (workspace_id, user_id, created_at DESC, id DESC);
