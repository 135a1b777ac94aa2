-- Row-level security exists on PostgreSQL only (../postgres/0003_row_level_security.sql). On
-- SQLite, an embedded database of one process, the application's filter (Q::scoped) is the
-- only lock. This migration keeps the version numbers of both engines in step.
SELECT 1;
