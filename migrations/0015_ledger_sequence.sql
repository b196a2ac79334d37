-- The ledger's order: every stored event has a ledger_index, 0, 1, 2, … per tenant, gap-free,
-- in commit order. ledger_heads holds each tenant's size (the next index). The worker's batch
-- commit locks the heads of its tenants in tenant order (so concurrent workers take turns per
-- tenant and never deadlock), gives its new rows the next indices and advances the heads; the
-- retention function records its own event the same way. Nothing else writes events.
CREATE TABLE ledger_heads (
    tenant TEXT PRIMARY KEY,
    size   BIGINT NOT NULL CHECK (size >= 0)
);
REVOKE DELETE, TRUNCATE ON ledger_heads FROM PUBLIC;

ALTER TABLE audit_events ADD COLUMN ledger_index BIGINT;

-- Events stored before get their indices in the order they were stored. The one UPDATE events
-- ever see, made here by the owner with the append-only trigger held off.
ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;
UPDATE audit_events e SET ledger_index = n.i
FROM (SELECT id, row_number() OVER (PARTITION BY tenant ORDER BY seq) - 1 AS i
      FROM audit_events) n
WHERE e.id = n.id;
ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;
INSERT INTO ledger_heads (tenant, size)
SELECT tenant, count(*) FROM audit_events GROUP BY tenant;

ALTER TABLE audit_events ALTER COLUMN ledger_index SET NOT NULL;
-- Proofs and resumable feeds read a tenant's events by index.
CREATE INDEX audit_events_ledger ON audit_events (tenant, ledger_index);

-- The partition keeper carries the index when it moves rows out of the default partition.
CREATE OR REPLACE FUNCTION audit_events_ensure_partitions(months_ahead INT) RETURNS INT
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
                                      idempotency_key, request_id, trace_id, recorded_by_id,
                                      recorded_by_type, ledger_index)
            OVERRIDING SYSTEM VALUE
            SELECT seq, id, tenant, occurred_at, received_at, recorded_at, action, outcome, severity,
                   service, actor_id, actor_type, actor_name, actor_ip, target_id, target_type,
                   target_name, message, metadata, idempotency_key, request_id, trace_id,
                   recorded_by_id, recorded_by_type, ledger_index
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

-- Retention records its drop at the service ledger's next index.
CREATE OR REPLACE FUNCTION drop_audit_partitions_before(cutoff TIMESTAMPTZ, requested_by TEXT)
RETURNS TABLE (partition_name TEXT, dropped_rows BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    part RECORD;
    counted BIGINT;
    names TEXT[] := '{}';
    total BIGINT := 0;
    next_index BIGINT;
    this_month TIMESTAMPTZ := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
BEGIN
    -- The current month and those ahead (created early) hold what is being recorded now.
    IF cutoff > this_month THEN
        RAISE EXCEPTION 'retention cannot drop the current month or later: % is after %',
            cutoff, this_month
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
        DELETE FROM audit_superseded_ids s WHERE s.id < part.upper_id;
        EXECUTE format('ALTER TABLE audit_events DETACH PARTITION %I', part.relname);
        EXECUTE format('DROP TABLE %I', part.relname);
        names := names || part.relname::text;
        total := total + counted;
        partition_name := part.relname;
        dropped_rows := counted;
        RETURN NEXT;
    END LOOP;
    -- The drop is recorded like any event: the next index of the service's own ledger.
    INSERT INTO ledger_heads (tenant, size) VALUES ('_traceledger', 0) ON CONFLICT DO NOTHING;
    UPDATE ledger_heads SET size = size + 1 WHERE tenant = '_traceledger'
        RETURNING size - 1 INTO next_index;
    INSERT INTO audit_events (id, tenant, occurred_at, received_at, action, outcome, severity,
                              service, actor_id, actor_type, message, metadata, ledger_index)
    VALUES (audit_events_new_id(), '_traceledger', now(), now(), 'retention.purge', 'SUCCESS', 3,
            'traceledger', requested_by, 'operator',
            format('dropped %s partitions (%s events) received before %s',
                   cardinality(names), total, cutoff),
            jsonb_build_object('before', cutoff, 'partitions', to_jsonb(names),
                               'deleted', total),
            next_index);
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'traceledger_runtime') THEN
        EXECUTE 'GRANT SELECT, INSERT, UPDATE (size) ON ledger_heads TO traceledger_runtime';
    END IF;
END
$$;
