-- Ids the API accepted that lost their idempotency key to another event. Normally a second
-- call with a key is answered DUPLICATE at once; but while Redis is unreachable two calls with
-- the same key can both be accepted before either is stored. The worker stores the first and
-- records the other id here, pointing at the event stored under the key, so every id a client
-- was given still finds its event.
CREATE TABLE audit_superseded_ids (
    id          UUID PRIMARY KEY,
    tenant      TEXT NOT NULL,
    event_id    UUID NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
REVOKE UPDATE, DELETE, TRUNCATE ON audit_superseded_ids FROM PUBLIC;

-- Retention drops superseded ids received in the months it drops, with the months, and refuses
-- a cutoff after the start of the current month.
CREATE OR REPLACE FUNCTION drop_audit_partitions_before(cutoff TIMESTAMPTZ, requested_by TEXT)
RETURNS TABLE (partition_name TEXT, dropped_rows BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    part RECORD;
    counted BIGINT;
    names TEXT[] := '{}';
    total BIGINT := 0;
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
