-- Ingest speed (issue 18): the scopes' revision, and counting paused for a bulk upload.
--
-- 1. The scopes' revision. Every upload assigns its rows by the
-- organisations' scopes; a server keeps the matcher built from them between uploads and
-- rebuilds it when this number has moved. Triggers move it on every change of org_scopes
-- (the store's, a replica's, SQL by hand), so no instance assigns by scopes older than the
-- ones committed before its upload began. The PostgreSQL twin is ../postgres/0010_ingest_speed.sql.
CREATE TABLE scope_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rev BIGINT NOT NULL
);
INSERT INTO scope_revision (id, rev) VALUES (1, 1);

CREATE TRIGGER org_scopes_rev_insert AFTER INSERT ON org_scopes BEGIN
    UPDATE scope_revision SET rev = rev + 1 WHERE id = 1;
END;
CREATE TRIGGER org_scopes_rev_update AFTER UPDATE ON org_scopes BEGIN
    UPDATE scope_revision SET rev = rev + 1 WHERE id = 1;
END;
CREATE TRIGGER org_scopes_rev_delete AFTER DELETE ON org_scopes BEGIN
    UPDATE scope_revision SET rev = rev + 1 WHERE id = 1;
END;

-- 2. Counting paused. SQLite's triggers run once per row: a bulk upload that makes or moves
--    50,000 servers would update org_stats 100,000 times. While the upload's transaction holds
--    a row in counts_paused, the count triggers of servers' inserts and updates stand still,
--    and the store recounts the organisations the upload touched, and the fleet, from the
--    servers themselves before it commits (store/latest.rs, recount_orgs). The row is never
--    committed (it is deleted in the same transaction), so every other writer (a replica, SQL
--    by hand) is counted by the triggers as before. Deletes are always counted by trigger.
CREATE TABLE counts_paused (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

DROP TRIGGER servers_count_insert;
DROP TRIGGER servers_count_update;

CREATE TRIGGER servers_count_insert AFTER INSERT ON servers
WHEN NOT EXISTS (SELECT 1 FROM counts_paused) BEGIN
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


CREATE TRIGGER servers_count_update AFTER UPDATE ON servers
WHEN NOT EXISTS (SELECT 1 FROM counts_paused) AND (OLD.org_id IS NOT NEW.org_id OR OLD.state IS NOT NEW.state OR OLD.st_pl IS NOT NEW.st_pl OR OLD.st_ps IS NOT NEW.st_ps OR OLD.st_pns IS NOT NEW.st_pns OR OLD.st_post IS NOT NEW.st_post) BEGIN
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

