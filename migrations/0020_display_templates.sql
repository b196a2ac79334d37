-- Each tenant's sentences for its actions: an exact action name or a "prefix.*" pattern, and a
-- template of text and {{field}} placeholders (checked by the service before it is stored).
CREATE TABLE display_templates (
    tenant     TEXT NOT NULL,
    action     TEXT NOT NULL,
    template   TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, action)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'traceledger_runtime') THEN
        EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON display_templates TO traceledger_runtime';
    END IF;
END
$$;
