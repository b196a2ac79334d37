-- The ledger's Merkle trees and signed checkpoints (C2SP tlog-tiles, tlog-checkpoint).
-- ledger_tiles: tile (level, idx) of a tenant's tree holds up to 256 hashes of tree level
-- 8·level (leaf hashes at level 0), concatenated. Full tiles never change; the right edge's
-- partial tiles only grow (a trigger holds that even against the runtime role).
CREATE TABLE ledger_tiles (
    tenant TEXT NOT NULL,
    level  SMALLINT NOT NULL CHECK (level BETWEEN 0 AND 7),
    idx    BIGINT NOT NULL CHECK (idx >= 0),
    hashes BYTEA NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (tenant, level, idx)
);

CREATE FUNCTION ledger_tiles_only_grow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant <> OLD.tenant OR NEW.level <> OLD.level OR NEW.idx <> OLD.idx
       OR substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) <> OLD.hashes THEN
        RAISE EXCEPTION 'ledger tiles only grow: tile %/% of % would change', OLD.level, OLD.idx,
            OLD.tenant USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ledger_tiles_only_grow BEFORE UPDATE ON ledger_tiles
    FOR EACH ROW EXECUTE FUNCTION ledger_tiles_only_grow();

-- How far each tenant's tree is sealed (hashed into tiles); its root is in the tiles.
CREATE TABLE ledger_trees (
    tenant TEXT PRIMARY KEY,
    size   BIGINT NOT NULL CHECK (size >= 0)
);

-- Every signed checkpoint, kept: one per tenant and size.
CREATE TABLE ledger_checkpoints (
    tenant       TEXT NOT NULL,
    size         BIGINT NOT NULL CHECK (size > 0),
    root         BYTEA NOT NULL CHECK (length(root) = 32),
    note         TEXT NOT NULL,
    verifier_key TEXT NOT NULL,
    signed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, size)
);

-- Every key that ever signed, so checkpoints signed before a rotation stay verifiable.
CREATE TABLE ledger_keys (
    verifier_key TEXT PRIMARY KEY,
    first_used   TIMESTAMPTZ NOT NULL DEFAULT now()
);

REVOKE DELETE, TRUNCATE ON ledger_tiles, ledger_trees, ledger_checkpoints, ledger_keys FROM PUBLIC;

-- Retention keeps the trees: a dropped partition's events leave their leaf hashes in the tiles,
-- and the purge event (itself a leaf of the service's ledger) lists, per tenant, the index
-- ranges it dropped, so a verifier tells pruned from deleted. A partition holding events the
-- sealer has not hashed yet is not dropped: their leaves would be lost.
CREATE OR REPLACE FUNCTION drop_audit_partitions_before(cutoff TIMESTAMPTZ, requested_by TEXT)
RETURNS TABLE (partition_name TEXT, dropped_rows BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    part RECORD;
    counted BIGINT;
    names TEXT[] := '{}';
    total BIGINT := 0;
    ranges JSONB := '[]';
    part_ranges JSONB;
    unsealed BOOLEAN;
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
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I e LEFT JOIN ledger_trees t USING (tenant) '
                       'WHERE e.ledger_index >= coalesce(t.size, 0))', part.relname)
            INTO unsealed;
        IF unsealed THEN
            RAISE EXCEPTION 'partition % holds events not yet sealed into the ledger; '
                            'run the worker (its sealer) and retry', part.relname
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        -- Consecutive indices of a tenant become one range [from, to).
        EXECUTE format('SELECT coalesce(jsonb_agg(jsonb_build_object(''tenant'', tenant, '
                       '''from'', lo, ''to'', hi + 1) ORDER BY tenant, lo), ''[]'') '
                       'FROM (SELECT tenant, min(ledger_index) AS lo, max(ledger_index) AS hi '
                       '      FROM (SELECT tenant, ledger_index, ledger_index - row_number() '
                       '            OVER (PARTITION BY tenant ORDER BY ledger_index) AS run '
                       '            FROM %I) numbered GROUP BY tenant, run) runs', part.relname)
            INTO part_ranges;
        ranges := ranges || part_ranges;
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
                               'deleted', total, 'ledgerRanges', ranges),
            next_index);
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'traceledger_runtime') THEN
        EXECUTE 'GRANT SELECT, INSERT, UPDATE (hashes) ON ledger_tiles TO traceledger_runtime';
        EXECUTE 'GRANT SELECT, INSERT, UPDATE (size) ON ledger_trees TO traceledger_runtime';
        EXECUTE 'GRANT SELECT, INSERT ON ledger_checkpoints, ledger_keys TO traceledger_runtime';
    END IF;
END
$$;
