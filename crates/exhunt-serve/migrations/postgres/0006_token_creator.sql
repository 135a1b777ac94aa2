-- Who made each token: revoking an uploader's token revokes the tokens it made (and theirs),
-- so a stolen uploader token cannot leave working tokens behind. NULL: made at first start, or
-- before this migration.
ALTER TABLE tokens ADD COLUMN created_by BIGINT REFERENCES tokens(id);
CREATE INDEX tokens_created_by ON tokens(created_by);
