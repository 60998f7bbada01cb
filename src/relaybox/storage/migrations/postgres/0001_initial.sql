-- Relaybox schema, version 1. Every table is keyed by workspace.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    created_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE api_keys (
    key_hash      TEXT PRIMARY KEY,          -- sha256 of the key, never the key itself
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    prefix        TEXT NOT NULL,             -- first characters, to recognise a key in listings
    created_at    DOUBLE PRECISION NOT NULL,
    revoked_at    DOUBLE PRECISION
);

-- Versioned configuration: saved automations, notification templates, providers.
CREATE TABLE resources (
    workspace_id       TEXT NOT NULL,
    kind               TEXT NOT NULL,
    id                 TEXT NOT NULL,
    alias              TEXT,
    name               TEXT,
    draft              TEXT,
    published          TEXT,
    published_version  INTEGER NOT NULL DEFAULT 0,
    published_at       DOUBLE PRECISION,
    created_at         DOUBLE PRECISION NOT NULL,
    updated_at         DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, kind, id)
);
CREATE UNIQUE INDEX resources_alias ON resources (workspace_id, kind, alias) WHERE alias IS NOT NULL;

CREATE TABLE resource_versions (
    workspace_id  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    id            TEXT NOT NULL,
    version       INTEGER NOT NULL,
    body          TEXT NOT NULL,
    published_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, kind, id, version)
);

CREATE TABLE profiles (
    workspace_id  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    profile       TEXT NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);

CREATE TABLE runs (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL,
    template_id        TEXT,
    source             TEXT NOT NULL,
    status             TEXT NOT NULL,
    cancelation_token  TEXT,
    definition         TEXT NOT NULL,
    context            TEXT NOT NULL,
    steps              TEXT NOT NULL,
    cursor             INTEGER NOT NULL DEFAULT 0,
    error              TEXT,
    -- Non-null exactly while the run is active: a wake time, a retry time or a lease expiry.
    due_at             DOUBLE PRECISION,
    lease_owner        TEXT,
    lease_token        INTEGER NOT NULL DEFAULT 0,
    created_at         DOUBLE PRECISION NOT NULL,
    updated_at         DOUBLE PRECISION NOT NULL
);
CREATE INDEX runs_due ON runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX runs_active_token ON runs (workspace_id, cancelation_token)
    WHERE cancelation_token IS NOT NULL AND due_at IS NOT NULL;
CREATE INDEX runs_newest ON runs (workspace_id, created_at DESC, id DESC);

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    status           TEXT NOT NULL,
    recipient        TEXT,
    notification     TEXT,
    event            TEXT,
    run_id           TEXT,
    channel          TEXT,
    provider         TEXT,
    idempotency_key  TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    attempt_state    TEXT,
    enqueued_at      DOUBLE PRECISION NOT NULL,
    sent_at          DOUBLE PRECISION,
    delivered_at     DOUBLE PRECISION,
    error            TEXT,
    reason           TEXT,
    content          TEXT NOT NULL DEFAULT '{}',
    providers        TEXT NOT NULL DEFAULT '[]',
    updated_at       DOUBLE PRECISION NOT NULL
);
CREATE INDEX messages_newest ON messages (workspace_id, enqueued_at DESC, id DESC);

CREATE TABLE message_events (
    message_id  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    ts          DOUBLE PRECISION NOT NULL,
    type        TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (message_id, seq)
);

CREATE TABLE idempotency_keys (
    workspace_id  TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status_code   INTEGER NOT NULL,
    body          BYTEA NOT NULL,
    expires_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);
