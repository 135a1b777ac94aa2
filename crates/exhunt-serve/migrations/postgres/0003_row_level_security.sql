-- Row-level security (PostgreSQL only; ../sqlite/0003_row_level_security.sql is its empty twin,
-- so that both engines count the same versions). The application narrows every query by the
-- caller's organisation; these policies make the database refuse the same rows on its own.
--
-- Each transaction of exhunt serve sets `exhunt.org` (set_config(..., true)): an organisation
-- id, or '*' for an operator and for the server's own lookups (tokens, sessions, scopes for
-- assignment). Unset, a connection sees and writes no tenant row. FORCE makes the policies
-- apply to the tables' owner too; a superuser bypasses them all, so exhunt serve must connect
-- as an ordinary role.

CREATE FUNCTION exhunt_visible(org BIGINT) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(current_setting('exhunt.org', true), '') = '*'
        OR (org IS NOT NULL AND COALESCE(current_setting('exhunt.org', true), '') = org::text)
$$;

ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
ALTER TABLE orgs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON orgs USING (exhunt_visible(id)) WITH CHECK (exhunt_visible(id));

ALTER TABLE org_scopes ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_scopes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON org_scopes USING (exhunt_visible(org_id)) WITH CHECK (exhunt_visible(org_id));

ALTER TABLE tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON tokens USING (exhunt_visible(org_id)) WITH CHECK (exhunt_visible(org_id));

ALTER TABLE servers ENABLE ROW LEVEL SECURITY;
ALTER TABLE servers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON servers USING (exhunt_visible(org_id)) WITH CHECK (exhunt_visible(org_id));

ALTER TABLE scan_docs ENABLE ROW LEVEL SECURITY;
ALTER TABLE scan_docs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON scan_docs USING (exhunt_visible(org_id)) WITH CHECK (exhunt_visible(org_id));

ALTER TABLE scan_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE scan_results FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON scan_results USING (exhunt_visible(org_id)) WITH CHECK (exhunt_visible(org_id));

-- Unassigned observations (org_id NULL) are visible with '*' only.
ALTER TABLE observations ENABLE ROW LEVEL SECURITY;
ALTER TABLE observations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON observations USING (exhunt_visible(org_id)) WITH CHECK (exhunt_visible(org_id));

-- A tenant reads and writes its organisation's audit entries; operators' entries without an
-- organisation are written and read with '*'.
ALTER TABLE audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON audit USING (exhunt_visible(org_id)) WITH CHECK (exhunt_visible(org_id));

-- Sessions are the server's own business.
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY server_only ON sessions
    USING (COALESCE(current_setting('exhunt.org', true), '') = '*')
    WITH CHECK (COALESCE(current_setting('exhunt.org', true), '') = '*');
