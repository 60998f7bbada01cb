-- Server-wide secrets (not per workspace), e.g. the generated key that encrypts provider
-- settings when RELAYBOX_SECRET_KEY is not set. Written once; the first writer wins.
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);
