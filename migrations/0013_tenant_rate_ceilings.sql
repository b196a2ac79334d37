-- The most a tenant's admins may give one of their keys, in units per second (events for
-- writes, requests for reads), set by an operator. A tenant without a row gets the
-- deployment's default rates as its ceiling.
CREATE TABLE tenant_rate_ceilings (
    tenant        text PRIMARY KEY,
    write_per_sec integer CHECK (write_per_sec > 0),
    read_per_sec  integer CHECK (read_per_sec > 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
