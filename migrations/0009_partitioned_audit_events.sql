-- audit_events becomes a table partitioned by month of receipt, so retention drops whole
-- partitions instead of deleting rows: the table never needs a DELETE, not even from retention.
--
-- The partition key is `id`: the API assigns every event a UUIDv7 at receipt, whose first 48 bits
-- are the receipt time in Unix milliseconds, so id order is receipt order. Partitioning by id keeps
-- PRIMARY KEY (id) global (a key must include the partition column) and lets by-id look-ups
-- (`WHERE id = ANY($1)`) prune to the partitions holding those ids.

-- The smallest UUIDv7 of an instant: its millisecond timestamp, version 7, the rest zero. Every
-- UUIDv7 generated at or after `at` sorts at or after it, every earlier one before it.
CREATE FUNCTION audit_events_id_floor(at TIMESTAMPTZ) RETURNS UUID
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0')
            || '7000' || repeat('0', 16))::uuid
$$;

-- The receipt time a UUIDv7 carries (its 48-bit millisecond prefix).
CREATE FUNCTION audit_events_id_time(id UUID) RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT to_timestamp(('x' || lpad(substr(replace(id::text, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint
                        / 1000.0)
$$;

-- Whether an id is a UUIDv7 (older retention events got random v4 ids, which carry no time).
CREATE FUNCTION audit_events_id_is_v7(id UUID) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT substr(id::text, 15, 1) = '7'
$$;

-- A UUIDv7 for now, for the events the database records itself (retention). PostgreSQL 15 has
-- no uuidv7(): a random v4 with the time written over its first 48 bits and the version set to 7.
CREATE FUNCTION audit_events_new_id() RETURNS UUID
LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
               PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                                 FROM 3)
               FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

-- Move the old table and its names aside; the new one takes the same names.
ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
ALTER TABLE audit_events_unpartitioned
    DROP CONSTRAINT audit_events_pkey,
    DROP CONSTRAINT audit_events_idempotency;
DROP INDEX audit_events_tenant_time, audit_events_tenant_service, audit_events_tenant_action,
    audit_events_tenant_actor, audit_events_tenant_target, audit_events_tenant_time_stats,
    audit_events_search;
ALTER SEQUENCE audit_events_seq_seq RENAME TO audit_events_unpartitioned_seq_seq;

-- The same columns, in the same order, as 0001 + 0006.
CREATE TABLE audit_events (
    -- The stored order, decided by the worker's batch commit (and nowhere else). An identity on
    -- the parent: rows inserted through it (the only way in) get their number from it.
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    id              UUID NOT NULL,
    tenant          TEXT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    action          TEXT COLLATE "C" NOT NULL,
    outcome         TEXT NOT NULL CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('SUCCESS', 'FAILURE', 'UNKNOWN')),
    severity        SMALLINT NOT NULL CONSTRAINT audit_events_severity_check CHECK (severity BETWEEN 0 AND 5),
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
    -- Unique per tenant through audit_idempotency_keys: a table partitioned by id cannot hold a
    -- unique constraint on other columns.
    idempotency_key TEXT,
    request_id      TEXT,
    trace_id        TEXT,
    search_vector   tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', coalesce(message, '')), 'A')
        || setweight(to_tsvector('simple', translate(action, '._', '  ')), 'B')
        || setweight(to_tsvector('simple',
               coalesce(actor_name, '') || ' ' || actor_id || ' '
               || coalesce(target_name, '') || ' ' || coalesce(target_id, '')), 'B')
        || setweight(jsonb_to_tsvector('simple', coalesce(metadata, '{}'),
               '["string", "numeric", "boolean"]'), 'C')
    ) STORED,
    CONSTRAINT audit_events_pkey PRIMARY KEY (id)
) PARTITION BY RANGE (id);

-- A safety net: an event whose month has no partition (the worker was down for months, a clock
-- far ahead) lands here rather than being refused, since an acknowledged event must never be
-- lost. audit_events_ensure_partitions() moves such rows to their month's partition, so it holds
-- no UUIDv7 rows (only the few retention records older versions wrote with random ids);
-- retention never drops it.
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- The indexes of 0001, 0005 and 0006, on every partition.
CREATE INDEX audit_events_tenant_time ON audit_events (tenant, occurred_at, id);
CREATE INDEX audit_events_tenant_service ON audit_events (tenant, service, occurred_at, id);
CREATE INDEX audit_events_tenant_action ON audit_events (tenant, action, occurred_at, id);
CREATE INDEX audit_events_tenant_actor ON audit_events (tenant, actor_id, occurred_at, id);
CREATE INDEX audit_events_tenant_target ON audit_events (tenant, target_id, occurred_at, id)
    WHERE target_id IS NOT NULL;
CREATE INDEX audit_events_tenant_time_stats ON audit_events (tenant, occurred_at)
    INCLUDE (action, service, actor_id, target_type, outcome, severity, received_at, recorded_at);
CREATE INDEX audit_events_search ON audit_events USING GIN (search_vector);

-- Append-only, as in 0007, without retention's DELETE exception (retention drops partitions).
-- Row triggers on the parent are cloned onto every partition; statement triggers are not, so
-- each partition gets its own TRUNCATE trigger when it is created.
CREATE OR REPLACE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'old months are removed only by retention: traceledger retention --before DATE';
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- Grants are checked on the table a statement names, so each partition is revoked too.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_events_default FROM PUBLIC;

-- Creates the partition of `month` (its first day, UTC), audit_events_YYYY_MM, unless it exists.
-- Its bounds are the smallest UUIDv7 of the month's first instant and of the next month's.
CREATE FUNCTION audit_events_create_partition(month DATE) RETURNS BOOLEAN
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    name TEXT := to_char(month, '"audit_events_"YYYY"_"MM');
    from_id UUID := audit_events_id_floor(month::timestamp AT TIME ZONE 'UTC');
    to_id UUID := audit_events_id_floor((month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                   name, from_id, to_id);
    EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()', name);
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM PUBLIC', name);
    RETURN true;
END
$$;

-- Makes sure inserts find their partition: creates the partitions of the current month and of
-- the next `months_ahead` months if missing, and first moves any UUIDv7 rows that landed in the
-- default partition into partitions of their own months (detach the default, create the months,
-- re-insert its rows through the parent with their seq, drop it: no row is lost). Nothing to do
-- costs a catalog look-up and an empty scan. Returns how many partitions it created. The worker
-- calls it at start-up and hourly.
CREATE FUNCTION audit_events_ensure_partitions(months_ahead INT) RETURNS INT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    this_month DATE := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    created INT := 0;
    month DATE;
BEGIN
    -- Checked before locking, so a call with nothing to move takes no lock, and again under the
    -- lock, since a concurrent call may have drained it meanwhile.
    IF EXISTS (SELECT 1 FROM audit_events_default WHERE audit_events_id_is_v7(id)) THEN
        PERFORM pg_advisory_xact_lock(hashtext('audit_events_ensure_partitions'));
        IF EXISTS (SELECT 1 FROM audit_events_default WHERE audit_events_id_is_v7(id)) THEN
            ALTER TABLE audit_events DETACH PARTITION audit_events_default;
            ALTER TABLE audit_events_default RENAME TO audit_events_default_draining;
            CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;
            CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events_default
                FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
            REVOKE UPDATE, DELETE, TRUNCATE ON audit_events_default FROM PUBLIC;
            FOR month IN
                SELECT DISTINCT date_trunc('month', audit_events_id_time(id) AT TIME ZONE 'UTC')::date
                FROM audit_events_default_draining WHERE audit_events_id_is_v7(id)
            LOOP
                IF audit_events_create_partition(month) THEN
                    created := created + 1;
                END IF;
            END LOOP;
            INSERT INTO audit_events (seq, id, tenant, occurred_at, received_at, recorded_at, action,
                                      outcome, severity, service, actor_id, actor_type, actor_name,
                                      actor_ip, target_id, target_type, target_name, message, metadata,
                                      idempotency_key, request_id, trace_id)
            OVERRIDING SYSTEM VALUE
            SELECT seq, id, tenant, occurred_at, received_at, recorded_at, action, outcome, severity,
                   service, actor_id, actor_type, actor_name, actor_ip, target_id, target_type,
                   target_name, message, metadata, idempotency_key, request_id, trace_id
            FROM audit_events_default_draining ORDER BY seq;
            DROP TABLE audit_events_default_draining;
        END IF;
    END IF;
    FOR i IN 0..greatest(months_ahead, 0) LOOP
        month := (this_month + make_interval(months => i))::date;
        IF to_regclass(to_char(month, '"audit_events_"YYYY"_"MM')) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('audit_events_ensure_partitions'));
            IF audit_events_create_partition(month) THEN
                created := created + 1;
            END IF;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

-- The first stored event of each (tenant, idempotency key), and so the one unique guard of keys.
-- Written in the same statement as the events (store/events.rs); retention removes the keys of
-- the events it drops.
CREATE TABLE audit_idempotency_keys (
    tenant          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    event_id        UUID NOT NULL,
    PRIMARY KEY (tenant, idempotency_key)
);
REVOKE UPDATE, DELETE, TRUNCATE ON audit_idempotency_keys FROM PUBLIC;

-- Copy the existing events: partitions for their months first, then the rows with their seq.
SELECT audit_events_create_partition(month)
FROM (SELECT DISTINCT date_trunc('month', audit_events_id_time(id) AT TIME ZONE 'UTC')::date
      FROM audit_events_unpartitioned WHERE audit_events_id_is_v7(id)) AS months(month);

INSERT INTO audit_events (seq, id, tenant, occurred_at, received_at, recorded_at, action, outcome,
                          severity, service, actor_id, actor_type, actor_name, actor_ip, target_id,
                          target_type, target_name, message, metadata, idempotency_key,
                          request_id, trace_id)
OVERRIDING SYSTEM VALUE
SELECT seq, id, tenant, occurred_at, received_at, recorded_at, action, outcome, severity, service,
       actor_id, actor_type, actor_name, actor_ip, target_id, target_type, target_name, message,
       metadata, idempotency_key, request_id, trace_id
FROM audit_events_unpartitioned ORDER BY seq;

INSERT INTO audit_idempotency_keys (tenant, idempotency_key, event_id)
SELECT tenant, idempotency_key, id FROM audit_events_unpartitioned
WHERE idempotency_key IS NOT NULL;

-- New events continue the stored order after the copied ones.
SELECT setval(pg_get_serial_sequence('audit_events', 'seq'),
              coalesce((SELECT max(seq) FROM audit_events_unpartitioned), 0) + 1, false);

DROP TABLE audit_events_unpartitioned;

SELECT audit_events_ensure_partitions(2);

-- Retention: detaches and drops every monthly partition whose whole range was received before
-- `cutoff`, with the idempotency keys and search-backlog entries of its events, and records, in
-- the same transaction, a `retention.purge` event of tenant `_traceledger` (who asked, the cutoff,
-- the partitions, the rows). A partition straddling the cutoff is kept whole; the default
-- partition is never dropped. Returns each dropped partition with its row count.
CREATE FUNCTION drop_audit_partitions_before(cutoff TIMESTAMPTZ, requested_by TEXT)
RETURNS TABLE (partition_name TEXT, dropped_rows BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    part RECORD;
    counted BIGINT;
    names TEXT[] := '{}';
    total BIGINT := 0;
BEGIN
    FOR part IN
        SELECT c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([0-9a-f-]+)''\)'))[1]::uuid
                   AS upper_id
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_events'::regclass
        ORDER BY c.relname
    LOOP
        -- The upper bound is exclusive: every id in the partition is below it.
        CONTINUE WHEN part.upper_id IS NULL OR audit_events_id_time(part.upper_id) > cutoff;
        EXECUTE format('SELECT count(*) FROM %I', part.relname) INTO counted;
        EXECUTE format('DELETE FROM audit_idempotency_keys k USING %I e '
                       'WHERE e.idempotency_key IS NOT NULL AND k.tenant = e.tenant '
                       'AND k.idempotency_key = e.idempotency_key AND k.event_id = e.id',
                       part.relname);
        EXECUTE format('DELETE FROM search_backlog b USING %I e WHERE b.event_id = e.id',
                       part.relname);
        EXECUTE format('ALTER TABLE audit_events DETACH PARTITION %I', part.relname);
        EXECUTE format('DROP TABLE %I', part.relname);
        names := names || part.relname::text;
        total := total + counted;
        partition_name := part.relname;
        dropped_rows := counted;
        RETURN NEXT;
    END LOOP;
    INSERT INTO audit_events (id, tenant, occurred_at, received_at, action, outcome, severity,
                              service, actor_id, actor_type, message, metadata)
    VALUES (audit_events_new_id(), '_traceledger', now(), now(), 'retention.purge', 'SUCCESS', 3,
            'traceledger', requested_by, 'operator',
            format('dropped %s partitions (%s events) received before %s',
                   cardinality(names), total, cutoff),
            jsonb_build_object('before', cutoff, 'partitions', to_jsonb(names),
                               'deleted', total));
END
$$;

DROP FUNCTION purge_audit_events_before(TIMESTAMPTZ, TEXT);
