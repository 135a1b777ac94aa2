-- Ingest speed, third part (issue 18). The PostgreSQL twin is ../postgres/0012_ingest_refs.sql,
-- which also replaces three foreign keys by statement triggers (SQLite keeps its foreign keys:
-- its checks are cheap, and its writers are one at a time).
--
-- 1. The servers whose latest state was never computed (latest_v = 0: from before migration 8,
--    or written by hand) are found by an index of them alone, normally empty. Each upload asks
--    which of its servers are such; the question went through all of the upload's rows.
CREATE INDEX servers_uncomputed ON servers (id) WHERE latest_v = 0;

