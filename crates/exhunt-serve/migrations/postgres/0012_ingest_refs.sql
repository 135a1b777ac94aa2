-- Ingest speed, third part (issue 18). The SQLite twin is ../sqlite/0012_ingest_refs.sql.
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

-- 3. org_stats keeps room on its pages, so that rewriting an organisation's counts without
--    changing an indexed one (servers, s_compromised, s_exposed) stays on its page.
ALTER TABLE org_stats SET (fillfactor = 50);

-- 4. An upload may pause the count triggers of servers' inserts and updates for the rest of
--    its transaction (`exhunt.counts_paused` = '1', set with set_config(..., true)) and recount
--    the organisations it touched once at the end, as SQLite's uploads do (migration 10): an
--    upload over 38,000 organisations rewrote their org_stats rows once per statement, eleven
--    times, measured at 1.5 s. Deletes are always counted.
DROP TRIGGER servers_count_insert ON servers;
DROP TRIGGER servers_count_update ON servers;
CREATE TRIGGER servers_count_insert AFTER INSERT ON servers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (COALESCE(current_setting('exhunt.counts_paused', true), '') <> '1')
    EXECUTE FUNCTION exhunt_count_servers();
CREATE TRIGGER servers_count_update AFTER UPDATE ON servers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (COALESCE(current_setting('exhunt.counts_paused', true), '') <> '1')
    EXECUTE FUNCTION exhunt_count_servers();

-- 5. The foreign keys observations.org_id -> orgs, observations.server_id -> servers and
--    servers.org_id -> orgs become statement triggers that keep the same rules. A foreign key
--    is checked row by row, each check a query that locks the row it finds: 0.5 s of a
--    50,000-row upload, measured, and as much again when the upload's own new servers are
--    rewritten in the same transaction (a key is checked again then, changed or not). The
--    triggers check a statement's rows in one query each, and keep what the keys kept:
--    - a row naming a missing organisation or server is refused (foreign_key_violation): an
--      insert's rows are checked once per statement, an update's row by row, only when it
--      changes a key (as a key would: the rewrite of a server's latest state is not checked);
--    - deleting an organisation deletes its servers and observations; deleting a server
--      detaches its observations (server_id NULL);
--    - a check and a delete cannot cross: both take the counts lock (store/latest.rs,
--      COUNTS_LOCK), which every writer of exhunt serve takes first anyway, so a row cannot
--      be written for a server or organisation deleted meanwhile (the key's row lock did that).
--    Every statement that writes servers or observations, or deletes organisations, takes the
--    lock before its first row (BEFORE ... FOR EACH STATEMENT): a writer by hand waits for an
--    upload instead of locking rows the upload needs and then waiting for the lock (a
--    deadlock), and cannot change a server's state in the middle of an upload's recount.
--    They see every organisation's rows (exhunt.org '*' while they run), as a key does.
--    Like exhunt's own transactions, they expect READ COMMITTED: in a REPEATABLE READ or
--    SERIALIZABLE transaction of someone's own, a check reads that transaction's snapshot,
--    where a key would have failed with a serialization error.
--    Not kept: a key refused TRUNCATE of orgs or servers and a change of their ids; exhunt
--    does neither (ids are identities, and no statement of it truncates).
ALTER TABLE observations DROP CONSTRAINT observations_org_id_fkey;
ALTER TABLE observations DROP CONSTRAINT observations_server_id_fkey;
ALTER TABLE servers DROP CONSTRAINT servers_org_id_fkey;

CREATE FUNCTION exhunt_refs_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- COUNTS_LOCK of store/latest.rs (0x6578_6875_6e74_2d63).
    PERFORM pg_advisory_xact_lock(7311708848609570147);
    RETURN NULL;
END
$$;

CREATE FUNCTION exhunt_refs_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev_scope TEXT := COALESCE(current_setting('exhunt.org', true), '');
    missing TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock(7311708848609570147);
    PERFORM set_config('exhunt.org', '*', true);
    IF TG_LEVEL = 'STATEMENT' THEN
        -- An insert: its rows, one query per key.
        SELECT 'organisation ' || n.org_id INTO missing FROM new_rows n
            WHERE n.org_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM orgs o WHERE o.id = n.org_id)
            LIMIT 1;
        IF missing IS NULL AND TG_TABLE_NAME = 'observations' THEN
            SELECT 'server ' || n.server_id INTO missing FROM new_rows n
                WHERE n.server_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM servers s WHERE s.id = n.server_id)
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

CREATE FUNCTION exhunt_refs_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev_scope TEXT := COALESCE(current_setting('exhunt.org', true), '');
BEGIN
    PERFORM set_config('exhunt.org', '*', true);
    IF TG_TABLE_NAME = 'orgs' THEN
        DELETE FROM observations WHERE org_id IN (SELECT id FROM old_rows);
        DELETE FROM servers WHERE org_id IN (SELECT id FROM old_rows);
    ELSE
        UPDATE observations SET server_id = NULL WHERE server_id IN (SELECT id FROM old_rows);
    END IF;
    PERFORM set_config('exhunt.org', prev_scope, true);
    RETURN NULL;
END
$$;

CREATE TRIGGER observations_refs_insert AFTER INSERT ON observations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION exhunt_refs_check();
CREATE TRIGGER observations_refs_update AFTER UPDATE OF org_id, server_id ON observations
    FOR EACH ROW WHEN ((NEW.org_id IS DISTINCT FROM OLD.org_id AND NEW.org_id IS NOT NULL)
        OR (NEW.server_id IS DISTINCT FROM OLD.server_id AND NEW.server_id IS NOT NULL))
    EXECUTE FUNCTION exhunt_refs_check();
CREATE TRIGGER servers_refs_insert AFTER INSERT ON servers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION exhunt_refs_check();
CREATE TRIGGER servers_refs_update AFTER UPDATE OF org_id ON servers
    FOR EACH ROW WHEN (NEW.org_id IS DISTINCT FROM OLD.org_id AND NEW.org_id IS NOT NULL)
    EXECUTE FUNCTION exhunt_refs_check();
CREATE TRIGGER orgs_refs_lock BEFORE DELETE ON orgs
    FOR EACH STATEMENT EXECUTE FUNCTION exhunt_refs_lock();
CREATE TRIGGER servers_refs_lock BEFORE INSERT OR UPDATE OR DELETE ON servers
    FOR EACH STATEMENT EXECUTE FUNCTION exhunt_refs_lock();
CREATE TRIGGER observations_refs_lock BEFORE INSERT OR UPDATE ON observations
    FOR EACH STATEMENT EXECUTE FUNCTION exhunt_refs_lock();
CREATE TRIGGER orgs_refs_cascade AFTER DELETE ON orgs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION exhunt_refs_cascade();
CREATE TRIGGER servers_refs_cascade AFTER DELETE ON servers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION exhunt_refs_cascade();
