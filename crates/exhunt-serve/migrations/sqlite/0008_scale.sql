-- Scale (issue 18): what the dashboard counts, kept in the database instead of read server by
-- server. The PostgreSQL twin is ../postgres/0008_scale.sql (same tables and columns;
-- it adds row-level security, and its triggers are PL/pgSQL).
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


ALTER TABLE servers ADD COLUMN last_result_id BIGINT;
ALTER TABLE servers ADD COLUMN last_verdict TEXT;
ALTER TABLE servers ADD COLUMN last_verdicts TEXT;
ALTER TABLE servers ADD COLUMN last_scanned TEXT;
ALTER TABLE servers ADD COLUMN last_obs_id BIGINT;
ALTER TABLE servers ADD COLUMN last_state TEXT;
ALTER TABLE servers ADD COLUMN last_campaigns TEXT;
ALTER TABLE servers ADD COLUMN last_observed TEXT;
ALTER TABLE servers ADD COLUMN last_build TEXT;
ALTER TABLE servers ADD COLUMN last_build_obs_id BIGINT;
ALTER TABLE servers ADD COLUMN last_build_seen TEXT;
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
    day TEXT NOT NULL,
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

CREATE TRIGGER orgs_count_insert AFTER INSERT ON orgs BEGIN
    INSERT OR IGNORE INTO org_stats (org_id) VALUES (NEW.id);
    UPDATE org_stats SET orgs = orgs + 1 WHERE org_id = 0;
END;

CREATE TRIGGER orgs_count_delete AFTER DELETE ON orgs BEGIN
    DELETE FROM org_stats WHERE org_id = OLD.id;
    UPDATE org_stats SET orgs = orgs - 1 WHERE org_id = 0;
END;

CREATE TRIGGER servers_count_insert AFTER INSERT ON servers BEGIN
    INSERT OR IGNORE INTO org_stats (org_id) VALUES (NEW.org_id);
    UPDATE org_stats SET
        servers = servers + 1,
        s_compromised = s_compromised + (NEW.state = 'compromised'),
        s_attempted = s_attempted + (NEW.state = 'attempted'),
        s_exposed = s_exposed + (NEW.state = 'exposed'),
        s_mitigated = s_mitigated + (NEW.state = 'mitigated'),
        s_patched = s_patched + (NEW.state = 'patched'),
        s_unknown = s_unknown + (NEW.state = 'unknown'),
        pl_compromised = pl_compromised + (NEW.st_pl = 'compromised'),
        pl_attempted = pl_attempted + (NEW.st_pl = 'attempted'),
        pl_exposed = pl_exposed + (NEW.st_pl = 'exposed'),
        pl_mitigated = pl_mitigated + (NEW.st_pl = 'mitigated'),
        pl_patched = pl_patched + (NEW.st_pl = 'patched'),
        pl_unknown = pl_unknown + (NEW.st_pl = 'unknown'),
        ps_compromised = ps_compromised + (NEW.st_ps = 'compromised'),
        ps_attempted = ps_attempted + (NEW.st_ps = 'attempted'),
        ps_exposed = ps_exposed + (NEW.st_ps = 'exposed'),
        ps_mitigated = ps_mitigated + (NEW.st_ps = 'mitigated'),
        ps_patched = ps_patched + (NEW.st_ps = 'patched'),
        ps_unknown = ps_unknown + (NEW.st_ps = 'unknown'),
        pns_compromised = pns_compromised + (NEW.st_pns = 'compromised'),
        pns_attempted = pns_attempted + (NEW.st_pns = 'attempted'),
        pns_exposed = pns_exposed + (NEW.st_pns = 'exposed'),
        pns_mitigated = pns_mitigated + (NEW.st_pns = 'mitigated'),
        pns_patched = pns_patched + (NEW.st_pns = 'patched'),
        pns_unknown = pns_unknown + (NEW.st_pns = 'unknown'),
        post_compromised = post_compromised + (NEW.st_post = 'compromised'),
        post_attempted = post_attempted + (NEW.st_post = 'attempted'),
        post_exposed = post_exposed + (NEW.st_post = 'exposed'),
        post_mitigated = post_mitigated + (NEW.st_post = 'mitigated'),
        post_patched = post_patched + (NEW.st_post = 'patched'),
        post_unknown = post_unknown + (NEW.st_post = 'unknown')
    WHERE org_id IN (NEW.org_id, 0);
END;

CREATE TRIGGER servers_count_delete AFTER DELETE ON servers BEGIN
    UPDATE org_stats SET
        servers = servers - 1,
        s_compromised = s_compromised - (OLD.state = 'compromised'),
        s_attempted = s_attempted - (OLD.state = 'attempted'),
        s_exposed = s_exposed - (OLD.state = 'exposed'),
        s_mitigated = s_mitigated - (OLD.state = 'mitigated'),
        s_patched = s_patched - (OLD.state = 'patched'),
        s_unknown = s_unknown - (OLD.state = 'unknown'),
        pl_compromised = pl_compromised - (OLD.st_pl = 'compromised'),
        pl_attempted = pl_attempted - (OLD.st_pl = 'attempted'),
        pl_exposed = pl_exposed - (OLD.st_pl = 'exposed'),
        pl_mitigated = pl_mitigated - (OLD.st_pl = 'mitigated'),
        pl_patched = pl_patched - (OLD.st_pl = 'patched'),
        pl_unknown = pl_unknown - (OLD.st_pl = 'unknown'),
        ps_compromised = ps_compromised - (OLD.st_ps = 'compromised'),
        ps_attempted = ps_attempted - (OLD.st_ps = 'attempted'),
        ps_exposed = ps_exposed - (OLD.st_ps = 'exposed'),
        ps_mitigated = ps_mitigated - (OLD.st_ps = 'mitigated'),
        ps_patched = ps_patched - (OLD.st_ps = 'patched'),
        ps_unknown = ps_unknown - (OLD.st_ps = 'unknown'),
        pns_compromised = pns_compromised - (OLD.st_pns = 'compromised'),
        pns_attempted = pns_attempted - (OLD.st_pns = 'attempted'),
        pns_exposed = pns_exposed - (OLD.st_pns = 'exposed'),
        pns_mitigated = pns_mitigated - (OLD.st_pns = 'mitigated'),
        pns_patched = pns_patched - (OLD.st_pns = 'patched'),
        pns_unknown = pns_unknown - (OLD.st_pns = 'unknown'),
        post_compromised = post_compromised - (OLD.st_post = 'compromised'),
        post_attempted = post_attempted - (OLD.st_post = 'attempted'),
        post_exposed = post_exposed - (OLD.st_post = 'exposed'),
        post_mitigated = post_mitigated - (OLD.st_post = 'mitigated'),
        post_patched = post_patched - (OLD.st_post = 'patched'),
        post_unknown = post_unknown - (OLD.st_post = 'unknown')
    WHERE org_id IN (OLD.org_id, 0);
END;

CREATE TRIGGER servers_count_update AFTER UPDATE ON servers
WHEN OLD.org_id IS NOT NEW.org_id OR OLD.state IS NOT NEW.state OR OLD.st_pl IS NOT NEW.st_pl OR OLD.st_ps IS NOT NEW.st_ps OR OLD.st_pns IS NOT NEW.st_pns OR OLD.st_post IS NOT NEW.st_post BEGIN
    UPDATE org_stats SET
        servers = servers - 1,
        s_compromised = s_compromised - (OLD.state = 'compromised'),
        s_attempted = s_attempted - (OLD.state = 'attempted'),
        s_exposed = s_exposed - (OLD.state = 'exposed'),
        s_mitigated = s_mitigated - (OLD.state = 'mitigated'),
        s_patched = s_patched - (OLD.state = 'patched'),
        s_unknown = s_unknown - (OLD.state = 'unknown'),
        pl_compromised = pl_compromised - (OLD.st_pl = 'compromised'),
        pl_attempted = pl_attempted - (OLD.st_pl = 'attempted'),
        pl_exposed = pl_exposed - (OLD.st_pl = 'exposed'),
        pl_mitigated = pl_mitigated - (OLD.st_pl = 'mitigated'),
        pl_patched = pl_patched - (OLD.st_pl = 'patched'),
        pl_unknown = pl_unknown - (OLD.st_pl = 'unknown'),
        ps_compromised = ps_compromised - (OLD.st_ps = 'compromised'),
        ps_attempted = ps_attempted - (OLD.st_ps = 'attempted'),
        ps_exposed = ps_exposed - (OLD.st_ps = 'exposed'),
        ps_mitigated = ps_mitigated - (OLD.st_ps = 'mitigated'),
        ps_patched = ps_patched - (OLD.st_ps = 'patched'),
        ps_unknown = ps_unknown - (OLD.st_ps = 'unknown'),
        pns_compromised = pns_compromised - (OLD.st_pns = 'compromised'),
        pns_attempted = pns_attempted - (OLD.st_pns = 'attempted'),
        pns_exposed = pns_exposed - (OLD.st_pns = 'exposed'),
        pns_mitigated = pns_mitigated - (OLD.st_pns = 'mitigated'),
        pns_patched = pns_patched - (OLD.st_pns = 'patched'),
        pns_unknown = pns_unknown - (OLD.st_pns = 'unknown'),
        post_compromised = post_compromised - (OLD.st_post = 'compromised'),
        post_attempted = post_attempted - (OLD.st_post = 'attempted'),
        post_exposed = post_exposed - (OLD.st_post = 'exposed'),
        post_mitigated = post_mitigated - (OLD.st_post = 'mitigated'),
        post_patched = post_patched - (OLD.st_post = 'patched'),
        post_unknown = post_unknown - (OLD.st_post = 'unknown')
    WHERE org_id IN (OLD.org_id, 0);
    INSERT OR IGNORE INTO org_stats (org_id) VALUES (NEW.org_id);
    UPDATE org_stats SET
        servers = servers + 1,
        s_compromised = s_compromised + (NEW.state = 'compromised'),
        s_attempted = s_attempted + (NEW.state = 'attempted'),
        s_exposed = s_exposed + (NEW.state = 'exposed'),
        s_mitigated = s_mitigated + (NEW.state = 'mitigated'),
        s_patched = s_patched + (NEW.state = 'patched'),
        s_unknown = s_unknown + (NEW.state = 'unknown'),
        pl_compromised = pl_compromised + (NEW.st_pl = 'compromised'),
        pl_attempted = pl_attempted + (NEW.st_pl = 'attempted'),
        pl_exposed = pl_exposed + (NEW.st_pl = 'exposed'),
        pl_mitigated = pl_mitigated + (NEW.st_pl = 'mitigated'),
        pl_patched = pl_patched + (NEW.st_pl = 'patched'),
        pl_unknown = pl_unknown + (NEW.st_pl = 'unknown'),
        ps_compromised = ps_compromised + (NEW.st_ps = 'compromised'),
        ps_attempted = ps_attempted + (NEW.st_ps = 'attempted'),
        ps_exposed = ps_exposed + (NEW.st_ps = 'exposed'),
        ps_mitigated = ps_mitigated + (NEW.st_ps = 'mitigated'),
        ps_patched = ps_patched + (NEW.st_ps = 'patched'),
        ps_unknown = ps_unknown + (NEW.st_ps = 'unknown'),
        pns_compromised = pns_compromised + (NEW.st_pns = 'compromised'),
        pns_attempted = pns_attempted + (NEW.st_pns = 'attempted'),
        pns_exposed = pns_exposed + (NEW.st_pns = 'exposed'),
        pns_mitigated = pns_mitigated + (NEW.st_pns = 'mitigated'),
        pns_patched = pns_patched + (NEW.st_pns = 'patched'),
        pns_unknown = pns_unknown + (NEW.st_pns = 'unknown'),
        post_compromised = post_compromised + (NEW.st_post = 'compromised'),
        post_attempted = post_attempted + (NEW.st_post = 'attempted'),
        post_exposed = post_exposed + (NEW.st_post = 'exposed'),
        post_mitigated = post_mitigated + (NEW.st_post = 'mitigated'),
        post_patched = post_patched + (NEW.st_post = 'patched'),
        post_unknown = post_unknown + (NEW.st_post = 'unknown')
    WHERE org_id IN (NEW.org_id, 0);
END;

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
