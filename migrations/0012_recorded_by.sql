-- Who recorded each event: the API key's id or the JWT's subject the server verified, or the
-- service itself for its own events. Set by the server, never taken from the input, so a
-- producer cannot pass its events off as another's. Events stored before have none.
ALTER TABLE audit_events
    ADD COLUMN recorded_by_id text,
    ADD COLUMN recorded_by_type text;

-- The partition keeper moves rows out of the default partition column by column: it must carry
-- the new columns too.
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
                                      recorded_by_type)
            OVERRIDING SYSTEM VALUE
            SELECT seq, id, tenant, occurred_at, received_at, recorded_at, action, outcome, severity,
                   service, actor_id, actor_type, actor_name, actor_ip, target_id, target_type,
                   target_name, message, metadata, idempotency_key, request_id, trace_id,
                   recorded_by_id, recorded_by_type
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
