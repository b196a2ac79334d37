-- What a key may do: events:write (record), events:read (query, search, subscribe),
-- admin (operate the deployment: dead letters, keys).
ALTER TABLE api_keys
    ADD COLUMN scopes TEXT[] NOT NULL DEFAULT ARRAY['events:write', 'events:read'];
