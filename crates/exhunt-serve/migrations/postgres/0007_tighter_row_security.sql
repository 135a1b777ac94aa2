-- Row-level security, tightened (migration 3 stays as applied). Its FOR ALL policies let a
-- transaction scoped to one organisation write that organisation's `orgs` and `org_scopes`
-- rows (widen its own scope) and insert a `tokens` row with role 'operator' (which the server
-- treats as every organisation's), and update or delete audit entries. Now:
--   * orgs and org_scopes: read by their organisation, written with '*' only;
--   * tokens: an operator token has no organisation and every other token has one (CHECK);
--     an organisation's transaction reads, makes and revokes its own non-operator tokens only;
--   * audit: appended and read, never changed nor deleted (not even with '*').
-- ../sqlite/0007_tighter_row_security.sql is its empty twin.

CREATE FUNCTION exhunt_all() RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(current_setting('exhunt.org', true), '') = '*'
$$;

ALTER TABLE tokens ADD CONSTRAINT tokens_operator_has_no_org
    CHECK ((role = 'operator') = (org_id IS NULL));

DROP POLICY tenant ON orgs;
CREATE POLICY tenant_read ON orgs FOR SELECT USING (exhunt_visible(id));
CREATE POLICY operator_write ON orgs FOR ALL USING (exhunt_all()) WITH CHECK (exhunt_all());

DROP POLICY tenant ON org_scopes;
CREATE POLICY tenant_read ON org_scopes FOR SELECT USING (exhunt_visible(org_id));
CREATE POLICY operator_write ON org_scopes FOR ALL USING (exhunt_all()) WITH CHECK (exhunt_all());

DROP POLICY tenant ON tokens;
CREATE POLICY tenant_read ON tokens FOR SELECT USING (exhunt_visible(org_id));
CREATE POLICY tenant_insert ON tokens FOR INSERT
    WITH CHECK (exhunt_visible(org_id) AND role <> 'operator');
CREATE POLICY tenant_update ON tokens FOR UPDATE
    USING (exhunt_visible(org_id) AND role <> 'operator')
    WITH CHECK (exhunt_visible(org_id) AND role <> 'operator');
CREATE POLICY operator_write ON tokens FOR ALL USING (exhunt_all()) WITH CHECK (exhunt_all());

DROP POLICY tenant ON audit;
CREATE POLICY tenant_read ON audit FOR SELECT USING (exhunt_visible(org_id));
CREATE POLICY append ON audit FOR INSERT WITH CHECK (exhunt_visible(org_id));
