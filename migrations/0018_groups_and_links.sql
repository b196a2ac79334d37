-- End-customer groups (the tenant's own customers, what viewer tokens are scoped to), links back
-- into the tenant's product, and whether an action created, read, updated or deleted. All
-- optional: events stored before have none.
ALTER TABLE audit_events
    ADD COLUMN group_id text,
    ADD COLUMN group_name text,
    ADD COLUMN actor_href text,
    ADD COLUMN target_href text,
    ADD COLUMN crud text CHECK (crud IN ('C', 'R', 'U', 'D'));

-- groupIds filters like the other exact filters, in the page order.
CREATE INDEX audit_events_tenant_group ON audit_events (tenant, group_id, occurred_at, id)
    WHERE group_id IS NOT NULL;

-- The partition keeper moves rows out of the default partition: it now copies whatever columns
-- the table has (all but generated ones), so a column added later needs no new version of it.
CREATE OR REPLACE FUNCTION audit_events_ensure_partitions(months_ahead INT) RETURNS INT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    this_month DATE := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    created INT := 0;
    month DATE;
    columns TEXT;
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
            SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
            FROM pg_attribute
            WHERE attrelid = 'audit_events_default_draining'::regclass
              AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
            EXECUTE format('INSERT INTO audit_events (%s) OVERRIDING SYSTEM VALUE '
                           'SELECT %s FROM audit_events_default_draining ORDER BY seq',
                           columns, columns);
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
