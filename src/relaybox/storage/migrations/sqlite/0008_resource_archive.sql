-- Archived notification templates stay readable (with their version history) but are no
-- longer found by sends or listings; their alias may be taken by a new object.
ALTER TABLE resources ADD COLUMN archived_at REAL;
DROP INDEX resources_alias;
CREATE UNIQUE INDEX resources_alias ON resources (workspace_id, kind, alias)
    WHERE alias IS NOT NULL AND archived_at IS NULL;
