-- Ingest speed, second part (issue 18). The PostgreSQL twin is ../postgres/0011_ingest_hot.sql.
--
-- Three indexes of servers go: (org_id, state), (org_id, last_observed) and (org_id,
-- last_scanned). No query is served by them: an organisation's servers are found by the key
-- (org_id, name), and its page sorts by a CASE over the column (NULLs last on both engines),
-- which no index orders. Each upload rewrites its servers' latest state, and every index over
-- a column it changes is written once more per server. (SQLite's count triggers, once per
-- row, stay as they are: a bulk upload pauses them, migration 10.)
DROP INDEX servers_org_state;
DROP INDEX servers_org_observed;
DROP INDEX servers_org_scanned;
