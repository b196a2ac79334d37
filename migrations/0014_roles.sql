-- Least privilege. Two group roles (NOLOGIN; cluster-wide, so created once and shared by every
-- database of the cluster):
--   traceledger_runtime   what `serve` and `worker` need, and nothing more: events and their
--                         keys can be read and added, never changed or removed;
--   traceledger_operator  retention, the one way events leave the store.
-- `traceledger migrate --runtime-role NAME` makes a login role a member of the first. Without
-- the right to create roles (a managed database, say) the roles are skipped with a notice, and
-- an administrator creates them and runs the grants below.
DO $$
BEGIN
    BEGIN
        CREATE ROLE traceledger_runtime NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE traceledger_operator NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create the roles traceledger_runtime and traceledger_operator: grant them by hand';
END
$$;

-- SECURITY DEFINER functions run with the owner's rights: only the roles meant to may call them.
REVOKE EXECUTE ON FUNCTION drop_audit_partitions_before(TIMESTAMPTZ, TEXT) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit_events_ensure_partitions(INT) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit_events_create_partition(DATE) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'traceledger_runtime') THEN
        EXECUTE 'GRANT SELECT, INSERT ON audit_events, audit_superseded_ids TO traceledger_runtime';
        EXECUTE 'GRANT SELECT, INSERT, UPDATE (event_id) ON audit_idempotency_keys TO traceledger_runtime';
        EXECUTE 'GRANT SELECT, INSERT, UPDATE ON api_keys TO traceledger_runtime';
        EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON outbox, search_backlog TO traceledger_runtime';
        EXECUTE 'GRANT SELECT ON tenant_rate_ceilings TO traceledger_runtime';
        EXECUTE 'GRANT EXECUTE ON FUNCTION audit_events_ensure_partitions(INT) TO traceledger_runtime';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'traceledger_operator') THEN
        EXECUTE 'GRANT EXECUTE ON FUNCTION drop_audit_partitions_before(TIMESTAMPTZ, TEXT) TO traceledger_operator';
    END IF;
END
$$;
