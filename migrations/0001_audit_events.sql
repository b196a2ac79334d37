-- The audit events: append-only, one row per accepted event.
CREATE TABLE audit_events (
    -- The stored order, decided by the worker's batch commit (and nowhere else).
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    id              UUID PRIMARY KEY,
    tenant          TEXT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- "C" collation: bytewise order, so `action LIKE 'invoice.%'` can use a plain btree index.
    action          TEXT COLLATE "C" NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('SUCCESS', 'FAILURE', 'UNKNOWN')),
    -- 0 = DEBUG … 5 = CRITICAL, so a minimum severity is a range condition.
    severity        SMALLINT NOT NULL CHECK (severity BETWEEN 0 AND 5),
    service         TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_type      TEXT NOT NULL,
    actor_name      TEXT,
    actor_ip        TEXT,
    target_id       TEXT,
    target_type     TEXT,
    target_name     TEXT,
    message         TEXT,
    metadata        JSONB,
    idempotency_key TEXT,
    request_id      TEXT,
    trace_id        TEXT,
    CONSTRAINT audit_events_idempotency UNIQUE (tenant, idempotency_key)
);

-- Keyset pagination in either direction, with or without a time range.
CREATE INDEX audit_events_tenant_time ON audit_events (tenant, occurred_at, id);
-- The common "what happened to/by X" filters, each still paginated by time.
CREATE INDEX audit_events_tenant_service ON audit_events (tenant, service, occurred_at, id);
CREATE INDEX audit_events_tenant_action ON audit_events (tenant, action, occurred_at, id);
CREATE INDEX audit_events_tenant_actor ON audit_events (tenant, actor_id, occurred_at, id);
CREATE INDEX audit_events_tenant_target ON audit_events (tenant, target_id, occurred_at, id)
    WHERE target_id IS NOT NULL;
