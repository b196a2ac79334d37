-- Durable subscriptions follow commits: every advance of a tenant's ledger head is announced on
-- channel traceledger_commits as {"tenant": …, "size": …}. NOTIFY is sent when its transaction
-- commits and never when it rolls back, and a trigger hears every road that advances a head (the
-- worker's batch commit, retention's own event, an operator's), so a listener learns of exactly
-- the indices that became readable.
CREATE FUNCTION ledger_heads_announce() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('traceledger_commits',
                      json_build_object('tenant', NEW.tenant, 'size', NEW.size)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_heads_announce AFTER UPDATE OF size ON ledger_heads
    FOR EACH ROW WHEN (NEW.size > OLD.size) EXECUTE FUNCTION ledger_heads_announce();
