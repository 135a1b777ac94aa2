-- The scopes' revision (issue 18, ingest speed). Every upload assigns its rows by the
-- organisations' scopes; a server keeps the matcher built from them between uploads and
-- rebuilds it when this number has moved. Triggers move it on every change of org_scopes
-- (the store's, a replica's, SQL by hand), so no instance assigns by scopes older than the
-- ones committed before its upload began. The PostgreSQL twin is ../postgres/0010_scope_revision.sql.
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
