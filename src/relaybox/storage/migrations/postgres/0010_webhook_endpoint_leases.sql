-- One dispatcher at a time delivers an endpoint's events, so a receiver sees them in the
-- order they were queued even with several worker processes: a claim first leases the
-- endpoint (a row lock keeps two claims from taking it at once), then its due deliveries.
ALTER TABLE webhook_endpoints ADD COLUMN lease_owner TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN lease_until DOUBLE PRECISION;
-- Pending deliveries per endpoint: the claim asks whether an endpoint has any due.
CREATE INDEX webhook_deliveries_pending
    ON webhook_deliveries (workspace_id, endpoint_id, due_at) WHERE due_at IS NOT NULL;
