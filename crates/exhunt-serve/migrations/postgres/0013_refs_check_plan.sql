-- The reference check of migration 12 (exhunt_refs_check) looks each new row's organisation and
-- server up. Its plan is made from the tables' statistics: after an ANALYZE of a small
-- servers table (the fleet's first scans, say) and an upload that makes thousands of servers
-- in the same transaction, PostgreSQL estimated a few dozen servers and planned a nested loop
-- over a full scan of servers for every new row. Each batch of 5,000 rows took 0.9-2.4 s
-- instead of 20 ms (measured: 100,000 rows in 16-17 s against 4 s). Within the function,
-- sequential scans are ruled out, so the look-ups go by the primary keys whatever the
-- statistics say.
ALTER FUNCTION exhunt_refs_check() SET enable_seqscan = off;
