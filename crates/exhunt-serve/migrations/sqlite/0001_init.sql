-- exhunt serve, schema version 1 (SQLite). The PostgreSQL twin is ../postgres/0001_init.sql:
-- same tables, same columns, same meaning; only the engine's spelling differs (identity
-- columns, collation). A test compares the two.
-- Times are RFC 3339 UTC text with milliseconds ("2026-11-30T10:00:00.000Z"): sortable as text.

CREATE TABLE orgs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    contacts TEXT NOT NULL,
    created TEXT NOT NULL
);

-- Scope of an organisation. kind: cidr, asn or domain. For a CIDR: family 4 or 6, prefix
-- length, and the network's first address as fixed-width lower-case hex (8 or 32 digits).
CREATE TABLE org_scopes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    family BIGINT,
    prefix_len BIGINT,
    net_hex TEXT,
    UNIQUE (org_id, kind, value)
);
CREATE INDEX org_scopes_lookup ON org_scopes (kind, family, prefix_len, net_hex);

-- API tokens: only the SHA-256 of the secret is kept. org_id is NULL for operators.
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT REFERENCES orgs(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    revoked TEXT
);

CREATE TABLE servers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (org_id, name)
);

-- One uploaded exhunt scan document, kept whole (canonical JSON) and once per organisation.
CREATE TABLE scan_docs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    body TEXT NOT NULL,
    uploaded TEXT NOT NULL,
    token_id BIGINT,
    UNIQUE (org_id, sha256)
);

-- One server's part of a scan document.
CREATE TABLE scan_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    doc_id BIGINT NOT NULL REFERENCES scan_docs(id) ON DELETE CASCADE,
    server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    server_index BIGINT NOT NULL,
    verdict TEXT NOT NULL,
    verdicts TEXT NOT NULL,
    findings BIGINT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    uploaded TEXT NOT NULL
);
CREATE INDEX scan_results_server ON scan_results (org_id, server_id, finished);

-- Network observations: exhunt probe rows and third-party reports (Shadowserver). org_id is
-- NULL while the observation is in the unassigned queue (unassigned_reason says why).
-- dedup: "<org id or ->:<sha256 of the canonical row>", so the same row is stored once per owner.
CREATE TABLE observations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT REFERENCES orgs(id) ON DELETE CASCADE,
    server_id BIGINT REFERENCES servers(id) ON DELETE SET NULL,
    source TEXT NOT NULL,
    ip TEXT,
    port BIGINT,
    host TEXT,
    asn BIGINT,
    state TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    build TEXT,
    detail TEXT NOT NULL,
    seen TEXT NOT NULL,
    uploaded TEXT NOT NULL,
    unassigned_reason TEXT,
    dedup TEXT NOT NULL UNIQUE,
    raw TEXT NOT NULL
);
CREATE INDEX observations_org ON observations (org_id, seen);
CREATE INDEX observations_server ON observations (server_id, seen);

-- Who changed what (uploads, organisations, tokens, assignments).
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    token_id BIGINT,
    org_id BIGINT,
    action TEXT NOT NULL,
    object TEXT NOT NULL
);
CREATE INDEX audit_org ON audit (org_id, at);
