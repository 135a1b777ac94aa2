-- Ingest speed, second part (issue 18). The SQLite twin is ../sqlite/0011_ingest_hot.sql.
--
-- 1. Three indexes of servers go: (org_id, state), (org_id, last_observed) and (org_id,
--    last_scanned). No query is served by them: an organisation's servers are found by the
--    key (org_id, name), and its page sorts by a CASE over the column (NULLs last on both
--    engines), which no index orders. Each upload rewrites its servers' latest state, and an
--    index over a column it changes takes a new entry per server; with none left over those
--    columns, PostgreSQL can update the row in place on its page (a heap-only tuple) when
--    the page has room, which the fill factor keeps (new pages; existing ones as they are
--    rewritten).
DROP INDEX servers_org_state;
DROP INDEX servers_org_observed;
DROP INDEX servers_org_scanned;
ALTER TABLE servers SET (fillfactor = 50);

-- 2. The count trigger of servers (migration 8) updates org_stats once per statement with one
--    joined UPDATE, instead of one UPDATE per organisation in a loop (an upload over 18,000
--    organisations spent about a second in that loop, measured).
CREATE OR REPLACE FUNCTION exhunt_count_servers() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev_scope TEXT := COALESCE(current_setting('exhunt.org', true), '');
BEGIN
    -- As in migration 8: the counts are written with '*' and the caller's scope is put back;
    -- once per statement, from its transition tables. Now one UPDATE joins the organisations'
    -- differences (and the fleet's, row 0) to their rows, instead of one UPDATE per
    -- organisation. The join is planned with the transition table's row count, known to the
    -- planner: a small statement probes org_stats by key, a bulk one joins.
    PERFORM set_config('exhunt.org', '*', true);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO org_stats (org_id) SELECT DISTINCT org_id FROM new_rows ON CONFLICT (org_id) DO NOTHING;
        WITH d AS (SELECT org_id, 1 AS servers, 1 * (state = 'compromised')::int AS s_compromised, 1 * (state = 'attempted')::int AS s_attempted, 1 * (state = 'exposed')::int AS s_exposed, 1 * (state = 'mitigated')::int AS s_mitigated, 1 * (state = 'patched')::int AS s_patched, 1 * (state = 'unknown')::int AS s_unknown, 1 * (st_pl = 'compromised')::int AS pl_compromised, 1 * (st_pl = 'attempted')::int AS pl_attempted, 1 * (st_pl = 'exposed')::int AS pl_exposed, 1 * (st_pl = 'mitigated')::int AS pl_mitigated, 1 * (st_pl = 'patched')::int AS pl_patched, 1 * (st_pl = 'unknown')::int AS pl_unknown, 1 * (st_ps = 'compromised')::int AS ps_compromised, 1 * (st_ps = 'attempted')::int AS ps_attempted, 1 * (st_ps = 'exposed')::int AS ps_exposed, 1 * (st_ps = 'mitigated')::int AS ps_mitigated, 1 * (st_ps = 'patched')::int AS ps_patched, 1 * (st_ps = 'unknown')::int AS ps_unknown, 1 * (st_pns = 'compromised')::int AS pns_compromised, 1 * (st_pns = 'attempted')::int AS pns_attempted, 1 * (st_pns = 'exposed')::int AS pns_exposed, 1 * (st_pns = 'mitigated')::int AS pns_mitigated, 1 * (st_pns = 'patched')::int AS pns_patched, 1 * (st_pns = 'unknown')::int AS pns_unknown, 1 * (st_post = 'compromised')::int AS post_compromised, 1 * (st_post = 'attempted')::int AS post_attempted, 1 * (st_post = 'exposed')::int AS post_exposed, 1 * (st_post = 'mitigated')::int AS post_mitigated, 1 * (st_post = 'patched')::int AS post_patched, 1 * (st_post = 'unknown')::int AS post_unknown FROM new_rows),
            o AS (SELECT org_id, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM d GROUP BY org_id),
            a AS (SELECT * FROM o UNION ALL SELECT 0, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM o)
        UPDATE org_stats t SET
            servers = t.servers + a.servers,
            s_compromised = t.s_compromised + a.s_compromised,
            s_attempted = t.s_attempted + a.s_attempted,
            s_exposed = t.s_exposed + a.s_exposed,
            s_mitigated = t.s_mitigated + a.s_mitigated,
            s_patched = t.s_patched + a.s_patched,
            s_unknown = t.s_unknown + a.s_unknown,
            pl_compromised = t.pl_compromised + a.pl_compromised,
            pl_attempted = t.pl_attempted + a.pl_attempted,
            pl_exposed = t.pl_exposed + a.pl_exposed,
            pl_mitigated = t.pl_mitigated + a.pl_mitigated,
            pl_patched = t.pl_patched + a.pl_patched,
            pl_unknown = t.pl_unknown + a.pl_unknown,
            ps_compromised = t.ps_compromised + a.ps_compromised,
            ps_attempted = t.ps_attempted + a.ps_attempted,
            ps_exposed = t.ps_exposed + a.ps_exposed,
            ps_mitigated = t.ps_mitigated + a.ps_mitigated,
            ps_patched = t.ps_patched + a.ps_patched,
            ps_unknown = t.ps_unknown + a.ps_unknown,
            pns_compromised = t.pns_compromised + a.pns_compromised,
            pns_attempted = t.pns_attempted + a.pns_attempted,
            pns_exposed = t.pns_exposed + a.pns_exposed,
            pns_mitigated = t.pns_mitigated + a.pns_mitigated,
            pns_patched = t.pns_patched + a.pns_patched,
            pns_unknown = t.pns_unknown + a.pns_unknown,
            post_compromised = t.post_compromised + a.post_compromised,
            post_attempted = t.post_attempted + a.post_attempted,
            post_exposed = t.post_exposed + a.post_exposed,
            post_mitigated = t.post_mitigated + a.post_mitigated,
            post_patched = t.post_patched + a.post_patched,
            post_unknown = t.post_unknown + a.post_unknown
        FROM a WHERE t.org_id = a.org_id AND a.servers IS NOT NULL AND (a.servers <> 0 OR a.s_compromised <> 0 OR a.s_attempted <> 0 OR a.s_exposed <> 0 OR a.s_mitigated <> 0 OR a.s_patched <> 0 OR a.s_unknown <> 0 OR a.pl_compromised <> 0 OR a.pl_attempted <> 0 OR a.pl_exposed <> 0 OR a.pl_mitigated <> 0 OR a.pl_patched <> 0 OR a.pl_unknown <> 0 OR a.ps_compromised <> 0 OR a.ps_attempted <> 0 OR a.ps_exposed <> 0 OR a.ps_mitigated <> 0 OR a.ps_patched <> 0 OR a.ps_unknown <> 0 OR a.pns_compromised <> 0 OR a.pns_attempted <> 0 OR a.pns_exposed <> 0 OR a.pns_mitigated <> 0 OR a.pns_patched <> 0 OR a.pns_unknown <> 0 OR a.post_compromised <> 0 OR a.post_attempted <> 0 OR a.post_exposed <> 0 OR a.post_mitigated <> 0 OR a.post_patched <> 0 OR a.post_unknown <> 0);
    ELSIF TG_OP = 'DELETE' THEN
        WITH d AS (SELECT org_id, -1 AS servers, -1 * (state = 'compromised')::int AS s_compromised, -1 * (state = 'attempted')::int AS s_attempted, -1 * (state = 'exposed')::int AS s_exposed, -1 * (state = 'mitigated')::int AS s_mitigated, -1 * (state = 'patched')::int AS s_patched, -1 * (state = 'unknown')::int AS s_unknown, -1 * (st_pl = 'compromised')::int AS pl_compromised, -1 * (st_pl = 'attempted')::int AS pl_attempted, -1 * (st_pl = 'exposed')::int AS pl_exposed, -1 * (st_pl = 'mitigated')::int AS pl_mitigated, -1 * (st_pl = 'patched')::int AS pl_patched, -1 * (st_pl = 'unknown')::int AS pl_unknown, -1 * (st_ps = 'compromised')::int AS ps_compromised, -1 * (st_ps = 'attempted')::int AS ps_attempted, -1 * (st_ps = 'exposed')::int AS ps_exposed, -1 * (st_ps = 'mitigated')::int AS ps_mitigated, -1 * (st_ps = 'patched')::int AS ps_patched, -1 * (st_ps = 'unknown')::int AS ps_unknown, -1 * (st_pns = 'compromised')::int AS pns_compromised, -1 * (st_pns = 'attempted')::int AS pns_attempted, -1 * (st_pns = 'exposed')::int AS pns_exposed, -1 * (st_pns = 'mitigated')::int AS pns_mitigated, -1 * (st_pns = 'patched')::int AS pns_patched, -1 * (st_pns = 'unknown')::int AS pns_unknown, -1 * (st_post = 'compromised')::int AS post_compromised, -1 * (st_post = 'attempted')::int AS post_attempted, -1 * (st_post = 'exposed')::int AS post_exposed, -1 * (st_post = 'mitigated')::int AS post_mitigated, -1 * (st_post = 'patched')::int AS post_patched, -1 * (st_post = 'unknown')::int AS post_unknown FROM old_rows),
            o AS (SELECT org_id, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM d GROUP BY org_id),
            a AS (SELECT * FROM o UNION ALL SELECT 0, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM o)
        UPDATE org_stats t SET
            servers = t.servers + a.servers,
            s_compromised = t.s_compromised + a.s_compromised,
            s_attempted = t.s_attempted + a.s_attempted,
            s_exposed = t.s_exposed + a.s_exposed,
            s_mitigated = t.s_mitigated + a.s_mitigated,
            s_patched = t.s_patched + a.s_patched,
            s_unknown = t.s_unknown + a.s_unknown,
            pl_compromised = t.pl_compromised + a.pl_compromised,
            pl_attempted = t.pl_attempted + a.pl_attempted,
            pl_exposed = t.pl_exposed + a.pl_exposed,
            pl_mitigated = t.pl_mitigated + a.pl_mitigated,
            pl_patched = t.pl_patched + a.pl_patched,
            pl_unknown = t.pl_unknown + a.pl_unknown,
            ps_compromised = t.ps_compromised + a.ps_compromised,
            ps_attempted = t.ps_attempted + a.ps_attempted,
            ps_exposed = t.ps_exposed + a.ps_exposed,
            ps_mitigated = t.ps_mitigated + a.ps_mitigated,
            ps_patched = t.ps_patched + a.ps_patched,
            ps_unknown = t.ps_unknown + a.ps_unknown,
            pns_compromised = t.pns_compromised + a.pns_compromised,
            pns_attempted = t.pns_attempted + a.pns_attempted,
            pns_exposed = t.pns_exposed + a.pns_exposed,
            pns_mitigated = t.pns_mitigated + a.pns_mitigated,
            pns_patched = t.pns_patched + a.pns_patched,
            pns_unknown = t.pns_unknown + a.pns_unknown,
            post_compromised = t.post_compromised + a.post_compromised,
            post_attempted = t.post_attempted + a.post_attempted,
            post_exposed = t.post_exposed + a.post_exposed,
            post_mitigated = t.post_mitigated + a.post_mitigated,
            post_patched = t.post_patched + a.post_patched,
            post_unknown = t.post_unknown + a.post_unknown
        FROM a WHERE t.org_id = a.org_id AND a.servers IS NOT NULL AND (a.servers <> 0 OR a.s_compromised <> 0 OR a.s_attempted <> 0 OR a.s_exposed <> 0 OR a.s_mitigated <> 0 OR a.s_patched <> 0 OR a.s_unknown <> 0 OR a.pl_compromised <> 0 OR a.pl_attempted <> 0 OR a.pl_exposed <> 0 OR a.pl_mitigated <> 0 OR a.pl_patched <> 0 OR a.pl_unknown <> 0 OR a.ps_compromised <> 0 OR a.ps_attempted <> 0 OR a.ps_exposed <> 0 OR a.ps_mitigated <> 0 OR a.ps_patched <> 0 OR a.ps_unknown <> 0 OR a.pns_compromised <> 0 OR a.pns_attempted <> 0 OR a.pns_exposed <> 0 OR a.pns_mitigated <> 0 OR a.pns_patched <> 0 OR a.pns_unknown <> 0 OR a.post_compromised <> 0 OR a.post_attempted <> 0 OR a.post_exposed <> 0 OR a.post_mitigated <> 0 OR a.post_patched <> 0 OR a.post_unknown <> 0);
    ELSE
        INSERT INTO org_stats (org_id) SELECT DISTINCT org_id FROM new_rows ON CONFLICT (org_id) DO NOTHING;
        WITH d AS (SELECT org_id, 1 AS servers, 1 * (state = 'compromised')::int AS s_compromised, 1 * (state = 'attempted')::int AS s_attempted, 1 * (state = 'exposed')::int AS s_exposed, 1 * (state = 'mitigated')::int AS s_mitigated, 1 * (state = 'patched')::int AS s_patched, 1 * (state = 'unknown')::int AS s_unknown, 1 * (st_pl = 'compromised')::int AS pl_compromised, 1 * (st_pl = 'attempted')::int AS pl_attempted, 1 * (st_pl = 'exposed')::int AS pl_exposed, 1 * (st_pl = 'mitigated')::int AS pl_mitigated, 1 * (st_pl = 'patched')::int AS pl_patched, 1 * (st_pl = 'unknown')::int AS pl_unknown, 1 * (st_ps = 'compromised')::int AS ps_compromised, 1 * (st_ps = 'attempted')::int AS ps_attempted, 1 * (st_ps = 'exposed')::int AS ps_exposed, 1 * (st_ps = 'mitigated')::int AS ps_mitigated, 1 * (st_ps = 'patched')::int AS ps_patched, 1 * (st_ps = 'unknown')::int AS ps_unknown, 1 * (st_pns = 'compromised')::int AS pns_compromised, 1 * (st_pns = 'attempted')::int AS pns_attempted, 1 * (st_pns = 'exposed')::int AS pns_exposed, 1 * (st_pns = 'mitigated')::int AS pns_mitigated, 1 * (st_pns = 'patched')::int AS pns_patched, 1 * (st_pns = 'unknown')::int AS pns_unknown, 1 * (st_post = 'compromised')::int AS post_compromised, 1 * (st_post = 'attempted')::int AS post_attempted, 1 * (st_post = 'exposed')::int AS post_exposed, 1 * (st_post = 'mitigated')::int AS post_mitigated, 1 * (st_post = 'patched')::int AS post_patched, 1 * (st_post = 'unknown')::int AS post_unknown FROM new_rows UNION ALL SELECT org_id, -1 AS servers, -1 * (state = 'compromised')::int AS s_compromised, -1 * (state = 'attempted')::int AS s_attempted, -1 * (state = 'exposed')::int AS s_exposed, -1 * (state = 'mitigated')::int AS s_mitigated, -1 * (state = 'patched')::int AS s_patched, -1 * (state = 'unknown')::int AS s_unknown, -1 * (st_pl = 'compromised')::int AS pl_compromised, -1 * (st_pl = 'attempted')::int AS pl_attempted, -1 * (st_pl = 'exposed')::int AS pl_exposed, -1 * (st_pl = 'mitigated')::int AS pl_mitigated, -1 * (st_pl = 'patched')::int AS pl_patched, -1 * (st_pl = 'unknown')::int AS pl_unknown, -1 * (st_ps = 'compromised')::int AS ps_compromised, -1 * (st_ps = 'attempted')::int AS ps_attempted, -1 * (st_ps = 'exposed')::int AS ps_exposed, -1 * (st_ps = 'mitigated')::int AS ps_mitigated, -1 * (st_ps = 'patched')::int AS ps_patched, -1 * (st_ps = 'unknown')::int AS ps_unknown, -1 * (st_pns = 'compromised')::int AS pns_compromised, -1 * (st_pns = 'attempted')::int AS pns_attempted, -1 * (st_pns = 'exposed')::int AS pns_exposed, -1 * (st_pns = 'mitigated')::int AS pns_mitigated, -1 * (st_pns = 'patched')::int AS pns_patched, -1 * (st_pns = 'unknown')::int AS pns_unknown, -1 * (st_post = 'compromised')::int AS post_compromised, -1 * (st_post = 'attempted')::int AS post_attempted, -1 * (st_post = 'exposed')::int AS post_exposed, -1 * (st_post = 'mitigated')::int AS post_mitigated, -1 * (st_post = 'patched')::int AS post_patched, -1 * (st_post = 'unknown')::int AS post_unknown FROM old_rows),
            o AS (SELECT org_id, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM d GROUP BY org_id),
            a AS (SELECT * FROM o UNION ALL SELECT 0, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM o)
        UPDATE org_stats t SET
            servers = t.servers + a.servers,
            s_compromised = t.s_compromised + a.s_compromised,
            s_attempted = t.s_attempted + a.s_attempted,
            s_exposed = t.s_exposed + a.s_exposed,
            s_mitigated = t.s_mitigated + a.s_mitigated,
            s_patched = t.s_patched + a.s_patched,
            s_unknown = t.s_unknown + a.s_unknown,
            pl_compromised = t.pl_compromised + a.pl_compromised,
            pl_attempted = t.pl_attempted + a.pl_attempted,
            pl_exposed = t.pl_exposed + a.pl_exposed,
            pl_mitigated = t.pl_mitigated + a.pl_mitigated,
            pl_patched = t.pl_patched + a.pl_patched,
            pl_unknown = t.pl_unknown + a.pl_unknown,
            ps_compromised = t.ps_compromised + a.ps_compromised,
            ps_attempted = t.ps_attempted + a.ps_attempted,
            ps_exposed = t.ps_exposed + a.ps_exposed,
            ps_mitigated = t.ps_mitigated + a.ps_mitigated,
            ps_patched = t.ps_patched + a.ps_patched,
            ps_unknown = t.ps_unknown + a.ps_unknown,
            pns_compromised = t.pns_compromised + a.pns_compromised,
            pns_attempted = t.pns_attempted + a.pns_attempted,
            pns_exposed = t.pns_exposed + a.pns_exposed,
            pns_mitigated = t.pns_mitigated + a.pns_mitigated,
            pns_patched = t.pns_patched + a.pns_patched,
            pns_unknown = t.pns_unknown + a.pns_unknown,
            post_compromised = t.post_compromised + a.post_compromised,
            post_attempted = t.post_attempted + a.post_attempted,
            post_exposed = t.post_exposed + a.post_exposed,
            post_mitigated = t.post_mitigated + a.post_mitigated,
            post_patched = t.post_patched + a.post_patched,
            post_unknown = t.post_unknown + a.post_unknown
        FROM a WHERE t.org_id = a.org_id AND a.servers IS NOT NULL AND (a.servers <> 0 OR a.s_compromised <> 0 OR a.s_attempted <> 0 OR a.s_exposed <> 0 OR a.s_mitigated <> 0 OR a.s_patched <> 0 OR a.s_unknown <> 0 OR a.pl_compromised <> 0 OR a.pl_attempted <> 0 OR a.pl_exposed <> 0 OR a.pl_mitigated <> 0 OR a.pl_patched <> 0 OR a.pl_unknown <> 0 OR a.ps_compromised <> 0 OR a.ps_attempted <> 0 OR a.ps_exposed <> 0 OR a.ps_mitigated <> 0 OR a.ps_patched <> 0 OR a.ps_unknown <> 0 OR a.pns_compromised <> 0 OR a.pns_attempted <> 0 OR a.pns_exposed <> 0 OR a.pns_mitigated <> 0 OR a.pns_patched <> 0 OR a.pns_unknown <> 0 OR a.post_compromised <> 0 OR a.post_attempted <> 0 OR a.post_exposed <> 0 OR a.post_mitigated <> 0 OR a.post_patched <> 0 OR a.post_unknown <> 0);
    END IF;
    PERFORM set_config('exhunt.org', prev_scope, true);
    RETURN NULL;
END $$;
