-- Statistics and processing metrics read every event of a tenant's time range. Including the
-- grouped and measured columns lets PostgreSQL answer them from this index alone (an index-only
-- scan of the range), without visiting the table's rows.
CREATE INDEX audit_events_tenant_time_stats ON audit_events (tenant, occurred_at)
    INCLUDE (action, service, actor_id, target_type, outcome, severity, received_at, recorded_at);
