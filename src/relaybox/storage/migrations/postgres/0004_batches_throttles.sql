-- Throttle and add-to-batch steps. Every table is keyed by workspace.

-- Fixed-window throttle counters: one row per (key, window), bumped by one atomic upsert.
CREATE TABLE throttle_counters (
    workspace_id  TEXT NOT NULL,
    throttle_key  TEXT NOT NULL,
    window_start  DOUBLE PRECISION NOT NULL,
    count         INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, throttle_key, window_start)
);

-- Which position each throttle step got, so a step re-run after a crash is not counted twice.
CREATE TABLE throttle_hits (
    workspace_id  TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    step_index    INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, run_id, step_index)
);

-- One row per batch; status open -> full (max_items reached) -> released, or abandoned
-- (its carrier run finished without releasing it).
CREATE TABLE batches (
    workspace_id    TEXT NOT NULL,
    id              TEXT NOT NULL,
    batch_key       TEXT NOT NULL,
    carrier_run_id  TEXT NOT NULL,
    status          TEXT NOT NULL,
    count           INTEGER NOT NULL,
    opened_at       DOUBLE PRECISION NOT NULL,
    last_item_at    DOUBLE PRECISION NOT NULL,
    due_at          DOUBLE PRECISION NOT NULL,
    released_at     DOUBLE PRECISION,
    PRIMARY KEY (workspace_id, id)
);

-- The open batch of each key: the primary key is what lets only one of several racing
-- runs open a batch; the row is deleted in the transaction that closes the batch.
CREATE TABLE open_batches (
    workspace_id  TEXT NOT NULL,
    batch_key     TEXT NOT NULL,
    batch_id      TEXT NOT NULL,
    PRIMARY KEY (workspace_id, batch_key)
);

-- Every item a run added; keyed by (run, step) so an item is counted once, in one batch.
CREATE TABLE batch_items (
    workspace_id  TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    step_index    INTEGER NOT NULL,
    batch_id      TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    category      TEXT,
    data          TEXT NOT NULL,
    added_at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workspace_id, run_id, step_index)
);
CREATE INDEX batch_items_batch ON batch_items (workspace_id, batch_id, seq);
