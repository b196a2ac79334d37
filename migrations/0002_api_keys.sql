-- API keys: only a SHA-256 of each key is kept; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    id         UUID PRIMARY KEY,
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    -- The key's first characters, so an operator can tell keys apart without the secret.
    prefix     TEXT NOT NULL,
    key_hash   BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);
