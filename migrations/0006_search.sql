-- Full-text search in PostgreSQL: the built-in backend, and the fallback when Elasticsearch is
-- down. The 'simple' configuration (lowercase, no stemming, no stop words) matches what
-- Elasticsearch's standard analyzer does, so both backends give a query the same meaning.
-- Action names are split on '.' and '_' so "invoice" finds "invoice.paid".
ALTER TABLE audit_events ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', coalesce(message, '')), 'A')
    || setweight(to_tsvector('simple', translate(action, '._', '  ')), 'B')
    || setweight(to_tsvector('simple',
           coalesce(actor_name, '') || ' ' || actor_id || ' '
           || coalesce(target_name, '') || ' ' || coalesce(target_id, '')), 'B')
    || setweight(jsonb_to_tsvector('simple', coalesce(metadata, '{}'),
           '["string", "numeric", "boolean"]'), 'C')
) STORED;

CREATE INDEX audit_events_search ON audit_events USING GIN (search_vector);

-- Events committed but not yet acknowledged by Elasticsearch. The worker's batch insert adds
-- rows in the same transaction as the events (when an Elasticsearch URL is configured); the
-- indexer deletes them once Elasticsearch has them. Nothing is lost while it is down.
CREATE TABLE search_backlog (
    event_id  UUID PRIMARY KEY,
    queued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
