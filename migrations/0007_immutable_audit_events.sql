-- Audit events are append-only. The application connects as the table's owner here, and an
-- owner is not bound by grants, so these triggers are what enforce it: every UPDATE, DELETE and
-- TRUNCATE raises. The only way to remove events is retention, through
-- purge_audit_events_before(), which deletes old rows and records that it did.
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Set (transaction-locally) only by purge_audit_events_before().
    IF TG_OP = 'DELETE' AND current_setting('traceledger.retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'old events are removed only by retention: traceledger retention --before DATE';
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- A deployment that gives the application its own, non-owner role gets only what it needs from
-- the grants too: SELECT and INSERT.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;

-- Retention: deletes every event that occurred before `cutoff` and records, in the same
-- transaction, an audit event of tenant `_traceledger` saying so (who asked, the cutoff, how many
-- rows). Returns how many were deleted.
CREATE FUNCTION purge_audit_events_before(cutoff TIMESTAMPTZ, requested_by TEXT)
RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    deleted BIGINT;
BEGIN
    PERFORM set_config('traceledger.retention', 'on', true);
    DELETE FROM audit_events WHERE occurred_at < cutoff;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('traceledger.retention', 'off', true);
    INSERT INTO audit_events (id, tenant, occurred_at, received_at, action, outcome, severity,
                              service, actor_id, actor_type, message, metadata)
    VALUES (gen_random_uuid(), '_traceledger', now(), now(), 'retention.purge', 'SUCCESS', 3,
            'traceledger', requested_by, 'operator',
            format('deleted %s events that occurred before %s', deleted, cutoff),
            jsonb_build_object('before', cutoff, 'deleted', deleted));
    RETURN deleted;
END
$$;
