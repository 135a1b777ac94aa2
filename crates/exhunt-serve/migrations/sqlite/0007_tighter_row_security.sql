-- Row-level security exists on PostgreSQL only (../postgres/0007_tighter_row_security.sql).
-- This migration keeps the version numbers of both engines in step.
SELECT 1;
