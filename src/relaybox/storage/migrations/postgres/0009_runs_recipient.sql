-- The console filters runs by recipient. A generated column keeps it in step with the
-- context JSON without touching the code that writes runs.
ALTER TABLE runs ADD COLUMN recipient TEXT
    GENERATED ALWAYS AS ((context::jsonb) ->> 'recipient') STORED;
CREATE INDEX runs_recipient ON runs (workspace_id, recipient, created_at DESC, id DESC);
