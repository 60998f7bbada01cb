-- Lists, list subscriptions and per-topic user preferences. Every table is keyed by workspace.

CREATE TABLE lists (
    workspace_id  TEXT NOT NULL,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    preferences   TEXT,                     -- RecipientPreferences JSON, or NULL
    created_at    DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL,
    -- Set while soft-deleted: the list and its subscribers stay until restored or recreated.
    deleted_at    DOUBLE PRECISION,
    PRIMARY KEY (workspace_id, id)
);

CREATE TABLE list_subscriptions (
    workspace_id  TEXT NOT NULL,
    list_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    preferences   TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, list_id, user_id)
);
-- A user's lists (GET /profiles/{id}/lists, DELETE /profiles/{id}/lists).
CREATE INDEX list_subscriptions_user ON list_subscriptions (workspace_id, user_id, list_id);

CREATE TABLE preferences (
    workspace_id        TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    topic_id            TEXT NOT NULL,
    status              TEXT NOT NULL,      -- OPTED_IN | OPTED_OUT | REQUIRED
    has_custom_routing  INTEGER NOT NULL DEFAULT 0,
    custom_routing      TEXT NOT NULL DEFAULT '[]',
    updated_at          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, user_id, topic_id)
);
