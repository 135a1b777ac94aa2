-- Plans that hold whatever the statistics say (issue 18). The SQLite twin is
-- ../sqlite/0014_stale_statistics.sql.
--
-- PostgreSQL cannot read a setting when it plans, so it takes the tenancy filter of every
-- table (exhunt_visible, migration 3: `setting = '*' OR ...`) for an equality on an unknown
-- value and believes that it drops 99.5 % of every table, for the operator who sees all of it.
-- With statistics taken before a large import, that belief made two plans go wrong:
--
-- 1. The reference check of an upload's rows (migration 12). From the statistics of a small
--    servers table, PostgreSQL took the servers for a handful, kept them all in memory and went
--    through them for each new row: a batch of 5,000 rows took 0.4-2.4 s instead of 20 ms, and
--    the benchmark's tenth-size fleet 16-18 s for 100,000 rows instead of 4 s (runs 11-13 of
--    session 10; reproduced with autovacuum every second, and by hand: 1,000 servers analysed,
--    24,000 made and 5,000 rows naming them in one transaction, the check 1.15-1.3 s against
--    0.01 s now). Migration 13 ruled out sequential scans and left this plan. Each row's key is
--    now looked up by itself, whatever the estimates.
--    Not chosen: the same filter written as a CASE, which PostgreSQL estimates at half of the
--    rows. It cured both this and the servers' count trigger by hand (24,000 servers written
--    in one statement: 22 s against 0.2 s), but changed the plans tuned under the old
--    estimate: the upload's curve hashed every earlier observation, and a million rows took
--    55-57 s against 45-47 s (alternated runs).
CREATE OR REPLACE FUNCTION exhunt_refs_check() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    prev_scope TEXT := COALESCE(current_setting('exhunt.org', true), '');
    missing TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock(7311708848609570147);
    PERFORM set_config('exhunt.org', '*', true);
    IF TG_LEVEL = 'STATEMENT' THEN
        -- An insert: its rows, one query per key, each row's key looked up by itself (OFFSET 0
        -- keeps the look-up a subquery run per row: never a join the planner may turn into a
        -- scan of the whole table per row).
        SELECT 'organisation ' || n.org_id INTO missing FROM new_rows n
            WHERE n.org_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM orgs o WHERE o.id = n.org_id OFFSET 0)
            LIMIT 1;
        IF missing IS NULL AND TG_TABLE_NAME = 'observations' THEN
            SELECT 'server ' || n.server_id INTO missing FROM new_rows n
                WHERE n.server_id IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM servers s WHERE s.id = n.server_id OFFSET 0)
                LIMIT 1;
        END IF;
    ELSE
        -- An update that changed a key (rare: the trigger's WHEN), row by row.
        IF NEW.org_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM orgs o WHERE o.id = NEW.org_id) THEN
            missing := 'organisation ' || NEW.org_id;
        ELSIF TG_TABLE_NAME = 'observations' AND NEW.server_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM servers s WHERE s.id = NEW.server_id) THEN
            missing := 'server ' || NEW.server_id;
        END IF;
    END IF;
    PERFORM set_config('exhunt.org', prev_scope, true);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "%" names a missing %', TG_TABLE_NAME, missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

-- 2. The unassigned queue (the overview shows its first row, operators list it) is read by an
--    index of the queued rows alone. Planned from statistics taken before a large import, the
--    query walked all observations by id looking for a queued one: 0.9 s per overview after
--    1,000,000 rows, until autovacuum analysed the table (overview p95 6 s in a benchmark run
--    where it had not yet).
CREATE INDEX observations_unassigned ON observations (id) WHERE org_id IS NULL;
