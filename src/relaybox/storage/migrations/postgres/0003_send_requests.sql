-- POST /send: messages carry Courier's metadata so GET /messages can filter on it.
-- tags are stored as ",a,b," so a tag filter is a portable LIKE '%,tag,%'.
ALTER TABLE messages ADD COLUMN tags TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN trace_id TEXT;
CREATE INDEX messages_trace ON messages (workspace_id, trace_id);

-- Test-environment keys ("test"): their sends are routed and rendered but end SIMULATED
-- without any provider call.
ALTER TABLE api_keys ADD COLUMN mode TEXT NOT NULL DEFAULT 'live';
