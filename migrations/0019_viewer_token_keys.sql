-- Each tenant's viewer-token key: the HMAC key its viewer tokens are signed with. Rotating it
-- (replacing the key) revokes every viewer token minted before. Created on the first mint.
CREATE TABLE viewer_token_keys (
    tenant     TEXT PRIMARY KEY,
    key        BYTEA NOT NULL CHECK (length(key) = 32),
    rotated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
REVOKE DELETE, TRUNCATE ON viewer_token_keys FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'traceledger_runtime') THEN
        EXECUTE 'GRANT SELECT, INSERT, UPDATE ON viewer_token_keys TO traceledger_runtime';
    END IF;
END
$$;
