-- Plans that hold whatever the statistics say; the PostgreSQL twin is
-- ../postgres/0014_stale_statistics.sql, which also changes its tenancy filter (a function
-- SQLite does not have).
--
-- The unassigned queue's index of queued rows, as on PostgreSQL (one schema). SQLite already
-- read the queue by observations (org_id, seen), searching org_id NULL, and may go on doing
-- so; either way by an index (tests/api/scale.rs plans_hold_when_the_statistics_predate_an_import).
CREATE INDEX observations_unassigned ON observations (id) WHERE org_id IS NULL;
