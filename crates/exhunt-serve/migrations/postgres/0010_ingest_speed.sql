-- Ingest speed (issue 18): the scopes' revision, and counting paused for a bulk upload.
--
-- 1. The scopes' revision. Every upload assigns its rows by the
-- organisations' scopes; a server keeps the matcher built from them between uploads and
-- rebuilds it when this number has moved. A statement trigger moves it on every change of
-- org_scopes (the store's, a replica's, SQL by hand), so no instance assigns by scopes older
-- than the ones committed before its upload began. The SQLite twin is
-- ../sqlite/0010_ingest_speed.sql. The table holds no organisation's data (one number), so
-- it has no row-level policy; only org_scopes' writers (operators) move it.
CREATE TABLE scope_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rev BIGINT NOT NULL
);
INSERT INTO scope_revision (id, rev) VALUES (1, 1);

CREATE FUNCTION exhunt_scope_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE scope_revision SET rev = rev + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER org_scopes_rev AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON org_scopes
    FOR EACH STATEMENT EXECUTE FUNCTION exhunt_scope_revision();

-- 2. Counting paused: used on SQLite only, whose triggers run once per row (see the twin).
--    PostgreSQL's count triggers run once per statement, over its transition tables, so they
--    are never paused; the table exists so that both engines have one schema.
CREATE TABLE counts_paused (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);
