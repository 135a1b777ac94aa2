-- Scale (issue 18): what the dashboard counts, kept in the database instead of read server by
-- server. The SQLite twin is ../sqlite/0008_scale.sql.
--
-- 1. Each server carries its latest state: the latest scan (by finished, then id), the latest
--    observation (by seen, then id), the latest build read, and the dashboard state overall and
--    per campaign (store::dashboard_state). The store rewrites them inside the transaction that
--    changes a server's scans or observations (store/latest.rs); latest_v = 1 once computed
--    (0: a server from before this migration, computed when the store opens).
-- 2. org_stats: per organisation, its servers by state overall (s_*) and per campaign
--    (pl_ proxy-logon, ps_ proxy-shell, pns_ proxy-not-shell, post_ post-exploitation); the row
--    of org_id 0 is the whole fleet, and its orgs column counts the organisations. Kept by
--    triggers on servers and orgs, so that every way a server comes or goes (uploads, deletes,
--    cascades, SQL by hand) is counted.
-- 3. org_days: the exposure curve per organisation and day (distinct servers seen vulnerable;
--    distinct servers seen compromised plus distinct servers scanned compromised), org_id 0 for
--    the fleet. Recounted by the store for the (organisation, day) pairs a change touches.


-- The backfill below reads every tenant's rows: this migration runs with '*' (put back to
-- nothing at the end).
SELECT set_config('exhunt.org', '*', false);

ALTER TABLE servers ADD COLUMN last_result_id BIGINT;
ALTER TABLE servers ADD COLUMN last_verdict TEXT;
ALTER TABLE servers ADD COLUMN last_verdicts TEXT;
ALTER TABLE servers ADD COLUMN last_scanned TEXT COLLATE "C";
ALTER TABLE servers ADD COLUMN last_obs_id BIGINT;
ALTER TABLE servers ADD COLUMN last_state TEXT;
ALTER TABLE servers ADD COLUMN last_campaigns TEXT;
ALTER TABLE servers ADD COLUMN last_observed TEXT COLLATE "C";
ALTER TABLE servers ADD COLUMN last_build TEXT;
ALTER TABLE servers ADD COLUMN last_build_obs_id BIGINT;
ALTER TABLE servers ADD COLUMN last_build_seen TEXT COLLATE "C";
ALTER TABLE servers ADD COLUMN state TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE servers ADD COLUMN st_pl TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE servers ADD COLUMN st_ps TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE servers ADD COLUMN st_pns TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE servers ADD COLUMN st_post TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE servers ADD COLUMN latest_v BIGINT NOT NULL DEFAULT 0;

CREATE TABLE org_stats (
    org_id BIGINT PRIMARY KEY,
    orgs BIGINT NOT NULL DEFAULT 0,
    servers BIGINT NOT NULL DEFAULT 0,
    s_compromised BIGINT NOT NULL DEFAULT 0,
    s_attempted BIGINT NOT NULL DEFAULT 0,
    s_exposed BIGINT NOT NULL DEFAULT 0,
    s_mitigated BIGINT NOT NULL DEFAULT 0,
    s_patched BIGINT NOT NULL DEFAULT 0,
    s_unknown BIGINT NOT NULL DEFAULT 0,
    pl_compromised BIGINT NOT NULL DEFAULT 0,
    pl_attempted BIGINT NOT NULL DEFAULT 0,
    pl_exposed BIGINT NOT NULL DEFAULT 0,
    pl_mitigated BIGINT NOT NULL DEFAULT 0,
    pl_patched BIGINT NOT NULL DEFAULT 0,
    pl_unknown BIGINT NOT NULL DEFAULT 0,
    ps_compromised BIGINT NOT NULL DEFAULT 0,
    ps_attempted BIGINT NOT NULL DEFAULT 0,
    ps_exposed BIGINT NOT NULL DEFAULT 0,
    ps_mitigated BIGINT NOT NULL DEFAULT 0,
    ps_patched BIGINT NOT NULL DEFAULT 0,
    ps_unknown BIGINT NOT NULL DEFAULT 0,
    pns_compromised BIGINT NOT NULL DEFAULT 0,
    pns_attempted BIGINT NOT NULL DEFAULT 0,
    pns_exposed BIGINT NOT NULL DEFAULT 0,
    pns_mitigated BIGINT NOT NULL DEFAULT 0,
    pns_patched BIGINT NOT NULL DEFAULT 0,
    pns_unknown BIGINT NOT NULL DEFAULT 0,
    post_compromised BIGINT NOT NULL DEFAULT 0,
    post_attempted BIGINT NOT NULL DEFAULT 0,
    post_exposed BIGINT NOT NULL DEFAULT 0,
    post_mitigated BIGINT NOT NULL DEFAULT 0,
    post_patched BIGINT NOT NULL DEFAULT 0,
    post_unknown BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE org_days (
    org_id BIGINT NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    exposed BIGINT NOT NULL DEFAULT 0,
    compromised BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, day)
);

CREATE INDEX servers_org_state ON servers (org_id, state);
CREATE INDEX servers_org_observed ON servers (org_id, last_observed);
CREATE INDEX servers_org_scanned ON servers (org_id, last_scanned);
CREATE INDEX org_stats_servers ON org_stats (servers, org_id);
CREATE INDEX org_stats_compromised ON org_stats (s_compromised, org_id);
CREATE INDEX org_stats_exposed ON org_stats (s_exposed, org_id);
CREATE INDEX observations_org_server ON observations (org_id, server_id);

CREATE FUNCTION exhunt_count_orgs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- orgs are written with '*' only (migration 7): no scope to switch.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO org_stats (org_id) VALUES (NEW.id) ON CONFLICT (org_id) DO NOTHING;
        UPDATE org_stats SET orgs = orgs + 1 WHERE org_id = 0;
    ELSE
        DELETE FROM org_stats WHERE org_id = OLD.id;
        UPDATE org_stats SET orgs = orgs - 1 WHERE org_id = 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER orgs_count AFTER INSERT OR DELETE ON orgs
    FOR EACH ROW EXECUTE FUNCTION exhunt_count_orgs();

CREATE FUNCTION exhunt_count_servers() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev_scope TEXT := COALESCE(current_setting('exhunt.org', true), '');
    r RECORD;
BEGIN
    -- The counts are written with '*' (the fleet row 0 belongs to no organisation); the
    -- caller's scope is put back before returning. A tenant's own statement never gets '*'.
    -- Once per statement, from its transition tables: updating the same count rows once per
    -- server would leave a chain of row versions as long as the transaction's servers. Each
    -- organisation's row is updated by its key (a join would be planned without knowing how
    -- many rows row-level security lets through, and read the whole table).
    PERFORM set_config('exhunt.org', '*', true);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO org_stats (org_id) SELECT DISTINCT org_id FROM new_rows ON CONFLICT (org_id) DO NOTHING;
        FOR r IN WITH d AS (SELECT org_id, 1 AS servers, 1 * (state = 'compromised')::int AS s_compromised, 1 * (state = 'attempted')::int AS s_attempted, 1 * (state = 'exposed')::int AS s_exposed, 1 * (state = 'mitigated')::int AS s_mitigated, 1 * (state = 'patched')::int AS s_patched, 1 * (state = 'unknown')::int AS s_unknown, 1 * (st_pl = 'compromised')::int AS pl_compromised, 1 * (st_pl = 'attempted')::int AS pl_attempted, 1 * (st_pl = 'exposed')::int AS pl_exposed, 1 * (st_pl = 'mitigated')::int AS pl_mitigated, 1 * (st_pl = 'patched')::int AS pl_patched, 1 * (st_pl = 'unknown')::int AS pl_unknown, 1 * (st_ps = 'compromised')::int AS ps_compromised, 1 * (st_ps = 'attempted')::int AS ps_attempted, 1 * (st_ps = 'exposed')::int AS ps_exposed, 1 * (st_ps = 'mitigated')::int AS ps_mitigated, 1 * (st_ps = 'patched')::int AS ps_patched, 1 * (st_ps = 'unknown')::int AS ps_unknown, 1 * (st_pns = 'compromised')::int AS pns_compromised, 1 * (st_pns = 'attempted')::int AS pns_attempted, 1 * (st_pns = 'exposed')::int AS pns_exposed, 1 * (st_pns = 'mitigated')::int AS pns_mitigated, 1 * (st_pns = 'patched')::int AS pns_patched, 1 * (st_pns = 'unknown')::int AS pns_unknown, 1 * (st_post = 'compromised')::int AS post_compromised, 1 * (st_post = 'attempted')::int AS post_attempted, 1 * (st_post = 'exposed')::int AS post_exposed, 1 * (st_post = 'mitigated')::int AS post_mitigated, 1 * (st_post = 'patched')::int AS post_patched, 1 * (st_post = 'unknown')::int AS post_unknown FROM new_rows),
            o AS (SELECT org_id, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM d GROUP BY org_id)
            SELECT * FROM o UNION ALL SELECT 0, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM o
        LOOP
            CONTINUE WHEN r.servers IS NULL OR NOT (r.servers <> 0 OR r.s_compromised <> 0 OR r.s_attempted <> 0 OR r.s_exposed <> 0 OR r.s_mitigated <> 0 OR r.s_patched <> 0 OR r.s_unknown <> 0 OR r.pl_compromised <> 0 OR r.pl_attempted <> 0 OR r.pl_exposed <> 0 OR r.pl_mitigated <> 0 OR r.pl_patched <> 0 OR r.pl_unknown <> 0 OR r.ps_compromised <> 0 OR r.ps_attempted <> 0 OR r.ps_exposed <> 0 OR r.ps_mitigated <> 0 OR r.ps_patched <> 0 OR r.ps_unknown <> 0 OR r.pns_compromised <> 0 OR r.pns_attempted <> 0 OR r.pns_exposed <> 0 OR r.pns_mitigated <> 0 OR r.pns_patched <> 0 OR r.pns_unknown <> 0 OR r.post_compromised <> 0 OR r.post_attempted <> 0 OR r.post_exposed <> 0 OR r.post_mitigated <> 0 OR r.post_patched <> 0 OR r.post_unknown <> 0);
            UPDATE org_stats t SET
                servers = t.servers + r.servers,
                s_compromised = t.s_compromised + r.s_compromised,
                s_attempted = t.s_attempted + r.s_attempted,
                s_exposed = t.s_exposed + r.s_exposed,
                s_mitigated = t.s_mitigated + r.s_mitigated,
                s_patched = t.s_patched + r.s_patched,
                s_unknown = t.s_unknown + r.s_unknown,
                pl_compromised = t.pl_compromised + r.pl_compromised,
                pl_attempted = t.pl_attempted + r.pl_attempted,
                pl_exposed = t.pl_exposed + r.pl_exposed,
                pl_mitigated = t.pl_mitigated + r.pl_mitigated,
                pl_patched = t.pl_patched + r.pl_patched,
                pl_unknown = t.pl_unknown + r.pl_unknown,
                ps_compromised = t.ps_compromised + r.ps_compromised,
                ps_attempted = t.ps_attempted + r.ps_attempted,
                ps_exposed = t.ps_exposed + r.ps_exposed,
                ps_mitigated = t.ps_mitigated + r.ps_mitigated,
                ps_patched = t.ps_patched + r.ps_patched,
                ps_unknown = t.ps_unknown + r.ps_unknown,
                pns_compromised = t.pns_compromised + r.pns_compromised,
                pns_attempted = t.pns_attempted + r.pns_attempted,
                pns_exposed = t.pns_exposed + r.pns_exposed,
                pns_mitigated = t.pns_mitigated + r.pns_mitigated,
                pns_patched = t.pns_patched + r.pns_patched,
                pns_unknown = t.pns_unknown + r.pns_unknown,
                post_compromised = t.post_compromised + r.post_compromised,
                post_attempted = t.post_attempted + r.post_attempted,
                post_exposed = t.post_exposed + r.post_exposed,
                post_mitigated = t.post_mitigated + r.post_mitigated,
                post_patched = t.post_patched + r.post_patched,
                post_unknown = t.post_unknown + r.post_unknown
            WHERE t.org_id = r.org_id;
        END LOOP;
    ELSIF TG_OP = 'DELETE' THEN
        
        FOR r IN WITH d AS (SELECT org_id, -1 AS servers, -1 * (state = 'compromised')::int AS s_compromised, -1 * (state = 'attempted')::int AS s_attempted, -1 * (state = 'exposed')::int AS s_exposed, -1 * (state = 'mitigated')::int AS s_mitigated, -1 * (state = 'patched')::int AS s_patched, -1 * (state = 'unknown')::int AS s_unknown, -1 * (st_pl = 'compromised')::int AS pl_compromised, -1 * (st_pl = 'attempted')::int AS pl_attempted, -1 * (st_pl = 'exposed')::int AS pl_exposed, -1 * (st_pl = 'mitigated')::int AS pl_mitigated, -1 * (st_pl = 'patched')::int AS pl_patched, -1 * (st_pl = 'unknown')::int AS pl_unknown, -1 * (st_ps = 'compromised')::int AS ps_compromised, -1 * (st_ps = 'attempted')::int AS ps_attempted, -1 * (st_ps = 'exposed')::int AS ps_exposed, -1 * (st_ps = 'mitigated')::int AS ps_mitigated, -1 * (st_ps = 'patched')::int AS ps_patched, -1 * (st_ps = 'unknown')::int AS ps_unknown, -1 * (st_pns = 'compromised')::int AS pns_compromised, -1 * (st_pns = 'attempted')::int AS pns_attempted, -1 * (st_pns = 'exposed')::int AS pns_exposed, -1 * (st_pns = 'mitigated')::int AS pns_mitigated, -1 * (st_pns = 'patched')::int AS pns_patched, -1 * (st_pns = 'unknown')::int AS pns_unknown, -1 * (st_post = 'compromised')::int AS post_compromised, -1 * (st_post = 'attempted')::int AS post_attempted, -1 * (st_post = 'exposed')::int AS post_exposed, -1 * (st_post = 'mitigated')::int AS post_mitigated, -1 * (st_post = 'patched')::int AS post_patched, -1 * (st_post = 'unknown')::int AS post_unknown FROM old_rows),
            o AS (SELECT org_id, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM d GROUP BY org_id)
            SELECT * FROM o UNION ALL SELECT 0, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM o
        LOOP
            CONTINUE WHEN r.servers IS NULL OR NOT (r.servers <> 0 OR r.s_compromised <> 0 OR r.s_attempted <> 0 OR r.s_exposed <> 0 OR r.s_mitigated <> 0 OR r.s_patched <> 0 OR r.s_unknown <> 0 OR r.pl_compromised <> 0 OR r.pl_attempted <> 0 OR r.pl_exposed <> 0 OR r.pl_mitigated <> 0 OR r.pl_patched <> 0 OR r.pl_unknown <> 0 OR r.ps_compromised <> 0 OR r.ps_attempted <> 0 OR r.ps_exposed <> 0 OR r.ps_mitigated <> 0 OR r.ps_patched <> 0 OR r.ps_unknown <> 0 OR r.pns_compromised <> 0 OR r.pns_attempted <> 0 OR r.pns_exposed <> 0 OR r.pns_mitigated <> 0 OR r.pns_patched <> 0 OR r.pns_unknown <> 0 OR r.post_compromised <> 0 OR r.post_attempted <> 0 OR r.post_exposed <> 0 OR r.post_mitigated <> 0 OR r.post_patched <> 0 OR r.post_unknown <> 0);
            UPDATE org_stats t SET
                servers = t.servers + r.servers,
                s_compromised = t.s_compromised + r.s_compromised,
                s_attempted = t.s_attempted + r.s_attempted,
                s_exposed = t.s_exposed + r.s_exposed,
                s_mitigated = t.s_mitigated + r.s_mitigated,
                s_patched = t.s_patched + r.s_patched,
                s_unknown = t.s_unknown + r.s_unknown,
                pl_compromised = t.pl_compromised + r.pl_compromised,
                pl_attempted = t.pl_attempted + r.pl_attempted,
                pl_exposed = t.pl_exposed + r.pl_exposed,
                pl_mitigated = t.pl_mitigated + r.pl_mitigated,
                pl_patched = t.pl_patched + r.pl_patched,
                pl_unknown = t.pl_unknown + r.pl_unknown,
                ps_compromised = t.ps_compromised + r.ps_compromised,
                ps_attempted = t.ps_attempted + r.ps_attempted,
                ps_exposed = t.ps_exposed + r.ps_exposed,
                ps_mitigated = t.ps_mitigated + r.ps_mitigated,
                ps_patched = t.ps_patched + r.ps_patched,
                ps_unknown = t.ps_unknown + r.ps_unknown,
                pns_compromised = t.pns_compromised + r.pns_compromised,
                pns_attempted = t.pns_attempted + r.pns_attempted,
                pns_exposed = t.pns_exposed + r.pns_exposed,
                pns_mitigated = t.pns_mitigated + r.pns_mitigated,
                pns_patched = t.pns_patched + r.pns_patched,
                pns_unknown = t.pns_unknown + r.pns_unknown,
                post_compromised = t.post_compromised + r.post_compromised,
                post_attempted = t.post_attempted + r.post_attempted,
                post_exposed = t.post_exposed + r.post_exposed,
                post_mitigated = t.post_mitigated + r.post_mitigated,
                post_patched = t.post_patched + r.post_patched,
                post_unknown = t.post_unknown + r.post_unknown
            WHERE t.org_id = r.org_id;
        END LOOP;
    ELSE
        INSERT INTO org_stats (org_id) SELECT DISTINCT org_id FROM new_rows ON CONFLICT (org_id) DO NOTHING;
        FOR r IN WITH d AS (SELECT org_id, 1 AS servers, 1 * (state = 'compromised')::int AS s_compromised, 1 * (state = 'attempted')::int AS s_attempted, 1 * (state = 'exposed')::int AS s_exposed, 1 * (state = 'mitigated')::int AS s_mitigated, 1 * (state = 'patched')::int AS s_patched, 1 * (state = 'unknown')::int AS s_unknown, 1 * (st_pl = 'compromised')::int AS pl_compromised, 1 * (st_pl = 'attempted')::int AS pl_attempted, 1 * (st_pl = 'exposed')::int AS pl_exposed, 1 * (st_pl = 'mitigated')::int AS pl_mitigated, 1 * (st_pl = 'patched')::int AS pl_patched, 1 * (st_pl = 'unknown')::int AS pl_unknown, 1 * (st_ps = 'compromised')::int AS ps_compromised, 1 * (st_ps = 'attempted')::int AS ps_attempted, 1 * (st_ps = 'exposed')::int AS ps_exposed, 1 * (st_ps = 'mitigated')::int AS ps_mitigated, 1 * (st_ps = 'patched')::int AS ps_patched, 1 * (st_ps = 'unknown')::int AS ps_unknown, 1 * (st_pns = 'compromised')::int AS pns_compromised, 1 * (st_pns = 'attempted')::int AS pns_attempted, 1 * (st_pns = 'exposed')::int AS pns_exposed, 1 * (st_pns = 'mitigated')::int AS pns_mitigated, 1 * (st_pns = 'patched')::int AS pns_patched, 1 * (st_pns = 'unknown')::int AS pns_unknown, 1 * (st_post = 'compromised')::int AS post_compromised, 1 * (st_post = 'attempted')::int AS post_attempted, 1 * (st_post = 'exposed')::int AS post_exposed, 1 * (st_post = 'mitigated')::int AS post_mitigated, 1 * (st_post = 'patched')::int AS post_patched, 1 * (st_post = 'unknown')::int AS post_unknown FROM new_rows UNION ALL SELECT org_id, -1 AS servers, -1 * (state = 'compromised')::int AS s_compromised, -1 * (state = 'attempted')::int AS s_attempted, -1 * (state = 'exposed')::int AS s_exposed, -1 * (state = 'mitigated')::int AS s_mitigated, -1 * (state = 'patched')::int AS s_patched, -1 * (state = 'unknown')::int AS s_unknown, -1 * (st_pl = 'compromised')::int AS pl_compromised, -1 * (st_pl = 'attempted')::int AS pl_attempted, -1 * (st_pl = 'exposed')::int AS pl_exposed, -1 * (st_pl = 'mitigated')::int AS pl_mitigated, -1 * (st_pl = 'patched')::int AS pl_patched, -1 * (st_pl = 'unknown')::int AS pl_unknown, -1 * (st_ps = 'compromised')::int AS ps_compromised, -1 * (st_ps = 'attempted')::int AS ps_attempted, -1 * (st_ps = 'exposed')::int AS ps_exposed, -1 * (st_ps = 'mitigated')::int AS ps_mitigated, -1 * (st_ps = 'patched')::int AS ps_patched, -1 * (st_ps = 'unknown')::int AS ps_unknown, -1 * (st_pns = 'compromised')::int AS pns_compromised, -1 * (st_pns = 'attempted')::int AS pns_attempted, -1 * (st_pns = 'exposed')::int AS pns_exposed, -1 * (st_pns = 'mitigated')::int AS pns_mitigated, -1 * (st_pns = 'patched')::int AS pns_patched, -1 * (st_pns = 'unknown')::int AS pns_unknown, -1 * (st_post = 'compromised')::int AS post_compromised, -1 * (st_post = 'attempted')::int AS post_attempted, -1 * (st_post = 'exposed')::int AS post_exposed, -1 * (st_post = 'mitigated')::int AS post_mitigated, -1 * (st_post = 'patched')::int AS post_patched, -1 * (st_post = 'unknown')::int AS post_unknown FROM old_rows),
            o AS (SELECT org_id, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM d GROUP BY org_id)
            SELECT * FROM o UNION ALL SELECT 0, SUM(servers)::bigint AS servers, SUM(s_compromised)::bigint AS s_compromised, SUM(s_attempted)::bigint AS s_attempted, SUM(s_exposed)::bigint AS s_exposed, SUM(s_mitigated)::bigint AS s_mitigated, SUM(s_patched)::bigint AS s_patched, SUM(s_unknown)::bigint AS s_unknown, SUM(pl_compromised)::bigint AS pl_compromised, SUM(pl_attempted)::bigint AS pl_attempted, SUM(pl_exposed)::bigint AS pl_exposed, SUM(pl_mitigated)::bigint AS pl_mitigated, SUM(pl_patched)::bigint AS pl_patched, SUM(pl_unknown)::bigint AS pl_unknown, SUM(ps_compromised)::bigint AS ps_compromised, SUM(ps_attempted)::bigint AS ps_attempted, SUM(ps_exposed)::bigint AS ps_exposed, SUM(ps_mitigated)::bigint AS ps_mitigated, SUM(ps_patched)::bigint AS ps_patched, SUM(ps_unknown)::bigint AS ps_unknown, SUM(pns_compromised)::bigint AS pns_compromised, SUM(pns_attempted)::bigint AS pns_attempted, SUM(pns_exposed)::bigint AS pns_exposed, SUM(pns_mitigated)::bigint AS pns_mitigated, SUM(pns_patched)::bigint AS pns_patched, SUM(pns_unknown)::bigint AS pns_unknown, SUM(post_compromised)::bigint AS post_compromised, SUM(post_attempted)::bigint AS post_attempted, SUM(post_exposed)::bigint AS post_exposed, SUM(post_mitigated)::bigint AS post_mitigated, SUM(post_patched)::bigint AS post_patched, SUM(post_unknown)::bigint AS post_unknown FROM o
        LOOP
            CONTINUE WHEN r.servers IS NULL OR NOT (r.servers <> 0 OR r.s_compromised <> 0 OR r.s_attempted <> 0 OR r.s_exposed <> 0 OR r.s_mitigated <> 0 OR r.s_patched <> 0 OR r.s_unknown <> 0 OR r.pl_compromised <> 0 OR r.pl_attempted <> 0 OR r.pl_exposed <> 0 OR r.pl_mitigated <> 0 OR r.pl_patched <> 0 OR r.pl_unknown <> 0 OR r.ps_compromised <> 0 OR r.ps_attempted <> 0 OR r.ps_exposed <> 0 OR r.ps_mitigated <> 0 OR r.ps_patched <> 0 OR r.ps_unknown <> 0 OR r.pns_compromised <> 0 OR r.pns_attempted <> 0 OR r.pns_exposed <> 0 OR r.pns_mitigated <> 0 OR r.pns_patched <> 0 OR r.pns_unknown <> 0 OR r.post_compromised <> 0 OR r.post_attempted <> 0 OR r.post_exposed <> 0 OR r.post_mitigated <> 0 OR r.post_patched <> 0 OR r.post_unknown <> 0);
            UPDATE org_stats t SET
                servers = t.servers + r.servers,
                s_compromised = t.s_compromised + r.s_compromised,
                s_attempted = t.s_attempted + r.s_attempted,
                s_exposed = t.s_exposed + r.s_exposed,
                s_mitigated = t.s_mitigated + r.s_mitigated,
                s_patched = t.s_patched + r.s_patched,
                s_unknown = t.s_unknown + r.s_unknown,
                pl_compromised = t.pl_compromised + r.pl_compromised,
                pl_attempted = t.pl_attempted + r.pl_attempted,
                pl_exposed = t.pl_exposed + r.pl_exposed,
                pl_mitigated = t.pl_mitigated + r.pl_mitigated,
                pl_patched = t.pl_patched + r.pl_patched,
                pl_unknown = t.pl_unknown + r.pl_unknown,
                ps_compromised = t.ps_compromised + r.ps_compromised,
                ps_attempted = t.ps_attempted + r.ps_attempted,
                ps_exposed = t.ps_exposed + r.ps_exposed,
                ps_mitigated = t.ps_mitigated + r.ps_mitigated,
                ps_patched = t.ps_patched + r.ps_patched,
                ps_unknown = t.ps_unknown + r.ps_unknown,
                pns_compromised = t.pns_compromised + r.pns_compromised,
                pns_attempted = t.pns_attempted + r.pns_attempted,
                pns_exposed = t.pns_exposed + r.pns_exposed,
                pns_mitigated = t.pns_mitigated + r.pns_mitigated,
                pns_patched = t.pns_patched + r.pns_patched,
                pns_unknown = t.pns_unknown + r.pns_unknown,
                post_compromised = t.post_compromised + r.post_compromised,
                post_attempted = t.post_attempted + r.post_attempted,
                post_exposed = t.post_exposed + r.post_exposed,
                post_mitigated = t.post_mitigated + r.post_mitigated,
                post_patched = t.post_patched + r.post_patched,
                post_unknown = t.post_unknown + r.post_unknown
            WHERE t.org_id = r.org_id;
        END LOOP;
    END IF;
    PERFORM set_config('exhunt.org', prev_scope, true);
    RETURN NULL;
END $$;

CREATE TRIGGER servers_count_insert AFTER INSERT ON servers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION exhunt_count_servers();
CREATE TRIGGER servers_count_delete AFTER DELETE ON servers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION exhunt_count_servers();
CREATE TRIGGER servers_count_update AFTER UPDATE ON servers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION exhunt_count_servers();

-- Existing data: every organisation gets its row, the fleet row 0; servers are counted
-- 'unknown' until the store computes their latest state (latest_v = 0), which the triggers then
-- count; the curve is counted from the observations and scans as the store counts it.
INSERT INTO org_stats (org_id) VALUES (0);
INSERT INTO org_stats (org_id) SELECT id FROM orgs;
UPDATE org_stats SET orgs = (SELECT COUNT(*) FROM orgs) WHERE org_id = 0;
UPDATE org_stats SET servers = (SELECT COUNT(*) FROM servers s WHERE s.org_id = org_stats.org_id OR org_stats.org_id = 0),
    s_unknown = (SELECT COUNT(*) FROM servers s WHERE s.org_id = org_stats.org_id OR org_stats.org_id = 0),
    pl_unknown = (SELECT COUNT(*) FROM servers s WHERE s.org_id = org_stats.org_id OR org_stats.org_id = 0),
    ps_unknown = (SELECT COUNT(*) FROM servers s WHERE s.org_id = org_stats.org_id OR org_stats.org_id = 0),
    pns_unknown = (SELECT COUNT(*) FROM servers s WHERE s.org_id = org_stats.org_id OR org_stats.org_id = 0),
    post_unknown = (SELECT COUNT(*) FROM servers s WHERE s.org_id = org_stats.org_id OR org_stats.org_id = 0);
INSERT INTO org_days (org_id, day, exposed, compromised)
SELECT org_id, day, SUM(exposed), SUM(compromised) FROM (
    SELECT o.org_id AS org_id, substr(o.seen, 1, 10) AS day,
        COUNT(DISTINCT CASE WHEN o.state = 'vulnerable' THEN o.server_id END) AS exposed,
        COUNT(DISTINCT CASE WHEN o.state = 'compromised' THEN o.server_id END) AS compromised
    FROM observations o WHERE o.server_id IS NOT NULL AND o.org_id IS NOT NULL
        AND o.state IN ('vulnerable', 'compromised')
    GROUP BY o.org_id, substr(o.seen, 1, 10)
    UNION ALL
    SELECT r.org_id, substr(r.finished, 1, 10), 0, COUNT(DISTINCT r.server_id)
    FROM scan_results r WHERE r.verdict = 'compromised'
    GROUP BY r.org_id, substr(r.finished, 1, 10)
) t GROUP BY org_id, day;
INSERT INTO org_days (org_id, day, exposed, compromised)
SELECT 0, day, SUM(exposed), SUM(compromised) FROM org_days GROUP BY day;

-- Row-level security: an organisation reads its own rows; the fleet row (org_id 0) is read
-- with '*' only (exhunt_visible(0) is false for every organisation). Rows are written with '*'
-- only: by the triggers above (which switch to '*' for their own statements and back) and by
-- the store's recount, never by a tenant's statement.
ALTER TABLE org_stats ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_stats FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON org_stats FOR SELECT USING (exhunt_visible(org_id));
CREATE POLICY operator_write ON org_stats FOR ALL USING (exhunt_all()) WITH CHECK (exhunt_all());

ALTER TABLE org_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_days FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON org_days FOR SELECT USING (exhunt_visible(org_id));
CREATE POLICY operator_write ON org_days FOR ALL USING (exhunt_all()) WITH CHECK (exhunt_all());

SELECT set_config('exhunt.org', '', false);
