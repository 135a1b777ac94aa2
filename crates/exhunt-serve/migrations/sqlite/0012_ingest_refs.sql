-- Ingest speed, third part (issue 18). The PostgreSQL twin is ../postgres/0012_ingest_refs.sql,
-- which also replaces three foreign keys by statement triggers (SQLite keeps its foreign keys:
-- its checks are cheap, and its writers are one at a time).
--
-- 1. The servers whose latest state was never computed (latest_v = 0: from before migration 8,
--    or written by hand) are found by an index of them alone, normally empty. Each upload asks
--    which of its servers are such; the question went through all of the upload's rows.
CREATE INDEX servers_uncomputed ON servers (id) WHERE latest_v = 0;

-- 2. observations (org_id, server_id) goes: (org_id, seen) serves the look-ups by
--    organisation and (server_id, seen) those by server, among them the curve's probe for a
--    server's rows on a day, once per added row (store/latest.rs count_added_days). Each row
--    written took an entry in it.
DROP INDEX observations_org_server;

