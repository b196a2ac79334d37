-- Batches accepted while the broker was unreachable, waiting for the relay to publish them.
-- Each row is one broker message, exactly as it would have been published.
CREATE TABLE outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload    BYTEA NOT NULL,
    message_id TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
