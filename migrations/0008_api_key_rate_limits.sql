-- Per-key rate limits, overriding the deployment's defaults: requests per second, separately for
-- writes (mutations) and reads (queries, subscriptions, exports). NULL: the default applies.
ALTER TABLE api_keys
    ADD COLUMN write_rate_per_sec INTEGER CHECK (write_rate_per_sec > 0),
    ADD COLUMN read_rate_per_sec  INTEGER CHECK (read_rate_per_sec > 0);
