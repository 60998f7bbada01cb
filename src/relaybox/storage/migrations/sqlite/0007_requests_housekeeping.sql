-- /send recipients, delay windows and housekeeping of throttle and batch rows.

-- The request a message belongs to (POST /send, a send-list step): GET /messages?messageId=
-- with a request id lists every message of the request.
ALTER TABLE messages ADD COLUMN request_id TEXT;
CREATE INDEX messages_request ON messages (workspace_id, request_id);

-- When a throttle window ends, so expired windows can be deleted. NULL on rows written
-- before this migration: their period was not stored, so they are kept.
ALTER TABLE throttle_counters ADD COLUMN window_end REAL;
ALTER TABLE throttle_hits ADD COLUMN window_end REAL;
CREATE INDEX throttle_counters_end ON throttle_counters (window_end);
CREATE INDEX throttle_hits_end ON throttle_hits (window_end);
CREATE INDEX batches_released ON batches (released_at);

-- Periodic maintenance tasks as due-time rows: the worker whose UPDATE moves a task's due
-- time forward runs it, so several workers never run the same round twice.
CREATE TABLE housekeeping (
    task    TEXT PRIMARY KEY,
    due_at  REAL NOT NULL
);
INSERT INTO housekeeping (task, due_at) VALUES ('purge-throttles-batches', 0);
