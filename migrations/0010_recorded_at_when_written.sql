-- `recorded_at` is when the worker wrote the row, not when its transaction began: a large
-- batch's statement runs for a while, and accept-to-commit lag (recorded_at − received_at)
-- should include that time. clock_timestamp() is read as each row is inserted, inside the
-- batch's one statement, just before its commit.
ALTER TABLE audit_events ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
